/**
 * `--hook xdp|tc|both` on the matrix: which approaches it selects (from the schema's hook of each
 * approach, so a newly registered one joins), the BAD_INPUT for an approach of the other hook, the
 * progress total fixed from the start with TC cells and an unsupported one among them; the TC
 * statistics' accounting (per skb, summed over programs the kernel walks itself); and records
 * written before the hook existed still parsing. No root: the sessions here are fakes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import type { Approach, Description } from '../../lab/approaches/approach.ts';
import { APPROACH_NAMES, RunRecord, TC_APPROACH_NAMES, XDP_APPROACH_NAMES, approachesOfHook, hookOfApproach, type ApproachName } from '../../lab/results/record.ts';
import type { ProgressEvent } from '../../lab/progress.ts';
import { HostTarget } from '../../lab/target.ts';
import { resolveSettings, selectApproaches } from '../../lab/bench/plan.ts';
import { statsDelta, tcAccounting, type StatsSnapshot } from '../../lab/bench/bpf-stats.ts';
import { probeNullReasonOf } from '../../lab/bench/measure.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import { matrixCommand, parseHook, runMatrix } from '../../lab/commands/matrix.ts';
import type { OpenKernel } from '../../lab/bench/kernel-session.ts';
import { fakeKernelSession } from './fake-session.ts';
import { isLabError } from '../../lab/errors.ts';
import { RUN_TAG } from '../support/names.ts';

const PREFIX = `tb${RUN_TAG}`;
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

const base = { kernels: ['host'], runs: 2, durationS: 1, quick: false };

describe('--hook selects the approaches', () => {
  it('defaults to both hooks: every registered approach, XDP and TC', () => {
    const s = resolveSettings(base);
    expect(s.hook).toBe('both');
    expect(s.approaches).toEqual([...APPROACH_NAMES]);
    for (const a of TC_APPROACH_NAMES) expect(s.approaches).toContain(a);
  });

  it('takes the approaches of one hook from the schema, none of the other', () => {
    const tc = selectApproaches('tc');
    expect(tc).toEqual(approachesOfHook('tc'));
    expect(tc).toEqual(expect.arrayContaining(['tc-none', 'tc-fused', 'tc-manual', 'tc-filters']));
    expect(tc.every((a) => hookOfApproach(a) === 'tc')).toBe(true);
    const xdp = selectApproaches('xdp');
    expect(xdp).toEqual([...XDP_APPROACH_NAMES]);
    expect(xdp.some((a) => a.startsWith('tc-'))).toBe(false);
  });

  it('combines with --approaches, and TC approaches are no longer refused', () => {
    expect(resolveSettings({ ...base, hook: 'tc', approaches: ['tc-fused', 'tc-none'] }).approaches).toEqual(['tc-fused', 'tc-none']);
    expect(resolveSettings({ ...base, approaches: ['fused', 'tc-fused'] }).approaches).toEqual(['fused', 'tc-fused']);
  });

  it('an approach of the other hook is BAD_INPUT naming it, with the fix', () => {
    const e = thrown(() => resolveSettings({ ...base, hook: 'xdp', approaches: ['fused', 'tc-manual'] }));
    expect(isLabError(e, 'BAD_INPUT'), String(e)).toBe(true);
    expect((e as Error).message).toMatch(/tc-manual runs on the TC hook, not on --hook xdp/);
    expect((e as { remedy?: string }).remedy).toMatch(/--hook tc or --hook both/);
    const e2 = thrown(() => resolveSettings({ ...base, hook: 'tc', approaches: ['none'] }));
    expect(isLabError(e2, 'BAD_INPUT')).toBe(true);
    expect((e2 as Error).message).toMatch(/approach none runs on the XDP hook/);
    expect(isLabError(thrown(() => resolveSettings({ ...base, hook: 'udp' as 'tc' })), 'BAD_INPUT')).toBe(true);
  });

  it('the CLI parses --hook (default both) and refuses an unknown one', async () => {
    expect(parseHook('tc')).toBe('tc');
    expect(() => parseHook('egress')).toThrow(InvalidArgumentError);
    const seen: Record<string, unknown>[] = [];
    const cmd = matrixCommand();
    cmd.action((o: Record<string, unknown>) => {
      seen.push(o);
    });
    const parent = new Command().exitOverride().addCommand(cmd);
    await parent.parseAsync(['node', 'lab', 'matrix', '--kernels', 'host']);
    await parent.parseAsync(['node', 'lab', 'matrix', '--hook', 'xdp', '--approaches', 'fused']);
    expect(seen[0]).toMatchObject({ hook: 'both' });
    expect(seen[0]!.approaches).toBeUndefined();
    expect(seen[1]).toMatchObject({ hook: 'xdp', approaches: ['fused'] });
  });

  it('TC runs have no probe data, with the reason; XDP chains may', () => {
    for (const a of TC_APPROACH_NAMES) expect(probeNullReasonOf(a)).toMatch(/runs on TC ingress: .*veth_poll.*does not run/);
    expect(probeNullReasonOf('none')).toMatch(/veth_poll does not run/);
    expect(probeNullReasonOf('fused')).toBeNull();
  });
});

/** A session whose approaches load at once, `tc-filters` unsupported, iperf3 answering at once. */
function fakeOpen(unsupported: ApproachName): OpenKernel {
  return async (kernel) => {
    const d = await mkdtemp(join(tmpdir(), `${PREFIX}-hook-`));
    dirs.push(d);
    const target = await HostTarget.create(d);
    const approach = (name: ApproachName): Approach => ({
      name,
      summary: `fake ${name}`,
      supports: async () => (name === unsupported ? { supported: false, reason: `fake kernel without ${name}` } : { supported: true }),
      load: async () => {},
      attach: async () => {},
      replace: async () => {},
      detach: async () => {},
      describe: async (): Promise<Description> => ({ approach: name, attached: true, xdpMode: 'none', programs: [], maps: [], hop: 'none', notes: [] }),
    });
    const session = fakeKernelSession(kernel, target, approach, { ifname: `${PREFIX}h0`, netns: `${PREFIX}h` });
    return session;
  };
}

describe('the matrix with --hook tc', () => {
  it('plans every TC run from the start, closes an unsupported approach with its reason and lowers the total by its runs only', async () => {
    const out = await mkdtemp(join(tmpdir(), `${PREFIX}-hook-out-`));
    dirs.push(out);
    const events: ProgressEvent[] = [];
    const r = await runMatrix({ ...base, hook: 'tc', renderReport: false, probeOverheadPairs: 0, statsOverheadPairs: 0, runId: 'hook-tc', outDir: out, openKernel: fakeOpen('tc-filters'), progress: (e) => events.push(e) });
    const tc = approachesOfHook('tc');
    const start = events.find((e) => e.kind === 'phase-start' && e.id === 'matrix');
    expect(start).toMatchObject({ total: tc.length * 2 });
    // The unsupported cell leaves the plan before the first run; from then on the total holds and is reached.
    const progress = events.flatMap((e) => (e.kind === 'phase-progress' && e.id === 'matrix' ? [e] : []));
    expect(new Set(progress.map((e) => e.total))).toEqual(new Set([(tc.length - 1) * 2]));
    expect(progress.at(-1)).toMatchObject({ done: (tc.length - 1) * 2 });
    expect(r.cells.map((c) => c.approach).sort()).toEqual([...tc].sort());
    expect(r.cells.find((c) => c.approach === 'tc-filters')).toMatchObject({ status: 'unsupported', reason: 'fake kernel without tc-filters', runs: 0 });
    const runs = (await loadRecords(r.rawFile)).records.filter((x): x is RunRecord => x.kind === 'run');
    expect(runs).toHaveLength((tc.length - 1) * 2);
    for (const x of runs) {
      expect(x.hook).toBe('tc');
      expect(x.xdpMode).toBe('none');
      expect(x.probe).toBeNull();
      expect(x.probeNullReason).toMatch(/runs on TC ingress/);
    }
    expect(runs.find((x) => x.approach === 'tc-none')?.bpfStatsNullReason).toMatch(/tc-none attaches no program/);
  });
});

describe('TC statistics accounting', () => {
  const snap = (e: [number, number, number][]): StatsSnapshot => new Map(e.map(([id, runCnt, runTimeNs]) => [id, { runCnt, runTimeNs }]));
  const programs = [
    { role: 'filter', id: 1, name: 'tc_filter' },
    { role: 'metrics', id: 2, name: 'tc_metrics' },
    { role: 'logger', id: 3, name: 'tc_logger' },
  ];
  const before = snap([[1, 10, 1000], [2, 10, 500], [3, 10, 700]]);
  const after = snap([[1, 110, 6000], [2, 110, 3500], [3, 110, 4700]]);

  it('sums the programs the kernel walks itself (tc-next) over the first one\'s count, per skb', () => {
    const acc = tcAccounting({ hop: 'tc-next', programs: programs.map((p) => ({ ...p })) });
    const d = statsDelta('fd', programs, before, after, acc);
    if (!('stats' in d)) throw new Error(d.reason);
    expect(d.stats).toMatchObject({ runCnt: 100, runTimeNs: 5000 + 3000 + 4000, nsPerPacket: 120, unit: 'skb', summedPrograms: 3 });
    expect(d.stats.accountingNote).toMatch(/not included.*skbs/);
  });

  it('takes the attached entry alone where the others are tail-called', () => {
    const d = statsDelta('fd', programs, before, after, tcAccounting({ hop: 'tail-call-constant', programs: programs.map((p) => ({ ...p })) }));
    if (!('stats' in d)) throw new Error(d.reason);
    expect(d.stats).toMatchObject({ runCnt: 100, runTimeNs: 5000, nsPerPacket: 50, unit: 'skb', summedPrograms: 1 });
  });

  it('XDP accounting is unchanged: no unit, no sum', () => {
    const d = statsDelta('fd', programs, before, after);
    if (!('stats' in d)) throw new Error(d.reason);
    expect(d.stats.nsPerPacket).toBe(50);
    expect(d.stats.unit).toBeUndefined();
  });
});

describe('records written before the hook was measured', () => {
  it('a run record without hook, unit or the TC statistics fields still parses', () => {
    const old = {
      kind: 'run',
      schema: 1,
      runId: 'old',
      kernel: 'host',
      kernelRelease: '6.18.0',
      accelerator: 'host',
      approach: 'fused',
      iteration: 0,
      startedAt: '2026-11-29T08:00:00.000Z',
      endedAt: '2026-11-29T08:00:02.000Z',
      iperf: { bitsPerSecond: 2e9, bytes: 5e8, seconds: 2, retransmits: 0 },
      probe: null,
      probeNullReason: 'kprobes unavailable',
      bpfStats: { mode: 'fd', programId: 7, programName: 'xdp_fused', runCnt: 10, runTimeNs: 900, nsPerPacket: 90, programs: [{ role: 'fused', id: 7, name: 'xdp_fused', runCnt: 10, runTimeNs: 900 }] },
      xdpMode: 'native',
    };
    const r = RunRecord.parse(old);
    expect(r.hook).toBeUndefined();
    expect(r.bpfStats?.unit).toBeUndefined();
    expect(RunRecord.safeParse({ ...old, hook: 'egress' }).success).toBe(false);
  });
});
