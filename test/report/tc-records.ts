/**
 * Synthetic raw results of both hooks for the report tests, made through the schema (RawRecord.parse):
 * every XDP and every TC approach the schema names on two kernels, five runs each with BPF statistics
 * (none on the no-program baselines), the XDP ones with probe data, one TC cell unsupported on the
 * older kernel; micro and latency records of manual and fused. The inputs are kept so that tests work
 * their expectations out from them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APPROACH_NAMES, approachesOfHook, hookOfApproach, RawRecord, type ApproachName } from '../../lab/results/record.ts';
import { scratchDir } from './helpers.ts';

export const KERNELS = [
  { label: '6.6', release: '6.6.0-test' },
  { label: '6.1', release: '6.1.0-test' },
] as const;
export const RUNS = 5;
/** Per-run wiggle, so medians, IQRs and CIs have something to do. */
const JITTER = [0, 3, -2, 5, 1];
export const XDP = approachesOfHook('xdp');
export const TC = approachesOfHook('tc');
/** The TC approach shown unsupported on the older kernel: the last the schema registers. */
export const UNSUPPORTED = TC[TC.length - 1]!;
export const UNSUPPORTED_REASON = `kernel 6.1.0-test: ${UNSUPPORTED} needs a newer kernel (synthetic)`;
export const isNoProgram = (a: ApproachName) => a === 'none' || a === 'tc-none';

/** The inputs, per kernel and approach: what each run's ns per skb (packet) and throughput were. */
export interface Inputs {
  nsPer: number[];
  runCnt: number[];
  runTimeNs: number[];
  gbps: number[];
}
export const inputs = new Map<string, Inputs>();
export const key = (k: string | undefined, a: string | undefined) => `${k}/${a}`;

function runsOf(kernel: (typeof KERNELS)[number], ki: number, a: ApproachName): unknown[] {
  const i = APPROACH_NAMES.indexOf(a);
  const tc = hookOfApproach(a) === 'tc';
  const inp: Inputs = { nsPer: [], runCnt: [], runTimeNs: [], gbps: [] };
  const out = Array.from({ length: RUNS }, (_, j) => {
    const nsPer = 150 + 23 * i + 7 * ki + JITTER[j]!;
    const runCnt = 100_000 + 1_000 * j;
    const gbps = 9.5 - 0.4 * i - 0.2 * ki + 0.05 * JITTER[j]!;
    if (!isNoProgram(a)) {
      inp.nsPer.push(nsPer);
      inp.runCnt.push(runCnt);
      inp.runTimeNs.push(nsPer * runCnt);
    }
    inp.gbps.push(gbps);
    const calls = 1000 + 10 * j;
    return {
      kind: 'run',
      schema: 1,
      runId: 'synthetic-tc',
      kernel: kernel.label,
      kernelRelease: kernel.release,
      accelerator: 'kvm',
      clock: 'wall',
      approach: a,
      iteration: j,
      startedAt: '2026-12-01T10:00:00.000Z',
      endedAt: '2026-12-01T10:00:02.000Z',
      iperf: { bitsPerSecond: gbps * 1e9, bytes: gbps * 2.5e8, seconds: 2, retransmits: 0 },
      probe: tc || a === 'none' ? null : { calls, packets: 4 * calls, ns: 20_000 * calls + 100 * i, cycles: 3 * (20_000 * calls + 100 * i) },
      ...(tc ? { probeNullReason: 'the veth_poll probe is not used on the TC hook' } : a === 'none' ? { probeNullReason: 'no XDP program' } : {}),
      bpfStats: isNoProgram(a)
        ? null
        : { mode: 'fd', programId: 10 + j, programName: 'entry', runCnt, runTimeNs: nsPer * runCnt, nsPerPacket: nsPer, programs: [{ role: 'entry', id: 10 + j, name: 'entry', runCnt, runTimeNs: nsPer * runCnt }] },
      ...(isNoProgram(a) ? { bpfStatsNullReason: 'no program attached' } : {}),
      xdpMode: tc || a === 'none' ? 'none' : 'native',
    };
  });
  inputs.set(key(kernel.label, a), inp);
  return out;
}

function cell(kernel: string, a: ApproachName, status: 'done' | 'unsupported', runs: number, reason?: string): unknown {
  return { kind: 'cell', schema: 1, runId: 'synthetic-tc', kernel, approach: a, status, runs, ...(reason ? { reason } : {}) };
}

function micro(kernel: (typeof KERNELS)[number], variant: string, base: number): unknown {
  return { kind: 'micro', schema: 1, runId: 'synthetic-tc', kernel: kernel.label, kernelRelease: kernel.release, accelerator: 'kvm', clock: 'wall', variant, chainLength: 3, hop: 'tail-call-constant', repeat: 1000, nsPerPacket: [base, base + 1, base + 2] };
}

function latency(kernel: string, a: ApproachName, ms: number[]): unknown {
  return { kind: 'latency', schema: 1, runId: 'synthetic-tc', kernel, accelerator: 'kvm', clock: 'wall', approach: a, operation: 'load-attach', ms };
}

/** The records of one hook, through the schema. */
export function records(hook: 'xdp' | 'tc'): RawRecord[] {
  const out: unknown[] = [];
  KERNELS.forEach((k, ki) => {
    for (const a of hook === 'xdp' ? XDP : TC) {
      if (hook === 'tc' && k.label === '6.1' && a === UNSUPPORTED) {
        out.push(cell(k.label, a, 'unsupported', 0, UNSUPPORTED_REASON));
        continue;
      }
      out.push(...runsOf(k, ki, a), cell(k.label, a, 'done', RUNS));
    }
    const [manual, fused] = hook === 'xdp' ? (['manual', 'fused'] as const) : (['tc-manual', 'tc-fused'] as const);
    out.push(micro(k, manual, 40 + ki), micro(k, fused, 30 + ki), latency(k.label, manual, [5, 6, 7]));
  });
  return out.map((r) => RawRecord.parse(r));
}

export function writeRun(tag: string, recs: RawRecord[]): string {
  const dir = scratchDir(tag);
  writeFileSync(join(dir, 'raw.jsonl'), recs.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return dir;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
