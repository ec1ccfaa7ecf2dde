/**
 * Every way of running the trio on an interface implements this one interface, so the bench
 * treats "manual", "dispatcher", "patched", "fused" and "none" alike, and the TC ingress
 * approaches ("tc-none", "tc-fused", "tc-manual", "tc-patched", "tc-filters", "tcx") the same way. State lives in the kernel
 * and under bpffs (ctx.pinDir), not in the object, so another process can describe or detach it.
 */
import type { Target } from '../target.ts';
import type { Stage } from '../programs/trio.ts';
import type { ApproachName } from '../results/record.ts';

export interface ApproachContext {
  target: Target;
  /** Interface the programs attach to (native XDP, or clsact ingress for the TC approaches), inside `netns`. */
  ifname: string;
  /** Network namespace name (under /run/netns) holding `ifname`; commands enter it with nsenter --net=. */
  netns: string;
  /** bpffs directory owned by this approach instance, e.g. /sys/fs/bpf/xdp-chain-lab/<netns>-<ifname>. */
  pinDir: string;
  /** Directory on the target holding the built BPF objects (build/bpf/*.o copied there). */
  objectDir: string;
}

export type Support = { supported: true; notes?: string[] } | { supported: false; reason: string };

export interface LoadedProgram {
  /** Stage it runs, or a role such as "dispatcher", "preamble", "head". */
  role: string;
  name: string;
  id: number;
  tag?: string;
}

export interface Description {
  approach: ApproachName;
  attached: boolean;
  /** XDP mode actually in effect on the interface. */
  xdpMode: 'native' | 'generic' | 'none';
  /** Programs in the order a packet meets them. */
  programs: LoadedProgram[];
  maps: { name: string; id: number }[];
  /**
   * How the next program is reached: direct jump (constant tail-call index), indirect, freplace,
   * inline, or 'tc-next': the kernel runs the next attached program when one returns
   * TC_ACT_UNSPEC (cls_bpf filter priorities); 'tcx-next': tcx's walk of its bpf_mprog array
   * runs the next program when one returns TCX_NEXT (-1).
   */
  hop: 'none' | 'tail-call-constant' | 'tail-call-indirect' | 'freplace' | 'inline' | 'tc-next' | 'tcx-next';
  notes: string[];
}

/**
 * The kernel itself walks from one attached program to the next (cls_bpf priorities, tcx): no
 * program runs the chain, so BPF_PROG_TEST_RUN cannot, and each program has its own statistics.
 */
export function kernelWalksChain(hop: Description['hop']): boolean {
  return hop === 'tc-next' || hop === 'tcx-next';
}

export interface Approach {
  readonly name: ApproachName;
  /** One sentence for --help and reports. */
  readonly summary: string;
  /** Whether this kernel can run the approach, with the kernel's or tool's own words when not. */
  supports(target: Target): Promise<Support>;
  /** Loads programs and maps (pinned under ctx.pinDir), attaching nothing. */
  load(ctx: ApproachContext): Promise<void>;
  /** Attaches: XDP approaches in native mode, TC approaches on a fresh clsact qdisc's ingress. */
  attach(ctx: ApproachContext): Promise<void>;
  /** Swaps one stage's program for another object while attached, if the approach can. */
  replace(ctx: ApproachContext, stage: Stage, objectPath: string): Promise<void>;
  /** Always leaves ctx.ifname with no XDP program, no clsact qdisc of a TC approach, none of tcx's own programs (another tool's stay), and ctx.pinDir removed, also after a partial load. */
  detach(ctx: ApproachContext): Promise<void>;
  describe(ctx: ApproachContext): Promise<Description>;
}
