/**
 * Round trips summarised: the percentiles of a sample of ping round-trip times, leaving out those
 * the sample is too small for. Pure: the bench prints it, the report tabulates it.
 */
import { quantileSorted } from 'simple-statistics';
import type { ApproachName } from './record.ts';

/** Fewer samples than this and a tail percentile is an extrapolation, not a measurement. */
export const MIN_SAMPLES_FOR = { p99: 100, p999: 1000 } as const;

export interface LatencySummary {
  approach: ApproachName;
  sent: number;
  received: number;
  /** Round-trip percentiles in microseconds; null where there are too few replies for them. */
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  minUs: number | null;
  maxUs: number | null;
}

/** Percentiles of a set of round-trip times (µs), leaving out those the sample cannot support. */
export function summariseRtts(approach: ApproachName, sent: number, rttUs: readonly number[]): LatencySummary {
  const xs = [...rttUs].sort((a, b) => a - b);
  const q = (p: number, min: number): number | null => (xs.length >= min && xs.length > 0 ? quantileSorted(xs, p) : null);
  return {
    approach,
    sent,
    received: xs.length,
    p50Us: q(0.5, 1),
    p99Us: q(0.99, MIN_SAMPLES_FOR.p99),
    p999Us: q(0.999, MIN_SAMPLES_FOR.p999),
    minUs: xs[0] ?? null,
    maxUs: xs.at(-1) ?? null,
  };
}

