/**
 * The veth_poll probe's cost of one more packet. A poll's time is a fixed part (entering NAPI,
 * completing it) plus a part per packet, so total ns / packets moves with how the traffic
 * happened to batch between two runs of the same work. The least-squares line of a poll's ns
 * against the packets it took, over every poll of the run, separates the two: its slope is the
 * ns per added packet, its intercept the ns of a poll itself. The probe keeps calls and ns per
 * poll size, which is all the fit over individual polls needs (it is exact, not binned).
 */
import type { PollSize } from './record.ts';

export type PollFit =
  | { ok: true; nsPerPacket: number; nsPerPoll: number; polls: number; sizes: number }
  | { ok: false; reason: string };

export function fitPolls(sizes: readonly PollSize[]): PollFit {
  // Polls that took nothing say nothing about the per-packet part (and NAPI's idle re-polls would
  // weigh the intercept by how often the ring ran dry).
  const used = sizes.filter((s) => s.packets > 0 && s.calls > 0);
  let n = 0;
  let sx = 0;
  let sxx = 0;
  let sy = 0;
  let sxy = 0;
  for (const s of used) {
    n += s.calls;
    sx += s.calls * s.packets;
    sxx += s.calls * s.packets * s.packets;
    sy += s.ns;
    sxy += s.packets * s.ns;
  }
  if (used.length < 2) {
    return {
      ok: false,
      reason: used.length === 0 ? 'no veth_poll call took a packet' : `every veth_poll call took ${used[0]!.packets} packet(s): one poll size cannot separate a poll's cost from a packet's`,
    };
  }
  const sxxc = sxx - (sx * sx) / n;
  const slope = (sxy - (sx * sy) / n) / sxxc;
  return { ok: true, nsPerPacket: slope, nsPerPoll: sy / n - slope * (sx / n), polls: n, sizes: used.length };
}
