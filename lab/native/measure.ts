/**
 * The native baseline on one target, as records: ns per packet of the module on the representative
 * packet (MicroRecord variant "native", like BPF_PROG_TEST_RUN's duration / repeat) and its
 * insertion time, or "not measured" with the reason (no module support, no headers, the build or
 * insmod failing). Ratios to native of the BPF variants measured on the same kernel in the same run.
 */
import { errorMessage, isLabError } from '../errors.ts';
import type { Target } from '../target.ts';
import { measuredOnFields, type MicroRecord } from '../results/record.ts';
import { NATIVE_CHAIN_VARIANT, NATIVE_COMPARED, NATIVE_VARIANT } from '../results/variants.ts';
import type { KernelImage } from '../kernels/types.ts';
import { buildCorpus } from '../packets/corpus.ts';
import { DEFAULT_TRIO_CONFIG } from '../programs/trio.ts';
import { imageFacts, moduleHeaders } from './headers.ts';
import { buildNativeModule } from './build.ts';
import { insertModule, moduleSupport, nativeDepthNs, nativeNsPerPacket, removeModule } from './run.ts';

export interface NativeOptions {
  runId: string;
  kernel: string;
  /** The corpus case timed (the microbench's representative packet). */
  caseName: string;
  repeat: number;
  repetitions: number;
  /** insmod/rmmod cycles timed (at least 1: the one the measurement runs in). */
  insertCycles: number;
  /**
   * Also chains of this many nested native calls (variant NATIVE_CHAIN_VARIANT), against the
   * microbench's tail-call chains of as many programs; none when empty or absent.
   */
  depths?: readonly number[];
}

export interface NativeMeasurement {
  /** nsPerPacket empty and `reason` set when not measured; insertMs: insmod's wall time per cycle. */
  record: MicroRecord;
  /** One record per depth asked for, measured or not (then with the same reason). */
  chain: MicroRecord[];
}

function chainRecords(target: Target, o: NativeOptions, byDepth: ReadonlyMap<number, number[]> | null, reason?: string): MicroRecord[] {
  return (o.depths ?? []).map((d) => ({
    kind: 'micro',
    ...measuredOnFields(target, o.runId, o.kernel),
    variant: NATIVE_CHAIN_VARIANT,
    chainLength: d,
    hop: 'native-call',
    repeat: o.repeat,
    nsPerPacket: byDepth?.get(d) ?? [],
    ...(reason ? { reason } : {}),
  }));
}

function record(target: Target, o: NativeOptions, ns: number[], reason?: string, insertMs?: number[]): MicroRecord {
  return {
    kind: 'micro',
    ...measuredOnFields(target, o.runId, o.kernel),
    variant: NATIVE_VARIANT,
    chainLength: 1,
    hop: 'none',
    repeat: o.repeat,
    nsPerPacket: ns,
    ...(reason ? { reason } : {}),
    ...(insertMs ? { insertMs } : {}),
  };
}

/** `image`: the kernel the target booted (null on the host, which the lab did not provide). */
export async function measureNative(target: Target, image: KernelImage | null, o: NativeOptions): Promise<NativeMeasurement> {
  const none = (reason: string): NativeMeasurement => ({ record: record(target, o, [], reason), chain: chainRecords(target, o, null, reason) });
  const support = await moduleSupport(target);
  if (!support.ok) return none(`unsupported: ${support.reason}`);
  if (!image) return none(`unsupported: kernel ${target.kernelRelease} on ${target.name}: no module build headers known for a kernel the lab did not provide`);
  const frame = buildCorpus().cases.find((c) => c.name === o.caseName)?.frame;
  if (!frame) return none(`failed: the packet corpus has no case "${o.caseName}"`);
  let ko: string;
  try {
    ko = await buildNativeModule(await moduleHeaders(await imageFacts(image)));
  } catch (e) {
    if (isLabError(e, 'UNSUPPORTED')) return none(`unsupported: ${e.message}`);
    throw e;
  }
  const insertMs: number[] = [];
  try {
    for (let i = 0; i < Math.max(1, o.insertCycles); i++) {
      if (i > 0) await removeModule(target);
      insertMs.push((await insertModule(target, ko)).insertMs);
    }
    const ns = await nativeNsPerPacket(target, frame, DEFAULT_TRIO_CONFIG, o.repeat, o.repetitions);
    const byDepth = o.depths && o.depths.length > 0 ? await nativeDepthNs(target, o.depths, o.repeat, o.repetitions) : null;
    return { record: record(target, o, ns, undefined, insertMs), chain: chainRecords(target, o, byDepth) };
  } finally {
    await removeModule(target).catch(() => undefined);
  }
}

/**
 * measureNative for a run that goes on whatever happens here (the matrix): a failure (the build,
 * insmod, the measurement) becomes the record's "failed: ..." reason; only an interruption throws.
 */
export async function measureNativeContained(target: Target, image: KernelImage | null, o: NativeOptions): Promise<NativeMeasurement> {
  try {
    return await measureNative(target, image, o);
  } catch (e) {
    if (isLabError(e, 'INTERRUPTED')) throw e;
    const reason = `failed: ${errorMessage(e).replace(/\s*\n\s*/g, ' ')}`;
    return { record: record(target, o, [], reason), chain: chainRecords(target, o, null, reason) };
  }
}

export interface NativeRatio {
  variant: string;
  /** Median ns per packet of the variant and of native, and their ratio. */
  ns: number;
  nativeNs: number;
  ratio: number;
}

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Each measured JIT variant of one kernel's microbench records against that kernel's native row
 * (medians; interpreter rows and chain-length rows left out). Empty when native was not measured.
 */
export function nativeRatios(records: readonly MicroRecord[], kernel: string, variants: readonly string[] = NATIVE_COMPARED): NativeRatio[] {
  const of = (v: string) => records.find((r) => r.kernel === kernel && r.variant === v && (r.execution ?? 'jit') === 'jit' && r.nsPerPacket.length > 0);
  const nativeNs = median(of(NATIVE_VARIANT)?.nsPerPacket ?? []);
  if (nativeNs === null || nativeNs <= 0) return [];
  const out: NativeRatio[] = [];
  for (const v of variants) {
    const ns = median(of(v)?.nsPerPacket ?? []);
    if (ns !== null) out.push({ variant: v, ns, nativeNs, ratio: ns / nativeNs });
  }
  return out;
}
