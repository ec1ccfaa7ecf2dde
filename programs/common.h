/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by every program of the trio: includes, the hook (hook.h: XDP or TC), the packet classes
 * and the one parser all three jobs use. Portability (must load on 4.19): no global variables (.data/.bss/.rodata need 5.2), no
 * ring buffer (5.8), BTF-defined maps only, helpers no newer than 4.19, no loops (bounded loops
 * need 5.3). Every packet access is bounds-checked against data_end before it is made.
 */
#ifndef XCL_COMMON_H
#define XCL_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "hook.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Protocol classes counted by metrics and reported by logger. The numbering is an ABI shared with
 * lab/programs/trio.ts (PacketClass): change both together. */
enum pkt_class {
	CLASS_NON_IP = 0,     /* Ethernet frame with a non-IP ethertype (ARP, LLDP...) */
	CLASS_IPV4_TCP = 1,
	CLASS_IPV4_UDP = 2,
	CLASS_IPV4_ICMP = 3,
	CLASS_IPV4_OTHER = 4, /* other protocol, or a non-first fragment */
	CLASS_IPV6_TCP = 5,
	CLASS_IPV6_UDP = 6,
	CLASS_ICMPV6 = 7,
	CLASS_IPV6_OTHER = 8, /* other next header, including extension headers (not walked) */
	CLASS_MALFORMED = 9,  /* a header the frame announces is cut short, or IPv4 IHL < 5 */
	CLASS_MAX = 10,
};

/* 802.1Q / 802.1ad tag (linux/if_vlan.h is not a UAPI header). */
struct xcl_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct pkt_info {
	__u16 ethertype; /* after at most one VLAN tag, host order; 0 when Ethernet is truncated */
	__u16 sport;     /* TCP/UDP ports, host order; 0 when absent */
	__u16 dport;
	__u8 l4proto;    /* IPPROTO_*; 0 when not IP */
	__u8 klass;      /* enum pkt_class */
	__u8 icmp_type;  /* ICMPv6 type when klass == CLASS_ICMPV6 */
	__u8 vlan;       /* 1 when one VLAN tag was skipped */
};

static __always_inline void parse_l4(void *l4, void *data_end, __u8 proto, struct pkt_info *p,
				     __u8 tcp_class, __u8 udp_class)
{
	p->l4proto = proto;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end) {
			p->klass = CLASS_MALFORMED;
			return;
		}
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		p->klass = tcp_class;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end) {
			p->klass = CLASS_MALFORMED;
			return;
		}
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
		p->klass = udp_class;
	}
}

/* Classifies the frame: Ethernet, one optional VLAN tag, IPv4 or IPv6, then TCP/UDP/ICMP. */
static __always_inline void parse_packet(XCL_CTX *ctx, struct pkt_info *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;

	p->ethertype = 0;
	p->sport = 0;
	p->dport = 0;
	p->l4proto = 0;
	p->icmp_type = 0;
	p->vlan = 0;
	p->klass = CLASS_MALFORMED;

	if ((void *)(eth + 1) > data_end)
		return;
	proto = bpf_ntohs(eth->h_proto);
	l3 = eth + 1;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		struct xcl_vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > data_end)
			return;
		p->vlan = 1;
		proto = bpf_ntohs(vh->encap_proto);
		l3 = vh + 1;
	}
	p->ethertype = proto;

	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return;
		p->l4proto = ip6->nexthdr;
		if (ip6->nexthdr == IPPROTO_ICMPV6) {
			struct icmp6hdr *icmp = (void *)(ip6 + 1);
			/* type, code and checksum: the 4 bytes every ICMPv6 message has */
			if ((void *)icmp + 4 > data_end)
				return;
			p->icmp_type = icmp->icmp6_type;
			p->klass = CLASS_ICMPV6;
			return;
		}
		p->klass = CLASS_IPV6_OTHER;
		parse_l4(ip6 + 1, data_end, ip6->nexthdr, p, CLASS_IPV6_TCP, CLASS_IPV6_UDP);
		return;
	}
	if (proto == ETH_P_IP) {
		struct iphdr *ip4 = l3;
		__u32 ihl;
		if ((void *)(ip4 + 1) > data_end)
			return;
		ihl = ip4->ihl * 4;
		if (ihl < sizeof(*ip4))
			return;
		if (l3 + ihl > data_end)
			return;
		p->l4proto = ip4->protocol;
		p->klass = CLASS_IPV4_OTHER;
		/* A non-first fragment carries no L4 header: classed as "other", never filtered. */
		if (ip4->frag_off & bpf_htons(0x1fff))
			return;
		if (ip4->protocol == IPPROTO_ICMP) {
			if (l3 + ihl + 4 > data_end) {
				p->klass = CLASS_MALFORMED;
				return;
			}
			p->klass = CLASS_IPV4_ICMP;
			return;
		}
		parse_l4(l3 + ihl, data_end, ip4->protocol, p, CLASS_IPV4_TCP, CLASS_IPV4_UDP);
		return;
	}
	p->klass = CLASS_NON_IP;
}

#endif /* XCL_COMMON_H */
