/**
 * The statistics the report needs. Quantiles, medians, rank sums and regressions come from
 * simple-statistics; what it lacks is here: a seeded generator (so every report of the same data is
 * byte-identical), bootstrap confidence intervals, the Mann-Whitney U p-value (simple-statistics gives
 * only the rank sum) with a normal tail that keeps its precision far out, and the Holm correction.
 * test/report/stats-reference.test.ts checks all of it against SciPy, NumPy and statsmodels.
 */
import erfc from '@stdlib/math-base-special-erfc';
import {
  linearRegression,
  medianSorted,
  quantile,
  rSquared,
  linearRegressionLine,
  wilcoxonRankSum,
} from 'simple-statistics';
import { mulberry32 } from '../random.ts';

/** Resamples per bootstrap: 2000, above the ~1000 usually advised for percentile intervals. */
export const BOOTSTRAP_RESAMPLES = 2000;
export const CONFIDENCE = 0.95;
/** Fixed base seed: a report is a pure function of its raw results. */
export const BASE_SEED = 'xdp-chain-lab-report-v1';

/** 32-bit FNV-1a: turns a text key into a seed, so each cell's bootstrap is independent of order. */
export function hashSeed(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A generator seeded by the report's base seed and the key: independent of evaluation order. */
export function seededRandom(key: string): () => number {
  return mulberry32(hashSeed(`${BASE_SEED}:${key}`));
}

export interface Summary {
  n: number;
  median: number;
  q1: number;
  q3: number;
  iqr: number;
  /** 95% percentile-bootstrap CI of the median; null when n < 2 (one value has no spread to resample). */
  ci: [number, number] | null;
}

/** Quartiles are R type 7 / numpy "linear" (simple-statistics' quantile). */
export function summarize(values: readonly number[], seedKey: string, resamples = BOOTSTRAP_RESAMPLES): Summary | null {
  if (values.length === 0) return null;
  const xs = [...values];
  const [q1, med, q3] = quantile(xs, [0.25, 0.5, 0.75]) as [number, number, number];
  return { n: xs.length, median: med, q1, q3, iqr: q3 - q1, ci: bootstrapMedianCi(xs, seedKey, resamples) };
}

/**
 * Median of one resample (with replacement) of `xs`, drawn into `buf`. Hot loop of every bootstrap:
 * one reused typed array sorted natively, then simple-statistics' medianSorted.
 */
function resampleMedian(xs: readonly number[], buf: Float64Array, rnd: () => number): number {
  const n = xs.length;
  for (let i = 0; i < n; i++) buf[i] = xs[Math.floor(rnd() * n)]!;
  buf.sort();
  return medianSorted(buf as unknown as number[]);
}

export function bootstrapMedianCi(values: readonly number[], seedKey: string, resamples = BOOTSTRAP_RESAMPLES): [number, number] | null {
  if (values.length < 2) return null;
  const rnd = seededRandom(`median:${seedKey}`);
  const buf = new Float64Array(values.length);
  const meds = new Array<number>(resamples);
  for (let i = 0; i < resamples; i++) meds[i] = resampleMedian(values, buf, rnd);
  return percentileInterval(meds);
}

/**
 * Percentile bootstrap CI of a statistic of two medians, each group resampled on its own (b's
 * resample drawn first, then a's). A resample the statistic rejects (null) is left out; null when
 * none is left.
 */
function bootstrapTwoMedians(
  a: readonly number[],
  b: readonly number[],
  seed: string,
  resamples: number,
  statistic: (medianA: number, medianB: number) => number | null,
): [number, number] | null {
  if (a.length < 2 || b.length < 2) return null;
  const rnd = seededRandom(seed);
  const ba = new Float64Array(a.length);
  const bb = new Float64Array(b.length);
  const out: number[] = [];
  for (let i = 0; i < resamples; i++) {
    const mb = resampleMedian(b, bb, rnd);
    const v = statistic(resampleMedian(a, ba, rnd), mb);
    if (v !== null) out.push(v);
  }
  return out.length > 0 ? percentileInterval(out) : null;
}

/** Bootstrap CI of median(b) − median(a), resampling each group on its own. */
export function bootstrapMedianDiffCi(a: readonly number[], b: readonly number[], seedKey: string, resamples = BOOTSTRAP_RESAMPLES): [number, number] | null {
  return bootstrapTwoMedians(a, b, `diff:${seedKey}`, resamples, (ma, mb) => mb - ma);
}

/**
 * Bootstrap CI of median(b) / median(a), each group resampled on its own (as the difference above).
 * A resample whose median(a) is 0 has no ratio and is left out; null when none is left.
 */
export function bootstrapMedianRatioCi(a: readonly number[], b: readonly number[], seedKey: string, resamples = BOOTSTRAP_RESAMPLES): [number, number] | null {
  return bootstrapTwoMedians(a, b, `ratio:${seedKey}`, resamples, (ma, mb) => (ma === 0 ? null : mb / ma));
}

function percentileInterval(xs: number[]): [number, number] {
  const alpha = (1 - CONFIDENCE) / 2;
  const [lo, hi] = quantile(xs, [alpha, 1 - alpha]) as [number, number];
  return [lo, hi];
}

export interface MannWhitney {
  /** U of the first sample: pairs (x, y) with x > y, ties counting one half. */
  u: number;
  /** Two-sided p-value. */
  p: number;
  method: 'exact' | 'normal';
}

/** Above this size per group the exact distribution is replaced by the normal approximation (as R does). */
const EXACT_LIMIT = 50;

/**
 * Two-sided Mann-Whitney U test. Exact null distribution when both groups have at most 50 values and
 * there are no ties; otherwise the normal approximation with tie and continuity corrections.
 */
export function mannWhitneyU(x: readonly number[], y: readonly number[]): MannWhitney | null {
  const m = x.length;
  const n = y.length;
  if (m === 0 || n === 0) return null;
  const rankSum = wilcoxonRankSum(x, y);
  const u = rankSum - (m * (m + 1)) / 2;
  const pooled = [...x, ...y].sort((a, b) => a - b);
  const tieGroups: number[] = [];
  for (let i = 0; i < pooled.length; ) {
    let j = i;
    while (j + 1 < pooled.length && pooled[j + 1] === pooled[i]) j++;
    if (j > i) tieGroups.push(j - i + 1);
    i = j + 1;
  }
  if (tieGroups.length === 0 && m <= EXACT_LIMIT && n <= EXACT_LIMIT) {
    return { u, p: exactTwoSided(u, m, n), method: 'exact' };
  }
  const N = m + n;
  const tieTerm = tieGroups.reduce((s, t) => s + (t * t * t - t), 0);
  const variance = ((m * n) / 12) * (N + 1 - tieTerm / (N * (N - 1)));
  if (variance <= 0) return { u, p: 1, method: 'normal' };
  const z = Math.max(0, Math.abs(u - (m * n) / 2) - 0.5) / Math.sqrt(variance);
  const p = Math.min(1, 2 * normalSf(z));
  return { u, p, method: 'normal' };
}

/**
 * P(Z ≥ z) for a standard normal Z, computed as a tail with stdlib's erfc (fdlibm's): 1 − Φ(z)
 * rounds to 0 beyond z ≈ 8.3, and simple-statistics' errorFunction is only a 1.2e-7 approximation;
 * the comparison with SciPy's norm.sf in test/report/stats-reference.test.ts showed both.
 */
export function normalSf(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

/** P(U ≤ u) and P(U ≥ u) from the count of m-subsets of ranks 1..m+n by U value. */
function exactTwoSided(u: number, m: number, n: number): number {
  const maxU = m * n;
  // ways[j][k]: ways to pick j of the ranks seen so far with "U contribution" k, where picking
  // rank r as the j-th (1-based) element of the first sample contributes r − j (the y's below it).
  // Updated in place with j descending (0/1 knapsack), each row only up to its largest reachable k.
  const ways: Float64Array[] = Array.from({ length: m + 1 }, () => new Float64Array(maxU + 1));
  ways[0]![0] = 1;
  for (let r = 1; r <= m + n; r++) {
    for (let j = Math.min(r, m); j >= 1; j--) {
      const c = r - j;
      if (c > n) continue;
      const prev = ways[j - 1]!;
      const row = ways[j]!;
      // j − 1 elements among the first r − 1 ranks contribute at most (j − 1)·min(n, r − j).
      const top = Math.min(maxU - c, (j - 1) * Math.min(n, r - j));
      for (let k = 0; k <= top; k++) row[k + c]! += prev[k]!;
    }
  }
  const dist = ways[m]!;
  let total = 0;
  for (const w of dist) total += w;
  let le = 0;
  let ge = 0;
  for (let k = 0; k <= maxU; k++) {
    if (k <= u + 1e-9) le += dist[k]!;
    if (k >= u - 1e-9) ge += dist[k]!;
  }
  return Math.min(1, (2 * Math.min(le, ge)) / total);
}

/** Holm–Bonferroni step-down adjustment; returns adjusted p-values in the input order. */
export function holm(ps: readonly number[]): number[] {
  const order = ps.map((p, i) => ({ p, i })).sort((a, b) => a.p - b.p);
  const out = new Array<number>(ps.length);
  let running = 0;
  order.forEach(({ p, i }, rank) => {
    running = Math.max(running, Math.min(1, (ps.length - rank) * p));
    out[i] = running;
  });
  return out;
}

export interface LinearFit {
  /** Cost per added program (ns per hop). */
  slope: number;
  intercept: number;
  r2: number;
}

export function fitLine(points: readonly (readonly [number, number])[]): LinearFit | null {
  if (points.length < 2) return null;
  const data = points.map(([x, y]) => [x, y]);
  const { m, b } = linearRegression(data);
  return { slope: m, intercept: b, r2: rSquared(data, linearRegressionLine({ m, b })) };
}
