/**
 * The kernel UAPI numbers the lab uses (include/uapi/linux/bpf.h), each defined once here so no
 * other file writes a bare number with a comment naming it.
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

/** enum bpf_map_type: the two map types the chain patch adds to an object. */
export const BPF_MAP_TYPE_PROG_ARRAY = 3;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;

/**
 * TC_ACT_* (include/uapi/linux/pkt_cls.h): the verdict a sched_cls program returns in
 * direct-action mode. TC_ACT_UNSPEC lets cls_bpf try the next filter; tcx reads the same numbers
 * as TCX_NEXT (-1), TCX_PASS (0), TCX_DROP (2) and TCX_REDIRECT (7).
 */
export const TC_ACT_UNSPEC = -1;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;
