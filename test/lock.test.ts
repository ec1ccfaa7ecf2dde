/**
 * lab/lock.ts, the cross-process lock of the kernel and image caches: exclusion, takeover from a
 * dead owner (also of an old directory-style lock), and the caller's error on timeout.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { LabError } from '../lab/errors.ts';
import { acquireLock, pidAlive, withLock } from '../lab/lock.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function scratch(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xcl-lock-'));
  dirs.push(d);
  return d;
}
const timeoutError = (owner: number) => new LabError('BAD_INPUT', `held by ${owner}`);

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = execa('true');
  const pid = child.pid!;
  await child;
  return pid;
}

describe('acquireLock / withLock', () => {
  it('writes the owner pid, removes the file on release, and serializes two holders', async () => {
    const path = join(await scratch(), 'sub', '.lock');
    const order: string[] = [];
    const first = withLock(path, { timeoutError }, async () => {
      expect(await readFile(path, 'utf8')).toBe(String(process.pid));
      order.push('first in');
      await new Promise((r) => setTimeout(r, 300));
      order.push('first out');
    });
    await new Promise((r) => setTimeout(r, 50));
    const waits: number[] = [];
    // Our own pid holds it, so the second caller sees a live owner and waits.
    const second = withLock(path, { timeoutError, onWait: (o) => waits.push(o) }, async () => {
      order.push('second');
    });
    await Promise.all([first, second]);
    expect(order).toEqual(['first in', 'first out', 'second']);
    expect(waits).toEqual([process.pid]);
    expect(existsSync(path)).toBe(false);
  });

  it('takes over a lock whose owner is dead, and an old directory-style lock', async () => {
    const dir = await scratch();
    const dead = await deadPid();
    expect(pidAlive(dead)).toBe(false);
    await writeFile(join(dir, 'a.lock'), String(dead));
    await (await acquireLock(join(dir, 'a.lock'), { timeoutError }))();
    await mkdir(join(dir, 'b.lock'));
    await writeFile(join(dir, 'b.lock', 'pid'), String(dead));
    const release = await acquireLock(join(dir, 'b.lock'), { timeoutError });
    expect(await readFile(join(dir, 'b.lock'), 'utf8')).toBe(String(process.pid));
    await release();
  });

  it('throws the caller\'s error when a live owner keeps it past the timeout', async () => {
    const path = join(await scratch(), '.lock');
    await writeFile(path, String(process.pid));
    const err = await acquireLock(path, { timeoutMs: 600, timeoutError }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as Error).message).toBe(`held by ${process.pid}`);
    expect(await readFile(path, 'utf8')).toBe(String(process.pid));
  });
});
