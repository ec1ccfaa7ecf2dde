/**
 * What every command of the CLI shares: option parsers, Ctrl-C handling, and the one way an error
 * reaches the terminal (code, what happened, how to fix it; exit 130 when interrupted, else 1).
 */
import { InvalidArgumentError } from 'commander';
import { errorMessage, isLabError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import { watchLaunchers } from './launcher.ts';

/** commander parser for counts (runs, repeats, lengths). */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

/** commander parser for counts that may be 0 (a seed, an experiment turned off). */
export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a whole number ≥ 0, got "${value}"`);
  return n;
}

/** How long the lab may take to stop cleanly once its launcher is gone, before it exits anyway. */
export const ORPHAN_GRACE_MS = 120_000;

/**
 * Ctrl-C (or SIGTERM) once: warn with `onFirst` and abort the signal, so the work stops at its next
 * safe point and cleans up. Twice: exit now. The same first step happens when the process that
 * launched the lab (npm, tsx) is killed outright; then the lab exits after ORPHAN_GRACE_MS at the
 * latest. `release()` removes the handlers.
 */
export function interruptible(sink: ProgressSink, onFirst: string): { signal: AbortSignal; release(): void } {
  const ac = new AbortController();
  const onSig = (): void => {
    if (ac.signal.aborted) process.exit(130);
    sink({ kind: 'log', level: 'warn', message: `interrupt: ${onFirst} (Ctrl-C again to abort now)` });
    ac.abort();
  };
  const stopWatching = watchLaunchers((who) => {
    sink({ kind: 'log', level: 'warn', message: `the process that launched the lab is gone (${who.comm}, pid ${who.pid}): ${onFirst}` });
    setTimeout(() => process.exit(137), ORPHAN_GRACE_MS).unref();
    ac.abort();
  });
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return {
    signal: ac.signal,
    release(): void {
      stopWatching();
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    },
  };
}

/** Prints `error [CODE]: message` and the fix, then exits (130 if interrupted). */
export function printError(e: unknown): never {
  if (isLabError(e)) {
    process.stderr.write(`error [${e.code}]: ${e.describe()}\n`);
    if (process.env.XCL_VERBOSE && e.stack) process.stderr.write(`${e.stack}\n`);
    process.exit(e.code === 'INTERRUPTED' ? 130 : 1);
  }
  process.stderr.write(`unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : errorMessage(e)}\n`);
  process.exit(1);
}
