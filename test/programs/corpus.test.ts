import { describe, expect, it } from 'vitest';
import { buildCorpus } from '../../lab/packets/corpus.ts';
import { inetChecksum, ipv6 } from '../../lab/packets/frames.ts';

describe('packet corpus', () => {
  const corpus = buildCorpus({ deniedPort: 23, allowedPort: 80 });
  const byName = new Map(corpus.cases.map((c) => [c.name, c]));

  it('has every kind of frame the programs distinguish', () => {
    for (const name of ['ipv6_tcp_denied', 'ipv6_tcp_allowed', 'ipv4_tcp_denied', 'ipv4_tcp_allowed', 'icmpv6_ns', 'icmpv6_na', 'ipv6_udp_to_denied_port', 'vlan_ipv6_tcp_denied', 'arp_request']) {
      expect(byName.has(name), name).toBe(true);
    }
  });

  it('has every truncation length from 0 to one byte short of the full header stack', () => {
    for (const [prefix, full] of [['trunc_ipv6_tcp', 74], ['trunc_ipv4_tcp', 54], ['trunc_vlan_ipv6_tcp', 78]] as const) {
      const lens = corpus.cases.filter((c) => c.name.startsWith(`${prefix}_`)).map((c) => c.frame.length).sort((a, b) => a - b);
      expect(lens).toEqual(Array.from({ length: full }, (_, i) => i));
    }
  });

  it('names are unique and file-safe', () => {
    expect(new Set(corpus.cases.map((c) => c.name)).size).toBe(corpus.cases.length);
    for (const c of corpus.cases) expect(c.name).toMatch(/^[a-z0-9_-]+$/);
  });

  it('puts the denied port where a parser finds the TCP destination port', () => {
    const f = byName.get('ipv6_tcp_denied')!.frame;
    expect((f[12]! << 8) | f[13]!).toBe(0x86dd);
    expect(f[14 + 6]).toBe(6); // next header TCP
    expect((f[14 + 40 + 2]! << 8) | f[14 + 40 + 3]!).toBe(23);
    const v = byName.get('vlan_ipv6_tcp_denied')!.frame;
    expect((v[12]! << 8) | v[13]!).toBe(0x8100);
    expect((v[18 + 40 + 2]! << 8) | v[18 + 40 + 3]!).toBe(23);
  });

  it('builds valid IPv4 header checksums and ICMPv6 checksums', () => {
    const ip4 = byName.get('ipv4_tcp_allowed')!.frame.slice(14, 34);
    expect(inetChecksum(ip4)).toBe(0);
    const na = byName.get('icmpv6_na')!.frame;
    const src = na.slice(22, 38);
    const dst = na.slice(38, 54);
    const msg = na.slice(54);
    const pseudo = new Uint8Array([...src, ...dst, 0, 0, 0, msg.length, 0, 0, 0, 58]);
    expect(inetChecksum(pseudo, msg)).toBe(0);
    expect(na[54]).toBe(136);
  });

  it('expects drops only for TCP to the denied port that a parser can reach', () => {
    const drops = corpus.cases.filter((c) => c.verdict === 'drop').map((c) => c.name).sort();
    expect(drops).toEqual(['ipv4_options_tcp_denied', 'ipv4_tcp_denied', 'ipv6_tcp_denied', 'ipv6_tcp_denied_payload', 'qinq_ipv4_tcp_denied', 'vlan_ipv6_tcp_denied']);
    for (const c of corpus.cases.filter((x) => x.name.startsWith('trunc_'))) {
      expect(c.verdict).toBe('pass');
      expect(c.klass).toBe('malformed');
    }
  });

  it('marks frames shorter than an Ethernet header as not test-runnable', () => {
    for (const c of corpus.cases) expect(c.testRunnable).toBe(c.frame.length >= 14);
  });

  it('marks for TC also the IPv4/IPv6 frames cut inside their network header (VLAN-tagged ones are runnable)', () => {
    const tcOnly = corpus.cases.filter((c) => c.testRunnable && !c.tcTestRunnable).map((c) => c.name);
    const range = (p: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${p}_${from + i}`);
    expect(tcOnly.sort()).toEqual([...range('trunc_ipv6_tcp', 14, 54), ...range('trunc_ipv4_tcp', 14, 34)].sort());
    for (const c of corpus.cases) if (c.tcTestRunnable) expect(c.testRunnable).toBe(true);
  });

  it('parses IPv6 addresses with ::', () => {
    expect(Array.from(ipv6('fc00:dead:cafe:1::2'))).toEqual([0xfc, 0, 0xde, 0xad, 0xca, 0xfe, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
  });
});
