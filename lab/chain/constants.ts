/**
 * The chain's constants, defined once for the patch, the loader and the operations: the names of
 * the two maps every patched program shares, the PROG_ARRAY's size, the highest chain index, the
 * default verdict sets of each hook the patch knows (XDP, the thesis's; TC), and the two patch
 * modes. The verdicts themselves are the kernel's (lab/bpf/uapi.ts).
 */
import { TC_ACTIONS, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_UNSPEC, XDP_ACTIONS, XDP_PASS, XDP_REDIRECT, XDP_TX } from '../bpf/uapi.ts';

/** PROG_ARRAY the patch adds and every program of a chain shares (the edges E of the thesis). */
export const CHAIN_MAP = 'xcl_chain';
/** One-entry per-CPU array holding the remembered verdict C. */
export const VERDICT_MAP = 'xcl_verdict';

/**
 * Slots of the PROG_ARRAY (the patch's map and the trampoline's): more than the 33 tail calls any
 * kernel allows per packet, so only the first maxPrograms are ever used.
 */
export const CHAIN_SLOTS = 64;

/**
 * Highest chain index: every LTS kernel lets a packet make 33 tail calls, so at most 34 programs
 * run (indices 0..33; measured on the host). Which length a given kernel really reaches is the
 * chain operations' business (they probe it); the patch only refuses what no kernel can run.
 */
export const MAX_INDEX = 33;

/**
 * The value of the verdict map C that means "no verdict remembered": a verdict equal to it could
 * not be told from none, so no hook may put it in R (XDP_ABORTED for XDP, TC_ACT_OK for TC).
 */
export const NO_VERDICT = 0;

/**
 * The hooks the patch chains on, by BPF program type: the type decides the verdict vocabulary and
 * the kernel tail-calls only between programs of one type. Both get ctx in r1 (xdp_md or
 * __sk_buff) and the same epilogue.
 */
export const HOOKS = ['xdp', 'sched_cls'] as const;
export type Hook = (typeof HOOKS)[number];

export interface HookVerdicts {
  /** How messages name the hook's verdicts, and the article before the label ("an XDP", "a TC"). */
  label: string;
  article: 'a' | 'an';
  /** The verdicts by the lower-case names the options take. */
  names: Readonly<Record<string, number>>;
  /** Range a verdict of this hook may take (the kernel reads r0 as u32 for XDP, as int for TC). */
  min: number;
  max: number;
  success: readonly number[];
  redirect: readonly number[];
}

/**
 * XDP, the thesis's evaluation: S = {XDP_PASS}, R = {XDP_TX, XDP_REDIRECT}.
 *
 * TC (sched_cls, direct action): S = {TC_ACT_OK, TC_ACT_UNSPEC}, R = {TC_ACT_REDIRECT}.
 * - TC_ACT_OK hands the packet on, as XDP_PASS does: in the thesis's sense the next program may
 *   see it, so it continues.
 * - TC_ACT_UNSPEC (-1) is the kernel's own "continue": cls_bpf runs the next filter on it and tcx
 *   the next program (TCX_NEXT), so a chain continues on it too; a chain whose programs all say
 *   UNSPEC returns UNSPEC and the hook applies its own default, as it would without the chain.
 *   (The kernel's multi-program hooks stop at OK; the chain does not, as libxdp's dispatcher does
 *   not stop at XDP_PASS.)
 * - TC_ACT_REDIRECT is what bpf_redirect() returns; its target waits in per-CPU state until the
 *   hook acts on the verdict, so the chain remembers it, lets the others see the packet, and
 *   returns it at the end (XDP_REDIRECT's treatment). TC has no XDP_TX.
 * - Every other verdict leaves the chain: SHOT, STOLEN and TRAP drop or consume the packet;
 *   RECLASSIFY, PIPE, QUEUED, REPEAT and unknown codes, which cls_bpf reads as UNSPEC and tcx as
 *   NEXT, are returned as they are (put them in S to run the rest of the chain on them).
 * TC_ACT_OK is 0, the verdict map's "none", so it cannot be in R.
 */
export const HOOK_VERDICTS: Readonly<Record<Hook, HookVerdicts>> = {
  xdp: { label: 'XDP', article: 'an', names: XDP_ACTIONS, min: 0, max: 0x7fffffff, success: [XDP_PASS], redirect: [XDP_TX, XDP_REDIRECT] },
  sched_cls: { label: 'TC', article: 'a', names: TC_ACTIONS, min: -0x80000000, max: 0x7fffffff, success: [TC_ACT_OK, TC_ACT_UNSPEC], redirect: [TC_ACT_REDIRECT] },
};

/** The XDP defaults, by the names the XDP-only callers use. */
export const DEFAULT_SUCCESS: readonly number[] = HOOK_VERDICTS.xdp.success;
export const DEFAULT_REDIRECT: readonly number[] = HOOK_VERDICTS.xdp.redirect;

/**
 * How the patch runs the body: 'subprog' moves it to .text and calls it (kernels that mix tail
 * calls with bpf-to-bpf calls), 'inline' keeps it in place behind a preamble (every kernel).
 */
export const PATCH_MODES = ['subprog', 'inline'] as const;
export type PatchMode = (typeof PATCH_MODES)[number];
