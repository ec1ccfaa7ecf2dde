/**
 * The packet corpus every correctness test runs through the trio: each frame with what the
 * programs must do with it, written down from how the frame was built (never from running the
 * programs). Frames are written to files for `bpftool prog run ... data_in FILE`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Target } from '../target.ts';
import type { PacketClass } from './classes.ts';
import {
  ETH_P,
  ICMPV6,
  IPPROTO,
  MAC_A,
  MAC_B,
  arpRequest,
  concat,
  ethernet,
  icmpv4Echo,
  icmpv6Message,
  ipv4,
  ipv4Packet,
  ipv6,
  ipv6Packet,
  neighbourAdvertisement,
  neighbourSolicitation,
  solicitedNode,
  tcpSegment,
  udpDatagram,
  vlanTagged,
} from './frames.ts';

export type Verdict = 'pass' | 'drop';

/** The fields the logger reports for a frame (programs/logger.h struct log_record, minus ts/seq/ifindex). */
export interface ExpectedLog {
  len: number;
  ethertype: number;
  sport: number;
  dport: number;
  l4proto: number;
  klass: PacketClass;
}

export interface CorpusCase {
  /** Also the file name: [a-z0-9_-]. */
  name: string;
  description: string;
  frame: Uint8Array;
  verdict: Verdict;
  klass: PacketClass;
  log: ExpectedLog;
  /** BPF_PROG_TEST_RUN refuses XDP frames shorter than an Ethernet header (EINVAL). */
  testRunnable: boolean;
  /**
   * BPF_PROG_TEST_RUN of a sched_cls (TC) program refuses more (EINVAL, seen on 6.18): besides
   * those, a frame whose Ethernet header announces IPv4 or IPv6 but that is cut short of that
   * network header (the skb test run reads it; a VLAN-tagged frame's outer ethertype is not IP).
   */
  tcTestRunnable: boolean;
}

export interface CorpusOptions {
  /** A TCP port the test puts in deny_ports (frames to it must be dropped). Default 23. */
  deniedPort?: number;
  /** A TCP port not in deny_ports. Default 80. */
  allowedPort?: number;
}

export interface Corpus {
  deniedPort: number;
  allowedPort: number;
  cases: CorpusCase[];
}

export const HOST_A6 = 'fc00:dead:cafe:1::1';
export const HOST_B6 = 'fc00:dead:cafe:1::2';
export const HOST_A4 = '10.11.1.1';
export const HOST_B4 = '10.11.1.2';

const ETH_LEN = 14;
const VLAN_LEN = 4;
const IP6_LEN = 40;
const IP4_LEN = 20;
const TCP_LEN = 20;

/** The network header a sched_cls test run insists on, by the frame's outer ethertype (0: none). */
function networkHeaderLen(frame: Uint8Array): number {
  const ethertype = frame.length >= ETH_LEN ? (frame[12]! << 8) | frame[13]! : 0;
  return ethertype === ETH_P.IPV4 ? IP4_LEN : ethertype === ETH_P.IPV6 ? IP6_LEN : 0;
}

export function buildCorpus(opts: CorpusOptions = {}): Corpus {
  const denied = opts.deniedPort ?? 23;
  const allowed = opts.allowedPort ?? 80;
  if (denied === allowed) throw new Error('buildCorpus: denied and allowed ports must differ');
  const a6 = ipv6(HOST_A6);
  const b6 = ipv6(HOST_B6);
  const a4 = ipv4(HOST_A4);
  const b4 = ipv4(HOST_B4);
  const cases: CorpusCase[] = [];
  const add = (c: Omit<CorpusCase, 'log' | 'testRunnable' | 'tcTestRunnable'> & { log?: Partial<ExpectedLog> }): void => {
    const base: ExpectedLog = { len: c.frame.length, ethertype: 0, sport: 0, dport: 0, l4proto: 0, klass: c.klass };
    const testRunnable = c.frame.length >= ETH_LEN;
    cases.push({ ...c, log: { ...base, ...c.log }, testRunnable, tcTestRunnable: testRunnable && c.frame.length >= ETH_LEN + networkHeaderLen(c.frame) });
  };

  const v6tcp = (sport: number, dport: number, payload = new Uint8Array(0)): Uint8Array =>
    ipv6Packet({ src: a6, dst: b6, nextHeader: IPPROTO.TCP }, tcpSegment({ sport, dport }, payload));
  const v4tcp = (sport: number, dport: number, payload = new Uint8Array(0)): Uint8Array =>
    ipv4Packet({ src: a4, dst: b4, protocol: IPPROTO.TCP }, tcpSegment({ sport, dport }, payload));
  const tcp6Log = (sport: number, dport: number) => ({ ethertype: ETH_P.IPV6, l4proto: IPPROTO.TCP, sport, dport });
  const tcp4Log = (sport: number, dport: number) => ({ ethertype: ETH_P.IPV4, l4proto: IPPROTO.TCP, sport, dport });

  add({ name: 'ipv6_tcp_denied', description: `IPv6/TCP SYN to denied port ${denied}`, frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, v6tcp(40000, denied)), verdict: 'drop', klass: 'ipv6_tcp', log: tcp6Log(40000, denied) });
  add({ name: 'ipv6_tcp_allowed', description: `IPv6/TCP SYN to allowed port ${allowed}`, frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, v6tcp(40001, allowed)), verdict: 'pass', klass: 'ipv6_tcp', log: tcp6Log(40001, allowed) });
  add({ name: 'ipv6_tcp_denied_sport', description: `IPv6/TCP from denied port ${denied} (only destination ports are denied)`, frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, v6tcp(denied, allowed)), verdict: 'pass', klass: 'ipv6_tcp', log: tcp6Log(denied, allowed) });
  add({ name: 'ipv6_tcp_denied_payload', description: 'IPv6/TCP with 1400 bytes of payload to the denied port', frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, v6tcp(40002, denied, new Uint8Array(1400).fill(0xab))), verdict: 'drop', klass: 'ipv6_tcp', log: tcp6Log(40002, denied) });
  add({ name: 'ipv6_tcp_allowed_payload', description: 'IPv6/TCP with 1400 bytes of payload to an allowed port', frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, v6tcp(40003, allowed, new Uint8Array(1400).fill(0xcd))), verdict: 'pass', klass: 'ipv6_tcp', log: tcp6Log(40003, allowed) });
  add({ name: 'ipv4_tcp_denied', description: `IPv4/TCP SYN to denied port ${denied}`, frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, v4tcp(40004, denied)), verdict: 'drop', klass: 'ipv4_tcp', log: tcp4Log(40004, denied) });
  add({ name: 'ipv4_tcp_allowed', description: `IPv4/TCP SYN to allowed port ${allowed}`, frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, v4tcp(40005, allowed)), verdict: 'pass', klass: 'ipv4_tcp', log: tcp4Log(40005, allowed) });
  add({
    name: 'ipv4_options_tcp_denied',
    description: 'IPv4 with 4 bytes of options (IHL 6), TCP to the denied port',
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, ipv4Packet({ src: a4, dst: b4, protocol: IPPROTO.TCP, options: Uint8Array.from([1, 1, 1, 0]) }, tcpSegment({ sport: 40006, dport: denied }))),
    verdict: 'drop',
    klass: 'ipv4_tcp',
    log: tcp4Log(40006, denied),
  });
  add({
    name: 'ipv4_fragment_tcp',
    description: 'IPv4 non-first fragment of a TCP datagram (no TCP header: never filtered)',
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, ipv4Packet({ src: a4, dst: b4, protocol: IPPROTO.TCP, fragOffset: 185 }, tcpSegment({ sport: 40007, dport: denied }))),
    verdict: 'pass',
    klass: 'ipv4_other',
    log: { ethertype: ETH_P.IPV4, l4proto: IPPROTO.TCP },
  });
  add({
    name: 'ipv4_bad_ihl',
    description: 'IPv4 header with IHL 4 (below the 20-byte minimum)',
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, ipv4Packet({ src: a4, dst: b4, protocol: IPPROTO.TCP, ihl: 4 }, tcpSegment({ sport: 40008, dport: denied }))),
    verdict: 'pass',
    klass: 'malformed',
    log: { ethertype: ETH_P.IPV4 },
  });

  const ns = solicitedNode(b6);
  add({
    name: 'icmpv6_ns',
    description: 'ICMPv6 neighbour solicitation to the solicited-node address',
    frame: ethernet(ns.mac, MAC_A, ETH_P.IPV6, ipv6Packet({ src: a6, dst: ns.ip, nextHeader: IPPROTO.ICMPV6, hopLimit: 255 }, icmpv6Message(a6, ns.ip, ICMPV6.NS, 0, neighbourSolicitation(b6, MAC_A)))),
    verdict: 'pass',
    klass: 'icmpv6',
    log: { ethertype: ETH_P.IPV6, l4proto: IPPROTO.ICMPV6 },
  });
  add({
    name: 'icmpv6_na',
    description: 'ICMPv6 neighbour advertisement',
    frame: ethernet(MAC_A, MAC_B, ETH_P.IPV6, ipv6Packet({ src: b6, dst: a6, nextHeader: IPPROTO.ICMPV6, hopLimit: 255 }, icmpv6Message(b6, a6, ICMPV6.NA, 0, neighbourAdvertisement(b6, MAC_B)))),
    verdict: 'pass',
    klass: 'icmpv6',
    log: { ethertype: ETH_P.IPV6, l4proto: IPPROTO.ICMPV6 },
  });
  add({
    name: 'icmpv6_echo',
    description: 'ICMPv6 echo request (ping6)',
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, ipv6Packet({ src: a6, dst: b6, nextHeader: IPPROTO.ICMPV6 }, icmpv6Message(a6, b6, ICMPV6.ECHO_REQUEST, 0, new Uint8Array(60)))),
    verdict: 'pass',
    klass: 'icmpv6',
    log: { ethertype: ETH_P.IPV6, l4proto: IPPROTO.ICMPV6 },
  });
  add({
    name: 'ipv6_udp_to_denied_port',
    description: `IPv6/UDP to port ${denied} (the deny list is for TCP)`,
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, ipv6Packet({ src: a6, dst: b6, nextHeader: IPPROTO.UDP }, udpDatagram({ sport: 5353, dport: denied }, new Uint8Array(32)))),
    verdict: 'pass',
    klass: 'ipv6_udp',
    log: { ethertype: ETH_P.IPV6, l4proto: IPPROTO.UDP, sport: 5353, dport: denied },
  });
  add({
    name: 'ipv4_udp_to_denied_port',
    description: `IPv4/UDP to port ${denied}`,
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, ipv4Packet({ src: a4, dst: b4, protocol: IPPROTO.UDP }, udpDatagram({ sport: 5353, dport: denied }, new Uint8Array(32)))),
    verdict: 'pass',
    klass: 'ipv4_udp',
    log: { ethertype: ETH_P.IPV4, l4proto: IPPROTO.UDP, sport: 5353, dport: denied },
  });
  add({
    name: 'ipv4_icmp_echo',
    description: 'ICMP echo request',
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, ipv4Packet({ src: a4, dst: b4, protocol: IPPROTO.ICMP }, icmpv4Echo(7, 1))),
    verdict: 'pass',
    klass: 'ipv4_icmp',
    log: { ethertype: ETH_P.IPV4, l4proto: IPPROTO.ICMP },
  });
  add({
    name: 'ipv6_hopopts_tcp_denied',
    description: 'IPv6 hop-by-hop extension header then TCP to the denied port (extension headers are not walked: passed)',
    frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, ipv6Packet({ src: a6, dst: b6, nextHeader: IPPROTO.HOPOPTS }, concat(Uint8Array.from([IPPROTO.TCP, 0, 1, 4, 0, 0, 0, 0]), tcpSegment({ sport: 40009, dport: denied })))),
    verdict: 'pass',
    klass: 'ipv6_other',
    log: { ethertype: ETH_P.IPV6, l4proto: IPPROTO.HOPOPTS },
  });
  add({
    name: 'arp_request',
    description: 'ARP who-has (not IP)',
    frame: ethernet([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], MAC_A, ETH_P.ARP, arpRequest(MAC_A, a4, b4)),
    verdict: 'pass',
    klass: 'non_ip',
    log: { ethertype: ETH_P.ARP },
  });
  add({ name: 'vlan_ipv6_tcp_denied', description: '802.1Q-tagged IPv6/TCP to the denied port', frame: vlanTagged(MAC_B, MAC_A, ETH_P.VLAN, 100, ETH_P.IPV6, v6tcp(40010, denied)), verdict: 'drop', klass: 'ipv6_tcp', log: tcp6Log(40010, denied) });
  add({ name: 'vlan_ipv6_tcp_allowed', description: '802.1Q-tagged IPv6/TCP to an allowed port', frame: vlanTagged(MAC_B, MAC_A, ETH_P.VLAN, 100, ETH_P.IPV6, v6tcp(40011, allowed)), verdict: 'pass', klass: 'ipv6_tcp', log: tcp6Log(40011, allowed) });
  add({ name: 'qinq_ipv4_tcp_denied', description: '802.1ad-tagged IPv4/TCP to the denied port', frame: vlanTagged(MAC_B, MAC_A, ETH_P.QINQ, 200, ETH_P.IPV4, v4tcp(40012, denied)), verdict: 'drop', klass: 'ipv4_tcp', log: tcp4Log(40012, denied) });
  add({
    name: 'double_tag_ipv6_tcp_denied',
    description: 'Two VLAN tags: only one is skipped, the inner tag is not IP (passed as non-IP)',
    frame: vlanTagged(MAC_B, MAC_A, ETH_P.QINQ, 200, ETH_P.VLAN, concat(Uint8Array.from([0, 100, 0x86, 0xdd]), v6tcp(40013, denied))),
    verdict: 'pass',
    klass: 'non_ip',
    log: { ethertype: ETH_P.VLAN },
  });

  // Every truncation of a full header stack: the programs must read nothing past data_end and
  // must not drop a frame they cannot parse (the stack drops it later if it is garbage).
  const truncations: { prefix: string; frame: Uint8Array; offsets: Truncation }[] = [
    { prefix: 'trunc_ipv6_tcp', frame: ethernet(MAC_B, MAC_A, ETH_P.IPV6, v6tcp(40020, denied)), offsets: { l3: ETH_LEN, l4: ETH_LEN + IP6_LEN, end: ETH_LEN + IP6_LEN + TCP_LEN, ethertype: ETH_P.IPV6, l4proto: IPPROTO.TCP } },
    { prefix: 'trunc_ipv4_tcp', frame: ethernet(MAC_B, MAC_A, ETH_P.IPV4, v4tcp(40021, denied)), offsets: { l3: ETH_LEN, l4: ETH_LEN + IP4_LEN, end: ETH_LEN + IP4_LEN + TCP_LEN, ethertype: ETH_P.IPV4, l4proto: IPPROTO.TCP } },
    { prefix: 'trunc_vlan_ipv6_tcp', frame: vlanTagged(MAC_B, MAC_A, ETH_P.VLAN, 100, ETH_P.IPV6, v6tcp(40022, denied)), offsets: { l3: ETH_LEN + VLAN_LEN, l4: ETH_LEN + VLAN_LEN + IP6_LEN, end: ETH_LEN + VLAN_LEN + IP6_LEN + TCP_LEN, ethertype: ETH_P.IPV6, l4proto: IPPROTO.TCP, vlan: true } },
  ];
  for (const t of truncations) {
    for (let len = 0; len < t.offsets.end; len++) {
      const o = t.offsets;
      // Which fields the parser can fill before the header it stops at.
      const ethertype = len >= o.l3 ? o.ethertype : 0;
      const l4proto = len >= o.l4 ? o.l4proto : 0;
      add({
        name: `${t.prefix}_${String(len).padStart(2, '0')}`,
        description: `${t.prefix.replace('trunc_', '')} frame cut to ${len} bytes`,
        frame: t.frame.slice(0, len),
        verdict: 'pass',
        klass: 'malformed',
        log: { ethertype, l4proto },
      });
    }
  }
  return { deniedPort: denied, allowedPort: allowed, cases };
}

interface Truncation {
  l3: number;
  l4: number;
  end: number;
  ethertype: number;
  l4proto: number;
  vlan?: boolean;
}

/** Writes each frame to `<dir>/<name>.bin`; returns name → path. */
export async function writeCorpus(corpus: Corpus, dir: string): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const c of corpus.cases) {
    const p = join(dir, `${c.name}.bin`);
    await writeFile(p, c.frame);
    out[c.name] = p;
  }
  return out;
}

/** Writes the corpus locally then puts it on the target under `remoteDir`; returns name → remote path. */
export async function putCorpus(target: Target, corpus: Corpus, localDir: string, remoteDir: string): Promise<Record<string, string>> {
  const local = await writeCorpus(corpus, localDir);
  const out: Record<string, string> = {};
  for (const [name, p] of Object.entries(local)) {
    const r = `${remoteDir}/${name}.bin`;
    await target.putFile(p, r);
    out[name] = r;
  }
  return out;
}
