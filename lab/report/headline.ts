/**
 * The answer first: per kernel, each approach's cost per packet over manual and over fused (a ratio
 * of medians of the best per-packet metric the kernel has, its bootstrap CI and the pair's verdict),
 * and each approach's throughput over the kernel's own baseline.
 */
import type { ApproachName } from '../results/record.ts';
import type { Cell } from './cells.ts';
import { XDP_PROFILE, type HookProfile } from './hooks.ts';
import type { KernelInfo, Measurement } from './kernels.ts';
import type { MetricKey } from './metrics.ts';
import type { PairTest } from './significance.ts';
import { bootstrapMedianRatioCi } from './stats.ts';

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
/** A hook's references, manual first: its chain of tail calls and its one fused program. */
export function headlineReferences(profile: HookProfile): ApproachName[] {
  return [profile.manual, profile.fused];
}

export interface HeadlineRatio {
  approach: ApproachName;
  reference: ApproachName;
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
  /** The hook's baseline (none, tc-none), else its manual chain. */
  baseline: ApproachName;
  bars: { approach: ApproachName; ratio: number; ci: [number, number] | null }[];
}

/**
 * The answer first: per kernel, each approach's cost over manual and over fused, as a ratio of
 * medians of the best per-packet metric the kernel has, with a bootstrap CI of that ratio and the
 * verdict of the pair's significance test (same metric, so the same Holm family). The cells are one
 * hook's, whose profile names its references and baseline.
 */
export function headlineRows(cells: Cell[], kernels: KernelInfo[], pairs: PairTest[], resamples?: number, profile: HookProfile = XDP_PROFILE): HeadlineRow[] {
  const rows: HeadlineRow[] = [];
  for (const k of kernels) {
    const kc = cells.filter((c) => c.kernel === k.label && c.approach !== profile.baseline && c.runs.length > 0);
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
    for (const reference of headlineReferences(profile)) {
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

/** Throughput over the kernel's own baseline: none (no program) where measured, else manual. */
export function relativeThroughputOf(cells: Cell[], kernels: KernelInfo[], resamples?: number, profile: HookProfile = XDP_PROFILE): RelativeThroughput[] {
  const out: RelativeThroughput[] = [];
  for (const k of kernels) {
    const kc = cells.filter((c) => c.kernel === k.label && c.values.throughputGbps.length > 0);
    const base = kc.find((c) => c.approach === profile.baseline) ?? kc.find((c) => c.approach === profile.manual);
    if (!base) continue;
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
