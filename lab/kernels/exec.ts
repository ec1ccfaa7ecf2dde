/**
 * Small helpers shared by the providers: running a tool with a clear error, hashing files,
 * atomic directory moves.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, constants, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { LabError, type LabErrorCode } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';

export interface ToolRun {
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Error code when the tool exits non-zero (default COMMAND). */
  code?: LabErrorCode;
  /** What we were doing, for the message ("apt-get update for bookworm"). */
  what: string;
  remedy?: string;
  timeoutMs?: number;
  /** Stream each output line to the sink as a progress note (long builds). */
  progress?: { sink: ProgressSink; id: string };
}

const TOOL_PACKAGES: Record<string, string> = {
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  depmod: 'kmod',
  make: 'make',
  tar: 'tar',
  xz: 'xz-utils',
  pahole: 'dwarves',
};

/** Runs argv without a shell; throws LabError naming the command and the tail of its stderr. */
export async function tool(argv: readonly string[], opts: ToolOptions): Promise<ToolRun> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new LabError('BAD_INPUT', `${opts.what}: empty command`);
  const child = execa(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    extendEnv: false,
    reject: false,
    timeout: opts.timeoutMs,
    stdin: 'ignore',
    lines: false,
  });
  if (opts.progress) {
    const { sink, id } = opts.progress;
    let done = 0;
    child.stdout?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') sink({ kind: 'phase-progress', id, done: ++done, note: line.trim().slice(0, 200) });
      }
    });
  }
  const r = await child;
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr : '';
  if ((r as { code?: string }).code === 'ENOENT') {
    const pkg = TOOL_PACKAGES[cmd] ?? cmd;
    throw new LabError('MISSING_TOOL', `${opts.what}: ${cmd} is not installed`, {
      remedy: `apt-get install -y ${pkg} (or npm run setup).`,
    });
  }
  if (r.timedOut) {
    throw new LabError(opts.code ?? 'COMMAND', `${opts.what}: ${argv.join(' ')} timed out after ${opts.timeoutMs} ms`, {
      remedy: opts.remedy,
    });
  }
  if (r.exitCode !== 0) {
    const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-12).join('\n');
    throw new LabError(
      opts.code ?? 'COMMAND',
      `${opts.what}: ${argv.join(' ')} exited ${r.exitCode ?? r.signal ?? '?'}${tail ? `:\n${tail}` : ''}`,
      { remedy: opts.remedy, details: { argv: [...argv], exitCode: r.exitCode, stderr } },
    );
  }
  return { stdout, stderr };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** A fresh staging directory next to `dest`, so the final rename stays on one filesystem. */
export async function stagingDir(dest: string): Promise<string> {
  const dir = `${dest}.tmp-${process.pid}-${Date.now()}`;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Replaces `dest` by `staged` (rename is atomic; an old `dest` is removed first). */
export async function publishDir(staged: string, dest: string): Promise<void> {
  await rm(dest, { recursive: true, force: true });
  await rename(staged, dest);
}

/** Is `cmd` an executable on PATH (or in the sbin directories root tools live in)? */
export async function onPath(cmd: string): Promise<boolean> {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) if (d && (await exists(join(d, cmd)))) return true;
  return false;
}

