/**
 * The report as data: ReportModel, the contract the tables, charts and HTML page read, and
 * buildModel, which assembles it from loaded raw records by the parts beside it (kernels, cells and
 * their thesis-layout rows, the thesis side by side, significance, headline, micro and latency
 * groups, flags). Pure computation: no files, no charts.
 *
 * Definitions (also in results/README.md):
 * - A cell is (kernel, approach). Its runs are its valid RunRecords.
 * - "calls" = veth_poll calls seen by the probe; "packets" = sum of veth_poll's return values.
 *   The thesis counted calls and called them packets, so its layout's "packets" column is calls.
 * - Table 5.1 totals = median over a cell's runs of each run's total (the thesis reports medians
 *   of 50 runs, §4.1.1). Throughput = median of iperf3's receiver bits/s, in Gb/s.
 * - Table 5.2 per packet = median total ns (or cycles) / median total calls, as the thesis did.
 * - Our own columns: per-run ratios (per call, per true packet), with n, median, IQR (quartiles R
 *   type 7) and a 95% percentile-bootstrap CI of the median (seeded, deterministic).
 * - BPF run-time statistics (bpfStats): Δrun_cnt and Δrun_time_ns of the program attached to the
 *   veth over the run; tail calls and freplace extensions run inside its accounting, so per run
 *   run_time_ns / run_cnt is the whole chain's ns per packet. In Table 5.2's layout: median
 *   run_time_ns / median run_cnt, the thesis's convention.
 * - Headline: per kernel, median(approach) / median(manual or fused) of the best per-packet metric
 *   the kernel has, a bootstrap CI of that ratio, and the verdict of the same pair's test.
 */
import { nativeRows, type NativeRow } from './native.ts';
import { buildCells, thesisRow, type Cell, type ThesisRow } from './cells.ts';
import { compareWithThesis, type ComparisonRow } from './compare-thesis.ts';
import { modelFlags, type Flag } from './flags.ts';
import { headlineRows, relativeThroughputOf, type HeadlineRow, type RelativeThroughput } from './headline.ts';
import { hasHook, kernelsWithRecords, profileOf, runOfHook, type HookProfile } from './hooks.ts';
import { collectKernels, type KernelInfo } from './kernels.ts';
import type { LoadedRun } from './load.ts';
import { APPROACH_ORDER } from './metrics.ts';
import { latencyGroups, microGroups, type LatencyGroup, type MicroGroup } from './micro.ts';
import { rttRows, type RttRow } from './rtt.ts';
import { significance, type PairTest } from './significance.ts';
import type { Reference } from './thesis.ts';
import type { ApproachHook, ApproachName } from '../results/record.ts';

/**
 * What the tables, charts and HTML page read: the whole report as data. The model itself is the XDP
 * section (the thesis's); `tc` is the same shape built from the TC records alone, or null when the
 * run has none. Nothing of one hook is in the other: tables, pairs, headline and figures are per hook.
 */
export interface ReportModel {
  runId: string;
  pseudoRun: LoadedRun['pseudoRun'];
  /** The section's hook, references and baseline. */
  profile: HookProfile;
  /** The kernels of this section: every kernel, less those only the other hook's records name. */
  kernels: KernelInfo[];
  /** Every kernel of the run, whatever hook its records are of (provenance, summary, flags). */
  allKernels: KernelInfo[];
  approaches: ApproachName[];
  cells: Cell[];
  table: ThesisRow[];
  comparison: ComparisonRow[];
  pairs: PairTest[];
  sentences: { kernel: string; text: string }[];
  micro: MicroGroup[];
  latency: LatencyGroup[];
  /** The native baseline per kernel that recorded one (the XDP section's: the module is the XDP trio's jobs). */
  native: NativeRow[];
  /** Round trips through each approach of this hook, per kernel. */
  rtt: RttRow[];
  /** The run's flags, both hooks' (one warnings list); empty in the TC section's model. */
  flags: Flag[];
  headline: HeadlineRow[];
  relativeThroughput: RelativeThroughput[];
  badLines: LoadedRun['badLines'];
  anyTcg: boolean;
  /** Whether any run carries the bpfStats field (results from before it have no such tables or figure). */
  bpfStatsRecorded: boolean;
  /** The TC section (approaches on TC ingress), null without a TC record. */
  tc: ReportModel | null;
}

export interface BuildOptions {
  reference: Reference | null;
  resamples?: number;
}

export function buildModel(run: LoadedRun, opts: BuildOptions): ReportModel {
  const runId = run.runs[0]?.runId ?? run.cells[0]?.runId ?? run.micro[0]?.runId ?? run.latency[0]?.runId ?? run.rtt[0]?.runId ?? 'unknown';
  const allKernels = collectKernels(run);
  const xdp = hookModel(run, 'xdp', allKernels, runId, opts);
  const tc = hasHook(run, 'tc') ? hookModel(run, 'tc', allKernels, runId, opts) : null;
  xdp.flags = modelFlags(run, allKernels, [...xdp.cells, ...(tc?.cells ?? [])], Boolean(opts.reference));
  xdp.tc = tc;
  // A kernel only TC records name still counts as TCG for the run as a whole.
  xdp.anyTcg = allKernels.some((k) => k.tcg);
    return xdp;
}

/** One hook's section from that hook's records alone. */
function hookModel(whole: LoadedRun, hook: ApproachHook, allKernels: KernelInfo[], runId: string, opts: BuildOptions): ReportModel {
  const run = runOfHook(whole, hook);
  const other = kernelsWithRecords(runOfHook(whole, hook === 'xdp' ? 'tc' : 'xdp'));
  const mine = kernelsWithRecords(run);
  // Provenance-only kernels stay in the XDP section, as before there were two.
  const kernels = allKernels.filter((k) => mine.has(k.label) || (hook === 'xdp' && !other.has(k.label)));
  const profile = profileOf(hook);
  const kernelInfo = new Map(kernels.map((k) => [k.label, k]));
  const cells = buildCells(run, kernels, opts.resamples);
  const table = cells.map((c) => thesisRow(c, kernelInfo.get(c.kernel) ?? null));
  const { pairs, sentences } = significance(cells, kernels, opts.resamples, hook);
  const latency = latencyGroups(run.latency, kernelInfo, opts.resamples);
  return {
    runId,
    pseudoRun: run.pseudoRun,
    profile,
    kernels,
    allKernels,
    approaches: APPROACH_ORDER.filter((a) => cells.some((c) => c.approach === a)),
    cells,
    table,
    // The thesis measured XDP only.
    comparison: opts.reference && hook === 'xdp' ? compareWithThesis(table, kernels, opts.reference) : [],
    pairs,
    sentences,
    micro: microGroups(run.micro, kernelInfo, opts.resamples),
    latency,
    native: hook === 'xdp' ? nativeRows(run.micro, latency, kernels, opts.resamples) : [],
    rtt: rttRows(run.rtt, kernels),
    flags: [],
    headline: headlineRows(cells, kernels, pairs, opts.resamples, profile),
    relativeThroughput: relativeThroughputOf(cells, kernels, opts.resamples, profile),
    badLines: run.badLines,
    anyTcg: kernels.some((k) => k.tcg),
    bpfStatsRecorded: run.runs.some((r) => r.bpfStats !== undefined),
    tc: null,
  };
}
