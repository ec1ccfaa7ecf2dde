/**
 * lab/report/stats.ts against numbers from an independent implementation (SciPy, NumPy,
 * statsmodels), stored in reference/stats-reference.json by reference/stats_reference.py. Every case
 * in the file carries a `source` naming the call that produced it; the script's docstring says why
 * each call matches our definition (which U, which tail, which corrections, which quantile type).
 *
 * Deterministic quantities are compared to 1e-9 relative: far looser than the rounding noise of
 * either side (SciPy 1.10 and 1.17 agree on these inputs to 2e-14), far tighter than any real
 * difference in definition (a missing continuity correction moves these p-values by 0.3% or more).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  bootstrapMedianCi,
  bootstrapMedianDiffCi,
  fitLine,
  holm,
  mannWhitneyU,
  normalSf,
  seededRandom,
  summarize,
} from '../../lab/report/stats.ts';
import { REPO } from './helpers.ts';

const interval = z.tuple([z.number(), z.number()]);
const source = z.string().min(1);
const Reference = z.object({
  generated_by: z.string(),
  versions: z.object({ python: z.string(), numpy: z.string(), scipy: z.string(), statsmodels: z.string() }),
  mann_whitney: z.array(
    z.object({
      name: z.string(),
      x: z.array(z.number()),
      y: z.array(z.number()),
      ties: z.boolean(),
      method: z.enum(['exact', 'normal']),
      u: z.number(),
      p: z.number(),
      p_no_continuity: z.number().optional(),
      source,
    }),
  ),
  normal_sf: z.array(z.object({ z: z.number(), sf: z.number(), source })),
  holm: z.array(z.object({ name: z.string(), p: z.array(z.number()), adjusted: z.array(z.number()), source })),
  bootstrap: z.object({
    median_ci: z.array(
      z.object({
        name: z.string(),
        values: z.array(z.number()),
        seed_key: z.string(),
        resamples: z.number().int(),
        first_resample_indices: z.array(z.number().int()),
        ci: interval,
        source,
      }),
    ),
    median_diff_ci: z.array(
      z.object({ name: z.string(), a: z.array(z.number()), b: z.array(z.number()), seed_key: z.string(), resamples: z.number().int(), ci: interval, source }),
    ),
    summary: z.array(
      z.object({
        name: z.string(),
        values: z.array(z.number()),
        seed_key: z.string(),
        resamples: z.number().int(),
        n: z.number().int(),
        median: z.number(),
        q1: z.number(),
        q3: z.number(),
        iqr: z.number(),
        ci: interval,
        source,
      }),
    ),
  }),
  fit_line: z.array(
    z.object({ name: z.string(), points: z.array(z.tuple([z.number(), z.number()])), slope: z.number(), intercept: z.number(), r2: z.number(), source }),
  ),
});

const REF = Reference.parse(JSON.parse(readFileSync(join(REPO, 'test', 'report', 'reference', 'stats-reference.json'), 'utf8')));

const REL = 1e-9;
/** |actual − expected| within `rel` of |expected|; exact when expected is 0 (no scale to be relative to). */
function expectRel(actual: number | undefined, expected: number, what: string, rel = REL): void {
  expect(actual, what).toBeTypeOf('number');
  const err = Math.abs(actual! - expected);
  expect(err, `${what}: got ${actual}, reference ${expected}`).toBeLessThanOrEqual(rel * Math.abs(expected));
}

describe('the reference file', () => {
  it('records the library versions that produced it and covers every branch', () => {
    expect(REF.generated_by).toBe('test/report/reference/stats_reference.py');
    for (const v of Object.values(REF.versions)) expect(v).toMatch(/^\d+\.\d+/);
    const methods = REF.mann_whitney.map((c) => `${c.method}/${c.ties ? 'ties' : 'no ties'}`);
    expect(new Set(methods)).toEqual(new Set(['exact/no ties', 'normal/ties', 'normal/no ties']));
    // Holm only shows its step-down on input that is not already sorted.
    expect(REF.holm.some((c) => c.p.length >= 5 && c.p.some((p, i) => i > 0 && p < c.p[i - 1]!))).toBe(true);
  });
});

describe('Mann-Whitney U against scipy.stats.mannwhitneyu (two-sided)', () => {
  for (const c of REF.mann_whitney) {
    it(`${c.name}: ${c.method}, U and p`, () => {
      const r = mannWhitneyU(c.x, c.y)!;
      expect(r.method).toBe(c.method);
      // U is a count of pairs (halves for ties): exact in floating point on both sides.
      expect(r.u).toBe(c.u);
      expectRel(r.p, c.p, 'p');
    });
  }

  it('the normal cases would tell a missing continuity correction apart', () => {
    const normal = REF.mann_whitney.filter((c) => c.method === 'normal');
    expect(normal.length).toBeGreaterThanOrEqual(3);
    for (const c of normal) {
      const r = mannWhitneyU(c.x, c.y)!;
      const uncorrected = c.p_no_continuity!;
      expect(Math.abs(r.p - uncorrected), c.name).toBeGreaterThan(1e3 * REL * uncorrected);
    }
  });

  it('swapping the samples gives U of the other sample and the same p', () => {
    for (const c of REF.mann_whitney) {
      const r = mannWhitneyU(c.y, c.x)!;
      expect(r.u).toBe(c.x.length * c.y.length - c.u);
      expectRel(r.p, c.p, `${c.name} swapped`);
    }
  });
});

describe('normal upper tail against scipy.stats.norm.sf', () => {
  it('matches from z = 0 to deep in the tail', () => {
    for (const { z: zv, sf } of REF.normal_sf) expectRel(normalSf(zv), sf, `sf(${zv})`);
  });
});

describe('Holm against statsmodels multipletests(method="holm")', () => {
  for (const c of REF.holm) {
    it(`${c.name} (${c.p.length} p-values)`, () => {
      const adj = holm(c.p);
      expect(adj).toHaveLength(c.adjusted.length);
      c.adjusted.forEach((want, i) => expectRel(adj[i], want, `adjusted p[${i}]`));
    });
  }
});

describe('percentile bootstrap against NumPy on the same resamples', () => {
  for (const c of REF.bootstrap.median_ci) {
    it(`median CI: ${c.name}`, () => {
      // Same draws first: if this fails, the generator or the index formula moved, not the percentiles.
      const rnd = seededRandom(`median:${c.seed_key}`);
      const n = c.values.length;
      expect(Array.from({ length: n }, () => Math.floor(rnd() * n))).toEqual(c.first_resample_indices);
      const ci = bootstrapMedianCi(c.values, c.seed_key, c.resamples)!;
      expectRel(ci[0], c.ci[0], 'lower');
      expectRel(ci[1], c.ci[1], 'upper');
    });
  }

  for (const c of REF.bootstrap.median_diff_ci) {
    it(`difference of medians CI: ${c.name}`, () => {
      const ci = bootstrapMedianDiffCi(c.a, c.b, c.seed_key, c.resamples)!;
      expectRel(ci[0], c.ci[0], 'lower');
      expectRel(ci[1], c.ci[1], 'upper');
    });
  }

  for (const c of REF.bootstrap.summary) {
    it(`summary (quartiles type 7 and CI): ${c.name}`, () => {
      const s = summarize(c.values, c.seed_key, c.resamples)!;
      expect(s.n).toBe(c.n);
      expectRel(s.median, c.median, 'median');
      expectRel(s.q1, c.q1, 'q1');
      expectRel(s.q3, c.q3, 'q3');
      expectRel(s.iqr, c.iqr, 'iqr');
      expectRel(s.ci![0], c.ci[0], 'ci lower');
      expectRel(s.ci![1], c.ci[1], 'ci upper');
    });
  }
});

describe('fitLine against scipy.stats.linregress', () => {
  for (const c of REF.fit_line) {
    it(c.name, () => {
      const f = fitLine(c.points)!;
      expectRel(f.slope, c.slope, 'slope');
      expectRel(f.intercept, c.intercept, 'intercept');
      expectRel(f.r2, c.r2, 'r2');
    });
  }
});
