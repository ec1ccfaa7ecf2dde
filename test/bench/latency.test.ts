/**
 * Latency through each approach: ping's replies read back (duplicates and late replies counted
 * once, no summary → null), percentiles only where the sample supports them, and on the host every
 * approach attached in turn with every ping answered and p50 ≤ p99 per approach.
 */
import { describe, expect, it } from 'vitest';
import { xdpAttached } from '../../lab/bpftool/index.ts';
import { measureLatency } from '../../lab/bench/latency.ts';
import { MIN_SAMPLES_FOR, summariseRtts } from '../../lab/results/rtt-summary.ts';
import { openKernelSession } from '../../lab/bench/open-session.ts';
import { formatLatency } from '../../lab/commands/bench-latency.ts';
import type { ApproachName } from '../../lab/results/record.ts';
import { silent } from '../../lab/progress.ts';
import { parsePingReplies } from '../../lab/testenv/ping.ts';
import { RUN_TAG } from '../support/names.ts';
import { requirements } from '../support/requirements.ts';

const PING_OUTPUT = `PING fd00::2(fd00::2) 56 data bytes
64 bytes from fd00::2: icmp_seq=1 ttl=64 time=0.086 ms
64 bytes from fd00::2: icmp_seq=2 ttl=64 time=0.052 ms
64 bytes from fd00::2: icmp_seq=2 ttl=64 time=0.061 ms (DUP!)
64 bytes from fd00::2: icmp_seq=4 ttl=64 time=1.25 ms

--- fd00::2 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 32ms
rtt min/avg/max/mdev = 0.046/0.061/0.086/0.017 ms
`;

describe('ping replies and their percentiles', () => {
  it('reads one round trip per answered sequence number, in µs, and the summary', () => {
    expect(parsePingReplies(PING_OUTPUT)).toEqual({ transmitted: 4, received: 3, rttUs: [86, 52, 1250] });
  });

  it('gives null for output without a summary (ping was cut short)', () => {
    expect(parsePingReplies(PING_OUTPUT.split('\n').slice(0, 3).join('\n'))).toBeNull();
  });

  it('leaves out the tail percentiles a small sample cannot support', () => {
    const few = summariseRtts('none', 3, [30, 10, 20]);
    expect(few).toMatchObject({ received: 3, p50Us: 20, p99Us: null, p999Us: null, minUs: 10, maxUs: 30 });
    const hundred = summariseRtts('none', MIN_SAMPLES_FOR.p99, Array.from({ length: MIN_SAMPLES_FOR.p99 }, (_, i) => MIN_SAMPLES_FOR.p99 - i));
    // numpy's "linear" quantile: 0.99 of the way through 1..100 is 99.01
    expect(hundred.p99Us).toBeCloseTo(99.01, 9);
    expect(hundred.p999Us).toBeNull();
    const thousand = summariseRtts('none', 1000, Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(thousand.p999Us).toBeCloseTo(999.001, 9);
    expect(thousand.p50Us! <= thousand.p99Us! && thousand.p99Us! <= thousand.p999Us!).toBe(true);
  });

  it('prints each approach against none', () => {
    const lines = formatLatency('host', [summariseRtts('none', 3, [10, 20, 30]), summariseRtts('fused', 3, [15, 25, 35])]);
    expect(lines[2]).toMatch(/^none\s+3\s+10\.0\s+20\.0\s+-\s+-\s*$/);
    expect(lines[3]).toMatch(/^fused\s+3\s+15\.0\s+25\.0\s+-\s+-\s+5\.0$/);
  });
});

const need = requirements('root', 'bpf', 'clang', 'bpftool');

describe.skipIf(need.skip)('latency through each approach on the host kernel', () => {
  it('answers every ping with each approach attached, p50 ≤ p99, and leaves no program attached', async () => {
    const session = await openKernelSession('host', { prefix: `xlt${RUN_TAG}`, progress: silent });
    try {
      const count = MIN_SAMPLES_FOR.p99 * 2;
      for (const name of ['none', 'fused', 'manual', 'patched'] as ApproachName[]) {
        const r = await measureLatency(session, name, { count, intervalS: 0.002 });
        expect(r).toMatchObject({ approach: name, sent: count, received: count, p999Us: null });
        expect(r.p50Us!).toBeGreaterThan(0);
        expect(r.p50Us!).toBeLessThanOrEqual(r.p99Us!);
        expect(r.minUs!).toBeLessThanOrEqual(r.p50Us!);
        expect(await xdpAttached(session.target, session.testbed.ifname, session.testbed.netns)).toEqual([]);
      }
    } finally {
      await session.dispose();
    }
  });
});
