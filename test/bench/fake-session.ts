/**
 * A kernel session for matrix-logic tests that boots nothing: the host target in a scratch
 * directory, a testbed whose iperf3 answers at once and which pings only through the caller's
 * `ping` (otherwise a ping is an error), and the caller's fake approaches on made-up interface names.
 */
import type { Approach, ApproachContext } from '../../lab/approaches/approach.ts';
import type { ApproachName } from '../../lab/results/record.ts';
import type { HostTarget } from '../../lab/target.ts';
import type { PingReplies } from '../../lab/testenv/ping.ts';
import type { KernelSession } from '../../lab/bench/kernel-session.ts';

export function fakeKernelSession(
  kernel: string,
  target: HostTarget,
  approach: (name: ApproachName) => Approach,
  names: { ifname: string; netns: string },
  ping?: (count: number, intervalS: number) => Promise<PingReplies>,
): KernelSession {
  const { ifname, netns } = names;
  return {
    kernel,
    target,
    configPath: null,
    testbed: {
      ifname,
      netns,
      objectDir: '/nonexistent',
      serverCpu: 0,
      clientCpu: 1,
      iperf: async (durationS) => ({ bitsPerSecond: 1e9, bytes: 1e6, seconds: durationS, retransmits: 0 }),
      ping:
        ping ??
        (async () => {
          throw new Error('this fake session does not ping');
        }),
      offloads: async () => ({}),
      dispose: async () => {},
    },
    probe: null,
    warnings: [],
    approach,
    contextFor: (n): ApproachContext => ({ target, ifname, netns, pinDir: `/nonexistent/${n}`, objectDir: '/nonexistent' }),
    dispose: async () => {},
  };
}
