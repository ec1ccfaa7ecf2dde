/**
 * Running BPF_PROG_TEST_RUN many times with few round trips: a whole sweep (one repetition of every
 * chain length of a variant) is one `bpftool -j batch file -` on the target. On a guest reached over
 * SSH that is one command per sweep instead of three per point, and on every target the lengths of a
 * repetition are measured back to back, so slow drifts of the machine hit every length alike.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import { bpftoolBatch } from '../bpftool/index.ts';

export interface BatchRun {
  retval: number;
  durationNs: number;
}

/**
 * Runs bpftool commands as one batch (lab/bpftool/) and returns, for each `prog run` among them,
 * its result in order.
 */
export async function progRunBatch(target: Target, commands: readonly (readonly string[])[], what: string): Promise<BatchRun[]> {
  let entries;
  try {
    entries = await bpftoolBatch(target, commands, what);
  } catch (e) {
    if (e instanceof LabError) throw new LabError('BENCH', e.message, { remedy: e.remedy, details: e.details, cause: e });
    throw e;
  }
  const runs: BatchRun[] = [];
  for (const e of entries) {
    if (e.command[0] !== 'prog' || e.command[1] !== 'run') continue;
    const o = e.output as { retval?: number; duration?: number } | null;
    if (!o || typeof o.retval !== 'number' || typeof o.duration !== 'number') {
      throw new LabError('BENCH', `${target.name}: ${what}: \`bpftool ${e.command.join(' ')}\` gave no retval/duration: ${JSON.stringify(o)}`);
    }
    runs.push({ retval: o.retval, durationNs: o.duration });
  }
  return runs;
}

/** Key or value words for a u32, as bpftool takes them (`hex 01 00 00 00`). */
export function u32Words(n: number): string[] {
  const b = [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  return ['hex', ...b.map((x) => x.toString(16).padStart(2, '0'))];
}

export function progRunWords(prog: string, packet: string, repeat: number): string[] {
  return ['prog', 'run', 'pinned', prog, 'data_in', packet, 'repeat', String(repeat)];
}

