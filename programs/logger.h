/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The logger job: one compact record for 1 packet in N through a perf event array. N is read from
 * log_config[0] (0 = off). Sampling is deterministic per CPU: the Nth, 2Nth... packet a CPU sees
 * is logged, which keeps the hot path free of atomics and makes the records predictable in tests.
 */
#ifndef XCL_LOGGER_H
#define XCL_LOGGER_H

#include "common.h"

/* Layout is an ABI with lab/programs/trio.ts (parseLogRecord): 32 bytes, little-endian host. */
struct log_record {
	__u64 ts_ns;     /* bpf_ktime_get_ns() */
	__u64 seq;       /* this CPU's packet number (1-based) of the sampled packet */
	__u32 ifindex;   /* ingress interface */
	__u32 len;       /* frame length (hook.h XCL_FRAME_LEN) */
	__u16 ethertype; /* host order, after one VLAN tag */
	__u16 sport;
	__u16 dport;
	__u8 l4proto;
	__u8 klass;      /* enum pkt_class */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32); /* N: log 1 packet in N; 0 = off */
	__uint(max_entries, 1);
} log_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64); /* packets seen by this CPU while logging was on */
	__uint(max_entries, 1);
} log_state SEC(".maps");

/* Perf event arrays take no BTF key/value types; entries cover any CPU number the lab meets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 128);
} log_events SEC(".maps");

static __always_inline int job_logger(XCL_CTX *ctx)
{
	struct log_record rec;
	struct pkt_info p;
	__u32 key = 0;
	__u32 *n;
	__u64 *seen;
	__u64 count;

	n = bpf_map_lookup_elem(&log_config, &key);
	if (!n || *n == 0)
		return XCL_PASS;
	seen = bpf_map_lookup_elem(&log_state, &key);
	if (!seen)
		return XCL_PASS;
	count = *seen + 1;
	*seen = count;
	if (count % *n != 0)
		return XCL_PASS;

	parse_packet(ctx, &p);
	__builtin_memset(&rec, 0, sizeof(rec));
	rec.ts_ns = bpf_ktime_get_ns();
	rec.seq = count;
	rec.ifindex = ctx->ingress_ifindex;
	rec.len = XCL_FRAME_LEN(ctx);
	rec.ethertype = p.ethertype;
	rec.sport = p.sport;
	rec.dport = p.dport;
	rec.l4proto = p.l4proto;
	rec.klass = p.klass;
	bpf_perf_event_output(ctx, &log_events, BPF_F_CURRENT_CPU, &rec, sizeof(rec));
	return XCL_PASS;
}

#endif
