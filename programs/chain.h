/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How a stage hands the packet on. Built plain, a stage returns its verdict. Built with
 * -DMANUAL_NEXT=<i> (the "manual" approach), a stage that passes the packet tail-calls slot <i> of
 * the shared PROG_ARRAY chain_jmp, which the loader fills. The index is a compile-time constant so
 * the JIT can emit a direct jump. An empty slot makes the tail call fall through: the verdict stands.
 *
 * XDP_RUN_CONFIG (libxdp's dispatcher): priority orders the stages, chain_call_actions = XDP_PASS
 * lets the next stage run only on PASS, as in the manual chain and the fused program.
 */
#ifndef XCL_CHAIN_H
#define XCL_CHAIN_H

#include "common.h"

#define XCL_CHAIN_SLOTS 8

#ifdef MANUAL_NEXT
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, XCL_CHAIN_SLOTS);
} chain_jmp SEC(".maps");

static __always_inline int chain_next(struct xdp_md *ctx, int verdict)
{
	if (verdict != XDP_PASS)
		return verdict;
	bpf_tail_call(ctx, &chain_jmp, MANUAL_NEXT);
	return verdict;
}
#else
static __always_inline int chain_next(struct xdp_md *ctx, int verdict)
{
	(void)ctx;
	return verdict;
}
#endif

/* libxdp's run config, read from the object's BTF (as xdp/xdp_helpers.h defines it). */
#define XCL_RUN_CONFIG(prog, prio)                                   \
	struct {                                                     \
		__uint(priority, prio);                              \
		__uint(XDP_PASS, 1);                                 \
	} _##prog SEC(".xdp_run_config")

#endif
