/* SPDX-License-Identifier: GPL-2.0 */
/* The filter job: drops TCP segments whose destination port is in deny_ports; passes the rest. */
#ifndef XCL_FILTER_H
#define XCL_FILTER_H

#include "common.h"

/* Denied TCP destination ports (key: port in host byte order; value unused, 1 by convention). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, 1024);
} deny_ports SEC(".maps");

static __always_inline int job_filter(XCL_CTX *ctx)
{
	struct pkt_info p;
	__u16 port;

	parse_packet(ctx, &p);
	/* Neighbour discovery (and all ICMPv6) is never dropped: IPv6 stops working without it. */
	if (p.klass == CLASS_ICMPV6)
		return XCL_PASS;
	if (p.klass != CLASS_IPV4_TCP && p.klass != CLASS_IPV6_TCP)
		return XCL_PASS;
	port = p.dport;
	if (bpf_map_lookup_elem(&deny_ports, &port))
		return XCL_DROP;
	return XCL_PASS;
}

#endif
