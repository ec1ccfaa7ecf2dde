/**
 * The BPF_PROG_TEST_RUN microbenchmarks, on one Target (the host or a guest):
 *   1. ns per packet of each approach running the trio on a representative IPv6/TCP packet;
 *   2. ns per packet against chain length for each kind of hop, and the fitted cost per hop;
 *   3. load+attach, replace and detach latency of each approach.
 * All but one part is measured with BPF_PROG_TEST_RUN through `bpftool prog run ... repeat R` (the
 * kernel times R runs of the entry program and reports the mean), so no traffic is involved; the
 * TC chains the kernel walks between programs run under live traffic, timed in-band (tc-live.ts).
 * Library code: it reports progress events and returns records; the CLI prints and writes them.
 */
import { LabError, isLabError } from '../errors.ts';
import { phase, silent, type ProgressSink } from '../progress.ts';
import type { Target } from '../target.ts';
import { hookOfApproach, type ApproachName, type LatencyRecord, type MicroRecord } from '../results/record.ts';
import { TC_ACT_OK } from '../bpf/uapi.ts';
import { BPFTOOL_PROG_TYPE } from '../programs/hook.ts';
import { APPROACHES } from '../approaches/index.ts';
import { appendRecord } from '../results/jsonl.ts';
import { cachedFeatures, type KernelFeatures } from '../features.ts';
import type { PatchMode } from '../chain/constants.ts';
import { buildMicroObjects } from '../programs/micro.ts';
import { openSandbox, type Sandbox } from './sandbox.ts';
import {
  SCALING_VARIANTS,
  failureReason,
  loadManualChain,
  loadPatchedChain,
  measureDispatcher,
  measureSlotChains,
  observeMaxChain,
  type Hop,
  type ScalingMeasurement,
  type SlotChain,
  type Unsupported,
} from './scaling.ts';
import { fitPerHop, medianOf, type HopFit } from './stats.ts';
import { MEASURED_APPROACHES, measureApproaches, putRepresentativePacket, type ApproachRow } from './approaches.ts';
import { interpreterRecords, measureInterpreted } from './interpreter.ts';
import { loadTimeRecords, measureLoadTimes } from './load-time.ts';
import { latencyRecord, microRecord, unsupportedRecord, type UnsupportedMicroRecord } from './records.ts';
import { measureTcLiveScaling, tcLiveRecords, type TcLiveSettings } from './tc-live.ts';

export { unsupportedRecord };

export type { Hop, Unsupported, HopFit, ApproachRow, UnsupportedMicroRecord };

export interface MicrobenchOptions {
  runId: string;
  /** Kernel label used in the results (catalog name, or "host"). */
  kernel: string;
  /** Smaller repeat, fewer repetitions and lengths: minutes become seconds. */
  quick: boolean;
  /** BPF_PROG_TEST_RUN repeat per measurement (default 1e6; quick 1e5). */
  repeat?: number;
  /** Measurements per point (default 5; quick 3). */
  repetitions?: number;
  /** Longest tail-call chain measured (default 33, capped by what the kernel runs). */
  maxLength?: number;
  progress?: ProgressSink;
  /** Chain lengths to measure (default 1..maxLength; quick 1,2,4,8,16,maxLength). */
  lengths?: readonly number[];
  /** Dispatcher lengths (default 1..10; quick 1,2,4,8,10). */
  dispatcherLengths?: readonly number[];
  /** Load/attach, replace and detach cycles per approach (default 5; quick 2). */
  latencyCycles?: number;
  /**
   * What to run (default all; `interpreter`: the trio per approach with the JIT off, where the
   * kernel allows, default as `approaches`; `loadTime`: object load and verification time per
   * approach, default as `latency`).
   */
  parts?: { approaches?: boolean; scaling?: boolean; latency?: boolean; interpreter?: boolean; loadTime?: boolean };
  /** The approaches measured per approach and for latency (default every one with a program); the matrix passes its --hook's. */
  approaches?: readonly ApproachName[];
  /** Name prefix of the bench's pins, namespace and interfaces (default "xt8"). */
  prefix?: string;
  /** Probed once per target when absent. */
  features?: KernelFeatures;
  /** Patch modes to measure (default: every mode the kernel supports; [] measures none). */
  patchModes?: readonly PatchMode[];
  /** Stops at the next measurement boundary with LabError('INTERRUPTED'), after cleaning up. */
  signal?: AbortSignal;
  /** The TC chains the kernel walks, under live traffic (with scaling and the TC hook; false: not measured). */
  liveTc?: TcLiveSettings | false;
}

export type MicrobenchRecord = MicroRecord | LatencyRecord;

export interface ScalingRow {
  variant: string;
  hop: Hop;
  explains: string;
  /** length → median ns per packet. */
  medians: Map<number, number>;
  fit: HopFit | null;
  /**
   * Line through the fastest repetition of each length: on a loaded machine the other processes
   * only ever add time, so the minimum is the least disturbed estimate of the hop itself.
   */
  fitMin: HopFit | null;
}

export interface MicrobenchResult {
  target: string;
  kernel: string;
  kernelRelease: string;
  records: MicrobenchRecord[];
  scaling: ScalingRow[];
  approaches: ApproachRow[];
  /** The same rows measured in the BPF interpreter (empty where the JIT cannot be switched off). */
  interpreted: ApproachRow[];
  unsupported: Unsupported[];
  /** Programs one packet ran through our 35-program chain (null when not measured). */
  maxChainPrograms: number | null;
  repeat: number;
  repetitions: number;
  notes: string[];
}

const QUICK_LENGTHS = [1, 2, 4, 8, 16, 33];
const QUICK_DISPATCHER_LENGTHS = [1, 2, 4, 8, 10];
/** libxdp's dispatcher holds at most 10 programs (MAX_DISPATCHER_ACTIONS). */
export const DISPATCHER_MAX = 10;

/** Whether the run measures the TC hook too (every approach by default). */
function measuresTc(opts: Pick<MicrobenchOptions, 'approaches'>): boolean {
  return opts.approaches === undefined || opts.approaches.some((a) => hookOfApproach(a) === 'tc');
}

function checkPositiveInt(name: string, v: number | undefined, min = 1): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) {
    throw new LabError('BAD_INPUT', `microbench: ${name} must be an integer ≥ ${min}, got ${v}`);
  }
}

/** Patch modes this kernel loads: inline everywhere, subprog where tail calls and bpf2bpf mix. */
export function supportedPatchModes(features: KernelFeatures): { modes: PatchMode[]; unsupported: { mode: PatchMode; reason: string }[] } {
  const mix = features.features.tailCallsWithBpf2bpf;
  return mix.ok
    ? { modes: ['subprog', 'inline'], unsupported: [] }
    : { modes: ['inline'], unsupported: [{ mode: 'subprog', reason: `kernel ${features.kernelRelease}: ${mix.detail}` }] };
}

export function dispatcherSupport(features: KernelFeatures): { ok: true } | { ok: false; reason: string } {
  const f = features.features.freplace;
  return f.ok ? { ok: true } : { ok: false, reason: `kernel ${features.kernelRelease}: no freplace for libxdp's dispatcher: ${f.detail}` };
}

/** Fit through every repetition of every length (not through medians): the CI then reflects the noise. */
export function scalingRow(m: ScalingMeasurement): ScalingRow {
  const medians = new Map<number, number>();
  const points: [number, number][] = [];
  const minima: [number, number][] = [];
  for (const [len, values] of [...m.byLength].sort((a, b) => a[0] - b[0])) {
    const med = medianOf(values);
    if (med !== null) medians.set(len, med);
    if (values.length > 0) minima.push([len, Math.min(...values)]);
    for (const v of values) points.push([len, v]);
  }
  return { variant: m.variant, hop: m.hop, explains: m.explains, medians, fit: fitPerHop(points), fitMin: fitPerHop(minima) };
}

/** Runs the microbenchmarks on `target` and returns the records and what the tables need. */
export async function runMicrobenchDetailed(target: Target, opts: MicrobenchOptions): Promise<MicrobenchResult> {
  const progress = opts.progress ?? silent;
  checkPositiveInt('repeat', opts.repeat);
  checkPositiveInt('repetitions', opts.repetitions);
  checkPositiveInt('maxLength', opts.maxLength);
  checkPositiveInt('latencyCycles', opts.latencyCycles, 0);
  for (const l of [...(opts.lengths ?? []), ...(opts.dispatcherLengths ?? []), ...((opts.liveTc && opts.liveTc.lengths) || [])]) checkPositiveInt('chain length', l);
  if (opts.liveTc) for (const [k, v] of [['live TC repetitions', opts.liveTc.repetitions], ['live TC seconds', opts.liveTc.durationS]] as const) checkPositiveInt(k, v);
  const repeat = opts.repeat ?? (opts.quick ? 100_000 : 1_000_000);
  const repetitions = opts.repetitions ?? (opts.quick ? 3 : 5);
  const base = { approaches: true, scaling: true, latency: true, ...opts.parts };
  // The interpreter rows are per-approach rows, the load-time split a latency: each follows its kin.
  const parts = { ...base, interpreter: opts.parts?.interpreter ?? base.approaches, loadTime: opts.parts?.loadTime ?? base.latency };
  const prefix = opts.prefix ?? 'xt8';

  const features = opts.features ?? (await phase(progress, 'micro-features', `${target.name}: probing kernel features`, () => cachedFeatures(target, { prefix })));
  const kernelMax = features.maxChainPrograms ?? 34;
  const maxLength = Math.min(opts.maxLength ?? 33, kernelMax);
  if (opts.maxLength !== undefined && opts.maxLength > kernelMax) {
    throw new LabError('BAD_INPUT', `microbench: --max-length ${opts.maxLength} is longer than kernel ${target.kernelRelease} runs (${kernelMax} programs per packet)`, {
      remedy: `Use a length of at most ${kernelMax}.`,
    });
  }
  const lengths = [...new Set(opts.lengths ?? (opts.quick ? [...QUICK_LENGTHS.filter((l) => l < maxLength), maxLength] : Array.from({ length: maxLength }, (_, i) => i + 1)))].sort((a, b) => a - b);
  const tooLong = lengths.filter((l) => l > kernelMax);
  if (tooLong.length > 0) {
    throw new LabError('BAD_INPUT', `microbench: chain length ${tooLong.join(', ')} is longer than kernel ${target.kernelRelease} runs (${kernelMax} programs per packet)`);
  }
  const dispLengths = [...new Set(opts.dispatcherLengths ?? (opts.quick ? QUICK_DISPATCHER_LENGTHS : Array.from({ length: DISPATCHER_MAX }, (_, i) => i + 1)))].sort((a, b) => a - b);
  if (dispLengths.some((l) => l > DISPATCHER_MAX)) {
    throw new LabError('BAD_INPUT', `microbench: the libxdp dispatcher holds at most ${DISPATCHER_MAX} programs`);
  }

  const checkpoint = (): void => {
    if (opts.signal?.aborted) {
      throw new LabError('INTERRUPTED', `${target.name}: microbenchmark interrupted`, { remedy: 'Rerun it: nothing of this target was recorded (records are appended once its bench is complete).' });
    }
  };
  const result: MicrobenchResult = {
    target: target.name,
    kernel: opts.kernel,
    kernelRelease: target.kernelRelease,
    records: [],
    scaling: [],
    approaches: [],
    interpreted: [],
    unsupported: [],
    maxChainPrograms: null,
    repeat,
    repetitions,
    notes: [],
  };
  const objects = await buildMicroObjects();
  const sb = await openSandbox(target, prefix);
  let interpreterFailed = false;
  try {
    checkpoint();
    const packet = await putRepresentativePacket(sb);
    result.notes.push(`packet: ${packet.description}`);

    // The approaches measured per approach, with the JIT and in the interpreter alike.
    const measured = MEASURED_APPROACHES.filter((a) => opts.approaches === undefined || opts.approaches.includes(a)).map((a) => APPROACHES[a]);
    if (parts.approaches || parts.latency) {
      const out = await measureApproaches(sb, features, {
        packet: packet.path,
        repeat,
        repetitions,
        latencyCycles: parts.latency ? (opts.latencyCycles ?? (opts.quick ? 2 : 5)) : 0,
        perPacket: parts.approaches,
        stageSuffixes: true,
        approaches: measured,
        progress,
        checkpoint,
      });
      result.approaches.push(...out.rows);
      result.unsupported.push(...out.unsupported);
      for (const row of out.rows) {
        if (row.nsPerPacket.length > 0) result.records.push(microRecord(target, opts, row.variant, row.hop, row.chainLength, repeat, row.nsPerPacket));
      }
      for (const u of out.unsupported) if (parts.approaches) result.records.push(unsupportedRecord(target, opts, u, repeat, u.variant === 'fused' || u.variant === 'tc-fused' ? 1 : 3));
      for (const l of out.latency) {
        result.records.push(latencyRecord(target, opts, l.approach, l.operation, l.ms));
      }
      result.notes.push(...out.notes);
    }

    if (parts.loadTime) {
      checkpoint();
      const cycles = opts.latencyCycles ?? (opts.quick ? 2 : 5);
      const lt = await phase(progress, 'micro-load-time', `${target.name}: object load and verification time × ${cycles} per approach`, () => measureLoadTimes(sb, measured.map((a) => a.name), cycles, checkpoint));
      const out = loadTimeRecords(target, opts, lt);
      result.records.push(...out.records);
      result.notes.push(...out.notes);
    }

    if (parts.scaling) {
      checkpoint();
      result.maxChainPrograms = await phase(progress, 'micro-max', `${target.name}: longest chain the kernel runs`, () => observeMaxChain(sb, objects.chainCount, packet.path));
      if (features.maxChainPrograms !== null && features.maxChainPrograms !== result.maxChainPrograms) {
        result.notes.push(`the feature probe counted ${features.maxChainPrograms} programs per packet, the bench's chain ${result.maxChainPrograms}`);
      }
      const longest = lengths[lengths.length - 1]!;
      if (longest > result.maxChainPrograms) {
        throw new LabError('BENCH', `${target.name}: kernel ran only ${result.maxChainPrograms} programs of a 35-program chain; cannot measure length ${longest}`, {
          remedy: `Pass --max-length ${result.maxChainPrograms}.`,
        });
      }

      const add = (m: ScalingMeasurement): void => {
        result.scaling.push(scalingRow(m));
        for (const [len, ns] of m.byLength) result.records.push(microRecord(target, opts, m.variant, m.hop, len, repeat, ns));
      };
      // Every slot chain is loaded first and then measured interleaved, repetition by repetition,
      // so that a drift of the machine moves all variants alike and their differences (the cost
      // breakdown) stay honest.
      const chains: SlotChain[] = [];
      try {
        const load = async (label: string, make: () => Promise<SlotChain>): Promise<void> => {
          checkpoint();
          chains.push(await phase(progress, `micro-load-${label}`, `${target.name}: loading ${label}`, make));
        };
        await load('manual-constant', () => loadManualChain(sb, SCALING_VARIANTS.manualConstant, objects.chainConstant, false));
        await load('manual-indirect', () => loadManualChain(sb, SCALING_VARIANTS.manualIndirect, objects.chainIndirect, true));
        await load('manual-end-lookup', () => loadManualChain(sb, SCALING_VARIANTS.manualEndLookup, objects.chainEndLookup, false));
        if (measuresTc(opts)) {
          // The TC manual chain's hop: the same tail calls between sched_cls programs.
          await load('tc-manual-constant', () => loadManualChain(sb, SCALING_VARIANTS.tcManualConstant, objects.tcChainConstant, false, { type: BPFTOOL_PROG_TYPE.tc, pass: TC_ACT_OK }));
        }

        const supported = supportedPatchModes(features);
        const modes = opts.patchModes ? supported.modes.filter((m) => opts.patchModes!.includes(m)) : supported.modes;
        for (const u of supported.unsupported) {
          const info = SCALING_VARIANTS.patched(u.mode);
          result.unsupported.push({ variant: info.variant, hop: info.hop, status: 'unsupported', reason: u.reason });
        }
        for (const mode of modes) {
          try {
            await load(`patched-${mode}`, () => loadPatchedChain(sb, mode, objects.pass, longest, features, progress));
          } catch (e) {
            // A mode the probe allowed but the patcher or the verifier refuses is a finding recorded
            // with its reason; the other variants are still measured.
            const info = SCALING_VARIANTS.patched(mode);
            result.unsupported.push({ variant: info.variant, hop: info.hop, status: 'failed', reason: failureReason(e) });
          }
        }
        const id = 'micro-scaling';
        await phase(progress, id, `${target.name}: ${chains.map((c) => c.variant.replace(/^chain\//, '')).join(', ')} interleaved, lengths ${lengths[0]}..${longest}, ${repetitions} × ${repeat}`, async () => {
          const measured = await measureSlotChains(target, chains, lengths, packet.path, repeat, repetitions, (rep) => {
            progress({ kind: 'phase-progress', id, done: rep, total: repetitions });
            checkpoint();
          });
          for (const m of measured) add(m);
        });
      } finally {
        for (const c of chains) await c.teardown().catch(() => undefined);
      }

      const disp = dispatcherSupport(features);
      if (!disp.ok) {
        result.unsupported.push({ variant: SCALING_VARIANTS.dispatcher.variant, hop: SCALING_VARIANTS.dispatcher.hop, status: 'unsupported', reason: disp.reason });
      } else {
        try {
          await phase(progress, 'micro-dispatcher', `${target.name}: dispatcher, lengths ${dispLengths.join(',')}`, async () => {
            add(
              await measureDispatcher(sb, objects.pass, dispLengths, packet.path, repeat, repetitions, (len) => {
                progress({ kind: 'phase-progress', id: 'micro-dispatcher', done: dispLengths.indexOf(len) + 1, total: dispLengths.length });
                checkpoint();
              }),
            );
          });
        } catch (e) {
          const d = SCALING_VARIANTS.dispatcher;
          result.unsupported.push({ variant: d.variant, hop: d.hop, status: 'failed', reason: failureReason(e) });
        }
      }
      // The chains the kernel walks (cls_bpf priorities, tcx) under live traffic, timed in-band.
      if (measuresTc(opts) && opts.liveTc !== false) {
        checkpoint();
        const live = await phase(progress, 'micro-tc-live', `${target.name}: TC chains under live traffic (filters, tcx, tail calls), timed in-band`, () =>
          measureTcLiveScaling(sb, { ...opts.liveTc, quick: opts.quick, maxTailPrograms: result.maxChainPrograms, envName: `${prefix}lv`, progress, phaseId: 'micro-tc-live', checkpoint }));
        result.scaling.push(...live.measurements.map(scalingRow));
        result.records.push(...tcLiveRecords(target, opts, live));
        result.unsupported.push(...live.unsupported);
      }
      for (const u of result.unsupported.filter((x) => x.variant.startsWith('chain/'))) result.records.push(unsupportedRecord(target, opts, u, repeat));
    }
    // Last, and contained: the interpreter is the kernel's least exercised path (Debian's 6.12.117
    // oopsed in bpf_test_run under it and took the guest down). A failure there is recorded with
    // its reason and keeps every record measured before it.
    if (parts.interpreter) {
      checkpoint();
      try {
        const out = await measureInterpreted(sb, features, { packet: packet.path, repeat, repetitions, progress, checkpoint, approaches: measured });
        const recs = interpreterRecords(target, opts, out, repeat, measured.map((a) => a.name));
        result.records.push(...recs.records);
        result.notes.push(...recs.notes);
        if ('measured' in out) result.interpreted.push(...out.measured.rows);
      } catch (e) {
        if (isLabError(e, 'INTERRUPTED')) throw e;
        interpreterFailed = true;
        const reason = failureReason(e);
        result.notes.push(`interpreter: failed: ${reason}`);
        result.records.push(...measured.map((a): MicroRecord => ({ ...unsupportedRecord(target, opts, { variant: a.name, hop: 'none', status: 'failed', reason }, repeat), execution: 'interpreter' })));
      }
    }
    for (const u of result.unsupported) progress({ kind: 'log', level: 'warn', message: `${target.name}: ${u.variant} ${u.status === 'failed' ? 'FAILED' : 'not supported'}: ${u.reason}` });
  } finally {
    // What was measured still counts when the cleanup fails (a target lost in the interpreter part
    // cannot be cleaned up at all); the warning names what is left and how to remove it.
    await sb.dispose().catch((e: unknown) => {
      const after = interpreterFailed ? ' after the interpreter part failed' : '';
      progress({ kind: 'log', level: 'warn', message: `${target.name}: sandbox not cleaned up${after}: ${failureReason(e)}` });
    });
  }
  return result;
}

/**
 * For the matrix and the CLI: runs the microbenchmarks on `target` (host or guest) and appends every
 * record to `rawFile` (results/<run-id>/raw.jsonl), one complete line per record. Records are
 * appended only when the whole bench of this target finished, so an interrupted target leaves no
 * half-measured variant behind.
 *
 * Cost: the full bench takes about 3 minutes on this host's kernel, 8 when the machine is busy
 * (mostly the indirect chains: Σ lengths × ~22 ns × 1e6 × repetitions). Under TCG every ns is tens of ns: pass `quick: true`
 * (repeat 1e5, 3 repetitions, 6 lengths) or a smaller `repeat` for emulated guests.
 */
export async function runMicrobenchToFile(target: Target, rawFile: string, opts: MicrobenchOptions): Promise<MicrobenchResult> {
  const result = await runMicrobenchDetailed(target, opts);
  for (const r of result.records) await appendRecord(rawFile, r);
  return result;
}

export type { Sandbox };
