/**
 * The per-approach microbenchmarks of the TC approaches on this machine's kernel (quick, small
 * repeat): BPF_PROG_TEST_RUN of the sched_cls entry on the representative frame as an skb for the
 * chains an entry program runs whole (TC_ACT_OK expected, and a dropped packet refused as not the
 * whole trio); the chains the kernel walks itself recorded as not runnable by test-run with the
 * reason, beside their separate sum-of-stages row; load+attach, replace and detach latency through
 * the Approach interface. No timing is asserted beyond "measured" (ns > 0).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { RUN_TAG } from '../support/names.ts';
import { HostTarget } from '../../lab/target.ts';
import { TC_ACT_OK, TC_ACT_SHOT, XDP_PASS } from '../../lab/bpf/uapi.ts';
import { approachesOfHook, RawRecord, type LatencyRecord, type MicroRecord } from '../../lab/results/record.ts';
import { probeFeatures, type KernelFeatures } from '../../lab/features.ts';
import { buildCorpus } from '../../lab/packets/corpus.ts';
import { silent } from '../../lab/progress.ts';
import { tcFused } from '../../lab/approaches/tc-chains.ts';
import { runMicrobenchDetailed, type MicrobenchResult } from '../../lab/microbench/index.ts';
import { measureApproaches, passVerdict } from '../../lab/microbench/approaches.ts';
import { sumOfStagesVariant } from '../../lab/microbench/variants.ts';
import { openSandbox } from '../../lab/microbench/sandbox.ts';
import { loadManualChain, measureSlotChains, SCALING_VARIANTS, type SlotChain } from '../../lab/microbench/scaling.ts';
import { buildMicroObject } from '../../lab/programs/micro.ts';
import { BPFTOOL_PROG_TYPE } from '../../lab/programs/hook.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PREFIX = `tb${RUN_TAG}`;
const REPETITIONS = 3;

function leftovers(): string[] {
  const pins = execFileSync('ls', ['/sys/fs/bpf']).toString().split('\n').filter((n) => n.startsWith(`${PREFIX}-micro-`));
  const ns = execFileSync('ip', ['netns', 'list']).toString().split('\n').filter((n) => n.startsWith(`${PREFIX}m`));
  return [...pins, ...ns];
}

describe('the TC verdict a passing packet must get', () => {
  it('is TC_ACT_OK on TC, XDP_PASS on XDP', () => {
    for (const a of approachesOfHook('tc')) expect(passVerdict(a)).toBe(TC_ACT_OK);
    expect(passVerdict('manual')).toBe(XDP_PASS);
  });
});

describe.skipIf(need.skip)('TC approaches under BPF_PROG_TEST_RUN on the host kernel (quick)', () => {
  let dir: string;
  let target: HostTarget;
  let features: KernelFeatures;
  let result: MicrobenchResult;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `${PREFIX}-micro-`));
    target = await HostTarget.create(join(dir, 'work'));
    features = await probeFeatures(target, { prefix: PREFIX });
    result = await runMicrobenchDetailed(target, {
      runId: 'tb-tc',
      kernel: 'host',
      quick: true,
      repeat: 20_000,
      repetitions: REPETITIONS,
      latencyCycles: 2,
      parts: { scaling: false },
      approaches: approachesOfHook('tc'),
      prefix: PREFIX,
      features,
    });
  }, 600_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The JIT's records; the interpreter's (execution 'interpreter') have their own test.
  const micro = (): MicroRecord[] => result.records.filter((r): r is MicroRecord => r.kind === 'micro' && r.execution !== 'interpreter');

  it('every record is valid against the schema, and no TC approach failed', () => {
    for (const r of result.records) RawRecord.parse(r);
    expect(result.unsupported.filter((u) => u.status === 'failed')).toEqual([]);
    // Only the selected hook's approaches were measured.
    const tc = approachesOfHook('tc');
    expect(micro().filter((r) => !tc.some((a) => r.variant === a || r.variant.startsWith(`${a}-`) || r.variant.startsWith(`${a}/`))).map((r) => r.variant)).toEqual([]);
  });

  it('test-runs tc-fused and tc-manual whole: TC_ACT_OK for the representative packet, ns > 0', () => {
    const by = new Map(micro().map((r) => [r.variant, r]));
    const fused = by.get('tc-fused');
    expect(fused?.chainLength).toBe(1);
    expect(fused?.hop).toBe('inline');
    const manual = by.get('tc-manual');
    expect(manual?.chainLength).toBe(3);
    expect(manual?.hop).toBe('tail-call-constant');
    for (const r of [fused, manual]) {
      expect(r?.nsPerPacket, r?.reason).toHaveLength(REPETITIONS);
      for (const ns of r!.nsPerPacket) expect(ns).toBeGreaterThan(0);
    }
    console.log(`host TC test-run ns/packet: tc-fused ${fused!.nsPerPacket.join(', ')}; tc-manual ${manual!.nsPerPacket.join(', ')}`);
  });

  it('records tc-filters as not runnable by test-run with the reason, and its sum of stages apart', () => {
    const not = micro().find((r) => r.variant === 'tc-filters');
    expect(not?.nsPerPacket).toEqual([]);
    expect(not?.reason).toMatch(/^unsupported: tc-filters: the kernel runs its programs .*BPF_PROG_TEST_RUN runs one program: it cannot run the chain/);
    const sum = micro().find((r) => r.variant === sumOfStagesVariant('tc-filters'));
    expect(sum?.hop).toBe('tc-next');
    expect(sum?.chainLength).toBe(3);
    expect(sum?.nsPerPacket).toHaveLength(REPETITIONS);
    for (const ns of sum!.nsPerPacket) expect(ns).toBeGreaterThan(0);
    expect(result.approaches.find((r) => r.variant === sumOfStagesVariant('tc-filters'))?.notes.join(' ')).toMatch(/walk between them is not included/);
    console.log(`host TC sum of stages, tc-filters: ${sum!.nsPerPacket.join(', ')} ns`);
  });

  it('times load+attach and detach of every TC approach, replace where it can, and says why tc-fused cannot', () => {
    const lat = result.records.filter((r): r is LatencyRecord => r.kind === 'latency');
    for (const a of ['tc-fused', 'tc-manual', 'tc-filters'] as const) {
      for (const op of ['load-attach', 'detach'] as const) expect(lat.find((l) => l.approach === a && l.operation === op)?.ms, `${a} ${op}`).toHaveLength(2);
    }
    for (const a of ['tc-manual', 'tc-filters'] as const) expect(lat.find((l) => l.approach === a && l.operation === 'replace')?.ms, `${a} replace: ${result.notes.join(' | ')}`).toHaveLength(2);
    expect(lat.find((l) => l.approach === 'tc-fused' && l.operation === 'replace')).toBeUndefined();
    expect(result.notes.join('\n')).toMatch(/tc-fused: replace not measured: .*no separate metrics/);
    expect(lat.some((l) => l.approach === 'tc-none')).toBe(false);
  });

  it('leaves no pin or namespace behind', () => {
    expect(leftovers()).toEqual([]);
  });

  it('scales the TC manual chain by tail calls between sched_cls programs, every length passing with TC_ACT_OK', async () => {
    const object = await buildMicroObject('tcChainConstant');
    const sb = await openSandbox(target, PREFIX);
    let chain: SlotChain | undefined;
    try {
      const packet = `${sb.workDir}/pkt.bin`;
      const local = join(dir, 'pkt.bin');
      await writeFile(local, buildCorpus().cases.find((c) => c.name === 'ipv6_tcp_allowed')!.frame);
      await target.putFile(local, packet);
      chain = await loadManualChain(sb, SCALING_VARIANTS.tcManualConstant, object, false, { type: BPFTOOL_PROG_TYPE.tc, pass: TC_ACT_OK });
      // A wrong verdict at any length throws (sweepOnce checks TC_ACT_OK), so a result is a pass.
      const [m] = await measureSlotChains(target, [chain], [1, 4, 33], packet, 5000, 2);
      expect(m!.variant).toBe('chain/tc-manual-constant');
      for (const len of [1, 4, 33]) {
        expect(m!.byLength.get(len)).toHaveLength(2);
        for (const ns of m!.byLength.get(len)!) expect(ns).toBeGreaterThan(0);
      }
      console.log(`host TC manual chain ns/packet by length: ${[...m!.byLength].map(([l, v]) => `${l}: ${v.join('/')}`).join(', ')}`);
    } finally {
      await chain?.teardown();
      await sb.dispose();
    }
    expect(leftovers()).toEqual([]);
  });

  it('a packet the filter drops (TC_ACT_SHOT) is not the whole trio: no row, a failure with the verdict', async () => {
    const denied = buildCorpus().cases.find((c) => c.name === 'ipv6_tcp_denied')!;
    const sb = await openSandbox(target, PREFIX);
    try {
      const local = join(dir, 'denied.bin');
      await writeFile(local, denied.frame);
      const packet = `${sb.workDir}/denied.bin`;
      await target.putFile(local, packet);
      const out = await measureApproaches(sb, features, { packet, repeat: 1000, repetitions: 1, latencyCycles: 0, perPacket: true, progress: silent, approaches: [tcFused] });
      expect(out.rows).toEqual([]);
      expect(out.unsupported).toHaveLength(1);
      expect(out.unsupported[0]).toMatchObject({ variant: 'tc-fused', status: 'failed' });
      expect(out.unsupported[0]!.reason).toContain(`got verdict ${TC_ACT_SHOT}, expected ${TC_ACT_OK}`);
    } finally {
      await sb.dispose();
    }
    expect(leftovers()).toEqual([]);
  });
});
