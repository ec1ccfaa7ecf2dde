// SPDX-License-Identifier: GPL-2.0
/*
 * chain: 35 trivial XDP programs for the chain-length microbenchmark.
 *
 * Program link_I tail-calls slot I+1 of the shared PROG_ARRAY `chain_jmp` and returns XDP_PASS
 * when that slot is empty, so a chain of length N is slots 0..N-1 filled and slot N empty.
 * 35 programs: one more than a packet can run here (one entry + 33 tail calls), to observe the limit.
 *
 * Two hop kinds, chosen at compile time:
 *   default       the index is an immediate: the verifier sees a constant, and JITs from 5.5 on
 *                 patch a direct jump to the target (no retpoline).
 *   -DINDIRECT    the index is read from the array map `chain_next`: the verifier sees an unknown
 *                 scalar, so the JIT emits the generic, indirect tail call (retpoline on x86).
 * A map lookup rather than global data keeps the object loadable on 4.19 (global data needs 5.2).
 *
 *   -DCOUNT       every program also counts its run in `chain_hits`: not timed; it proves how many
 *                 programs one packet really ran (the kernel's limit, the bench's chain lengths).
 *   -DXCL_HOOK_TC the same chain as sched_cls programs (section "tc", struct __sk_buff), ending in
 *                 TC_ACT_OK: the TC manual chain's hop, test-run on the same frame as an skb.
 *   -DXCL_TC_CONTINUE (with XCL_HOOK_TC) ending in TC_ACT_UNSPEC instead, so the filter after the
 *                 chain's runs: the tail-call chain between tc_stamp.c's clock filters (live traffic).
 *   -DEND_LOOKUP  where the chain ends (the tail call failed), the program reads a remembered
 *                 verdict from a one-entry per-CPU array and returns it when set, as the patched
 *                 chain's end does: the difference to the default build is that read's cost,
 *                 once per packet (the cost breakdown of the patched chain).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifdef XCL_HOOK_TC
#define CHAIN_SEC "tc"
#define CHAIN_CTX struct __sk_buff
#ifdef XCL_TC_CONTINUE
#define CHAIN_PASS -1 /* TC_ACT_UNSPEC */
#else
#define CHAIN_PASS 0 /* TC_ACT_OK */
#endif
#else
#define CHAIN_SEC "xdp"
#define CHAIN_CTX struct xdp_md
#define CHAIN_PASS XDP_PASS
#endif

/* 36 slots for 35 programs: the last program's tail call always finds an empty slot. */
#define CHAIN_SLOTS 36

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} chain_jmp SEC(".maps");

#ifdef COUNT
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} chain_hits SEC(".maps");

static __always_inline void count_run(void)
{
	__u32 key = 0;
	__u64 *hits = bpf_map_lookup_elem(&chain_hits, &key);

	if (hits)
		__sync_fetch_and_add(hits, 1);
}
#else
static __always_inline void count_run(void) {}
#endif

#ifdef END_LOOKUP
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} chain_verdict SEC(".maps");

/* The patched chain's end: C != 0 ? (C <- 0, C) : pass. C stays 0 here, as on the all-pass path. */
static __always_inline int chain_end(void)
{
	__u32 key = 0;
	__u32 *c = bpf_map_lookup_elem(&chain_verdict, &key);

	if (c && *c) {
		__u32 v = *c;

		*c = 0;
		return v;
	}
	return CHAIN_PASS;
}
#else
static __always_inline int chain_end(void) { return CHAIN_PASS; }
#endif

#ifdef INDIRECT
/* chain_next[i] = i + 1, written by the bench before it runs a chain. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} chain_next SEC(".maps");

#define LINK(I)                                                       \
	SEC(CHAIN_SEC) int link_##I(CHAIN_CTX *ctx)                   \
	{                                                             \
		__u32 key = I;                                        \
		__u32 *next;                                          \
		count_run();                                          \
		next = bpf_map_lookup_elem(&chain_next, &key);        \
		if (next)                                             \
			bpf_tail_call(ctx, &chain_jmp, *next);        \
		return CHAIN_PASS;                                    \
	}
#else
#define LINK(I)                                                       \
	SEC(CHAIN_SEC) int link_##I(CHAIN_CTX *ctx)                   \
	{                                                             \
		count_run();                                          \
		bpf_tail_call(ctx, &chain_jmp, (I) + 1);              \
		return chain_end();                                   \
	}
#endif

LINK(0) LINK(1) LINK(2) LINK(3) LINK(4) LINK(5) LINK(6) LINK(7) LINK(8) LINK(9)
LINK(10) LINK(11) LINK(12) LINK(13) LINK(14) LINK(15) LINK(16) LINK(17) LINK(18) LINK(19)
LINK(20) LINK(21) LINK(22) LINK(23) LINK(24) LINK(25) LINK(26) LINK(27) LINK(28) LINK(29)
LINK(30) LINK(31) LINK(32) LINK(33) LINK(34)

char _license[] SEC("license") = "GPL";
