/**
 * The chain microbenchmark end to end on this machine's kernel, quick mode (small repeat): a record
 * for each approach and each chain length, every record valid against the raw-results schema, both
 * hop kinds present and labelled, a positive fitted cost per hop for every scaling variant, the
 * dispatcher recorded as unsupported with the reason where the kernel has no freplace, and nothing
 * of the bench left behind. No timing is asserted.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agree, requirements } from '../support/requirements.ts';
import { HostTarget } from '../../lab/target.ts';
import { isLabError } from '../../lab/errors.ts';
import { RawRecord, type LatencyRecord, type MicroRecord } from '../../lab/results/record.ts';
import { probeFeatures, type KernelFeatures } from '../../lab/features.ts';
import { runMicrobenchDetailed, runMicrobenchToFile, supportedPatchModes, type MicrobenchResult } from '../../lab/microbench/index.ts';
import { breakdownInput } from '../../lab/microbench/table.ts';
import { isLiveVariant } from '../../lab/microbench/tc-live.ts';
import { costBreakdown } from '../../lab/results/breakdown.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PREFIX = 'xt8';
const LENGTHS = [1, 2, 4, 8, 16, 33];
const REPETITIONS = 3;
const LIVE = { lengths: [1, 4], durationS: 1, repetitions: 2 };

function leftovers(): string[] {
  const pins = execFileSync('ls', ['/sys/fs/bpf']).toString().split('\n').filter((n) => n.startsWith(`${PREFIX}-micro-`));
  const ns = execFileSync('ip', ['netns', 'list']).toString().split('\n').filter((n) => n.startsWith(`${PREFIX}m`) || n.startsWith(`${PREFIX}lv`));
  const links = execFileSync('ip', ['-o', 'link']).toString().split('\n').filter((l) => new RegExp(`: ${PREFIX}([ab]|lv)`).test(l));
  return [...pins, ...ns, ...links];
}

describe.skipIf(need.skip)('bench chain on the host kernel (quick)', () => {
  let dir: string;
  let target: HostTarget;
  let features: KernelFeatures;
  let result: MicrobenchResult;
  let lines: unknown[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'xt8-micro-'));
    target = await HostTarget.create(join(dir, 'work'));
    features = await probeFeatures(target, { prefix: PREFIX });
    result = await runMicrobenchToFile(target, join(dir, 'raw.jsonl'), {
      runId: 'xt8-test',
      kernel: 'host',
      quick: true,
      repeat: 20_000,
      repetitions: REPETITIONS,
      lengths: LENGTHS,
      latencyCycles: 2,
      prefix: PREFIX,
      features,
      liveTc: LIVE,
    });
    lines = (await readFile(join(dir, 'raw.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as unknown);
  }, 900_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The JIT's records; the interpreter's (execution 'interpreter') have their own test.
  const micro = (): MicroRecord[] => result.records.filter((r): r is MicroRecord => r.kind === 'micro' && r.execution !== 'interpreter');

  it('writes every record, one JSON line each, valid against the schema', () => {
    expect(lines).toHaveLength(result.records.length);
    for (const l of lines) {
      const parsed = RawRecord.safeParse(l);
      expect(parsed.success, JSON.stringify(l)).toBe(true);
    }
    for (const r of result.records) {
      expect(r.runId).toBe('xt8-test');
      expect(r.kernel).toBe('host');
    }
  });

  it('measures every chain length of both manual hop kinds, the end-lookup variant and each patch mode the kernel supports', () => {
    const modes = supportedPatchModes(features).modes;
    const expected: [string, string][] = [
      ['chain/manual-constant', 'tail-call-constant'],
      ['chain/manual-indirect', 'tail-call-indirect'],
      ['chain/manual-end-lookup', 'tail-call-constant'],
      // The TC manual chain's hop: the same tail calls between sched_cls programs.
      ['chain/tc-manual-constant', 'tail-call-constant'],
      ...modes.map((m): [string, string] => [`chain/patched-${m}`, 'tail-call-constant']),
    ];
    for (const [variant, hop] of expected) {
      const recs = micro().filter((r) => r.variant === variant);
      expect(recs.map((r) => r.chainLength).sort((a, b) => a - b), variant).toEqual(LENGTHS);
      for (const r of recs) {
        expect(r.hop).toBe(hop);
        expect(r.repeat).toBe(20_000);
        expect(r.nsPerPacket).toHaveLength(REPETITIONS);
        for (const ns of r.nsPerPacket) expect(ns).toBeGreaterThan(0);
      }
    }
  });

  it('measures the TC filter chain\'s scaling under live traffic, timed in-band, beside the test-run rows', () => {
    const recs = micro().filter((r) => r.variant === 'chain/tc-filters');
    expect(recs.map((r) => r.chainLength)).toEqual(LIVE.lengths);
    for (const r of recs) expect(r).toMatchObject({ hop: 'tc-next', timing: 'in-band' });
    for (const r of micro().filter((x) => !isLiveVariant(x.variant))) expect(r.timing).toBeUndefined();
  });

  it('fits a positive cost per hop for every scaling variant it measured', () => {
    expect(result.scaling.length).toBeGreaterThanOrEqual(3);
    for (const s of result.scaling) {
      const lengths = isLiveVariant(s.variant) ? LIVE.lengths : LENGTHS;
      expect(s.fit, s.variant).not.toBeNull();
      expect(Number.isFinite(s.fit!.slope), s.variant).toBe(true);
      expect(s.fit!.n).toBe(lengths.length * (isLiveVariant(s.variant) ? LIVE.repetitions : REPETITIONS));
      expect([...s.medians.keys()]).toEqual(lengths);
    }
  });

  it('observes the kernel limit on its own chain, agreeing with the feature probe', () => {
    expect(result.maxChainPrograms).not.toBeNull();
    expect(result.maxChainPrograms).toBe(features.maxChainPrograms);
    expect(result.maxChainPrograms!).toBeGreaterThanOrEqual(Math.max(...LENGTHS));
  });

  it('records the dispatcher as measured, or as unsupported with the kernel\'s reason', () => {
    const recs = micro().filter((r) => r.variant === 'chain/dispatcher');
    if (agree('freplace', features.features.freplace.ok, features.features.freplace.detail)) {
      expect(recs.length).toBeGreaterThan(1);
      for (const r of recs) expect(r.hop).toBe('freplace');
    } else {
      expect(recs).toHaveLength(1);
      expect(recs[0]!.nsPerPacket).toEqual([]);
      const reason = (recs[0] as MicroRecord & { reason?: string }).reason ?? '';
      expect(reason).toMatch(/^unsupported: /);
      expect(reason).toContain(features.features.freplace.detail);
      expect(result.unsupported.some((u) => u.variant === 'chain/dispatcher' && u.status === 'unsupported')).toBe(true);
    }
  });

  it('measures the trio per approach on the representative packet, saying which hop each uses', () => {
    const byVariant = new Map(micro().filter((r) => !r.variant.startsWith('chain/')).map((r) => [r.variant, r]));
    const fused = byVariant.get('fused');
    const manual = byVariant.get('manual');
    expect(fused?.nsPerPacket).toHaveLength(REPETITIONS);
    expect(fused?.chainLength).toBe(1);
    // The fused program has no hop between stages (the approach says "inline" or "none").
    expect(['none', 'inline']).toContain(fused?.hop);
    expect(manual?.nsPerPacket).toHaveLength(REPETITIONS);
    expect(manual?.chainLength).toBe(3);
    expect(manual?.hop).toBe('tail-call-constant');
    // Every patch mode the kernel loads is measured on the trio itself (here both: 6.18 mixes
    // tail calls with bpf2bpf calls, and the inline mode loads everywhere).
    for (const m of supportedPatchModes(features).modes) {
      const p = byVariant.get(`patched-${m}`);
      expect(p, `patched-${m}`).toBeDefined();
      expect(p!.chainLength).toBe(3);
      expect(p!.nsPerPacket, `patched-${m}: ${(p as MicroRecord & { reason?: string }).reason ?? ''}`).toHaveLength(REPETITIONS);
      expect(p!.hop).toBe('tail-call-constant');
    }
    // Manual and each patch mode also from each later stage on: the rest of the chain, passing.
    for (const v of ['manual', ...supportedPatchModes(features).modes.map((m) => `patched-${m}`)]) {
      for (const [stage, programs] of [['metrics', 2], ['logger', 1]] as const) {
        const r = byVariant.get(`${v}/from-${stage}`);
        expect(r, `${v}/from-${stage}`).toBeDefined();
        expect(r!.chainLength).toBe(programs);
        expect(r!.nsPerPacket).toHaveLength(REPETITIONS);
        for (const ns of r!.nsPerPacket) expect(ns).toBeGreaterThan(0);
      }
    }
    expect([...byVariant.keys()].filter((v) => v.includes('/from-') && !/^(manual|patched-(inline|subprog))\//.test(v))).toEqual([]);
    // And the breakdown splits the trio's excess by program from them.
    const stageParts = costBreakdown(breakdownInput(result)).filter((p) => p.id.startsWith('stage-') && p.id.endsWith('-inline'));
    expect(stageParts.map((p) => p.id)).toEqual(['stage-filter-inline', 'stage-metrics-inline', 'stage-logger-inline']);
    const disp = byVariant.get('dispatcher');
    expect(disp, 'dispatcher record').toBeDefined();
    if (!agree('freplace', features.features.freplace.ok, features.features.freplace.detail)) {
      expect(disp!.nsPerPacket).toEqual([]);
      expect((disp as MicroRecord & { reason?: string }).reason).toMatch(/^unsupported: /);
    }
  });

  it('times load+attach and detach of each approach it ran, and replace where the approach can', () => {
    const lat = result.records.filter((r): r is LatencyRecord => r.kind === 'latency');
    const ran = new Set(result.approaches.map((a) => a.approach));
    for (const a of ran) {
      for (const op of ['load-attach', 'detach'] as const) {
        const rec = lat.find((l) => l.approach === a && l.operation === op);
        expect(rec?.ms, `${a} ${op}`).toHaveLength(2);
      }
    }
    expect(lat.find((l) => l.approach === 'manual' && l.operation === 'replace')?.ms).toHaveLength(2);
    expect(lat.find((l) => l.approach === 'fused' && l.operation === 'replace')).toBeUndefined();
  });

  it('leaves no pin, namespace or interface behind', () => {
    expect(leftovers()).toEqual([]);
  });

  it('stops on an aborted signal with INTERRUPTED and cleans up', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await runMicrobenchDetailed(target, { runId: 'x', kernel: 'host', quick: true, prefix: PREFIX, features, signal: ac.signal }).catch((e: unknown) => e);
    expect(isLabError(err, 'INTERRUPTED')).toBe(true);
    expect(leftovers()).toEqual([]);
  });
});
