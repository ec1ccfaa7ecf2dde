/**
 * Byte-level frame builders (Ethernet, 802.1Q/802.1ad, IPv4, IPv6, TCP, UDP, ICMP, ICMPv6, ARP).
 * Pure TypeScript with no dependencies, so any helper can craft packets for BPF_PROG_TEST_RUN.
 * Checksums are filled in where the protocol has one (the XDP programs do not check them, but
 * frames stay valid if replayed elsewhere).
 */

export const ETH_P = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, QINQ: 0x88a8, IPV6: 0x86dd } as const;
export const IPPROTO = { HOPOPTS: 0, ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

export type Mac = readonly number[];
export const MAC_A: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
export const MAC_B: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function be16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** Internet checksum (RFC 1071) over the given bytes. */
export function inetChecksum(...parts: Uint8Array[]): number {
  const b = concat(...parts);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Parses "fc00:dead:cafe:1::1" into 16 bytes. */
export function ipv6(addr: string): Uint8Array {
  const [head = '', tail] = addr.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => Number.isNaN(g))) throw new Error(`bad IPv6 address ${addr}`);
  return Uint8Array.from(groups.flatMap(be16));
}

export function ipv4(addr: string): Uint8Array {
  const p = addr.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`bad IPv4 address ${addr}`);
  return Uint8Array.from(p);
}

export function ethernet(dst: Mac, src: Mac, ethertype: number, payload: Uint8Array): Uint8Array {
  return concat(Uint8Array.from([...dst, ...src, ...be16(ethertype)]), payload);
}

/** One VLAN tag (TPID 0x8100 or 0x88a8) followed by the encapsulated ethertype and payload. */
export function vlanTagged(dst: Mac, src: Mac, tpid: number, vid: number, ethertype: number, payload: Uint8Array): Uint8Array {
  return concat(Uint8Array.from([...dst, ...src, ...be16(tpid), ...be16(vid & 0x0fff), ...be16(ethertype)]), payload);
}

export interface Ipv6Opts {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  hopLimit?: number;
}

export function ipv6Packet(o: Ipv6Opts, payload: Uint8Array): Uint8Array {
  const h = Uint8Array.from([
    0x60, 0, 0, 0,
    ...be16(payload.length),
    o.nextHeader,
    o.hopLimit ?? 64,
  ]);
  return concat(h, o.src, o.dst, payload);
}

export interface Ipv4Opts {
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  ttl?: number;
  /** Options bytes (length multiple of 4) — makes IHL > 5. */
  options?: Uint8Array;
  /** Fragment offset in 8-byte units (non-zero: a non-first fragment). */
  fragOffset?: number;
  /** Force an IHL value (for malformed headers). */
  ihl?: number;
}

export function ipv4Packet(o: Ipv4Opts, payload: Uint8Array): Uint8Array {
  const opts = o.options ?? new Uint8Array(0);
  const ihl = o.ihl ?? 5 + opts.length / 4;
  const total = 20 + opts.length + payload.length;
  const h = Uint8Array.from([
    0x40 | (ihl & 0x0f), 0,
    ...be16(total),
    0x12, 0x34,
    ...be16((o.fragOffset ?? 0) & 0x1fff),
    o.ttl ?? 64,
    o.protocol,
    0, 0,
    ...o.src,
    ...o.dst,
  ]);
  const hdr = concat(h, opts);
  const c = inetChecksum(hdr);
  hdr[10] = c >> 8;
  hdr[11] = c & 0xff;
  return concat(hdr, payload);
}

export interface PortsOpts {
  sport: number;
  dport: number;
}

/** TCP header (20 bytes, no options) + payload; checksum left 0 unless pseudo-header given. */
export function tcpSegment(o: PortsOpts & { flags?: number; seq?: number }, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat(
    Uint8Array.from([...be16(o.sport), ...be16(o.dport), ...be32(o.seq ?? 1), ...be32(0), 0x50, o.flags ?? 0x02, ...be16(64240), 0, 0, 0, 0]),
    payload,
  );
}

export function udpDatagram(o: PortsOpts, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat(Uint8Array.from([...be16(o.sport), ...be16(o.dport), ...be16(8 + payload.length), 0, 0]), payload);
}

/** ICMPv6 message with its checksum over the IPv6 pseudo-header. */
export function icmpv6Message(src: Uint8Array, dst: Uint8Array, type: number, code: number, body: Uint8Array): Uint8Array {
  const msg = concat(Uint8Array.from([type, code, 0, 0]), body);
  const pseudo = concat(src, dst, Uint8Array.from([...be32(msg.length), 0, 0, 0, IPPROTO.ICMPV6]));
  const c = inetChecksum(pseudo, msg);
  msg[2] = c >> 8;
  msg[3] = c & 0xff;
  return msg;
}

export const ICMPV6 = { ECHO_REQUEST: 128, ECHO_REPLY: 129, RS: 133, RA: 134, NS: 135, NA: 136, REDIRECT: 137 } as const;

/** Neighbour solicitation for `target` with a source link-layer address option. */
export function neighbourSolicitation(target: Uint8Array, srcMac: Mac): Uint8Array {
  return concat(new Uint8Array(4), target, Uint8Array.from([1, 1, ...srcMac]));
}

/** Neighbour advertisement (solicited + override) with a target link-layer address option. */
export function neighbourAdvertisement(target: Uint8Array, mac: Mac): Uint8Array {
  return concat(Uint8Array.from([0x60, 0, 0, 0]), target, Uint8Array.from([2, 1, ...mac]));
}

export function icmpv4Echo(id: number, seq: number, payload: Uint8Array = new Uint8Array(8)): Uint8Array {
  const m = concat(Uint8Array.from([8, 0, 0, 0, ...be16(id), ...be16(seq)]), payload);
  const c = inetChecksum(m);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

export function arpRequest(srcMac: Mac, srcIp: Uint8Array, dstIp: Uint8Array): Uint8Array {
  return Uint8Array.from([0, 1, 8, 0, 6, 4, 0, 1, ...srcMac, ...srcIp, 0, 0, 0, 0, 0, 0, ...dstIp]);
}

/** Solicited-node multicast address and MAC for an IPv6 address (for NS frames). */
export function solicitedNode(addr: Uint8Array): { ip: Uint8Array; mac: Mac } {
  const ip = ipv6('ff02::1:ff00:0');
  ip[13] = addr[13] ?? 0;
  ip[14] = addr[14] ?? 0;
  ip[15] = addr[15] ?? 0;
  return { ip, mac: [0x33, 0x33, 0xff, addr[13] ?? 0, addr[14] ?? 0, addr[15] ?? 0] };
}
