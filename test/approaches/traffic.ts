/**
 * What the live-traffic tests of both hooks share: the ping they send, the frame sizes it makes
 * on the wire, and the two ways of counting it (the metrics map's delta, the logger's records).
 */
import { PACKET_CLASSES } from '../../lab/packets/classes.ts';
import type { LogRecord, MetricsSnapshot } from '../../lab/programs/trio.ts';

export const PING_COUNT = 10;
export const PING_SIZE = 1000;
/** Ethernet + IPv6 + ICMPv6 echo header + payload (at TC ingress skb->len includes the MAC header too). */
export const PING_FRAME = 14 + 40 + 8 + PING_SIZE;
/** Neighbour solicitation with a source link-layer address option. */
export const NS_FRAME = 14 + 40 + 24 + 8;

export function delta(after: MetricsSnapshot, before: MetricsSnapshot): MetricsSnapshot {
  return Object.fromEntries(PACKET_CLASSES.map((c) => [c, { packets: after[c].packets - before[c].packets, bytes: after[c].bytes - before[c].bytes }])) as MetricsSnapshot;
}

/** The per-class counts the logger's records imply, to compare with the metrics map. */
export function fromRecords(records: readonly LogRecord[]): MetricsSnapshot {
  const m = Object.fromEntries(PACKET_CLASSES.map((c) => [c, { packets: 0, bytes: 0 }])) as MetricsSnapshot;
  for (const r of records) {
    const k = r.klass as (typeof PACKET_CLASSES)[number];
    m[k].packets += 1;
    m[k].bytes += r.len;
  }
  return m;
}
