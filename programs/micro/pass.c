// SPDX-License-Identifier: GPL-2.0
/*
 * pass: the trivial program (returns XDP_PASS) that the chain-length microbenchmark chains through
 * the patched chain (lab/chain/patch.ts patches one copy per slot) and through libxdp's dispatcher
 * (xdp-loader loads N copies). Its cost is the floor; what grows with the length is the hop.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
