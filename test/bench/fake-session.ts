/**
 * A kernel session for matrix-logic tests that boots nothing: the host target in a scratch
 * directory, a testbed whose iperf3 answers at once and which never pings, and the caller's fake
 * approaches on made-up interface names.
 */
import type { Approach, ApproachContext } from '../../lab/approaches/approach.ts';
import type { ApproachName } from '../../lab/results/record.ts';
import type { HostTarget } from '../../lab/target.ts';
import type { KernelSession } from '../../lab/bench/kernel-session.ts';

export function fakeKernelSession(kernel: string, target: HostTarget, approach: (name: ApproachName) => Approach, names: { ifname: string; netns: string }): KernelSession {
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
      ping: async () => {
        throw new Error('the matrix does not ping');
      },
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
