/**
 * An exclusive lock between processes sharing a cache (a test run and a benchmark may resolve a
 * kernel or build a VM image at the same time): a file created with O_EXCL holding the owner's
 * pid. A lock whose owner is dead is taken over, so a killed run never blocks the next one.
 */
import { mkdir, open as openFile, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LabError } from './errors.ts';

/** Whether a process exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LockOptions {
  /** Give up after this long (default 6 h). */
  timeoutMs?: number;
  /** Called once, when the lock is found held by a live process. */
  onWait?: (owner: number) => void;
  /** The error thrown on timeout. */
  timeoutError: (owner: number) => LabError;
}

async function ownerOf(path: string): Promise<number> {
  const n = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** Takes the lock at `path`; returns the release function. */
export async function acquireLock(path: string, opts: LockOptions): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + (opts.timeoutMs ?? 6 * 3600_000);
  let told = false;
  for (;;) {
    try {
      const fh = await openFile(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner = await ownerOf(path);
    if (owner === 0) {
      // Created but not yet filled in by a live owner reads as "" for a moment: give it a beat.
      await new Promise((r) => setTimeout(r, 200));
      owner = await ownerOf(path);
    }
    if (owner === 0 || !pidAlive(owner)) {
      // recursive: also clears a directory-style lock left by an older version of the lab.
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (!told) {
      opts.onWait?.(owner);
      told = true;
    }
    if (Date.now() > deadline) throw opts.timeoutError(owner);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Runs `work` holding the lock at `path`. */
export async function withLock<T>(path: string, opts: LockOptions, work: () => Promise<T>): Promise<T> {
  const release = await acquireLock(path, opts);
  try {
    return await work();
  } finally {
    await release();
  }
}
