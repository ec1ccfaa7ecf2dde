/**
 * One lock per chain around every operation that changes it (init, attach, replace, recreate,
 * detach): two managers of one chain then run one after the other instead of sharing pins and
 * overwriting each other's state file. The lock is a file on the machine running the lab
 * (lab/lock.ts: O_EXCL, taken over from a dead owner, so a killed operation never blocks the
 * next), named after the target and the chain's pin directory: a guest's chains are only ever
 * managed from the host that runs the guest.
 */
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { withLock } from '../lock.ts';
import type { Target } from '../target.ts';

/** Where the lock files live (XCL_CHAIN_LOCK_DIR overrides, for tests). */
export function chainLockDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XCL_CHAIN_LOCK_DIR ?? join(tmpdir(), 'xdp-chain-lab-locks');
}

export function chainLockPath(target: Target, pinDir: string): string {
  const key = createHash('sha256').update(`${target.name}\0${pinDir.replace(/\/+$/, '')}`).digest('hex').slice(0, 24);
  return join(chainLockDir(), `chain-${key}.lock`);
}

/** How long an operation waits for another one on the same chain (a recreate loads a whole chain). */
const WAIT_MS = 10 * 60_000;

export async function withChainLock<T>(target: Target, pinDir: string, what: string, work: () => Promise<T>): Promise<T> {
  const path = chainLockPath(target, pinDir);
  return withLock(path, {
    timeoutMs: WAIT_MS,
    timeoutError: (owner) =>
      new LabError('CHAIN', `${what}: chain ${pinDir} on ${target.name} is still being changed by process ${owner} after ${WAIT_MS / 60_000} min`, {
        remedy: `Wait for process ${owner} to finish; if it is not a lab command, delete ${path}.`,
      }),
  }, work);
}
