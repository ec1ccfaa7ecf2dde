/**
 * The raw results: one JSON object per line in results/<run-id>/raw.jsonl, appended run by run.
 * This schema is the contract between the bench (which writes) and the report (which reads).
 * A line that does not parse against it is reported with file and line, never silently used.
 */
import { z } from 'zod';

export const SCHEMA_VERSION = 1;

/** A new run id (the name of results/<run-id>/): UTC time to the second, sortable. */
export function newRunId(now = new Date()): string {
  return now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
}

/** The approaches on the receiving veth's XDP hook. */
export const XDP_APPROACH_NAMES = ['none', 'fused', 'manual', 'dispatcher', 'patched'] as const;
/** The approaches on the receiving veth's TC ingress (cls_bpf on clsact, or tcx). */
export const TC_APPROACH_NAMES = ['tc-none', 'tc-fused', 'tc-manual', 'tc-patched', 'tc-filters', 'tcx'] as const;
/** Every approach, named once for the bench, the approaches and the report. */
export const APPROACH_NAMES = [...XDP_APPROACH_NAMES, ...TC_APPROACH_NAMES] as const;
export const ApproachName = z.enum(APPROACH_NAMES);
export type ApproachName = z.infer<typeof ApproachName>;
/** The hook an approach runs on: XDP on the receiving veth, or its TC ingress. */
export type ApproachHook = 'xdp' | 'tc';
export function hookOfApproach(name: ApproachName): ApproachHook {
  return (TC_APPROACH_NAMES as readonly string[]).includes(name) ? 'tc' : 'xdp';
}
/** The approaches of one hook, in the order APPROACH_NAMES gives them. */
export function approachesOfHook(hook: ApproachHook): ApproachName[] {
  return APPROACH_NAMES.filter((a) => hookOfApproach(a) === hook);
}
const approach = ApproachName;
const accelerator = z.enum(['host', 'kvm', 'tcg']);
/**
 * What the target's clock counts: 'wall' (real time), or 'icount' (QEMU's instruction counter:
 * guest time advances per executed instruction, so guest ns are a reproducible function of the
 * work done, not wall-clock performance). Absent in records written before it existed = 'wall'.
 */
export const clock = z.enum(['wall', 'icount']);
export type Clock = z.infer<typeof clock>;

/** Which run and which target a measurement comes from: the fields every measured record starts with. */
const measuredOn = {
  schema: z.literal(SCHEMA_VERSION),
  runId: z.string(),
  kernel: z.string(),
  kernelRelease: z.string(),
  accelerator,
  clock: clock.optional(),
};

/** Where a measurement ran, as a target reports it. */
export interface MeasuredTarget {
  kernelRelease: string;
  accelerator: z.infer<typeof accelerator>;
  clock?: Clock;
}

/** The measuredOn fields of a record measured on `target` for run `runId` under kernel label `kernel`. */
export function measuredOnFields(target: MeasuredTarget, runId: string, kernel: string) {
  return { schema: SCHEMA_VERSION, runId, kernel, kernelRelease: target.kernelRelease, accelerator: target.accelerator, clock: target.clock ?? 'wall' } as const;
}

/** A value that may be missing for a stated reason (no PMU, no probe data...) — never a fake zero. */
export const nullable = <T extends z.ZodTypeAny>(t: T) => t.nullable();

export const PollSize = z.object({
  packets: z.number().int().nonnegative(),
  calls: z.number().int().positive(),
  ns: z.number().nonnegative(),
});
export type PollSize = z.infer<typeof PollSize>;

export const ProbeTotals = z.object({
  /** veth_poll invocations seen by the kprobe/kretprobe pair during the run. */
  calls: z.number().int().nonnegative(),
  /** Packets processed: sum of veth_poll's return values. */
  packets: z.number().int().nonnegative(),
  /** Nanoseconds spent inside veth_poll (bpf_ktime_get_ns deltas). */
  ns: z.number().nonnegative(),
  /** CPU cycles inside veth_poll (perf hardware counter), null without a PMU. */
  cycles: z.number().nonnegative().nullable(),
  cyclesNullReason: z.string().optional(),
  /**
   * The same calls and ns by poll size (packets the call took), ascending, sizes seen only; absent
   * in results written before the probe recorded them. lab/results/probe-fit.ts reads the cost of
   * one more packet out of them.
   */
  pollSizes: z.array(PollSize).optional(),
});
export type ProbeTotals = z.infer<typeof ProbeTotals>;

/** Δ run_cnt and Δ run_time_ns of one program of the approach over the measured interval. */
export const ProgramStatsDelta = z.object({
  /** The program's role in the approach ("filter", "dispatcher", "head"...). */
  role: z.string(),
  id: z.number().int().positive(),
  name: z.string(),
  runCnt: z.number().int().nonnegative(),
  runTimeNs: z.number().nonnegative(),
});
export type ProgramStatsDelta = z.infer<typeof ProgramStatsDelta>;

/**
 * The kernel's BPF run-time statistics over one iperf3 run, for the program attached to the veth
 * (the entry of the chain). Tail calls and freplace extensions run inside the entry program's
 * accounting, so its figures are the whole chain's: ns per packet = runTimeNs / runCnt.
 */
export const BpfStats = z.object({
  /**
   * How statistics were on for the interval: "fd" = a BPF_ENABLE_STATS file descriptor held by the
   * helper (kernel.bpf_stats_enabled untouched), "sysctl" = kernel.bpf_stats_enabled set and restored.
   */
  mode: z.enum(['fd', 'sysctl']),
  programId: z.number().int().positive(),
  programName: z.string(),
  /** Δ run_cnt of the entry program: times the XDP program ran, i.e. packets it saw. Never 0 here. */
  runCnt: z.number().int().positive(),
  /** Δ run_time_ns of the entry program. */
  runTimeNs: z.number().nonnegative(),
  nsPerPacket: z.number().nonnegative(),
  /** Every program of the approach, the entry included, so the accounting claim can be checked. */
  programs: z.array(ProgramStatsDelta),
  /**
   * What runCnt counts: 'skb' on the TC hook (one skb may be a GSO aggregate of many frames);
   * absent = packets (XDP frames), as in records written before TC was measured.
   */
  unit: z.enum(['packet', 'skb']).optional(),
  /** TC: how many programs' run times runTimeNs sums (the kernel runs each attached one itself); absent = the entry alone. */
  summedPrograms: z.number().int().positive().optional(),
  /** In words: what runTimeNs covers and what one count is. */
  accountingNote: z.string().optional(),
});
export type BpfStats = z.infer<typeof BpfStats>;

export const IperfResult = z.object({
  /** Receiver-side throughput, bits per second. */
  bitsPerSecond: z.number().nonnegative(),
  bytes: z.number().nonnegative(),
  seconds: z.number().positive(),
  retransmits: z.number().int().nonnegative().nullable(),
});

/** One iperf3 run of one approach on one kernel. */
export const RunRecord = z.object({
  kind: z.literal('run'),
  ...measuredOn,
  approach,
  /** The hook the approach ran on; absent in records written before TC was measured (= 'xdp'). */
  hook: z.enum(['xdp', 'tc']).optional(),
  /** 0-based index among measured runs of this cell; warm-ups are not recorded. */
  iteration: z.number().int().nonnegative(),
  startedAt: z.string(),
  endedAt: z.string(),
  iperf: IperfResult,
  /** Null for `none` (veth_poll does not run without XDP) with the reason in probeNullReason. */
  probe: ProbeTotals.nullable(),
  probeNullReason: z.string().optional(),
  /**
   * BPF run-time statistics of the attached program; null with bpfStatsNullReason where there are
   * none (approach none, a kernel without them); absent in results written before they were recorded.
   */
  bpfStats: BpfStats.nullable().optional(),
  bpfStatsNullReason: z.string().optional(),
  /** 'none' for the TC approaches: no XDP program on the veth. */
  xdpMode: z.enum(['native', 'generic', 'none']),
  /** `ethtool -k` features that were on during the run. */
  offloads: z.record(z.string(), z.boolean()).optional(),
  /** Patch mode used by the patched approach ("subprog" | "inline"). */
  patchMode: z.string().optional(),
  /** Why that mode (e.g. "no body calls other functions, and inline has no call frame ..."). */
  patchModeReason: z.string().optional(),
});
export type RunRecord = z.infer<typeof RunRecord>;

/** The outcome of a (kernel, approach) cell: written once, after its last run or when it cannot run. */
export const CellRecord = z.object({
  kind: z.literal('cell'),
  schema: z.literal(SCHEMA_VERSION),
  runId: z.string(),
  kernel: z.string(),
  approach,
  status: z.enum(['done', 'unsupported', 'failed', 'skipped']),
  reason: z.string().optional(),
  runs: z.number().int().nonnegative(),
});
export type CellRecord = z.infer<typeof CellRecord>;

/** BPF_PROG_TEST_RUN microbenchmark: ns per packet for a chain. */
export const MicroRecord = z.object({
  kind: z.literal('micro'),
  ...measuredOn,
  /** approach, or e.g. "patched-inline" for a patch mode. */
  variant: z.string(),
  /** Number of programs a packet goes through (1 for fused). */
  chainLength: z.number().int().positive(),
  /** What kind of hop the variant uses: "tail-call-constant", "tail-call-indirect", "freplace", "none"... */
  hop: z.string(),
  repeat: z.number().int().positive(),
  /** ns per packet as reported by the kernel, one value per repetition (empty when unsupported). */
  nsPerPacket: z.array(z.number().nonnegative()),
  /** Why there are no measurements (variant unsupported on this kernel, or it failed). */
  reason: z.string().optional(),
  /**
   * How the kernel ran the programs: JIT-compiled code, or the BPF interpreter (loaded while
   * net.core.bpf_jit_enable was 0). Absent in records written before the interpreter variant: 'jit'.
   */
  execution: z.enum(['jit', 'interpreter']).optional(),
  /**
   * Who timed nsPerPacket: 'test-run' (absent in older records): the kernel's BPF_PROG_TEST_RUN,
   * `repeat` runs of one packet; 'in-band': live traffic, a clock program before the chain and one
   * after it (lab/microbench/tc-live.ts), each value the mean over a run's skbs, `repeat` the fewest
   * skbs of a run.
   */
  timing: z.enum(['test-run', 'in-band']).optional(),
  /**
   * The native baseline only (variant "native"): insmod's wall time of the module per insertion,
   * ms, its exec included; the BPF side's counterpart is the approaches' object-load latency.
   */
  insertMs: z.array(z.number().nonnegative()).optional(),
});
export type MicroRecord = z.infer<typeof MicroRecord>;

/** Load/attach and replace latencies. */
export const LatencyRecord = z.object({
  kind: z.literal('latency'),
  schema: z.literal(SCHEMA_VERSION),
  runId: z.string(),
  kernel: z.string(),
  accelerator,
  clock: clock.optional(),
  approach,
  /**
   * load-attach, replace, detach: around the approach's own calls. object-load: libbpf loading the
   * approach's objects (maps, BTF, verification, JIT); verify: the verifier's own time for its
   * programs, from its statistics (log level 4); bpf_check, jit: ftrace's function_graph timing of
   * bpf_check and bpf_int_jit_compile during that load, where the kernel has the tracer.
   */
  operation: z.enum(['load-attach', 'replace', 'detach', 'object-load', 'verify', 'bpf_check', 'jit']),
  ms: z.array(z.number().nonnegative()),
});
export type LatencyRecord = z.infer<typeof LatencyRecord>;

/**
 * Round trips through one approach: pings across the veth pair with it attached on the receiving
 * side (lab/bench/latency.ts). Every reply's time is kept, so the report computes its percentiles
 * and a reader can compute others. An approach that could not be measured has none, and the reason.
 */
export const RttRecord = z.object({
  kind: z.literal('rtt'),
  ...measuredOn,
  approach,
  hook: z.enum(['xdp', 'tc']),
  /** Echo requests sent (0 when not measured). */
  sent: z.number().int().nonnegative(),
  intervalS: z.number().positive(),
  /** Round-trip time of each reply, µs, in the order ping printed them. */
  rttUs: z.array(z.number().nonnegative()),
  reason: z.string().optional(),
});
export type RttRecord = z.infer<typeof RttRecord>;

export const RawRecord = z.discriminatedUnion('kind', [RunRecord, CellRecord, MicroRecord, LatencyRecord, RttRecord]);
export type RawRecord = z.infer<typeof RawRecord>;

/**
 * results/<run-id>/provenance/<kernel>.json — one per kernel target, written before its first run.
 */
export const Provenance = z.object({
  schema: z.literal(SCHEMA_VERSION),
  runId: z.string(),
  kernel: z.string(),
  kernelRelease: z.string(),
  kernelConfigSha256: z.string().nullable(),
  /** Where the image came from; a source-built kernel lists its toolchain and every fix-up applied to it. */
  kernelOrigin: z
    .object({
      provider: z.string(),
      from: z.string(),
      source: z.object({ kind: z.string(), path: z.string(), fingerprint: z.string().nullable(), sourceVersion: z.string().nullable() }).nullable(),
      toolchain: z.object({ cc: z.string(), ccVersion: z.string(), binutils: z.string(), flags: z.array(z.string()) }).nullable(),
      patches: z.array(z.object({ file: z.string(), sha256: z.string(), why: z.string() })),
      headers: z.string().nullable(),
    })
    .nullable()
    .optional(),
  accelerator,
  clock: clock.optional(),
  hostCpuModel: z.string(),
  /** Governor and frequency actually in force during the runs, or null with the reason. */
  cpuFrequency: z.object({ governor: z.string().nullable(), mhz: z.number().nullable(), note: z.string().optional() }),
  isolcpus: z.string().nullable(),
  pinning: z.object({ iperfServerCpu: z.number().int(), iperfClientCpu: z.number().int() }).nullable(),
  tools: z.record(z.string(), z.string()),
  labCommit: z.string().nullable(),
  options: z.object({ runs: z.number().int(), durationS: z.number(), warmup: z.boolean() }),
  warnings: z.array(z.string()),
  startedAt: z.string(),
});
export type Provenance = z.infer<typeof Provenance>;
