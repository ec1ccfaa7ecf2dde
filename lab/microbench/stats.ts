/**
 * The statistics the chain bench prints: per-point median, and the cost per hop as the slope of a
 * least-squares line through every (chain length, ns per packet) measurement, with its 95%
 * confidence interval from the slope's standard error and Student's t.
 */
import { linearRegression, linearRegressionLine, median, rSquared } from 'simple-statistics';

export interface HopFit {
  /** ns per added program. */
  slope: number;
  /** ns per packet extrapolated to a chain of zero programs (the test-run harness's own cost). */
  intercept: number;
  /** Half-width of the 95% confidence interval of the slope (null with fewer than 3 points). */
  slopeCi95: number | null;
  r2: number;
  /** Measurements the line was fitted to (lengths × repetitions). */
  n: number;
}

/** Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30; beyond, the normal's 1.96 is within 2%. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101,
  2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function t975(df: number): number {
  if (df < 1) return Number.NaN;
  if (df <= T975.length) return T975[df - 1]!;
  if (df <= 60) return 2.0;
  if (df <= 120) return 1.98;
  return 1.96;
}

/** Fits ns = intercept + slope × length; null when fewer than two distinct lengths. */
export function fitPerHop(points: readonly (readonly [length: number, ns: number])[]): HopFit | null {
  const xs = new Set(points.map((p) => p[0]));
  if (xs.size < 2) return null;
  const data = points.map(([x, y]) => [x, y]);
  const { m, b } = linearRegression(data);
  const line = linearRegressionLine({ m, b });
  const n = points.length;
  let ci: number | null = null;
  if (n >= 3) {
    const meanX = points.reduce((s, p) => s + p[0], 0) / n;
    const sxx = points.reduce((s, p) => s + (p[0] - meanX) ** 2, 0);
    const ssRes = points.reduce((s, p) => s + (p[1] - line(p[0])) ** 2, 0);
    const se = Math.sqrt(ssRes / (n - 2) / sxx);
    ci = t975(n - 2) * se;
  }
  const r2 = rSquared(data, line);
  return { slope: m, intercept: b, slopeCi95: ci, r2: Number.isFinite(r2) ? r2 : 1, n };
}

export function medianOf(values: readonly number[]): number | null {
  return values.length === 0 ? null : median([...values]);
}
