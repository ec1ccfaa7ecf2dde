/**
 * What the bench needs from the layers below it for one kernel: a Target, a testbed (veth pair
 * between two namespaces with pinned iperf3) and the approaches. `lab/bench/open-session.ts` builds
 * the real ones from lab/vm, lab/testenv and lab/approaches; tests may inject their own.
 */
import type { KernelImage } from '../kernels/types.ts';
import type { KernelOrigin } from '../kernels/origin.ts';
import type { Approach, ApproachContext } from '../approaches/approach.ts';
import type { ApproachName } from '../results/record.ts';
import type { ProgressSink } from '../progress.ts';
import type { Target } from '../target.ts';
import type { PingReplies } from '../testenv/ping.ts';

export interface IperfOutcome {
  /** Receiver-side throughput, bits per second. */
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
  retransmits: number | null;
}

export interface Testbed {
  /** Where approaches attach: the receiving veth and its namespace (pinDir is set per approach). */
  readonly ifname: string;
  readonly netns: string;
  /** Directory on the target holding the built BPF objects. */
  readonly objectDir: string;
  /** CPUs the iperf3 server and client are pinned to. */
  readonly serverCpu: number;
  readonly clientCpu: number;
  /** One iperf3 -J run of `durationS` seconds through the veth pair. */
  iperf(durationS: number): Promise<IperfOutcome>;
  /** `count` pings from the sending side to the receiving one, `intervalS` apart, each reply's round trip. */
  ping(count: number, intervalS: number): Promise<PingReplies>;
  /** `ethtool -k` of the receiving veth: features that are on (true) or off (false). */
  offloads(): Promise<Record<string, boolean>>;
  /** Removes namespaces, veths and servers; safe to call twice. */
  dispose(): Promise<void>;
}

export interface KernelSession {
  /** Catalog name used in results: "6.1", "5.10", "host". */
  readonly kernel: string;
  readonly target: Target;
  /** Local path of the kernel's .config when known (VMs), for the provenance hash. */
  readonly configPath: string | null;
  /** Where the booted image came from (package, or source, toolchain and fix-ups); null on the host. */
  readonly kernelOrigin?: KernelOrigin | null;
  /** The image the VM booted (its module headers serve the native baseline); null or absent on the host. */
  readonly image?: KernelImage | null;
  readonly testbed: Testbed;
  /** Directory on the target holding the probe helper and veth_probe.o; null if no helper. */
  readonly probe: { helper: string; object: string; stateDir: string } | null;
  /** The BPF run-time statistics helper on the target; absent or null: no statistics for this session. */
  readonly bpfStats?: { helper: string; stateDir: string } | null;
  /** Host-side frequency facts the VM layer knows better than the guest (pinned vCPUs, governor). */
  readonly frequency?: FrequencyInfo;
  readonly isolcpus?: string | null;
  readonly warnings: string[];
  /** The approach implementation for each name this lab has. */
  approach(name: ApproachName): Approach | null;
  /** The bpffs directory an approach instance owns on this testbed. */
  contextFor(name: ApproachName): ApproachContext;
  dispose(): Promise<void>;
}

export interface OpenKernelOptions {
  /** Name prefix for namespaces, veths and pins ("xlab" by default; tests pass their own). */
  prefix: string;
  progress: ProgressSink;
  signal?: AbortSignal;
  /** A bzImage (or a directory with boot/ and lib/modules/) to boot instead of the providers' image. */
  localImage?: string;
  /**
   * Guests only: 'icount' runs QEMU under its instruction counter (reproducible, not wall-clock);
   * 'auto' takes it when the guest runs under TCG. Default 'wall'.
   */
  clock?: 'wall' | 'icount' | 'auto';
}

/** Obtains a kernel session; throws LabError (NO_PROVIDER, VM_BOOT, ...) when it cannot. */
export type OpenKernel = (kernel: string, options: OpenKernelOptions) => Promise<KernelSession>;

/** The CPU frequency a kernel's runs were measured at, as far as the target lets the lab know it. */
export interface FrequencyInfo {
  governor: string | null;
  mhz: number | null;
  note?: string;
}
