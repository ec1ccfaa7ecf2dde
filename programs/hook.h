/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hook a trio program runs on: its context type, its section, its program names, how the
 * frame's length is read, and its verdicts. The parser (common.h), the three jobs (filter.h,
 * metrics.h, logger.h) and the chaining (chain.h) are written against these names only, so one
 * implementation of each job builds for both hooks:
 *
 *   default         XDP       struct xdp_md     SEC("xdp")  programs xdp_filter, xdp_metrics, ...
 *   -DXCL_HOOK_TC   TC        struct __sk_buff  SEC("tc")   programs tc_filter, tc_metrics, ...
 *                   (sched_cls: cls_bpf in direct-action mode on clsact, or tcx)
 *
 * Both contexts expose the frame as ctx->data .. ctx->data_end from the Ethernet header on (at TC
 * ingress the kernel pushes the MAC header back before the program runs), so the parser is the
 * same code. The frame's length differs: an XDP frame is all of data .. data_end; an skb may carry
 * most of its bytes in fragments outside the linear area (GSO over veth), so TC reads ctx->len.
 * The headers the parser reads are in the linear area for the traffic the lab sends (a local TCP
 * stack puts them there); a frame whose headers are not linear is classed as malformed and passed,
 * as a truncated XDP frame is (no bpf_skb_pull_data: it would change the packet for the next hook).
 *
 * Verdicts. The trio returns XCL_PASS ("this job is done, let the packet go on") and XCL_DROP.
 * The mapping from XDP to TC, which the lab's TypeScript side repeats in lab/programs/hook.ts:
 *
 *   XDP_PASS      -> TC_ACT_OK      the packet goes on up the stack
 *   XDP_PASS, as "run the next program", built with -DXCL_TC_CONTINUE
 *                 -> TC_ACT_UNSPEC  (-1) cls_bpf in direct-action mode turns it into "no verdict",
 *                                   so the filter of the next priority runs; tcx reads the same -1
 *                                   as TCX_NEXT and runs the next program. A chain built that way
 *                                   ends with a plain stage, whose TC_ACT_OK is the final verdict.
 *   XDP_DROP      -> TC_ACT_SHOT
 *   XDP_ABORTED   -> TC_ACT_SHOT    TC has no "aborted" (XDP's is a drop with a trace point)
 *   XDP_TX        -> TC_ACT_REDIRECT after bpf_redirect(ctx->ifindex, 0): out of the same device
 *   XDP_REDIRECT  -> TC_ACT_REDIRECT with bpf_redirect()/bpf_redirect_map() naming the target
 * The trio uses only the first three; the others are here so a program added later maps the same.
 *
 * XDP builds preprocess to exactly the code they had before the hook became a choice: the macros
 * below expand to the same types, expressions and constants (no typedef, which would change BTF).
 */
#ifndef XCL_HOOK_H
#define XCL_HOOK_H

#include <linux/bpf.h>

#ifdef XCL_HOOK_TC
#include <linux/pkt_cls.h>

#define XCL_CTX struct __sk_buff
#define XCL_SEC "tc"
#define XCL_PROG(job) tc_##job
#ifdef XCL_TC_CONTINUE
#define XCL_PASS TC_ACT_UNSPEC
#else
#define XCL_PASS TC_ACT_OK
#endif
#define XCL_DROP TC_ACT_SHOT
/* The whole frame, fragments included. */
#define XCL_FRAME_LEN(ctx) ((__u32)(ctx)->len)

#else /* XDP */

#define XCL_CTX struct xdp_md
#define XCL_SEC "xdp"
#define XCL_PROG(job) xdp_##job
#define XCL_PASS XDP_PASS
#define XCL_DROP XDP_DROP
#define XCL_FRAME_LEN(ctx) ((__u32)((ctx)->data_end - (ctx)->data))

#endif

#endif /* XCL_HOOK_H */
