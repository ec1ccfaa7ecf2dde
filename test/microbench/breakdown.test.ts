/**
 * The patched chain's cost breakdown against a hand-computed fixture: lines with known slopes and
 * intercepts per variant, and trio medians whose excess over manual is known part by part.
 */
import { describe, expect, it } from 'vitest';
import { costBreakdown, formatBreakdown, largestPart, type BreakdownInput } from '../../lab/results/breakdown.ts';

const LENGTHS = [1, 2, 4, 8, 16];
const line = (intercept: number, slope: number): Map<number, number> => new Map(LENGTHS.map((l) => [l, intercept + slope * l]));

// Beyond 8 programs the regime changes: the breakdown must use the short-chain slopes only.
const withLongRegime = (m: Map<number, number>): Map<number, number> => new Map([...m].map(([l, ns]) => [l, l > 8 ? ns + 100 : ns]));

const input: BreakdownInput = {
  scaling: new Map([
    ['chain/manual-constant', withLongRegime(line(30, 2))],
    ['chain/manual-end-lookup', withLongRegime(line(33, 2))],
    ['chain/patched-inline', withLongRegime(line(31, 2.5))],
    ['chain/patched-subprog', withLongRegime(line(35, 9))],
    ['chain/manual-indirect', line(40, 20)],
  ]),
  trio: new Map([
    ['manual', 60],
    ['patched-inline', 66],
    ['patched-subprog', 90],
    ['fused', 55],
  ]),
};

describe('cost breakdown of the patched chain', () => {
  it('splits the excess into its parts, each the difference of two variants', () => {
    const parts = costBreakdown(input);
    const ns = Object.fromEntries(parts.map((p) => [p.id, p.ns]));
    expect(ns['spill-test']).toBeCloseTo(0.5, 9);
    expect(ns['call-frame']).toBeCloseTo(6.5, 9);
    expect(ns['end-read']).toBeCloseTo(3, 9);
    // 66 − 60 − 3 × 0.5 − 3
    expect(ns['rest-inline']).toBeCloseTo(1.5, 9);
    // 90 − 60 − 3 × (0.5 + 6.5) − 3
    expect(ns['rest-subprog']).toBeCloseTo(6, 9);
    expect(parts.find((p) => p.id === 'spill-test')?.per).toBe('program');
    expect(parts.find((p) => p.id === 'end-read')?.per).toBe('packet');
  });

  it('names the heaviest part per trio packet for each mode', () => {
    const parts = costBreakdown(input);
    // inline: spill 3 × 0.5 = 1.5, read 3, rest 1.5 → the read
    expect(largestPart(parts, 'inline')?.id).toBe('end-read');
    // subprog: call frame 3 × 6.5 = 19.5 outweighs everything
    expect(largestPart(parts, 'subprog')?.id).toBe('call-frame');
  });

  it('leaves out what the run did not measure, and prints nothing without parts', () => {
    const partial = costBreakdown({ scaling: new Map([['chain/manual-constant', line(30, 2)], ['chain/patched-inline', line(31, 2.5)]]), trio: new Map() });
    expect(partial.map((p) => p.id)).toEqual(['spill-test']);
    expect(formatBreakdown([])).toEqual([]);
    const text = formatBreakdown(costBreakdown(input)).join('\n');
    expect(text).toContain('+0.50 ns per program');
    expect(text).toContain('+3.00 ns per packet');
  });
});

describe('the excess split by program', () => {
  // From each stage on: manual 60 (whole), 40 (metrics on), 15 (logger on);
  // patched-inline 66, 44, 16: the filter owes 66−44 − (60−40) = 2, metrics 28 − 25 = 3, logger 16 − 15 = 1.
  const trio = new Map([
    ...input.trio,
    ['manual/from-metrics', 40],
    ['manual/from-logger', 15],
    ['patched-inline/from-metrics', 44],
    ['patched-inline/from-logger', 16],
  ]);

  it('gives each stage its part, and the parts add up to the trio\'s excess', () => {
    const parts = costBreakdown({ scaling: input.scaling, trio });
    const stage = parts.filter((p) => p.id.startsWith('stage-'));
    expect(stage.map((p) => [p.id, p.ns])).toEqual([
      ['stage-filter-inline', 2],
      ['stage-metrics-inline', 3],
      ['stage-logger-inline', 1],
    ]);
    expect(stage.reduce((s, p) => s + p.ns, 0)).toBe(66 - 60);
    expect(stage[2]!.what).toMatch(/logger.*chain's end/);
    // subprog has no suffixes here: no stage parts for it, and the heaviest part is found as before.
    expect(parts.some((p) => p.id.endsWith('-subprog') && p.id.startsWith('stage-'))).toBe(false);
    expect(largestPart(parts, 'inline')?.id).toBe('end-read');
  });

  it('gives none when one suffix is missing', () => {
    const partial = new Map(trio);
    partial.delete('manual/from-logger');
    expect(costBreakdown({ scaling: input.scaling, trio: partial }).some((p) => p.id.startsWith('stage-'))).toBe(false);
  });
});
