/**
 * bootstrapCoverage is a benchmark: its coverage level is what it measures, so no test here asserts
 * one. What is tested is what must hold whatever the level: reproducibility and bookkeeping.
 */
import { describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { formatCoverage } from '../../lab/commands/bench-coverage.ts';
import { TRUE_MEDIAN, bootstrapCoverage, type CoverageOptions } from '../../lab/report/coverage.ts';

const small: CoverageOptions = { trials: 25, n: 7, resamples: 200, seed: 3 };

describe('bootstrapCoverage', () => {
  it('the same seed gives the same result, a different seed different samples', () => {
    const a = bootstrapCoverage(small);
    expect(bootstrapCoverage(small)).toEqual(a);
    // The mean width is a continuous function of the samples: equal widths would mean equal samples.
    expect(bootstrapCoverage({ ...small, seed: 4 }).meanWidth).not.toBe(a.meanWidth);
  });

  it('reports a fraction in [0, 1] consistent with its counts', () => {
    for (const distribution of ['lognormal', 'exponential'] as const) {
      const r = bootstrapCoverage({ ...small, distribution });
      expect(r).toMatchObject({ distribution, n: 7, trials: 25, resamples: 200, seed: 3, trueMedian: TRUE_MEDIAN[distribution] });
      expect(Number.isInteger(r.covered)).toBe(true);
      expect(r.covered).toBeGreaterThanOrEqual(0);
      expect(r.covered).toBeLessThanOrEqual(r.trials);
      expect(r.coverage).toBe(r.covered / r.trials);
      expect(r.standardError).toBeCloseTo(Math.sqrt((r.coverage * (1 - r.coverage)) / r.trials), 15);
      expect(r.meanWidth).toBeGreaterThan(0);
    }
  });

  it('the samples of one size do not depend on which sizes ran before', () => {
    const alone = bootstrapCoverage({ ...small, n: 9 });
    bootstrapCoverage({ ...small, n: 5 });
    expect(bootstrapCoverage({ ...small, n: 9 })).toEqual(alone);
  });

  it('refuses sizes it cannot use', () => {
    for (const bad of [{ trials: 0 }, { n: 1 }, { n: 2.5 }, { resamples: 0 }, { seed: -1 }]) {
      try {
        bootstrapCoverage({ ...small, ...bad });
        expect.unreachable(JSON.stringify(bad));
      } catch (e) {
        expect(isLabError(e, 'BAD_INPUT'), JSON.stringify(bad)).toBe(true);
      }
    }
  });
});

describe('formatCoverage', () => {
  it('one aligned row per result under a header', () => {
    const r = bootstrapCoverage(small);
    const lines = formatCoverage([r, { ...r, n: 50 }]);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^distribution\s+n\s+coverage\s+± s\.e\.\s+nominal\s+mean width\s+trials\s+resamples$/);
    expect(lines[1]).toContain(`  ${r.coverage.toFixed(3)}  `);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
  });
});
