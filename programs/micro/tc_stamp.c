// SPDX-License-Identifier: GPL-2.0
/*
 * tc_stamp: the clock around a chain of TC ingress programs under live traffic, for the chain-length
 * scaling of the chains the kernel itself walks (cls_bpf filter priorities, tcx), which
 * BPF_PROG_TEST_RUN cannot run: it runs one program, never the walk between programs.
 *
 *   stamp_start  attached first: notes the time on this CPU and lets the next program run
 *   stamp_end    attached last: adds now - start to a per-CPU sum and counts the skb; TC_ACT_OK
 *   -DNEXT_ONLY  one program, stamp_next, that only lets the next program run: the links of a
 *                chain of N between start and end
 *
 * "Let the next one run" is TC_ACT_UNSPEC (-1): cls_bpf in direct-action mode makes it "no verdict",
 * so the filter of the next priority runs, and tcx reads it as TCX_NEXT. The stamp is per CPU and
 * one skb is inside TC ingress per CPU at a time (softirq), so start and end of one skb meet; an
 * end that finds no stamp (a filter list changed under the skb) counts nothing. The cost of the
 * clock and the two lookups is the same at every length: the slope over N is the cost of one more
 * program, the kernel's walk to it included.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#ifdef NEXT_ONLY

SEC("tc")
int stamp_next(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

#else

struct stamp_sum {
	__u64 ns;
	__u64 skbs;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stamp_at SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stamp_sum);
} stamp_sum SEC(".maps");

SEC("tc")
int stamp_start(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *at = bpf_map_lookup_elem(&stamp_at, &key);

	if (at)
		*at = bpf_ktime_get_ns();
	return TC_ACT_UNSPEC;
}

SEC("tc")
int stamp_end(struct __sk_buff *skb)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 key = 0;
	__u64 *at = bpf_map_lookup_elem(&stamp_at, &key);
	struct stamp_sum *sum;

	if (!at || *at == 0)
		return TC_ACT_OK;
	sum = bpf_map_lookup_elem(&stamp_sum, &key);
	if (sum) {
		sum->ns += now - *at;
		sum->skbs += 1;
	}
	*at = 0;
	return TC_ACT_OK;
}

#endif

char _license[] SEC("license") = "GPL";
