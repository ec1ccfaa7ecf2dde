/**
 * What user space knows about the trio: its stages, the map names every variant shares, the
 * configuration (deny list, log sampling) and how to read the counters and the log records (per
 * packet class, lab/packets/classes.ts). Layouts here mirror programs/common.h, metrics.h and
 * logger.h; change them together.
 */
import type { Target } from '../target.ts';
import { LabError } from '../errors.ts';
import { mapDump, mapUpdate, mapDelete, type MapEntry } from '../bpftool/index.ts';
import { u16le, u32le } from '../bytes.ts';
import { PACKET_CLASSES, type PacketClass } from '../packets/classes.ts';

/** The three jobs, in chain order. */
export type Stage = 'filter' | 'metrics' | 'logger';
export const STAGES: readonly Stage[] = ['filter', 'metrics', 'logger'];

/** Map names, identical in every object that has the map (so pins can be shared). */
export const MAP_NAMES = {
  denyPorts: 'deny_ports',
  metrics: 'metrics_stats',
  logConfig: 'log_config',
  logState: 'log_state',
  logEvents: 'log_events',
  chain: 'chain_jmp',
} as const;

/** Program (function) names in the objects. */
export const PROGRAM_NAMES: Record<Stage | 'fused', string> = {
  filter: 'xdp_filter',
  metrics: 'xdp_metrics',
  logger: 'xdp_logger',
  fused: 'xdp_fused',
};

/** Objects (build/bpf/<name>.o) of each approach that runs the trio from standalone objects. */
export const OBJECTS = {
  standalone: { filter: 'filter', metrics: 'metrics', logger: 'logger' } as Record<Stage, string>,
  /** Manual chain: stage → object; the slot of chain_jmp each stage occupies. */
  manual: { filter: 'filter_manual', metrics: 'metrics_manual', logger: 'logger' } as Record<Stage, string>,
  manualSlots: { filter: 0, metrics: 1, logger: 2 } as Record<Stage, number>,
  fused: 'fused',
} as const;

/** The TC hook's programs (programs/hook.h: -DXCL_HOOK_TC names them tc_<job>). */
export const TC_PROGRAM_NAMES: Record<Stage | 'fused', string> = {
  filter: 'tc_filter',
  metrics: 'tc_metrics',
  logger: 'tc_logger',
  fused: 'tc_fused',
};

/** The TC hook's objects (lab/programs/build.ts VARIANTS), laid out as OBJECTS is for XDP. */
export const TC_OBJECTS = {
  standalone: { filter: 'tc_filter', metrics: 'tc_metrics', logger: 'tc_logger' } as Record<Stage, string>,
  manual: { filter: 'tc_filter_manual', metrics: 'tc_metrics_manual', logger: 'tc_logger' } as Record<Stage, string>,
  manualSlots: OBJECTS.manualSlots,
  /**
   * A chain the kernel runs (cls_bpf priorities, tcx): the first two stages pass with
   * TC_ACT_UNSPEC so the next program runs; the last is the plain logger, whose TC_ACT_OK is final.
   */
  continuing: { filter: 'tc_filter_next', metrics: 'tc_metrics_next', logger: 'tc_logger' } as Record<Stage, string>,
  fused: 'tc_fused',
} as const;

export interface TrioConfig {
  /** TCP destination ports the filter drops. */
  denyPorts: number[];
  /** Logger samples 1 packet in N per CPU; 0 turns it off. */
  logSampleN: number;
}

/**
 * The configuration approaches apply when they load: a deny list that does not touch the traffic
 * the bench sends (iperf3 uses 5201, ping is ICMPv6) and a light log sampling, so every job does
 * real work on every packet without changing the measured flow.
 */
export const DEFAULT_TRIO_CONFIG: TrioConfig = { denyPorts: [23, 2323, 4444], logSampleN: 64 };

/** Writes the deny list and the sampling rate into the maps pinned in `mapsDir` (those present). */
export async function applyTrioConfig(target: Target, mapsDir: string, cfg: TrioConfig, present?: readonly string[]): Promise<void> {
  const has = (n: string): boolean => present === undefined || present.includes(n);
  if (has(MAP_NAMES.denyPorts)) {
    const ref = { pinned: `${mapsDir}/${MAP_NAMES.denyPorts}` };
    for (const e of await mapDump(target, ref)) await mapDelete(target, ref, e.key);
    for (const p of cfg.denyPorts) {
      if (!Number.isInteger(p) || p < 0 || p > 65535) throw new LabError('BAD_INPUT', `deny port ${p} is not a TCP port (0-65535)`);
      await mapUpdate(target, ref, u16le(p), [1]);
    }
  }
  if (has(MAP_NAMES.logConfig)) {
    if (!Number.isInteger(cfg.logSampleN) || cfg.logSampleN < 0 || cfg.logSampleN > 0xffffffff) {
      throw new LabError('BAD_INPUT', `log sampling N=${cfg.logSampleN} must be an integer >= 0 (0 = off)`);
    }
    await mapUpdate(target, { pinned: `${mapsDir}/${MAP_NAMES.logConfig}` }, u32le(0), u32le(cfg.logSampleN));
  }
}

export interface ClassCounters {
  packets: number;
  bytes: number;
}

export type MetricsSnapshot = Record<PacketClass, ClassCounters>;

export function emptyMetrics(): MetricsSnapshot {
  return Object.fromEntries(PACKET_CLASSES.map((c) => [c, { packets: 0, bytes: 0 }])) as MetricsSnapshot;
}

/** Sums the per-CPU counters of a metrics_stats dump. */
export function metricsFromDump(entries: readonly MapEntry[]): MetricsSnapshot {
  const out = emptyMetrics();
  for (const e of entries) {
    const k = new DataView(e.key.buffer, e.key.byteOffset, e.key.byteLength).getUint32(0, true);
    const cls = PACKET_CLASSES[k];
    if (cls === undefined) continue;
    for (const v of e.values ?? (e.value ? [{ cpu: 0, value: e.value }] : [])) {
      const dv = new DataView(v.value.buffer, v.value.byteOffset, v.value.byteLength);
      out[cls].packets += Number(dv.getBigUint64(0, true));
      out[cls].bytes += Number(dv.getBigUint64(8, true));
    }
  }
  return out;
}

/** Reads metrics_stats pinned in `mapsDir`, summed over CPUs. */
export async function readMetrics(target: Target, mapsDir: string): Promise<MetricsSnapshot> {
  return metricsFromDump(await mapDump(target, { pinned: `${mapsDir}/${MAP_NAMES.metrics}` }));
}

export function totalPackets(m: MetricsSnapshot): number {
  return PACKET_CLASSES.reduce((s, c) => s + m[c].packets, 0);
}

/** struct log_record in programs/logger.h. */
export interface LogRecord {
  tsNs: bigint;
  seq: number;
  ifindex: number;
  len: number;
  ethertype: number;
  sport: number;
  dport: number;
  l4proto: number;
  klass: PacketClass | `unknown(${number})`;
}

export const LOG_RECORD_SIZE = 32;

export function parseLogRecord(data: Uint8Array): LogRecord {
  if (data.byteLength < LOG_RECORD_SIZE) {
    throw new LabError('BAD_INPUT', `log record is ${data.byteLength} bytes, expected at least ${LOG_RECORD_SIZE}`);
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const k = dv.getUint8(31);
  return {
    tsNs: dv.getBigUint64(0, true),
    seq: Number(dv.getBigUint64(8, true)),
    ifindex: dv.getUint32(16, true),
    len: dv.getUint32(20, true),
    ethertype: dv.getUint16(24, true),
    sport: dv.getUint16(26, true),
    dport: dv.getUint16(28, true),
    l4proto: dv.getUint8(30),
    klass: PACKET_CLASSES[k] ?? `unknown(${k})`,
  };
}
