/* SPDX-License-Identifier: GPL-2.0 */
/* The metrics job: per-CPU packet and byte counters by protocol class (enum pkt_class). */
#ifndef XCL_METRICS_H
#define XCL_METRICS_H

#include "common.h"

struct metrics_ctr {
	__u64 packets;
	__u64 bytes;
};

/* Key: enum pkt_class. Per-CPU so the hot path needs no atomic; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_ctr);
	__uint(max_entries, CLASS_MAX);
} metrics_stats SEC(".maps");

static __always_inline int job_metrics(XCL_CTX *ctx)
{
	struct pkt_info p;
	struct metrics_ctr *c;
	__u32 key;

	parse_packet(ctx, &p);
	key = p.klass;
	c = bpf_map_lookup_elem(&metrics_stats, &key);
	if (c) {
		c->packets += 1;
		c->bytes += (__u64)XCL_FRAME_LEN(ctx);
	}
	return XCL_PASS;
}

#endif
