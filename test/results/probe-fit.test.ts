/** The probe's per-packet slope: the least-squares line over every poll, from the calls kept by poll size. */
import { describe, expect, it } from 'vitest';
import { fitPolls } from '../../lab/results/probe-fit.ts';
import type { PollSize } from '../../lab/results/record.ts';

/** Polls of `packets` each costing exactly fixed + perPacket × packets ns. */
const exact = (packets: number, calls: number, fixed: number, perPacket: number): PollSize => ({ packets, calls, ns: calls * (fixed + perPacket * packets) });
const ratio = (s: PollSize[]) => s.reduce((x, z) => x + z.ns, 0) / s.reduce((x, z) => x + z.packets * z.calls, 0);

describe('fitPolls', () => {
  it('recovers a poll\'s fixed cost and the cost per packet whatever the mix of poll sizes', () => {
    const mixA = [exact(1, 900, 4000, 250), exact(2, 80, 4000, 250), exact(64, 3, 4000, 250)];
    const mixB = [exact(1, 10, 4000, 250), exact(7, 500, 4000, 250), exact(30, 40, 4000, 250)];
    for (const f of [fitPolls(mixA), fitPolls(mixB)]) {
      expect(f.ok).toBe(true);
      if (!f.ok) continue;
      expect(f.nsPerPacket).toBeCloseTo(250, 9);
      expect(f.nsPerPoll).toBeCloseTo(4000, 9);
    }
    // The same work per packet in both, while total ns / packets differs by the batching alone.
    expect(ratio(mixA)).toBeGreaterThan(2 * ratio(mixB));
    expect(fitPolls(mixA)).toMatchObject({ polls: 983, sizes: 3 });
  });

  it('is the least-squares line over the individual polls, not over the sizes\' means', () => {
    // Polls of 1 packet: 100 and 300 ns; of 3 packets: 500 ns. Per poll: x = 1, 1, 3; y = 100, 300, 500.
    // x̄ = 5/3, ȳ = 300; slope = Σ(x−x̄)(y−ȳ) / Σ(x−x̄)² = (2/3·200 + 2/3·0 + 4/3·200) / (4/9 + 4/9 + 16/9) = 150.
    const f = fitPolls([{ packets: 1, calls: 2, ns: 400 }, { packets: 3, calls: 1, ns: 500 }]);
    expect(f.ok).toBe(true);
    if (!f.ok) return;
    expect(f.nsPerPacket).toBeCloseTo(150, 9);
    expect(f.nsPerPoll).toBeCloseTo(50, 9);
    expect(f.polls).toBe(3);
  });

  it('leaves out polls that took nothing, and says why when one size remains', () => {
    const withIdle = fitPolls([{ packets: 0, calls: 10_000, ns: 9e6 }, exact(1, 5, 100, 10), exact(2, 5, 100, 10)]);
    expect(withIdle).toMatchObject({ ok: true, polls: 10 });
    expect(withIdle.ok && withIdle.nsPerPacket).toBeCloseTo(10, 9);
    expect(fitPolls([{ packets: 0, calls: 3, ns: 30 }, exact(1, 50, 100, 10)])).toEqual({ ok: false, reason: expect.stringMatching(/every veth_poll call took 1 packet.*cannot separate/) });
    expect(fitPolls([])).toEqual({ ok: false, reason: 'no veth_poll call took a packet' });
  });
});
