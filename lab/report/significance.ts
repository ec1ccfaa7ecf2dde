/**
 * Pairwise significance per kernel and metric: the difference of medians with its bootstrap CI, a
 * two-sided Mann-Whitney U test, Holm's correction over the pairs of one kernel and one metric, a
 * verdict ("real" or "noise") and one sentence per kernel saying it in words.
 */
import type { ApproachHook, ApproachName } from '../results/record.ts';
import type { Cell } from './cells.ts';
import { fmtP, fmtSigned } from './format.ts';
import { kernelWarning, type KernelInfo } from './kernels.ts';
import { APPROACH_LABEL, metricLabel, MIN_RUNS, type MetricKey } from './metrics.ts';
import { bootstrapMedianDiffCi, holm, mannWhitneyU } from './stats.ts';

/** Metrics compared pairwise; Holm's correction runs over the pairs of one kernel and one metric. */
export const SIGNIFICANCE_METRICS: readonly MetricKey[] = ['throughputGbps', 'nsPerCall', 'nsPerPacket', 'cyclesPerPacket', 'statsNsPerPacket'];
/** A difference is "real" when its CI excludes 0 and its Holm-adjusted p is below this. */
export const ALPHA = 0.05;

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

export function significance(cells: Cell[], kernels: KernelInfo[], resamples?: number, hook: ApproachHook = 'xdp'): { pairs: PairTest[]; sentences: { kernel: string; text: string }[] } {
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
      parts.push(`${metricLabel(metric, hook)}: ${bits.join('; ')}`);
    }
    if (parts.length === 0) continue;
    const kw = kernelWarning(k);
    const tcg = kw ? ` [${kw}: even "real" differences say nothing about wall-clock performance.]` : '';
    sentences.push({ kernel: k.label, text: `On ${k.label}, ${parts.join('. ')}.${tcg}` });
  }
  return { pairs, sentences };
}
