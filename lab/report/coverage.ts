/**
 * How often the report's 95% bootstrap CI of the median really contains the median: draw many
 * samples from a distribution whose median is known, compute the CI exactly as the report does
 * (bootstrapMedianCi, same resampling and percentiles), count the hits. A benchmark of the method,
 * not a test: the percentile bootstrap of a median is known to undercover at small n, and how much
 * is what this measures. Everything is seeded, so a result can be reproduced.
 */
import { LabError } from '../errors.ts';
import { mulberry32 } from '../random.ts';
import { BOOTSTRAP_RESAMPLES, bootstrapMedianCi, hashSeed } from './stats.ts';

/**
 * Skewed, like a latency (lognormal, σ = 0.5, median 1), or heavier-tailed and bounded below like a
 * waiting time (exponential, rate 1, median ln 2). Both continuous: no ties to flatter the median.
 */
export type CoverageDistribution = 'lognormal' | 'exponential';
export const COVERAGE_DISTRIBUTIONS: readonly CoverageDistribution[] = ['lognormal', 'exponential'];

const LOGNORMAL_SIGMA = 0.5;

export const TRUE_MEDIAN: Readonly<Record<CoverageDistribution, number>> = {
  lognormal: 1,
  exponential: Math.LN2,
};

export interface CoverageOptions {
  /** Samples drawn, one CI each. */
  trials: number;
  /** Values per sample. */
  n: number;
  /** Bootstrap resamples per CI (default: the report's). */
  resamples?: number;
  /** Seed of the samples; the bootstrap of trial t is keyed by it too, so runs are reproducible. */
  seed?: number;
  distribution?: CoverageDistribution;
}

export interface CoverageResult {
  distribution: CoverageDistribution;
  n: number;
  trials: number;
  resamples: number;
  seed: number;
  trueMedian: number;
  /** CIs with lower ≤ true median ≤ upper. */
  covered: number;
  /** covered / trials. */
  coverage: number;
  /** Monte Carlo standard error of `coverage`, √(c(1 − c)/trials): how far another seed may move it. */
  standardError: number;
  /** Mean of upper − lower, in units of the distribution (its median is `trueMedian`). */
  meanWidth: number;
}

function requireInt(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new LabError('BAD_INPUT', `bootstrapCoverage: ${name} must be an integer ≥ ${min}, got ${value}`, {
      remedy: `Pass ${name} as a whole number of at least ${min}.`,
    });
  }
}

/** A sampler for `distribution` driven by `rnd` (uniform in [0, 1)). */
function sampler(distribution: CoverageDistribution, rnd: () => number): () => number {
  // 1 − u is in (0, 1]: the logarithms below never see 0.
  if (distribution === 'exponential') return () => -Math.log(1 - rnd());
  let spare: number | null = null;
  const gaussian = (): number => {
    // Box–Muller gives two independent normals per pair of uniforms; keep the second.
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - rnd()));
    const theta = 2 * Math.PI * rnd();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
  return () => Math.exp(LOGNORMAL_SIGMA * gaussian());
}

export function bootstrapCoverage(opts: CoverageOptions): CoverageResult {
  const distribution = opts.distribution ?? 'lognormal';
  const resamples = opts.resamples ?? BOOTSTRAP_RESAMPLES;
  const seed = opts.seed ?? 1;
  requireInt('trials', opts.trials, 1);
  // bootstrapMedianCi gives no interval for one value.
  requireInt('n', opts.n, 2);
  requireInt('resamples', resamples, 1);
  requireInt('seed', seed, 0);
  if (!COVERAGE_DISTRIBUTIONS.includes(distribution)) {
    throw new LabError('BAD_INPUT', `bootstrapCoverage: unknown distribution "${String(distribution)}"`, {
      remedy: `Use one of: ${COVERAGE_DISTRIBUTIONS.join(', ')}.`,
    });
  }
  const trueMedian = TRUE_MEDIAN[distribution];
  // One stream per (seed, distribution, n): the samples at n = 10 do not depend on whether n = 5 ran first.
  const draw = sampler(distribution, mulberry32(hashSeed(`coverage:${seed}:${distribution}:${opts.n}`)));
  let covered = 0;
  let widthSum = 0;
  const sample = new Array<number>(opts.n);
  for (let t = 0; t < opts.trials; t++) {
    for (let i = 0; i < opts.n; i++) sample[i] = draw();
    const [lo, hi] = bootstrapMedianCi(sample, `coverage:${seed}:${distribution}:${opts.n}:${t}`, resamples)!;
    if (lo <= trueMedian && trueMedian <= hi) covered++;
    widthSum += hi - lo;
  }
  const coverage = covered / opts.trials;
  return {
    distribution,
    n: opts.n,
    trials: opts.trials,
    resamples,
    seed,
    trueMedian,
    covered,
    coverage,
    standardError: Math.sqrt((coverage * (1 - coverage)) / opts.trials),
    meanWidth: widthSum / opts.trials,
  };
}
