/**
 * The kernel UAPI numbers the lab uses (include/uapi/linux/bpf.h, include/uapi/linux/pkt_cls.h),
 * each defined once here so no other file writes a bare number with a comment naming it.
 */

/** enum xdp_action: the verdict an XDP program returns. */
export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;

/** The same verdicts by the lower-case names the CLI, the corpus and the chain's options use. */
export const XDP_ACTIONS = { aborted: XDP_ABORTED, drop: XDP_DROP, pass: XDP_PASS, tx: XDP_TX, redirect: XDP_REDIRECT } as const;
export type XdpActionName = keyof typeof XDP_ACTIONS;
/** Names indexed by action number. */
export const XDP_ACTION_NAMES: readonly XdpActionName[] = ['aborted', 'drop', 'pass', 'tx', 'redirect'];

/**
 * TC_ACT_*: the verdict a sched_cls program returns in direct-action mode (pkt_cls.h). tcx's
 * TCX_NEXT, TCX_PASS, TCX_DROP and TCX_REDIRECT (bpf.h) are the same numbers as UNSPEC, OK, SHOT
 * and REDIRECT.
 */
export const TC_ACT_UNSPEC = -1;
export const TC_ACT_OK = 0;
export const TC_ACT_RECLASSIFY = 1;
export const TC_ACT_SHOT = 2;
export const TC_ACT_PIPE = 3;
export const TC_ACT_STOLEN = 4;
export const TC_ACT_QUEUED = 5;
export const TC_ACT_REPEAT = 6;
export const TC_ACT_REDIRECT = 7;
export const TC_ACT_TRAP = 8;

/** The same verdicts by lower-case name, as the chain's options write them. */
export const TC_ACTIONS = {
  unspec: TC_ACT_UNSPEC,
  ok: TC_ACT_OK,
  reclassify: TC_ACT_RECLASSIFY,
  shot: TC_ACT_SHOT,
  pipe: TC_ACT_PIPE,
  stolen: TC_ACT_STOLEN,
  queued: TC_ACT_QUEUED,
  repeat: TC_ACT_REPEAT,
  redirect: TC_ACT_REDIRECT,
  trap: TC_ACT_TRAP,
} as const;
export type TcActionName = keyof typeof TC_ACTIONS;

/** enum bpf_map_type: the two map types the chain patch adds to an object. */
export const BPF_MAP_TYPE_PROG_ARRAY = 3;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
