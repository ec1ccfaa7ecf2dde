/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How a stage hands the packet on. Built plain, a stage returns its verdict. Built with
 * -DMANUAL_NEXT=<i> (the "manual" approach), a stage that passes the packet tail-calls slot <i> of
 * the shared PROG_ARRAY chain_jmp, which the loader fills. The index is a compile-time constant so
 * the JIT can emit a direct jump. An empty slot makes the tail call fall through: the verdict stands.
 * The same holds on both hooks (hook.h): a tail call keeps the context, xdp_md or __sk_buff.
 *
 * XDP_RUN_CONFIG (libxdp's dispatcher, XDP only): priority orders the stages,
 * chain_call_actions = XDP_PASS lets the next stage run only on PASS, as in the manual chain and
 * the fused program.
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

static __always_inline int chain_next(XCL_CTX *ctx, int verdict)
{
	if (verdict != XCL_PASS)
		return verdict;
	bpf_tail_call(ctx, &chain_jmp, MANUAL_NEXT);
	return verdict;
}
#else
static __always_inline int chain_next(XCL_CTX *ctx, int verdict)
{
	(void)ctx;
	return verdict;
}
#endif

#ifdef XCL_HOOK_TC
/* The dispatcher is XDP's: a TC object carries no run config (a bare declaration keeps the ';'). */
#define XCL_RUN_CONFIG(job, prio) struct xcl_no_run_config_##job
#else
/* libxdp's run config for program xdp_<job>, read from the object's BTF (as xdp/xdp_helpers.h defines it). */
#define XCL_RUN_CONFIG(job, prio)                                    \
	struct {                                                     \
		__uint(priority, prio);                              \
		__uint(XDP_PASS, 1);                                 \
	} _xdp_##job SEC(".xdp_run_config")
#endif

#endif
