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
import { buildCells, thesisRow, type Cell, type ThesisRow } from './cells.ts';
import { compareWithThesis, type ComparisonRow } from './compare-thesis.ts';
import { modelFlags, type Flag } from './flags.ts';
import { headlineRows, relativeThroughputOf, type HeadlineRow, type RelativeThroughput } from './headline.ts';
import { collectKernels, type KernelInfo } from './kernels.ts';
import type { LoadedRun } from './load.ts';
import { APPROACH_ORDER } from './metrics.ts';
import { latencyGroups, microGroups, type LatencyGroup, type MicroGroup } from './micro.ts';
import { significance, type PairTest } from './significance.ts';
import type { Reference } from './thesis.ts';
import type { ApproachName } from '../results/record.ts';

/** What the tables, charts and HTML page read: the whole report as data. */
export interface ReportModel {
  runId: string;
  pseudoRun: LoadedRun['pseudoRun'];
  kernels: KernelInfo[];
  approaches: ApproachName[];
  cells: Cell[];
  table: ThesisRow[];
  comparison: ComparisonRow[];
  pairs: PairTest[];
  sentences: { kernel: string; text: string }[];
  micro: MicroGroup[];
  latency: LatencyGroup[];
  flags: Flag[];
  headline: HeadlineRow[];
  relativeThroughput: RelativeThroughput[];
  badLines: LoadedRun['badLines'];
  anyTcg: boolean;
  /** Whether any run carries the bpfStats field (results from before it have no such tables or figure). */
  bpfStatsRecorded: boolean;
}

export interface BuildOptions {
  reference: Reference | null;
  resamples?: number;
}

export function buildModel(run: LoadedRun, opts: BuildOptions): ReportModel {
  const runId = run.runs[0]?.runId ?? run.cells[0]?.runId ?? run.micro[0]?.runId ?? run.latency[0]?.runId ?? 'unknown';
  const kernels = collectKernels(run);
  const kernelInfo = new Map(kernels.map((k) => [k.label, k]));
  const cells = buildCells(run, kernels, opts.resamples);
  const table = cells.map((c) => thesisRow(c, kernelInfo.get(c.kernel) ?? null));
  const { pairs, sentences } = significance(cells, kernels, opts.resamples);
  return {
    runId,
    pseudoRun: run.pseudoRun,
    kernels,
    approaches: APPROACH_ORDER.filter((a) => cells.some((c) => c.approach === a)),
    cells,
    table,
    comparison: opts.reference ? compareWithThesis(table, kernels, opts.reference) : [],
    pairs,
    sentences,
    micro: microGroups(run.micro, kernelInfo, opts.resamples),
    latency: latencyGroups(run.latency, kernelInfo, opts.resamples),
    flags: modelFlags(run, kernels, cells, Boolean(opts.reference)),
    headline: headlineRows(cells, kernels, pairs, opts.resamples),
    relativeThroughput: relativeThroughputOf(cells, kernels, opts.resamples),
    badLines: run.badLines,
    anyTcg: kernels.some((k) => k.tcg),
    bpfStatsRecorded: run.runs.some((r) => r.bpfStats !== undefined),
  };
}
