/**
 * Request/response latency through each approach: pings across the veth pair with the approach
 * attached on the receiving side, summarised as percentiles of the round-trip time. Every reply
 * crosses the receiving veth's hook once on the way in, so the difference between an approach and
 * `none` is what the chain adds to one packet's latency (plus the noise of two scheduler wake-ups,
 * which is why the percentiles, not the mean, are reported).
 */
import { quantileSorted } from 'simple-statistics';
import { LabError } from '../errors.ts';
import type { ApproachName } from '../results/record.ts';
import type { KernelSession } from './kernel-session.ts';

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

export interface LatencyOptions {
  count: number;
  intervalS: number;
}

/**
 * Attaches one approach on the session's testbed, pings through it, detaches it on every path;
 * returns each reply's round trip (µs). A ping that loses replies is an error: the trio passes
 * ICMPv6 echo, so a loss means the chain or the testbed is broken, and percentiles of what came
 * back would hide it.
 */
export async function measureRoundTrips(session: KernelSession, name: ApproachName, o: LatencyOptions): Promise<number[]> {
  const approach = session.approach(name);
  if (!approach) throw new LabError('UNSUPPORTED', `${session.kernel}: approach ${name} is not available here`, { remedy: 'Pick one of the approaches this kernel supports (npm run matrix -- --help lists them).' });
  const ctx = session.contextFor(name);
  const support = await approach.supports(session.target);
  if (!support.supported) throw new LabError('UNSUPPORTED', `${session.kernel}: approach ${name}: ${support.reason}`, { remedy: 'Leave this approach out of --approaches on this kernel.' });
  await approach.load(ctx);
  try {
    await approach.attach(ctx);
    const desc = await approach.describe(ctx);
    if (name !== 'none' && name !== 'tc-none' && !desc.attached) {
      throw new LabError('ATTACH', `${session.kernel}: ${name} reports itself not attached on ${ctx.ifname}`, { remedy: 'Check `ip link show` in the namespace; another program may hold the interface.' });
    }
    const replies = await session.testbed.ping(o.count, o.intervalS);
    if (replies.received !== o.count || replies.rttUs.length !== o.count) {
      throw new LabError('BENCH', `${session.kernel}: ${name}: ${replies.received} of ${o.count} pings answered (${replies.rttUs.length} round trips read)`, {
        remedy: 'Every echo must pass the trio; check the filter configuration and the veth pair, then run again.',
      });
    }
    return replies.rttUs;
  } finally {
    await approach.detach(ctx);
  }
}

/** measureRoundTrips, summarised as percentiles. */
export async function measureLatency(session: KernelSession, name: ApproachName, o: LatencyOptions): Promise<LatencySummary> {
  return summariseRtts(name, o.count, await measureRoundTrips(session, name, o));
}
