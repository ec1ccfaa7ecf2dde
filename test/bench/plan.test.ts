/**
 * The matrix's progress total: fixed when the run starts from what raw.jsonl still lacks, never
 * moved by the runs themselves, lowered only by the runs of a cell that will not run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Approach, Description } from '../../lab/approaches/approach.ts';
import type { ApproachName } from '../../lab/results/record.ts';
import type { ProgressEvent } from '../../lab/progress.ts';
import { HostTarget } from '../../lab/target.ts';
import { plannedRuns, StepPlan, type PlannedFrom } from '../../lab/bench/plan.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import type { OpenKernel } from '../../lab/bench/kernel-session.ts';
import { fakeKernelSession } from './fake-session.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const progressOf = (events: ProgressEvent[]) =>
  events.filter((e): e is Extract<ProgressEvent, { kind: 'phase-progress' }> => e.kind === 'phase-progress' && e.id === 'matrix');

describe('StepPlan', () => {
  it('keeps its total through every step and note, and lowers it only by unplanned runs', () => {
    const events: ProgressEvent[] = [];
    const plan = new StepPlan((e) => events.push(e), 6);
    plan.begin('matrix t');
    for (let i = 0; i < 3; i++) {
      plan.note(`warm-up ${i}`);
      plan.step(`run ${i}`);
    }
    expect(progressOf(events).map((e) => e.total)).toEqual([6, 6, 6, 6, 6, 6]);
    expect(progressOf(events).map((e) => e.done)).toEqual([0, 1, 1, 2, 2, 3]);
    plan.unplan(2);
    expect(plan.total).toBe(4);
    plan.step('run 3');
    expect(progressOf(events).at(-1)).toMatchObject({ done: 4, total: 4 });
    // Never below what is done: the bar cannot run backwards.
    plan.unplan(10);
    expect(plan.total).toBe(4);
    expect(events[0]).toMatchObject({ kind: 'phase-start', id: 'matrix', total: 6 });
  });

  it('plans every run of every open cell, minus the runs already recorded', () => {
    const recorded: PlannedFrom = {
      hasCell: (k, a) => k === '6.1' && a === 'fused',
      runsDone: (k, a) => (k === 'host' && a === 'manual' ? 2 : 0),
    };
    // host: fused 5 + manual 3; 6.1: fused closed, manual 5.
    expect(plannedRuns({ kernels: ['host', '6.1'], approaches: ['fused', 'manual'], runs: 5 }, recorded)).toBe(13);
  });
});

/** A session whose approaches all run and whose iperf3 answers at once. */
function fakeOpen(): OpenKernel {
  return async (kernel) => {
    const d = await mkdtemp(join(tmpdir(), 'xt7-plan-'));
    dirs.push(d);
    const target = await HostTarget.create(d);
    const approach = (name: ApproachName): Approach => {
      let attached = false;
      return {
        name,
        summary: `fake ${name}`,
        supports: async () => ({ supported: true }),
        load: async () => {},
        attach: async () => {
          attached = true;
        },
        replace: async () => {},
        detach: async () => {
          attached = false;
        },
        describe: async (): Promise<Description> => ({ approach: name, attached: name !== 'none' && attached, xdpMode: name === 'none' ? 'none' : 'native', programs: [], maps: [], hop: 'none', notes: [] }),
      };
    };
    const session = fakeKernelSession(kernel, target, approach, { ifname: 'xt7plan0', netns: 'xt7plan' });
    return session;
  };
}

describe('the matrix run against its plan', () => {
  it('reports one total from start to end when every cell runs, and reaches it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'xt7-plan-out-'));
    dirs.push(out);
    const events: ProgressEvent[] = [];
    await runMatrix({ kernels: ['host'], approaches: ['none', 'fused', 'manual'], runs: 3, durationS: 1, quick: false, renderReport: false, probeOverheadPairs: 0, runId: 'plan-1', outDir: out, openKernel: fakeOpen(), progress: (e) => events.push(e) });
    const start = events.find((e) => e.kind === 'phase-start' && e.id === 'matrix');
    expect(start).toMatchObject({ total: 9 });
    const progress = progressOf(events);
    expect(progress.length).toBeGreaterThan(9);
    expect(new Set(progress.map((e) => e.total))).toEqual(new Set([9]));
    expect(progress.at(-1)).toMatchObject({ done: 9, total: 9 });
  });

  it('a resume plans only the runs still missing', async () => {
    const out = await mkdtemp(join(tmpdir(), 'xt7-plan-out-'));
    dirs.push(out);
    const ac = new AbortController();
    const opts = { kernels: ['host'], approaches: ['none', 'fused'] as ApproachName[], runs: 3, durationS: 1, quick: false, renderReport: false, probeOverheadPairs: 0, runId: 'plan-2', outDir: out, openKernel: fakeOpen() };
    let steps = 0;
    await expect(
      runMatrix({
        ...opts,
        signal: ac.signal,
        progress: (e) => {
          if (e.kind === 'phase-progress' && e.id === 'matrix' && e.note?.includes(' run ') && ++steps === 4) ac.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'INTERRUPTED' });
    const events: ProgressEvent[] = [];
    await runMatrix({ ...opts, progress: (e) => events.push(e) });
    expect(events.find((e) => e.kind === 'phase-start' && e.id === 'matrix')).toMatchObject({ total: 2 });
    expect(new Set(progressOf(events).map((e) => e.total))).toEqual(new Set([2]));
  });
});
