/**
 * The raw records the microbenchmarks write (lab/results/record.ts): a measured variant, a variant
 * not measured with its reason, and a latency series. One place builds them, so every part of the
 * bench stamps kernel, accelerator and clock the same way.
 */
import type { Target } from '../target.ts';
import { measuredOnFields, SCHEMA_VERSION, type ApproachName, type LatencyRecord, type MicroRecord } from '../results/record.ts';
import type { Unsupported } from './scaling.ts';

/** Which run and kernel label the records belong to. */
export interface RecordStamp {
  runId: string;
  kernel: string;
}

/**
 * A MicroRecord of a variant not measured on this kernel: no measurements (nsPerPacket []) and the
 * reason, "unsupported: ..." (the kernel cannot) or "failed: ...".
 */
export type UnsupportedMicroRecord = MicroRecord & { reason: string };

export function microRecord(target: Target, stamp: RecordStamp, variant: string, hop: string, chainLength: number, repeat: number, ns: number[]): MicroRecord {
  return {
    kind: 'micro',
    ...measuredOnFields(target, stamp.runId, stamp.kernel),
    variant,
    chainLength,
    hop,
    repeat,
    nsPerPacket: ns,
  };
}

export function unsupportedRecord(target: Target, stamp: RecordStamp, u: Unsupported, repeat: number, chainLength = 1): UnsupportedMicroRecord {
  return { ...microRecord(target, stamp, u.variant, u.hop, chainLength, repeat, []), reason: `${u.status}: ${u.reason}` };
}

export function latencyRecord(target: Target, stamp: RecordStamp, approach: ApproachName, operation: LatencyRecord['operation'], ms: number[]): LatencyRecord {
  return { kind: 'latency', schema: SCHEMA_VERSION, runId: stamp.runId, kernel: stamp.kernel, accelerator: target.accelerator, clock: target.clock ?? 'wall', approach, operation, ms };
}
