/**
 * Per-approach microbenchmarks: the trio (filter → metrics → logger) loaded by each approach exactly
 * as the iperf3 bench loads it (the Approach interface), then
 *   - ns per packet: BPF_PROG_TEST_RUN on the entry program with the representative IPv6/TCP packet;
 *   - load+attach, replace (the metrics stage) and detach latency, timed around the approach's own
 *     calls on a veth in the bench's namespace.
 * The patched approach is measured once per patch mode the kernel supports (patched.withMode).
 * TC approaches are test-run as sched_cls on the same frame (as an skb), expecting TC_ACT_OK; one
 * whose programs the kernel walks itself ('tc-next': cls_bpf priorities, tcx) has no entry program
 * running the chain, so it is recorded as not runnable by test-run, beside a separate row of the
 * sum of its stages each test-run alone (the kernel's walk between them not included).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError, isLabError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import { putBytes } from '../target.ts';
import { kernelWalksChain, type Approach, type ApproachContext, type Description } from '../approaches/approach.ts';
import { APPROACH_NAMES, hookOfApproach, type ApproachName } from '../results/record.ts';
import { OBJECTS, STAGES, TC_OBJECTS, type Stage } from '../programs/trio.ts';
import { fromStageVariant } from '../results/variants.ts';
import { STAGE_SUFFIX_UNITS, notTestRunnableReason, sumOfStagesVariant } from './variants.ts';
import { APPROACHES } from '../approaches/index.ts';
import { patched } from '../approaches/patched.ts';
import type { KernelFeatures } from '../features.ts';
import type { PatchMode } from '../chain/constants.ts';
import { buildCorpus } from '../packets/corpus.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../programs/build.ts';
import { TC_ACT_OK, TC_ACT_UNSPEC, XDP_PASS } from '../bpf/uapi.ts';
import { progRunBatch, progRunWords } from './runner.ts';
import type { Sandbox } from './sandbox.ts';
import { failureReason, type Hop, type Unsupported } from './scaling.ts';

/** The corpus case the per-approach numbers use: goes through all three programs and passes. */
export const REPRESENTATIVE_CASE = 'ipv6_tcp_allowed';

export interface PacketOnTarget {
  path: string;
  description: string;
  bytes: number;
}

/** Puts the representative IPv6/TCP frame of the packet corpus (lab/packets) on the target. */
export async function putRepresentativePacket(sb: Sandbox): Promise<PacketOnTarget> {
  const c = buildCorpus().cases.find((x) => x.name === REPRESENTATIVE_CASE);
  if (!c) throw new LabError('BENCH', `packet corpus has no case "${REPRESENTATIVE_CASE}"`, { remedy: 'lab/packets/corpus.ts changed: pick another IPv6/TCP case that passes the trio.' });
  const remote = `${sb.workDir}/${c.name}.bin`;
  await putBytes(sb.target, c.frame, remote);
  return { path: remote, description: `${c.name}: ${c.description}, ${c.frame.length} bytes`, bytes: c.frame.length };
}

export interface ApproachRow {
  /** "fused", "manual", "dispatcher", "patched-subprog", "patched-inline". */
  variant: string;
  approach: ApproachName;
  hop: Hop;
  /** Programs a packet goes through (1 for fused). */
  chainLength: number;
  nsPerPacket: number[];
  notes: string[];
}

export interface LatencyRow {
  approach: ApproachName;
  operation: 'load-attach' | 'replace' | 'detach';
  ms: number[];
}

export interface ApproachMeasureOptions {
  packet: string;
  repeat: number;
  repetitions: number;
  /** Load/attach → replace → detach cycles (0: no latency records). */
  latencyCycles: number;
  /** Measure ns per packet (on the first cycle). */
  perPacket: boolean;
  progress: ProgressSink;
  /** Throws when the bench must stop (called between cycles). */
  checkpoint?: () => void;
  /** Approaches to measure (default: the lab's fused, manual, dispatcher, patched). */
  approaches?: readonly Approach[];
  /**
   * Also test-run the XDP manual and patched chains from each later stage on (STAGE_SUFFIX_UNITS):
   * the difference between two suffixes is one stage and its hop, which splits a chain's cost by
   * program (lab/results/breakdown.ts).
   */
  stageSuffixes?: boolean;
}

export interface ApproachMeasurement {
  rows: ApproachRow[];
  latency: LatencyRow[];
  unsupported: Unsupported[];
  notes: string[];
}

/** The baselines attach no program: nothing to time. */
const BASELINES: readonly ApproachName[] = ['none', 'tc-none'];
/** The approaches the bench measures, in table order: every registered one with a program to time. */
export const MEASURED_APPROACHES: readonly ApproachName[] = APPROACH_NAMES.filter((a) => !BASELINES.includes(a));

/** The verdict of the representative packet at the end of the trio on the approach's hook. */
export function passVerdict(approach: ApproachName): number {
  return hookOfApproach(approach) === 'tc' ? TC_ACT_OK : XDP_PASS;
}

/** Copies build/bpf/*.o to the target (building them first when needed). */
async function putTrioObjects(sb: Sandbox): Promise<string> {
  await buildPrograms();
  const dir = `${sb.workDir}/bpf`;
  const files = (await readdir(DEFAULT_OUT_DIR)).filter((f) => f.endsWith('.o'));
  for (const f of files) await sb.target.putFile(join(DEFAULT_OUT_DIR, f), `${dir}/${f}`);
  return dir;
}

/**
 * The object a stage is replaced with: the same program rebuilt (a real swap, same behaviour).
 * Approaches disagree on whose path replace() takes: manual loads it with bpftool on the target,
 * patched reads it on the machine running the lab (it patches it here first). On the host both are
 * the same file; on a guest each gets the path it reads.
 */
function replacementObject(objectDir: string, approach: ApproachName, stage: Stage): string {
  if (approach === 'patched') return join(DEFAULT_OUT_DIR, `${OBJECTS.standalone[stage]}.o`);
  if (approach === 'tc-patched') return join(DEFAULT_OUT_DIR, `${TC_OBJECTS.standalone[stage]}.o`);
  if (hookOfApproach(approach) === 'tc') {
    // Loaded on the target: the manual chain's stages tail-call, a kernel-walked chain's continue
    // with TC_ACT_UNSPEC (its last stage is the plain logger in both).
    const objects = approach === 'tc-manual' ? TC_OBJECTS.manual : TC_OBJECTS.continuing;
    return `${objectDir}/${objects[stage]}.o`;
  }
  return approach === 'manual' && stage !== 'logger' ? `${objectDir}/${stage}_manual.o` : `${objectDir}/${stage}.o`;
}

/** Tools explain themselves over several lines; a record's reason is one. */
function oneLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

async function timed(work: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Programs a packet goes through: the trio's stages, or 1 for the fused program. */
function stagesRun(d: Description): number {
  const stageRoles = new Set(['filter', 'metrics', 'logger']);
  const n = d.programs.filter((p) => stageRoles.has(p.role)).length;
  return n > 0 ? n : Math.max(1, d.programs.length);
}

/** A patched approach may let the caller choose the patch mode; this is how we ask for one. */

export async function measureApproaches(sb: Sandbox, features: KernelFeatures, o: ApproachMeasureOptions): Promise<ApproachMeasurement> {
  const t = sb.target;
  const out: ApproachMeasurement = { rows: [], latency: [], unsupported: [], notes: [] };
  const approaches = o.approaches ?? MEASURED_APPROACHES.map((n) => APPROACHES[n]);
  if (approaches.length === 0) return out;
  const objectDir = await putTrioObjects(sb);

  // Each (approach, mode) is one unit: patched once per mode the kernel loads.
  const units: Unit[] = [];
  for (const a of approaches) {
    if (a.name !== 'patched') {
      units.push({ variant: a.name, approach: a });
      continue;
    }
    const modes: PatchMode[] = features.features.tailCallsWithBpf2bpf.ok ? ['subprog', 'inline'] : ['inline'];
    if (!features.features.tailCallsWithBpf2bpf.ok) {
      out.unsupported.push({ variant: 'patched-subprog', hop: 'tail-call-constant', status: 'unsupported', reason: `kernel ${features.kernelRelease}: ${features.features.tailCallsWithBpf2bpf.detail}` });
    }
    for (const m of modes) units.push({ variant: `patched-${m}`, approach: patched.withMode(m) });
  }

  // Which units this kernel runs at all.
  const runnable: Unit[] = [];
  for (const u of units) {
    o.checkpoint?.();
    const support = await u.approach.supports(t);
    if (support.supported) runnable.push(u);
    else out.unsupported.push({ variant: u.variant, hop: defaultHop(u.approach.name), status: 'unsupported', reason: oneLine(support.reason) });
  }
  const failed = new Set<string>();
  const fail = (u: Unit, e: unknown, hop?: Hop): void => {
    failed.add(u.variant);
    o.progress({ kind: 'log', level: 'warn', message: `${t.name}: ${u.variant}: ${failureReason(e)}` });
    out.unsupported.push({ variant: u.variant, hop: hop ?? defaultHop(u.approach.name), status: 'failed', reason: failureReason(e) });
  };

  if (o.perPacket && runnable.length > 0) {
    const notRunnable = (u: Unit, hop: Hop, reason: string): void => {
      out.unsupported.push({ variant: u.variant, hop, status: 'unsupported', reason });
    };
    out.rows.push(...(await perPacketAll(sb, runnable, objectDir, o, fail, notRunnable)));
  }

  // Latency: per approach (the first unit of each approach stands for it), cycles interleaved
  // across approaches so a slow spell of the machine does not land on one approach only.
  const latUnits = runnable.filter((u, i) => !failed.has(u.variant) && runnable.findIndex((v) => v.approach.name === u.approach.name) === i);
  if (o.latencyCycles > 0 && latUnits.length > 0) {
    const latencyFailed = new Set<string>();
    const lat = new Map(latUnits.map((u) => [u.variant, { 'load-attach': [] as number[], replace: [] as number[], detach: [] as number[] }]));
    const { netns, ifname } = await sb.pair(0);
    const total = o.latencyCycles * latUnits.length;
    let done = 0;
    o.progress({ kind: 'phase-start', id: 'micro-latency', label: `${t.name}: load+attach, replace, detach × ${o.latencyCycles} per approach`, total });
    for (let c = 0; c < o.latencyCycles; c++) {
      for (const u of latUnits) {
        o.checkpoint?.();
        if (latencyFailed.has(u.variant)) continue;
        const a = u.approach;
        const ctx: ApproachContext = { target: t, ifname, netns, pinDir: `${sb.pinRoot}/lat-${u.variant}`, objectDir };
        const l = lat.get(u.variant)!;
        try {
          try {
            l['load-attach'].push(
              await timed(async () => {
                await a.load(ctx);
                await a.attach(ctx);
              }),
            );
            try {
              l.replace.push(await timed(() => a.replace(ctx, 'metrics', replacementObject(objectDir, a.name, 'metrics'))));
            } catch (e) {
              if (!isLabError(e, 'UNSUPPORTED')) throw e;
              if (c === 0) out.notes.push(`${u.variant}: replace not measured: ${oneLine(e.message)}`);
            }
          } finally {
            l.detach.push(await timed(() => a.detach(ctx)));
          }
        } catch (e) {
          // Its ns per packet may well be measured already: a latency failure only drops its
          // latency records, and says why.
          const reason = failureReason(e);
          latencyFailed.add(u.variant);
          out.notes.push(`${u.variant}: latency not recorded: ${reason}`);
          o.progress({ kind: 'log', level: 'warn', message: `${t.name}: ${u.variant}: latency not recorded: ${reason}` });
        }
        o.progress({ kind: 'phase-progress', id: 'micro-latency', done: ++done, total });
      }
    }
    o.progress({ kind: 'phase-end', id: 'micro-latency', ok: true });
    for (const u of latUnits) {
      if (latencyFailed.has(u.variant)) continue;
      const l = lat.get(u.variant)!;
      for (const op of ['load-attach', 'replace', 'detach'] as const) if (l[op].length > 0) out.latency.push({ approach: u.approach.name, operation: op, ms: l[op] });
    }
  }
  return out;
}

interface Unit {
  variant: string;
  approach: Approach;
}

function defaultHop(name: ApproachName): Hop {
  if (name === 'tc-filters') return 'tc-next';
  if (name === 'tcx') return 'tcx-next';
  return name === 'dispatcher' ? 'freplace' : name === 'fused' || name === 'none' || name === 'tc-fused' || name === 'tc-none' ? 'none' : 'tail-call-constant';
}

/**
 * ns per packet of every unit, interleaved: each unit is loaded and attached on its own veth, then
 * one batch runs a warm-up of each and `repetitions` rounds, every round visiting every unit (in a
 * rotated order), so drifts of the machine spread over all approaches alike. A unit whose chain
 * the kernel walks itself (kernelWalksChain: cls_bpf priorities, tcx) has each of its programs test-run alone in the same round,
 * and is reported as the sum of its stages under its own variant (see notTestRunnableReason).
 */
async function perPacketAll(
  sb: Sandbox,
  units: readonly Unit[],
  objectDir: string,
  o: ApproachMeasureOptions,
  fail: (u: Unit, e: unknown, hop?: Hop) => void,
  notRunnable: (u: Unit, hop: Hop, reason: string) => void,
): Promise<ApproachRow[]> {
  const t = sb.target;
  /**
   * pins: the entry alone; or every stage of a kernel-walked chain in the order it runs them
   * (summed); or the chain's stages, each the start of the rest of the chain (suffixes).
   */
  const loaded: { u: Unit; ctx: ApproachContext; d: Description; pins: string[]; summed: boolean; suffixes: boolean }[] = [];
  const rows: ApproachRow[] = [];
  o.progress({ kind: 'phase-start', id: 'micro-approaches', label: `${t.name}: trio per approach (${units.map((u) => u.variant).join(', ')}), ${o.repetitions} × ${o.repeat}` });
  try {
    for (const [i, u] of units.entries()) {
      o.checkpoint?.();
      const { netns, ifname } = await sb.pair(i);
      const ctx: ApproachContext = { target: t, ifname, netns, pinDir: `${sb.pinRoot}/pp-${u.variant}`, objectDir };
      try {
        await u.approach.load(ctx);
        await u.approach.attach(ctx);
        const d = await u.approach.describe(ctx);
        if (!d.programs[0]) throw new LabError('BENCH', `${t.name}: ${u.variant}: describe() lists no program`);
        const summed = kernelWalksChain(d.hop);
        if (summed) notRunnable(u, d.hop, notTestRunnableReason(u.approach.name));
        const suffixes = !summed && o.stageSuffixes === true && STAGE_SUFFIX_UNITS.includes(u.variant) && d.programs.every((p) => (STAGES as readonly string[]).includes(p.role));
        const pins: string[] = [];
        for (const [k, p] of (summed || suffixes ? d.programs : d.programs.slice(0, 1)).entries()) {
          const pin = `${sb.pinRoot}/entry-${u.variant.replace(/\//g, '_')}-${k}`;
          await t.run(['bpftool', 'prog', 'pin', 'id', String(p.id), pin]);
          pins.push(pin);
        }
        loaded.push({ u, ctx, d, pins, summed, suffixes });
      } catch (e) {
        await u.approach.detach(ctx).catch(() => undefined);
        fail(u, e);
      }
    }
    if (loaded.length === 0) return rows;
    // Which loaded unit and which of its pins each `prog run` of the batch is.
    const slots: { idx: number; k: number; measured: boolean }[] = [];
    const cmds: string[][] = [];
    const push = (idx: number, measured: boolean, repeat: number): void => {
      loaded[idx]!.pins.forEach((pin, k) => {
        slots.push({ idx, k, measured });
        cmds.push(progRunWords(pin, o.packet, repeat));
      });
    };
    loaded.forEach((_, idx) => push(idx, false, Math.max(1, Math.floor(o.repeat / 10))));
    for (let rep = 0; rep < o.repetitions; rep++) {
      for (let k = 0; k < loaded.length; k++) push((k + rep) % loaded.length, true, o.repeat);
    }
    const runs = await progRunBatch(t, cmds, `trio per approach on ${o.packet}`);
    const ns = loaded.map(() => [] as number[]);
    /** Per unit with suffixes: ns of the chain from stage k on, k ≥ 1. */
    const fromStage = loaded.map((l) => l.pins.map(() => [] as number[]));
    const wrong = new Map<number, string>();
    let acc = 0;
    runs.forEach((r, i) => {
      const { idx, k, measured } = slots[i]!;
      const l = loaded[idx]!;
      const last = k === l.pins.length - 1;
      // A stage that continues a kernel-walked chain answers TC_ACT_UNSPEC; the end of the trio passes,
      // and so does a chain run from a later stage on.
      const expected = last || l.suffixes ? passVerdict(l.u.approach.name) : TC_ACT_UNSPEC;
      // bpftool prints the u32 retval: TC_ACT_UNSPEC comes back as 4294967295.
      if ((r.retval | 0) !== expected && !wrong.has(idx)) wrong.set(idx, `${l.summed ? `stage ${k + 1} (${l.d.programs[k]!.name}) ` : ''}got verdict ${r.retval | 0}, expected ${expected}`);
      if (!measured) return;
      if (l.suffixes) {
        if (k === 0) ns[idx]!.push(r.durationNs);
        else fromStage[idx]![k]!.push(r.durationNs);
        return;
      }
      acc += r.durationNs;
      if (last) {
        ns[idx]!.push(acc);
        acc = 0;
      }
    });
    loaded.forEach((l, i) => {
      const verdict = wrong.get(i);
      if (verdict !== undefined) {
        // Its time would be that of a shorter path (e.g. dropped by the filter): not comparable.
        fail(l.u, new LabError('BENCH', `the representative packet ${verdict}: the approach did not run the whole trio`), l.d.hop);
        return;
      }
      const name = l.u.approach.name;
      rows.push({
        variant: l.summed ? sumOfStagesVariant(name) : l.u.variant,
        approach: name,
        hop: l.d.hop,
        chainLength: name === 'fused' || name === 'tc-fused' ? 1 : stagesRun(l.d),
        nsPerPacket: ns[i]!,
        notes: l.summed ? [...l.d.notes, `sum of ${l.pins.length} stages each test-run alone on the same packet; the kernel's walk between them is not included`] : l.d.notes,
      });
      if (!l.suffixes) return;
      l.d.programs.forEach((p, k) => {
        if (k === 0) return;
        rows.push({
          variant: fromStageVariant(l.u.variant, p.role),
          approach: name,
          hop: l.d.hop,
          chainLength: l.d.programs.length - k,
          nsPerPacket: fromStage[i]![k]!,
          notes: [`the chain test-run from its ${p.role} (program ${p.id}) on, in the same rounds as the whole chain`],
        });
      });
    });
    o.progress({ kind: 'phase-end', id: 'micro-approaches', ok: true });
    return rows;
  } catch (e) {
    o.progress({ kind: 'phase-end', id: 'micro-approaches', ok: false, message: failureReason(e) });
    throw e;
  } finally {
    for (const l of loaded) {
      for (const pin of l.pins) await t.run(['rm', '-f', pin], { allowFailure: true });
      await l.u.approach.detach(l.ctx).catch((e: unknown) => o.progress({ kind: 'log', level: 'warn', message: `${l.u.variant}: detach failed: ${failureReason(e)}` }));
    }
  }
}
