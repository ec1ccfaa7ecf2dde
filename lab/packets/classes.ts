/**
 * The packet classes the trio tells apart, in the order of enum pkt_class in programs/common.h
 * (the index is the metrics_stats key and the logger's class byte); change them together. Here,
 * below the programs, because the corpus says which class each of its frames is.
 */

/** enum pkt_class in programs/common.h. */
export const PACKET_CLASSES = [
  'non_ip',
  'ipv4_tcp',
  'ipv4_udp',
  'ipv4_icmp',
  'ipv4_other',
  'ipv6_tcp',
  'ipv6_udp',
  'icmpv6',
  'ipv6_other',
  'malformed',
] as const;
export type PacketClass = (typeof PACKET_CLASSES)[number];

export function classIndex(c: PacketClass): number {
  return PACKET_CLASSES.indexOf(c);
}
