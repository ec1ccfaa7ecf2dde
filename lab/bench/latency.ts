/**
 * Request/response latency through each approach: pings across the veth pair with the approach
 * attached on the receiving side, summarised as percentiles of the round-trip time. Every reply
 * crosses the receiving veth's hook once on the way in, so the difference between an approach and
 * `none` is what the chain adds to one packet's latency (plus the noise of two scheduler wake-ups,
 * which is why the percentiles, not the mean, are reported).
 */
import { LabError } from '../errors.ts';
import type { ApproachName } from '../results/record.ts';
import type { KernelSession } from './kernel-session.ts';
import { summariseRtts, type LatencySummary } from '../results/rtt-summary.ts';

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
