import { describe, expect, it } from 'vitest';
import {
  bootstrapMedianCi,
  bootstrapMedianDiffCi,
  fitLine,
  holm,
  mannWhitneyU,
  seededRandom,
  summarize,
} from '../../lab/report/stats.ts';

describe('Mann-Whitney U', () => {
  it('exact p without ties: fully separated groups of 3', () => {
    // U = 0; only 1 of C(6,3) = 20 arrangements is as extreme on each side: p = 2/20.
    const r = mannWhitneyU([1, 2, 3], [4, 5, 6])!;
    expect(r.method).toBe('exact');
    expect(r.u).toBe(0);
    expect(r.p).toBeCloseTo(0.1, 12);
  });

  it('exact p without ties: one swap', () => {
    // x ranks 1,2,4 → R = 7, U = 7 − 6 = 1; P(U ≤ 1) = 2/20 → two-sided 0.2.
    const r = mannWhitneyU([1, 2, 4], [3, 5, 6])!;
    expect(r.u).toBe(1);
    expect(r.p).toBeCloseTo(0.2, 12);
  });

  it('U counts pairs where the first sample is larger', () => {
    const r = mannWhitneyU([4, 5, 6], [1, 2, 3])!;
    expect(r.u).toBe(9);
    expect(r.p).toBeCloseTo(0.1, 12);
  });

  it('normal approximation with tie correction', () => {
    // Pooled 1,2,2,2,3,3,3,4: mid-ranks 1,3,3,3,6,6,6,8; x ranks 1+3+3+6 = 13, U = 3.
    // var = 16/12 · (9 − 48/56) = 10.857142857; z = (|3 − 8| − 0.5)/√var = 1.3656982; p = 0.1720337.
    const r = mannWhitneyU([1, 2, 2, 3], [2, 3, 3, 4])!;
    expect(r.method).toBe('normal');
    expect(r.u).toBe(3);
    expect(r.p).toBeCloseTo(0.1720337, 5);
  });

  it('identical samples give p = 1', () => {
    expect(mannWhitneyU([5, 5, 5], [5, 5])!.p).toBe(1);
  });

  it('exact p agrees with enumerating every split of the pooled values', () => {
    // Brute force: all C(m+n, m) ways to assign the pooled values to the first sample, U counted pair by pair.
    const brute = (x: number[], y: number[]): number => {
      const all = [...x, ...y];
      const uOf = (xs: number[], ys: number[]) => xs.reduce((s, a) => s + ys.reduce((t, b) => t + (a > b ? 1 : a === b ? 0.5 : 0), 0), 0);
      const u0 = uOf(x, y);
      let le = 0;
      let ge = 0;
      let total = 0;
      const pick = (start: number, chosen: number[]): void => {
        if (chosen.length === x.length) {
          const u = uOf(chosen.map((i) => all[i]!), all.filter((_, i) => !chosen.includes(i)));
          total++;
          if (u <= u0) le++;
          if (u >= u0) ge++;
          return;
        }
        for (let i = start; i < all.length; i++) pick(i + 1, [...chosen, i]);
      };
      pick(0, []);
      return Math.min(1, (2 * Math.min(le, ge)) / total);
    };
    const rnd = seededRandom('mw-brute');
    for (let t = 0; t < 60; t++) {
      const x = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => rnd());
      const y = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => rnd() + 0.3 * rnd());
      const r = mannWhitneyU(x, y)!;
      expect(r.method).toBe('exact');
      expect(r.p).toBeCloseTo(brute(x, y), 12);
    }
  });

  it('empty sample: no test', () => {
    expect(mannWhitneyU([], [1])).toBeNull();
  });
});

describe('Holm correction', () => {
  it('steps down and stays monotone', () => {
    // sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06.
    const adj = holm([0.01, 0.04, 0.03]);
    expect(adj[0]).toBeCloseTo(0.03, 12);
    expect(adj[1]).toBeCloseTo(0.06, 12);
    expect(adj[2]).toBeCloseTo(0.06, 12);
  });
  it('caps at 1', () => {
    expect(holm([0.6, 0.7])).toEqual([1, 1]);
  });
});

describe('summaries and bootstrap', () => {
  it('quartiles are R type 7', () => {
    const s = summarize([5, 1, 4, 2, 3], 'k')!;
    expect(s).toMatchObject({ n: 5, median: 3, q1: 2, q3: 4, iqr: 2 });
    // [1,2,3,4]: positions 0.75 and 2.25 → 1.75 and 3.25.
    const t = summarize([4, 3, 2, 1], 'k')!;
    expect(t.q1).toBeCloseTo(1.75, 12);
    expect(t.q3).toBeCloseTo(3.25, 12);
    expect(t.median).toBe(2.5);
  });

  it('the CI of the median lies within the data and is reproducible', () => {
    const xs = [10, 12, 9, 11, 30, 10.5, 9.5, 11.5];
    const a = bootstrapMedianCi(xs, 'cell-a')!;
    const b = bootstrapMedianCi(xs, 'cell-a')!;
    expect(a).toEqual(b);
    expect(a[0]).toBeGreaterThanOrEqual(9);
    expect(a[1]).toBeLessThanOrEqual(30);
    expect(a[0]).toBeLessThanOrEqual(a[1]);
    // A different cell key draws different resamples.
    expect(seededRandom('x')()).not.toBe(seededRandom('y')());
  });

  it('no CI from one value', () => {
    expect(summarize([7], 'one')!.ci).toBeNull();
  });

  it('difference of medians: separated groups exclude 0, identical ones include it', () => {
    const lo = [1, 2, 3, 4, 5];
    const hi = [11, 12, 13, 14, 15];
    const d = bootstrapMedianDiffCi(lo, hi, 'sep')!;
    expect(d[0]).toBeGreaterThan(0);
    expect(d[0]).toBeGreaterThanOrEqual(11 - 5);
    expect(d[1]).toBeLessThanOrEqual(15 - 1);
    const same = bootstrapMedianDiffCi(lo, lo, 'same')!;
    expect(same[0]).toBeLessThanOrEqual(0);
    expect(same[1]).toBeGreaterThanOrEqual(0);
  });
});

describe('linear fit', () => {
  it('recovers slope and intercept', () => {
    const f = fitLine([
      [1, 12],
      [2, 14],
      [3, 16],
    ])!;
    expect(f.slope).toBeCloseTo(2, 12);
    expect(f.intercept).toBeCloseTo(10, 12);
    expect(f.r2).toBeCloseTo(1, 12);
  });
  it('needs two points', () => {
    expect(fitLine([[1, 1]])).toBeNull();
  });
});
