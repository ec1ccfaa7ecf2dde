/**
 * The hooks the trio is built for and how an XDP verdict reads on each: the TypeScript side of
 * programs/hook.h (change them together). The trio's jobs return "pass" or "drop"; on TC a pass
 * is TC_ACT_OK when the program's verdict is final and TC_ACT_UNSPEC when the stage was built to
 * let the kernel run the next program (cls_bpf filter priorities, tcx: -DXCL_TC_CONTINUE).
 */
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, XDP_ACTIONS, type XdpActionName } from '../bpf/uapi.ts';

export type Hook = 'xdp' | 'tc';
export const HOOKS: readonly Hook[] = ['xdp', 'tc'];

/** How a TC stage ends a pass: with the final verdict, or handing the packet to the next program. */
export type TcPass = 'final' | 'continue';

/**
 * XDP verdict → TC verdict (programs/hook.h has the why of each row). XDP_TX and XDP_REDIRECT
 * both become TC_ACT_REDIRECT: on TC the redirect helper names the device, out of the same one
 * for what XDP calls TX.
 */
export const TC_VERDICT_OF_XDP: Readonly<Record<XdpActionName, number>> = {
  aborted: TC_ACT_SHOT,
  drop: TC_ACT_SHOT,
  pass: TC_ACT_OK,
  tx: TC_ACT_REDIRECT,
  redirect: TC_ACT_REDIRECT,
};

/** The number a trio program built for `hook` returns for `verdict`. */
export function hookVerdict(hook: Hook, verdict: XdpActionName, pass: TcPass = 'final'): number {
  if (hook === 'xdp') return XDP_ACTIONS[verdict];
  if (verdict === 'pass' && pass === 'continue') return TC_ACT_UNSPEC;
  return TC_VERDICT_OF_XDP[verdict];
}

/**
 * The same as BPF_PROG_TEST_RUN reports it: the kernel hands retval back as a __u32, so
 * TC_ACT_UNSPEC (-1) reads 4294967295.
 */
export function testRunRetval(verdict: number): number {
  return verdict >>> 0;
}

/** bpftool's `type` keyword for each hook's programs (its `classifier` is sched_cls, on every bpftool). */
export const BPFTOOL_PROG_TYPE: Readonly<Record<Hook, string>> = { xdp: 'xdp', tc: 'classifier' };
