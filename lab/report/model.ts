/**
 * From loaded raw records to everything the report shows: per-cell statistics, the thesis-layout
 * tables, the thesis side by side, pairwise significance, flags, microbenchmark and latency groups.
 * Pure computation: no files, no charts.
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
import type { ApproachName, CellRecord, Clock, LatencyRecord, MicroRecord, Provenance, RunRecord } from '../results/record.ts';
import type { LoadedRun } from './load.ts';
import {
  BOOTSTRAP_RESAMPLES,
  bootstrapMedianDiffCi,
  bootstrapMedianRatioCi,
  fitLine,
  holm,
  mannWhitneyU,
  summarize,
  type LinearFit,
  type Summary,
} from './stats.ts';
import type { Reference } from './thesis.ts';
import { Version } from '../version.ts';

export type { ApproachName };
export type Accelerator = RunRecord['accelerator'];

/** The thesis's order first (Manuelle, XDP Dispatcher, Chaîne BPF), then what we add. */
export const APPROACH_ORDER: readonly ApproachName[] = ['manual', 'dispatcher', 'patched', 'fused', 'none'];
export const APPROACH_LABEL: Record<ApproachName, string> = {
  manual: 'Manual',
  dispatcher: 'XDP Dispatcher',
  patched: 'BPF chain (patched)',
  fused: 'Fused (one program)',
  none: 'None (no XDP)',
};

export type MetricKey =
  | 'throughputGbps'
  | 'calls'
  | 'packets'
  | 'ns'
  | 'cycles'
  | 'nsPerCall'
  | 'nsPerPacket'
  | 'cyclesPerCall'
  | 'cyclesPerPacket'
  | 'packetsPerCall'
  | 'effectiveGhz'
  | 'retransmits'
  | 'statsRunCnt'
  | 'statsRunTimeNs'
  | 'statsNsPerPacket';

export interface MetricInfo {
  label: string;
  unit: string;
  /** Counts print as grouped integers; ratios with decimals. */
  count: boolean;
  /** Which of our extended tables shows it. */
  table: '5.1' | '5.2' | 'extra';
}
export const METRICS: Record<MetricKey, MetricInfo> = {
  calls: { label: 'veth_poll calls per run (the thesis\'s "packets")', unit: 'calls', count: true, table: '5.1' },
  packets: { label: 'packets per run (sum of veth_poll return values)', unit: 'packets', count: true, table: '5.1' },
  ns: { label: 'ns in veth_poll per run', unit: 'ns', count: true, table: '5.1' },
  cycles: { label: 'cycles in veth_poll per run', unit: 'cycles', count: true, table: '5.1' },
  throughputGbps: { label: 'throughput', unit: 'Gb/s', count: false, table: '5.1' },
  nsPerCall: { label: 'ns per call (the thesis\'s "per packet")', unit: 'ns', count: false, table: '5.2' },
  nsPerPacket: { label: 'ns per packet', unit: 'ns', count: false, table: '5.2' },
  cyclesPerCall: { label: 'cycles per call (the thesis\'s "per packet")', unit: 'cycles', count: false, table: '5.2' },
  cyclesPerPacket: { label: 'cycles per packet', unit: 'cycles', count: false, table: '5.2' },
  packetsPerCall: { label: 'packets per veth_poll call', unit: 'packets', count: false, table: 'extra' },
  effectiveGhz: { label: 'effective GHz (cycles / ns)', unit: 'GHz', count: false, table: 'extra' },
  retransmits: { label: 'iperf3 retransmits per run', unit: 'segments', count: true, table: 'extra' },
  statsRunCnt: { label: 'XDP program runs per run (BPF statistics run_cnt)', unit: 'runs', count: true, table: '5.1' },
  statsRunTimeNs: { label: 'ns in the XDP program per run (BPF statistics run_time_ns)', unit: 'ns', count: true, table: '5.1' },
  statsNsPerPacket: { label: 'ns per packet in the XDP program (BPF statistics)', unit: 'ns', count: false, table: '5.2' },
};
/** The metrics taken from BPF run-time statistics (absent from results written before them). */
export const STATS_METRICS: readonly MetricKey[] = ['statsRunCnt', 'statsRunTimeNs', 'statsNsPerPacket'];
export const METRIC_KEYS = Object.keys(METRICS) as MetricKey[];
/** Metrics compared pairwise; Holm's correction runs over the pairs of one kernel and one metric. */
export const SIGNIFICANCE_METRICS: readonly MetricKey[] = ['throughputGbps', 'nsPerCall', 'nsPerPacket', 'cyclesPerPacket', 'statsNsPerPacket'];
export const MIN_RUNS = 5;
export const GHZ_TOLERANCE = 0.02;
export const ALPHA = 0.05;
/** How every CI of the report is drawn, in words. */
export const BOOTSTRAP_NOTE = `${BOOTSTRAP_RESAMPLES} resamples, seeded from the kernel, metric and pair: the same data gives the same interval`;
export const TCG_WARNING = 'TCG emulation: not a performance measurement';
/** TCG under QEMU's instruction counter: guest time is a function of the instructions run. */
export const ICOUNT_WARNING = 'instruction-timed (TCG icount): reproducible, not wall-clock performance';

/**
 * How a kernel's numbers were measured. One TCG record makes the whole kernel emulated; it is
 * instruction-timed only when every record of it ran under the instruction counter.
 */
export type Measurement = 'host' | 'kvm' | 'tcg' | 'tcg-icount';
export const MEASUREMENT_LABEL: Record<Measurement, string> = {
  host: 'host (real)',
  kvm: 'KVM',
  tcg: 'TCG (emulated: shape only, not a performance measurement)',
  'tcg-icount': ICOUNT_WARNING,
};

export interface Flag {
  level: 'warn' | 'info';
  kernel?: string;
  approach?: ApproachName;
  text: string;
  /**
   * The text with what varies from one cell to the next taken out, so flags of one cause can be
   * shown as one line; `cell` names what it affects and `detail` what is particular to it there.
   * Absent: the text is its own cause.
   */
  cause?: string;
  cell?: string;
  detail?: string;
}

/** Flags of one cause (level and cause text), with every cell they affect. */
export interface FlagGroup {
  level: Flag['level'];
  cause: string;
  cells: { cell: string; detail?: string }[];
  /** The group in one line: the flag's own text for one cell, else the cause then the cells. */
  text: string;
}

export interface KernelInfo {
  label: string;
  release: string;
  accelerators: Accelerator[];
  tcg: boolean;
  /** Clocks named by its records and provenance ('wall' where absent). */
  clocks: Clock[];
  /** Null for a kernel with no measurement at all (only cell records, e.g. skipped). */
  measurement: Measurement | null;
  provenance: Provenance | null;
  /** From the label, else the release; null when neither names one. */
  version: Version | null;
}

/** The kernel's warning where its numbers are not wall-clock performance, else null. */
export function kernelWarning(k: Pick<KernelInfo, 'tcg' | 'measurement'> | null | undefined): string | null {
  if (!k?.tcg) return null;
  return k.measurement === 'tcg-icount' ? ICOUNT_WARNING : TCG_WARNING;
}

/** The kernels (of those named, default all) whose numbers are not wall-clock performance, by warning. */
export function kernelWarnings(kernels: readonly KernelInfo[], only?: readonly string[]): { text: string; kernels: string[] }[] {
  const out = new Map<string, string[]>();
  for (const k of kernels) {
    const w = kernelWarning(k);
    if (w && (!only || only.includes(k.label))) out.set(w, [...(out.get(w) ?? []), k.label]);
  }
  return [...out.entries()].map(([text, ks]) => ({ text, kernels: ks }));
}

export function measurementLabel(k: Pick<KernelInfo, 'measurement'>): string {
  return k.measurement ? MEASUREMENT_LABEL[k.measurement] : 'not measured';
}

export interface Cell {
  kernel: string;
  approach: ApproachName;
  runs: RunRecord[];
  record: CellRecord | null;
  values: Record<MetricKey, number[]>;
  stats: Partial<Record<MetricKey, Summary>>;
  /** Why a metric has no values (or fewer than the runs), e.g. cycles without a PMU. */
  nullReasons: Partial<Record<MetricKey, string[]>>;
  tcg: boolean;
}

export interface ThesisRow {
  kernel: string;
  approach: ApproachName;
  n: number;
  accelerator: string;
  status: CellRecord['status'] | 'incomplete';
  reason: string | null;
  packetsTotal: number | null;
  timeTotalNs: number | null;
  cyclesTotal: number | null;
  throughputGbps: number | null;
  timePerPacketNs: number | null;
  cyclesPerPacket: number | null;
  /** Median Δrun_time_ns / median Δrun_cnt of the attached program (BPF run-time statistics). */
  statsNsPerPacket: number | null;
  notes: string[];
}

export interface PairTest {
  kernel: string;
  metric: MetricKey;
  a: ApproachName;
  b: ApproachName;
  nA: number;
  nB: number;
  medianA: number;
  medianB: number;
  /** median(b) − median(a). */
  diff: number;
  relDiff: number | null;
  ci: [number, number] | null;
  u: number | null;
  p: number | null;
  pAdj: number | null;
  method: string;
  verdict: 'real' | 'noise' | 'untestable';
}

export interface ComparisonRow {
  kernel: string;
  ourKernel: string | null;
  approach: ApproachName;
  metric: 'packets_total' | 'time_total_ns' | 'cycles_total' | 'throughput_gbps' | 'time_per_packet_ns' | 'cycles_per_packet';
  thesis: number;
  ours: number | null;
  relDiff: number | null;
  note: string;
}

export interface MicroGroup {
  kernel: string;
  variant: string;
  /**
   * 'scaling': a chain of N copies of a trivial program (variant "chain/…", or measured at several
   * lengths); 'approach': one approach on the representative packet (one length).
   */
  kind: 'scaling' | 'approach';
  hop: string;
  tcg: boolean;
  points: { chainLength: number; repeat: number; stats: Summary }[];
  /** Cost per added hop, for variants measured at two or more chain lengths. */
  fit: LinearFit | null;
  /**
   * The same through chains of at most SHORT_CHAIN programs only: one line over 1..33 can hide two
   * regimes (seen on the development host: ~1.5 ns per hop up to 8 programs, ~8 ns beyond).
   */
  shortFit: LinearFit | null;
}

/** Longest chain in the short-chain fit. */
export const SHORT_CHAIN = 8;

export interface LatencyGroup {
  kernel: string;
  approach: ApproachName;
  operation: LatencyRecord['operation'];
  tcg: boolean;
  stats: Summary;
}

/**
 * Per-packet metrics for the headline, best first: the chain's own time from the BPF statistics
 * (no probe in the path), then the veth_poll probe per true packet, then per call (all the thesis
 * published).
 */
export const HEADLINE_METRICS = ['statsNsPerPacket', 'nsPerPacket', 'nsPerCall'] as const satisfies readonly MetricKey[];
export type HeadlineMetric = (typeof HEADLINE_METRICS)[number];
export const HEADLINE_METRIC_LABEL: Record<HeadlineMetric, string> = {
  statsNsPerPacket: 'BPF statistics: ns per packet (the whole chain)',
  nsPerPacket: 'veth_poll probe: ns per packet',
  nsPerCall: 'veth_poll probe: ns per call (the thesis\'s "per packet")',
};
export const HEADLINE_REFERENCES = ['manual', 'fused'] as const satisfies readonly ApproachName[];
export type HeadlineReference = (typeof HEADLINE_REFERENCES)[number];

export interface HeadlineRatio {
  approach: ApproachName;
  reference: HeadlineReference;
  n: number;
  nRef: number;
  median: number;
  medianRef: number;
  /** median(approach) / median(reference) of the kernel's headline metric. */
  ratio: number;
  /** 95% bootstrap CI of the ratio of medians; null below 2 runs in either cell. */
  ci: [number, number] | null;
  /** The significance test of the same pair and metric (Holm over the kernel's pairs). */
  pAdj: number | null;
  verdict: PairTest['verdict'];
}

export interface HeadlineRow {
  kernel: string;
  measurement: Measurement | null;
  /** null: no per-packet metric on this kernel (see note). */
  metric: HeadlineMetric | null;
  /** Why no better metric was used, or why there is none. */
  note: string;
  medians: { approach: ApproachName; n: number; median: number }[];
  ratios: HeadlineRatio[];
}

/** Throughput of each approach over the kernel's baseline (none, else manual), so kernels of any speed compare. */
export interface RelativeThroughput {
  kernel: string;
  baseline: 'none' | 'manual';
  bars: { approach: ApproachName; ratio: number; ci: [number, number] | null }[];
}

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

/** Metrics worth a table or figure in this model: the statistics' only where some run recorded them. */
export function shownMetric(model: Pick<ReportModel, 'bpfStatsRecorded'>, m: MetricKey): boolean {
  return model.bpfStatsRecorded || !STATS_METRICS.includes(m);
}

/** Newest kernel first; a kernel with no version in its label or release after every other. */
function compareVersionsDesc(a: KernelInfo, b: KernelInfo): number {
  if (a.version && b.version) return b.version.compare(a.version) || a.label.localeCompare(b.label);
  if (a.version || b.version) return a.version ? -1 : 1;
  return a.label.localeCompare(b.label);
}

function emptyValues(): Record<MetricKey, number[]> {
  return Object.fromEntries(METRIC_KEYS.map((k) => [k, [] as number[]])) as unknown as Record<MetricKey, number[]>;
}

function addReason(cell: Cell, metric: MetricKey, reason: string): void {
  const list = (cell.nullReasons[metric] ??= []);
  if (!list.includes(reason)) list.push(reason);
}

function perRunValues(cell: Cell, r: RunRecord, packetsAreCalls: boolean): void {
  const v = cell.values;
  v.throughputGbps.push(r.iperf.bitsPerSecond / 1e9);
  if (r.iperf.retransmits !== null) v.retransmits.push(r.iperf.retransmits);
  else addReason(cell, 'retransmits', 'iperf3 reported no retransmit count');
  if (r.bpfStats) {
    v.statsRunCnt.push(r.bpfStats.runCnt);
    v.statsRunTimeNs.push(r.bpfStats.runTimeNs);
    v.statsNsPerPacket.push(r.bpfStats.runTimeNs / r.bpfStats.runCnt);
  } else {
    const why =
      r.bpfStats === undefined
        ? 'not recorded: results written before the lab recorded BPF run-time statistics'
        : (r.bpfStatsNullReason ?? 'no BPF run-time statistics (no reason recorded)');
    for (const m of STATS_METRICS) addReason(cell, m, why);
  }
  const probeMetrics: MetricKey[] = ['calls', 'packets', 'ns', 'cycles', 'nsPerCall', 'nsPerPacket', 'cyclesPerCall', 'cyclesPerPacket', 'packetsPerCall', 'effectiveGhz'];
  if (r.probe === null) {
    const why = r.probeNullReason ?? (r.approach === 'none' ? 'no XDP program: veth_poll does not run, so no probe data' : 'no probe data (no reason recorded)');
    for (const m of probeMetrics) addReason(cell, m, why);
    return;
  }
  const p = r.probe;
  v.calls.push(p.calls);
  v.ns.push(p.ns);
  if (p.calls > 0) v.nsPerCall.push(p.ns / p.calls);
  else addReason(cell, 'nsPerCall', 'a run saw no veth_poll call');
  if (packetsAreCalls) {
    for (const m of ['packets', 'nsPerPacket', 'cyclesPerPacket', 'packetsPerCall'] as const) {
      addReason(cell, m, 'the thesis published veth_poll call counts only: true packet count unknown');
    }
  } else {
    v.packets.push(p.packets);
    if (p.calls > 0) v.packetsPerCall.push(p.packets / p.calls);
    if (p.packets > 0) v.nsPerPacket.push(p.ns / p.packets);
    else addReason(cell, 'nsPerPacket', 'a run processed no packet');
  }
  if (p.cycles === null) {
    const why = p.cyclesNullReason ?? 'cycles not measured (no reason recorded)';
    for (const m of ['cycles', 'cyclesPerCall', 'cyclesPerPacket', 'effectiveGhz'] as const) addReason(cell, m, why);
    return;
  }
  v.cycles.push(p.cycles);
  if (p.calls > 0) v.cyclesPerCall.push(p.cycles / p.calls);
  if (!packetsAreCalls && p.packets > 0) v.cyclesPerPacket.push(p.cycles / p.packets);
  if (p.ns > 0) v.effectiveGhz.push(p.cycles / p.ns);
}

export interface BuildOptions {
  reference: Reference | null;
  resamples?: number;
}

export function buildModel(run: LoadedRun, opts: BuildOptions): ReportModel {
  const flags: Flag[] = [];
  const packetsAreCalls = run.pseudoRun?.packetsAreCalls ?? false;
  const runId = run.runs[0]?.runId ?? run.cells[0]?.runId ?? run.micro[0]?.runId ?? run.latency[0]?.runId ?? 'unknown';

  // Kernels: from runs, cells, micro, latency and provenance.
  const kernelMap = new Map<string, { releases: Set<string>; accels: Set<Accelerator>; clocks: Set<Clock> }>();
  const touch = (k: string) => {
    let e = kernelMap.get(k);
    if (!e) kernelMap.set(k, (e = { releases: new Set(), accels: new Set(), clocks: new Set() }));
    return e;
  };
  for (const r of run.runs) {
    const e = touch(r.kernel);
    e.releases.add(r.kernelRelease);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const r of run.micro) {
    const e = touch(r.kernel);
    e.releases.add(r.kernelRelease);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const r of run.latency) {
    const e = touch(r.kernel);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const c of run.cells) touch(c.kernel);
  for (const p of run.provenance.values()) {
    const e = touch(p.kernel);
    e.releases.add(p.kernelRelease);
    e.accels.add(p.accelerator);
    e.clocks.add(p.clock ?? 'wall');
  }
  const kernels: KernelInfo[] = [...kernelMap.entries()].map(([label, e]) => {
    const prov = run.provenance.get(label) ?? null;
    const release = prov?.kernelRelease ?? [...e.releases][0] ?? label;
    const accelerators = [...e.accels].sort();
    const clocks = [...e.clocks].sort();
    const measurement: Measurement | null = accelerators.includes('tcg')
      ? clocks.every((c) => c === 'icount')
        ? 'tcg-icount'
        : 'tcg'
      : accelerators.includes('kvm')
        ? 'kvm'
        : accelerators.includes('host')
          ? 'host'
          : null;
    return {
      label,
      release,
      accelerators,
      tcg: accelerators.includes('tcg'),
      clocks,
      measurement,
      provenance: prov,
      version: Version.find(label) ?? Version.find(release),
    };
  });
  kernels.sort(compareVersionsDesc);
  const kernelInfo = new Map(kernels.map((k) => [k.label, k]));
  const anyTcg = kernels.some((k) => k.tcg);
  for (const k of kernels) {
    const kw = { kernel: k.label, cell: k.label };
    if (k.tcg) {
      const cause =
        k.measurement === 'tcg-icount'
          ? `${ICOUNT_WARNING} (QEMU's instruction counter, no KVM); every table and figure row for this kernel is marked.`
          : `${TCG_WARNING} (QEMU without KVM); every table and figure row for this kernel is marked.`;
      flags.push({ level: 'warn', ...kw, cause, text: `${k.label}: ${cause}` });
    }
    if (!k.provenance && (run.runs.some((r) => r.kernel === k.label) || run.micro.some((r) => r.kernel === k.label))) {
      flags.push({ level: 'warn', ...kw, cause: 'no provenance/<kernel>.json: CPU, frequency and tool versions unknown.', text: `${k.label}: no provenance/${k.label}.json: CPU, frequency and tool versions unknown.` });
    }
    if (k.provenance?.accelerator && run.runs.some((r) => r.kernel === k.label && r.accelerator !== k.provenance!.accelerator)) {
      flags.push({ level: 'warn', ...kw, cause: "runs name an accelerator other than the provenance's.", detail: `provenance: ${k.provenance.accelerator}`, text: `${k.label}: runs name an accelerator other than the provenance's (${k.provenance.accelerator}).` });
    }
  }

  // Cells.
  const cellMap = new Map<string, Cell>();
  const key = (k: string, a: ApproachName) => `${k}\u0000${a}`;
  const getCell = (k: string, a: ApproachName): Cell => {
    let c = cellMap.get(key(k, a));
    if (!c) {
      c = { kernel: k, approach: a, runs: [], record: null, values: emptyValues(), stats: {}, nullReasons: {}, tcg: kernelInfo.get(k)?.tcg ?? false };
      cellMap.set(key(k, a), c);
    }
    return c;
  };
  for (const r of run.runs) getCell(r.kernel, r.approach).runs.push(r);
  for (const c of run.cells) getCell(c.kernel, c.approach).record = c;
  const cells = [...cellMap.values()].sort(
    (a, b) =>
      kernels.findIndex((k) => k.label === a.kernel) - kernels.findIndex((k) => k.label === b.kernel) ||
      APPROACH_ORDER.indexOf(a.approach) - APPROACH_ORDER.indexOf(b.approach),
  );
  const approaches = APPROACH_ORDER.filter((a) => cells.some((c) => c.approach === a));
  // A kernel the machine could not obtain skips every approach for one reason: say it once.
  const wholeKernelSkipped = new Set<string>();
  for (const k of kernels) {
    const mine = cells.filter((c) => c.kernel === k.label);
    if (mine.length > 0 && mine.every((c) => c.record?.status === 'skipped' && c.runs.length === 0)) {
      wholeKernelSkipped.add(k.label);
      const reason = mine[0]!.record?.reason;
      const cause = `every approach skipped${reason ? ` — ${reason}` : ' (no reason recorded)'}`;
      flags.push({ level: 'warn', kernel: k.label, cell: k.label, cause, text: `${k.label}: ${cause}` });
    }
  }
  for (const cell of cells) {
    cell.runs.sort((a, b) => a.iteration - b.iteration);
    for (const r of cell.runs) perRunValues(cell, r, packetsAreCalls);
    for (const m of METRIC_KEYS) {
      const s = summarize(cell.values[m], `${cell.kernel}/${cell.approach}/${m}`, opts.resamples);
      if (s) cell.stats[m] = s;
    }
    if (!wholeKernelSkipped.has(cell.kernel)) cellFlags(cell, kernelInfo.get(cell.kernel) ?? null, flags, run.pseudoRun !== null);
  }

  const table = cells.map((c) => thesisRow(c, kernelInfo.get(c.kernel) ?? null));
  const comparison = opts.reference ? compareWithThesis(table, kernels, opts.reference) : [];
  if (!opts.reference) flags.push({ level: 'info', text: 'thesis reference tables not found: no side-by-side comparison.' });
  const { pairs, sentences } = significance(cells, kernels, opts.resamples);
  const headline = headlineRows(cells, kernels, pairs, opts.resamples);
  const relativeThroughput = relativeThroughputOf(cells, kernels, opts.resamples);
  const micro = microGroups(run.micro, kernelInfo, opts.resamples);
  for (const m of run.microReasons) {
    flags.push({
      level: 'info',
      kernel: m.kernel,
      cell: `${m.kernel} / ${m.variant} (length ${m.chainLength})`,
      cause: `microbenchmark not measured — ${m.reason}`,
      text: `${m.kernel} / microbenchmark ${m.variant} (length ${m.chainLength}): not measured — ${m.reason}`,
    });
  }
  for (const r of run.micro) {
    if (r.nsPerPacket.length === 0 && !run.microReasons.some((m) => m.kernel === r.kernel && m.variant === r.variant && m.chainLength === r.chainLength)) {
      flags.push({
        level: 'warn',
        kernel: r.kernel,
        cell: `${r.kernel} / ${r.variant} (length ${r.chainLength})`,
        cause: 'microbenchmark record without repetitions and without a reason',
        text: `${r.kernel} / microbenchmark ${r.variant} (length ${r.chainLength}): record without repetitions and without a reason`,
      });
    }
  }
  // Provenance warnings (probe overhead, frequency notes...) belong in the warnings list too; one
  // line per distinct text, naming the kernels it applies to.
  const provWarnings = new Map<string, string[]>();
  for (const k of kernels) for (const w of k.provenance?.warnings ?? []) provWarnings.set(w, [...(provWarnings.get(w) ?? []), k.label]);
  for (const [w, ks] of provWarnings) flags.push({ level: 'info', text: `provenance (${ks.join(', ')}): ${w}` });
  const latency = latencyGroups(run.latency, kernelInfo, opts.resamples);
  if (run.pseudoRun) {
    flags.unshift({ level: 'info', text: `Thesis pseudo-run (${run.pseudoRun.source}): ${run.pseudoRun.note}` });
  }
  for (const b of run.badLines) flags.push({ level: 'warn', cell: `${b.file}:${b.line}`, cause: `raw line skipped: ${b.error}`, text: `${b.file}:${b.line}: skipped: ${b.error}` });
  for (const w of run.warnings) flags.push({ level: 'warn', text: w });
  return {
    runId,
    pseudoRun: run.pseudoRun,
    kernels,
    approaches,
    cells,
    table,
    comparison,
    pairs,
    sentences,
    micro,
    latency,
    flags,
    headline,
    relativeThroughput,
    badLines: run.badLines,
    anyTcg,
    bpfStatsRecorded: run.runs.some((r) => r.bpfStats !== undefined),
  };
}

function cellFlags(cell: Cell, k: KernelInfo | null, flags: Flag[], pseudoRun: boolean): void {
  const name = `${cell.kernel} / ${APPROACH_LABEL[cell.approach]}`;
  // text: the flag as one line (what summary.json's readers and tests see); cause: the same with
  // the cell's particulars (counts, measured values) moved to detail, so cells can share one line.
  const add = (level: Flag['level'], text: string, cause: string, detail?: string) =>
    flags.push({ level, kernel: cell.kernel, approach: cell.approach, cell: name, cause, ...(detail !== undefined ? { detail } : {}), text: `${name}: ${text}` });
  const rec = cell.record;
  if (rec && rec.status !== 'done') {
    const t = `${rec.status}${rec.reason ? ` — ${rec.reason}` : ' (no reason recorded)'}`;
    add('warn', t, t);
  } else if (!rec && cell.runs.length > 0) {
    add(
      'warn',
      `no cell record: the cell did not finish (matrix interrupted or still running); ${cell.runs.length} run(s) used.`,
      'no cell record: the cell did not finish (matrix interrupted or still running); its runs are used.',
      `${cell.runs.length} run(s)`,
    );
  } else if (rec && rec.runs !== cell.runs.length) {
    add(
      'warn',
      `the cell record says ${rec.runs} run(s), ${cell.runs.length} valid run record(s) found.`,
      'the cell record names another number of runs than the valid run records found.',
      `record ${rec.runs}, found ${cell.runs.length}`,
    );
  }
  // A pseudo-run has n = 1 everywhere and says so once in its banner.
  if (!pseudoRun && cell.runs.length > 0 && cell.runs.length < MIN_RUNS) {
    add(
      'warn',
      `only ${cell.runs.length} run(s) (fewer than ${MIN_RUNS}): medians, IQR and CI are fragile.`,
      `fewer than ${MIN_RUNS} runs: medians, IQR and CI are fragile.`,
      `n=${cell.runs.length}`,
    );
  }
  if (cell.approach === 'none' && cell.runs.length > 0 && cell.values.ns.length === 0) {
    const t = `no probe data — ${(cell.nullReasons.ns ?? []).join('; ')}. Only throughput is shown.`;
    add('info', t, t);
  } else if (cell.runs.length > 0 && cell.values.ns.length === 0) {
    const t = `no probe data — ${(cell.nullReasons.ns ?? ['no reason recorded']).join('; ')}.`;
    add('warn', t, t);
  }
  const statsNull = cell.runs.filter((r) => r.bpfStats === null);
  if (cell.approach !== 'none' && statsNull.length > 0) {
    const why = `${(cell.nullReasons.statsNsPerPacket ?? ['no reason recorded']).join('; ')} (shown as empty, never 0).`;
    add('info', `BPF run-time statistics missing in ${statsNull.length} of ${cell.runs.length} run(s) — ${why}`, `BPF run-time statistics missing — ${why}`, `${statsNull.length} of ${cell.runs.length} run(s)`);
  }
  if (cell.values.calls.length > 0 && cell.values.cycles.length < cell.values.calls.length) {
    const why = `${(cell.nullReasons.cycles ?? []).join('; ')} (shown as empty, never 0).`;
    const missing = `${cell.values.calls.length - cell.values.cycles.length} of ${cell.values.calls.length} run(s)`;
    add('info', `cycles missing in ${missing} — ${why}`, `cycles missing — ${why}`, missing);
  }
  const ghz = cell.stats.effectiveGhz;
  if (ghz) {
    const mhz = k?.provenance?.cpuFrequency.mhz ?? null;
    const measured = `${ghz.median.toFixed(3)} GHz`;
    if (mhz === null) {
      const note = k?.provenance?.cpuFrequency.note ? ` (${k.provenance.cpuFrequency.note})` : '';
      add(
        'info',
        `effective ${measured} (cycles/ns) cannot be checked: no pinned frequency recorded${note}.`,
        `effective GHz (cycles/ns) cannot be checked: no pinned frequency recorded${note}.`,
        `measured ${measured}`,
      );
    } else {
      const expected = mhz / 1000;
      const rel = (ghz.median - expected) / expected;
      if (Math.abs(rel) > GHZ_TOLERANCE) {
        const why = 'the frequency was not what was pinned, or cycles and ns do not cover the same interval.';
        add(
          'warn',
          `effective ${measured} (cycles/ns) differs from the recorded ${expected.toFixed(3)} GHz by ${(rel * 100).toFixed(1)}% (> ${GHZ_TOLERANCE * 100}%): ${why}`,
          `effective GHz (cycles/ns) differs from the recorded frequency by more than ${GHZ_TOLERANCE * 100}%: ${why}`,
          `${measured} vs ${expected.toFixed(3)}, ${rel >= 0 ? '+' : '−'}${Math.abs(rel * 100).toFixed(1)}%`,
        );
      }
    }
  }
}

/**
 * Flags of one cause on one line each, in order of first appearance. Where every cell shares the
 * same detail it joins the cause ("fewer than 5 runs (n=2)") instead of being repeated per cell.
 */
export function groupFlags(flags: readonly Flag[]): FlagGroup[] {
  const groups = new Map<string, { level: Flag['level']; cause: string; first: string; cells: { cell: string; detail?: string }[] }>();
  for (const f of flags) {
    const cause = f.cause ?? f.text;
    const key = `${f.level}\u0000${cause}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { level: f.level, cause, first: f.text, cells: [] }));
    if (f.cause !== undefined && f.cell !== undefined) g.cells.push(f.detail !== undefined ? { cell: f.cell, detail: f.detail } : { cell: f.cell });
  }
  return [...groups.values()].map((g) => {
    // A cause of one cell reads best as the flag itself ("6.1 / Manual: unsupported — …").
    if (g.cells.length <= 1) return { level: g.level, cause: g.cause, cells: g.cells, text: g.first };
    const details = new Set(g.cells.map((c) => c.detail));
    const shared = details.size === 1 ? [...details][0] : undefined;
    const cause = shared !== undefined ? `${g.cause.replace(/[.:]$/, '')} (${shared}).` : g.cause;
    const cells = shared !== undefined ? g.cells.map((c) => ({ cell: c.cell })) : g.cells;
    return { level: g.level, cause, cells, text: `${cause} — ${cells.length}: ${flagCellsText(cells)}` };
  });
}

export function flagCellsText(cells: readonly { cell: string; detail?: string }[]): string {
  return cells.map((c) => (c.detail !== undefined ? `${c.cell} (${c.detail})` : c.cell)).join(', ');
}

function median(s: Summary | undefined): number | null {
  return s ? s.median : null;
}

/**
 * A cell's reason in a table cell: one line. A skipped cell keeps only its first line (the full
 * reason, with how to fix it, is in the warnings once per kernel); others are folded onto one line.
 */
export function noteReason(status: string, reason: string): string {
  if (status === 'skipped') return `${reason.split('\n')[0]!.replace(/:$/, '')} (see Warnings)`;
  return reason.replace(/\s*\n\s*/g, ' ').trim();
}

function thesisRow(cell: Cell, k: KernelInfo | null): ThesisRow {
  const notes: string[] = [];
  const kw = kernelWarning(k);
  if (kw) notes.push(kw);
  if (cell.runs.length > 0 && cell.runs.length < MIN_RUNS) notes.push(`n=${cell.runs.length} < ${MIN_RUNS}`);
  const rec = cell.record;
  const status: ThesisRow['status'] = rec ? rec.status : 'incomplete';
  if (status === 'incomplete') notes.push('incomplete: no cell record (matrix interrupted or still running)');
  else if (status !== 'done') notes.push(`${status}${rec?.reason ? `: ${noteReason(status, rec.reason)}` : ''}`);
  if (cell.approach === 'none') notes.push('no probe data: no XDP program, veth_poll not probed');
  else if (cell.values.cycles.length === 0 && cell.values.calls.length > 0) notes.push(`cycles null: ${(cell.nullReasons.cycles ?? []).join('; ')}`);
  if (cell.approach !== 'none' && cell.runs.some((r) => r.bpfStats === null) && cell.values.statsNsPerPacket.length === 0) {
    notes.push(`BPF statistics null: ${(cell.nullReasons.statsNsPerPacket ?? []).join('; ')}`);
  }
  const calls = median(cell.stats.calls);
  const runCnt = median(cell.stats.statsRunCnt);
  const runTimeNs = median(cell.stats.statsRunTimeNs);
  const ns = median(cell.stats.ns);
  const cycles = median(cell.stats.cycles);
  return {
    kernel: cell.kernel,
    approach: cell.approach,
    n: cell.runs.length,
    accelerator: k?.accelerators.join('+') ?? '',
    status,
    reason: rec?.reason ?? null,
    packetsTotal: calls,
    timeTotalNs: ns,
    cyclesTotal: cycles,
    throughputGbps: median(cell.stats.throughputGbps),
    timePerPacketNs: ns !== null && calls ? ns / calls : null,
    cyclesPerPacket: cycles !== null && calls ? cycles / calls : null,
    statsNsPerPacket: runTimeNs !== null && runCnt ? runTimeNs / runCnt : null,
    notes,
  };
}

function compareWithThesis(table: ThesisRow[], kernels: KernelInfo[], ref: Reference): ComparisonRow[] {
  const out: ComparisonRow[] = [];
  for (const r51 of ref.table51) {
    const r52 = ref.table52.find((r) => r.kernel === r51.kernel && r.approach === r51.approach);
    const ourK = kernels.find((k) => k.version?.series === r51.kernel) ?? null;
    const row = ourK ? table.find((t) => t.kernel === ourK.label && t.approach === r51.approach) ?? null : null;
    const note = !ourK
      ? `no kernel ${r51.kernel} in this run`
      : !row || row.n === 0
        ? `${APPROACH_LABEL[r51.approach]} not measured on ${ourK.label}${row?.reason ? ` (${row.reason})` : ''}`
        : (kernelWarning(ourK) ?? '');
    const add = (metric: ComparisonRow['metric'], thesis: number, ours: number | null) => {
      out.push({
        kernel: r51.kernel,
        ourKernel: ourK?.label ?? null,
        approach: r51.approach,
        metric,
        thesis,
        ours,
        relDiff: ours === null ? null : (ours - thesis) / thesis,
        note,
      });
    };
    add('packets_total', r51.packetsTotal, row?.packetsTotal ?? null);
    add('time_total_ns', r51.timeTotalNs, row?.timeTotalNs ?? null);
    add('cycles_total', r51.cyclesTotal, row?.cyclesTotal ?? null);
    add('throughput_gbps', r51.throughputGbps, row?.throughputGbps ?? null);
    if (r52) {
      add('time_per_packet_ns', r52.timePerPacketNs, row?.timePerPacketNs ?? null);
      add('cycles_per_packet', r52.cyclesPerPacket, row?.cyclesPerPacket ?? null);
    }
  }
  return out;
}

function fmtSigned(x: number, digits = 1): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
}

function significance(cells: Cell[], kernels: KernelInfo[], resamples?: number): { pairs: PairTest[]; sentences: { kernel: string; text: string }[] } {
  const pairs: PairTest[] = [];
  const sentences: { kernel: string; text: string }[] = [];
  for (const k of kernels) {
    const kc = cells.filter((c) => c.kernel === k.label && c.runs.length > 0);
    const parts: string[] = [];
    for (const metric of SIGNIFICANCE_METRICS) {
      const withData = kc.filter((c) => c.values[metric].length > 0);
      const group: PairTest[] = [];
      for (let i = 0; i < withData.length; i++) {
        for (let j = i + 1; j < withData.length; j++) {
          const a = withData[i]!;
          const b = withData[j]!;
          const va = a.values[metric];
          const vb = b.values[metric];
          const ma = a.stats[metric]!.median;
          const mb = b.stats[metric]!.median;
          const testable = va.length >= 2 && vb.length >= 2;
          const mw = testable ? mannWhitneyU(va, vb) : null;
          group.push({
            kernel: k.label,
            metric,
            a: a.approach,
            b: b.approach,
            nA: va.length,
            nB: vb.length,
            medianA: ma,
            medianB: mb,
            diff: mb - ma,
            relDiff: ma !== 0 ? (mb - ma) / ma : null,
            ci: testable ? bootstrapMedianDiffCi(va, vb, `${k.label}/${metric}/${a.approach}/${b.approach}`, resamples) : null,
            u: mw?.u ?? null,
            p: mw?.p ?? null,
            pAdj: null,
            method: mw ? `Mann-Whitney U (${mw.method})` : 'not testable: fewer than 2 runs in a group',
            verdict: 'untestable',
          });
        }
      }
      const tested = group.filter((g) => g.p !== null);
      const adj = holm(tested.map((g) => g.p!));
      tested.forEach((g, i) => {
        g.pAdj = adj[i]!;
        g.method += `, Holm over ${tested.length} pair${tested.length === 1 ? '' : 's'}`;
        const ciExcludes0 = g.ci !== null && (g.ci[0] > 0 || g.ci[1] < 0);
        g.verdict = ciExcludes0 && g.pAdj < ALPHA ? 'real' : 'noise';
      });
      pairs.push(...group);
      if (group.length === 0) continue;
      const name = (g: PairTest) => `${APPROACH_LABEL[g.b]} − ${APPROACH_LABEL[g.a]}`;
      const real = group.filter((g) => g.verdict === 'real');
      const noise = group.filter((g) => g.verdict === 'noise');
      const untestable = group.filter((g) => g.verdict === 'untestable');
      const bits: string[] = [];
      if (real.length > 0) {
        bits.push(
          `real: ${real
            .map((g) => `${name(g)} ${g.relDiff !== null ? `${fmtSigned(g.relDiff * 100)}%` : fmtSigned(g.diff, 3)} (p_adj ${fmtP(g.pAdj!)})`)
            .join('; ')}`,
        );
      }
      if (noise.length > 0) {
        const few = noise.some((g) => g.nA < MIN_RUNS || g.nB < MIN_RUNS) ? ` (some with fewer than ${MIN_RUNS} runs)` : '';
        bits.push(`noise${few}: ${noise.map(name).join('; ')}`);
      }
      if (untestable.length > 0) bits.push(`untestable (n < 2): ${untestable.map(name).join('; ')}`);
      parts.push(`${METRICS[metric].label}: ${bits.join('; ')}`);
    }
    if (parts.length === 0) continue;
    const kw = kernelWarning(k);
    const tcg = kw ? ` [${kw}: even "real" differences say nothing about wall-clock performance.]` : '';
    sentences.push({ kernel: k.label, text: `On ${k.label}, ${parts.join('. ')}.${tcg}` });
  }
  return { pairs, sentences };
}

/**
 * The answer first: per kernel, each approach's cost over manual and over fused, as a ratio of
 * medians of the best per-packet metric the kernel has, with a bootstrap CI of that ratio and the
 * verdict of the pair's significance test (same metric, so the same Holm family).
 */
function headlineRows(cells: Cell[], kernels: KernelInfo[], pairs: PairTest[], resamples?: number): HeadlineRow[] {
  const rows: HeadlineRow[] = [];
  for (const k of kernels) {
    const kc = cells.filter((c) => c.kernel === k.label && c.approach !== 'none' && c.runs.length > 0);
    if (kc.length === 0) continue;
    const withData = (m: HeadlineMetric) => kc.filter((c) => c.values[m].length > 0);
    const metric = HEADLINE_METRICS.find((m) => withData(m).length >= 2) ?? HEADLINE_METRICS.find((m) => withData(m).length >= 1) ?? null;
    const passedOver: readonly HeadlineMetric[] = metric === null ? HEADLINE_METRICS : HEADLINE_METRICS.slice(0, HEADLINE_METRICS.indexOf(metric));
    const note = passedOver
      .map((m) => {
        const reasons = [...new Set(kc.flatMap((c) => (c.values[m].length === 0 ? (c.nullReasons[m] ?? []) : [])))];
        const covered = withData(m).length;
        return `no ${HEADLINE_METRIC_LABEL[m]}${covered > 0 ? ` beyond ${covered} approach` : ''}${reasons.length > 0 ? ` — ${reasons.join('; ')}` : ''}`;
      })
      .join('; ');
    const row: HeadlineRow = { kernel: k.label, measurement: k.measurement, metric, note, medians: [], ratios: [] };
    rows.push(row);
    if (metric === null) continue;
    const data = withData(metric);
    row.medians = data.map((c) => ({ approach: c.approach, n: c.values[metric].length, median: c.stats[metric]!.median }));
    for (const reference of HEADLINE_REFERENCES) {
      const ref = data.find((c) => c.approach === reference);
      if (!ref) continue;
      const medianRef = ref.stats[metric]!.median;
      if (medianRef === 0) continue;
      for (const c of data) {
        if (c === ref) continue;
        const pair = pairs.find(
          (p) => p.kernel === k.label && p.metric === metric && ((p.a === reference && p.b === c.approach) || (p.b === reference && p.a === c.approach)),
        );
        const median = c.stats[metric]!.median;
        row.ratios.push({
          approach: c.approach,
          reference,
          n: c.values[metric].length,
          nRef: ref.values[metric].length,
          median,
          medianRef,
          ratio: median / medianRef,
          ci: bootstrapMedianRatioCi(ref.values[metric], c.values[metric], `headline/${k.label}/${metric}/${c.approach}/${reference}`, resamples),
          pAdj: pair?.pAdj ?? null,
          verdict: pair?.verdict ?? 'untestable',
        });
      }
    }
  }
  return rows;
}

/** Throughput over the kernel's own baseline: none (no XDP) where measured, else manual. */
function relativeThroughputOf(cells: Cell[], kernels: KernelInfo[], resamples?: number): RelativeThroughput[] {
  const out: RelativeThroughput[] = [];
  for (const k of kernels) {
    const kc = cells.filter((c) => c.kernel === k.label && c.values.throughputGbps.length > 0);
    const base = kc.find((c) => c.approach === 'none') ?? kc.find((c) => c.approach === 'manual');
    if (!base || (base.approach !== 'none' && base.approach !== 'manual')) continue;
    const baseMedian = base.stats.throughputGbps!.median;
    if (baseMedian === 0) continue;
    out.push({
      kernel: k.label,
      baseline: base.approach,
      bars: kc.map((c) => ({
        approach: c.approach,
        ratio: c.stats.throughputGbps!.median / baseMedian,
        // The baseline over itself is 1 by definition; resampling it against itself would invent a spread.
        ci: c === base ? null : bootstrapMedianRatioCi(base.values.throughputGbps, c.values.throughputGbps, `throughput-relative/${k.label}/${c.approach}/${base.approach}`, resamples),
      })),
    });
  }
  return out;
}

export function fmtP(p: number): string {
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

/**
 * A variant named "chain/…" (the bench's chain-length scaling) or measured at two or more lengths is a
 * scaling series (ns vs length, fitted cost per hop); any other is a per-approach measurement on the
 * representative packet (bar chart). The fit goes through the median at each length.
 */
function microGroups(recs: MicroRecord[], kernelInfo: Map<string, KernelInfo>, resamples?: number): MicroGroup[] {
  const map = new Map<string, { kernel: string; variant: string; hops: Set<string>; byLen: Map<number, { values: number[]; repeat: number }> }>();
  for (const r of recs) {
    const k = `${r.kernel}\u0000${r.variant}`;
    let g = map.get(k);
    if (!g) map.set(k, (g = { kernel: r.kernel, variant: r.variant, hops: new Set(), byLen: new Map() }));
    g.hops.add(r.hop);
    const e = g.byLen.get(r.chainLength) ?? { values: [], repeat: r.repeat };
    e.values.push(...r.nsPerPacket);
    g.byLen.set(r.chainLength, e);
  }
  const out: MicroGroup[] = [];
  for (const g of map.values()) {
    const points = [...g.byLen.entries()]
      .sort((a, b) => a[0] - b[0])
      .flatMap(([len, e]) => {
        const stats = summarize(e.values, `micro/${g.kernel}/${g.variant}/${len}`, resamples);
        return stats ? [{ chainLength: len, repeat: e.repeat, stats }] : [];
      });
    // Variants with no repetition at all (unsupported) are reported as flags, not drawn.
    if (points.length === 0) continue;
    const kind = g.variant.startsWith('chain/') || points.length >= 2 ? 'scaling' : 'approach';
    out.push({
      kernel: g.kernel,
      variant: g.variant,
      kind,
      hop: [...g.hops].join('+'),
      tcg: kernelInfo.get(g.kernel)?.tcg ?? false,
      points,
      fit: kind === 'scaling' && points.length >= 2 ? fitLine(points.map((p) => [p.chainLength, p.stats.median] as const)) : null,
      shortFit: kind === 'scaling' ? shortFit(points) : null,
    });
  }
  const order = [...kernelInfo.keys()];
  return out.sort((a, b) => order.indexOf(a.kernel) - order.indexOf(b.kernel) || a.variant.localeCompare(b.variant));
}

function shortFit(points: MicroGroup['points']): LinearFit | null {
  const short = points.filter((p) => p.chainLength <= SHORT_CHAIN);
  return new Set(short.map((p) => p.chainLength)).size >= 2 ? fitLine(short.map((p) => [p.chainLength, p.stats.median] as const)) : null;
}

function latencyGroups(recs: LatencyRecord[], kernelInfo: Map<string, KernelInfo>, resamples?: number): LatencyGroup[] {
  const map = new Map<string, { kernel: string; approach: ApproachName; operation: LatencyRecord['operation']; ms: number[] }>();
  for (const r of recs) {
    const k = `${r.kernel}\u0000${r.approach}\u0000${r.operation}`;
    const g = map.get(k) ?? { kernel: r.kernel, approach: r.approach, operation: r.operation, ms: [] };
    g.ms.push(...r.ms);
    map.set(k, g);
  }
  const order = [...kernelInfo.keys()];
  return [...map.values()]
    .flatMap((g) => {
      const stats = summarize(g.ms, `latency/${g.kernel}/${g.approach}/${g.operation}`, resamples);
      return stats ? [{ kernel: g.kernel, approach: g.approach, operation: g.operation, tcg: kernelInfo.get(g.kernel)?.tcg ?? false, stats }] : [];
    })
    .sort(
      (a, b) =>
        order.indexOf(a.kernel) - order.indexOf(b.kernel) ||
        a.operation.localeCompare(b.operation) ||
        APPROACH_ORDER.indexOf(a.approach) - APPROACH_ORDER.indexOf(b.approach),
    );
}
