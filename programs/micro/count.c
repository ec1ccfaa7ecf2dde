// SPDX-License-Identifier: GPL-2.0
/*
 * count: a trivial program that counts its runs in `chain_count` and returns XDP_PASS. Not timed:
 * the tests chain copies of it (patched, sharing one pinned counter) to prove that a chain the bench
 * calls "length L" really runs L programs per packet.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} chain_count SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&chain_count, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
