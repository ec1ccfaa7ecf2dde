/**
 * Chain-length scaling on TC ingress under live traffic, for the chains the kernel itself walks:
 * N trivial programs as cls_bpf filters by priority (every kernel with clsact), as tcx programs
 * (bpf_mprog, 6.6+), and, for comparison on the same clock, as a tail-call chain in one filter.
 * BPF_PROG_TEST_RUN runs one program, never the kernel's walk between programs, so here the time
 * is taken in-band: programs/micro/tc_stamp.c's stamp_start runs first and stamp_end last, and
 * their per-CPU sum gives ns per skb while iperf3 sends across a test environment's veth pair. The
 * clock's own cost is the same at every length, so the slope over N is one more program's cost,
 * the kernel's step to it included.
 */
import { basename } from 'node:path';
import { LabError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import type { Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { readU64le, u32le } from '../bytes.ts';
import { TC_ACT_UNSPEC } from '../bpf/uapi.ts';
import { detachTcxProgram, tcx } from '../approaches/tcx.ts';
import { BPFTOOL_PROG_TYPE } from '../programs/hook.ts';
import { buildMicroObject } from '../programs/micro.ts';
import { clsactSupport, freshClsact, ingressFilters, removeClsact, setIngressFilter, type TcPlace } from '../tc/clsact.ts';
import type { MicroRecord } from '../results/record.ts';
import { iperfCpus } from '../testenv/cpus.ts';
import { createTestEnv } from '../testenv/testenv.ts';
import { microRecord, type RecordStamp } from './records.ts';
import { failureReason, loadManualChain, type ScalingMeasurement, type SlotChain, type Unsupported, type VariantInfo } from './scaling.ts';
import type { Sandbox } from './sandbox.ts';

export const TC_LIVE_VARIANTS = {
  filters: {
    variant: 'chain/tc-filters',
    hop: 'tc-next',
    explains: 'N cls_bpf filters on clsact ingress, one per priority, each returning TC_ACT_UNSPEC: the kernel walks the priorities (live traffic, timed in-band)',
  },
  tcx: {
    variant: 'chain/tcx',
    hop: 'tcx-next',
    explains: 'N programs attached with tcx, each returning TCX_NEXT: bpf_mprog walks its array (live traffic, timed in-band)',
  },
  tail: {
    variant: 'chain/tc-manual-live',
    hop: 'tail-call-constant',
    explains: 'N sched_cls programs in one filter, each tail-calling the next with an immediate index: the same hop as chain/tc-manual-constant, on the live clock of the other two',
  },
} as const satisfies Record<string, VariantInfo>;

/** Whether a scaling variant is one of these (timed in-band under live traffic). */
export function isLiveVariant(variant: string): boolean {
  return Object.values(TC_LIVE_VARIANTS).some((v) => v.variant === variant);
}

/** bpf_mprog holds at most 64 programs (BPF_MPROG_MAX); two are the clock. */
export const TCX_MAX_LINKS = 62;
/** The filter chain stops where tcx's does, so the two compare length for length. */
export const FILTERS_MAX_LINKS = TCX_MAX_LINKS;

/** What a caller may choose; the rest follows the run (quick or not) and the kernel. */
export interface TcLiveSettings {
  /** Programs between the clock filters (default 1, 2, 4, 8, 16, 32; quick 1, 4, 16, 32). */
  lengths?: readonly number[];
  /** Seconds of iperf3 per repetition (default 2; quick 1). */
  durationS?: number;
  /** iperf3 runs per length and variant (default 3; quick 2). */
  repetitions?: number;
  /** CPUs of the iperf3 server and client (default: the test environment's rule, lab/testenv/cpus.ts). */
  cpus?: { server: number; client: number };
}

export interface TcLiveOptions extends TcLiveSettings {
  quick: boolean;
  /** Programs a packet runs through a tail-call chain here (one entry + 33 tail calls = 34). */
  maxTailPrograms?: number | null;
  /** Base name of the test environment (1-10 of [a-z0-9-]). */
  envName: string;
  progress?: ProgressSink;
  /** The phase whose progress (cells of variant × length done, of a fixed total) is reported. */
  phaseId?: string;
  /** Throws to stop at the next length (Ctrl-C). */
  checkpoint?: () => void;
}

export interface TcLiveResult {
  measurements: ScalingMeasurement[];
  /** skbs timed per length, one count per repetition, by variant. */
  skbs: Map<string, Map<number, number[]>>;
  unsupported: Unsupported[];
}

export const DEFAULT_TC_LIVE_LENGTHS = [1, 2, 4, 8, 16, 32] as const;
export const QUICK_TC_LIVE_LENGTHS = [1, 4, 16, 32] as const;

interface Clock {
  start: string;
  end: string;
  sum: string;
}

interface Reading {
  ns: bigint;
  skbs: bigint;
}

/** The per-CPU sums of stamp_end, added over CPUs. */
async function readClock(target: Target, clock: Clock): Promise<Reading> {
  const e = await bpftool.mapLookup(target, { pinned: clock.sum }, u32le(0));
  const values = e?.values ?? (e?.value ? [{ cpu: 0, value: e.value }] : []);
  let ns = 0n;
  let skbs = 0n;
  for (const v of values) {
    ns += readU64le(v.value, 0);
    skbs += readU64le(v.value, 8);
  }
  return { ns, skbs };
}

/** ns per skb between two readings; a run no skb went through all of is an error, never a zero. */
export function nsPerSkb(before: Reading, after: Reading, what: string): { ns: number; skbs: number } {
  const skbs = Number(after.skbs - before.skbs);
  if (skbs <= 0) {
    throw new LabError('BENCH', `${what}: no skb reached the end of the chain during the run`, {
      remedy: 'Check that iperf3 reaches the receiver (ping6 across the test environment) and that every link returns TC_ACT_UNSPEC.',
    });
  }
  return { ns: Number(after.ns - before.ns) / skbs, skbs };
}

type Variant = keyof typeof TC_LIVE_VARIANTS;

/** What attaching one variant at one length needs. */
interface Parts {
  place: TcPlace & { netns: string };
  clock: Clock;
  links: string[];
  tail: SlotChain | null;
}

/** Attaches the clock and `len` links of `variant`; returns what undoes it. */
async function attach(p: Parts, variant: Variant, len: number): Promise<() => Promise<void>> {
  const t = p.place.target;
  if (variant === 'tcx') {
    const pins = [p.clock.start, ...p.links.slice(0, len), p.clock.end];
    const ids: number[] = [];
    const undo = async (): Promise<void> => {
      for (const id of ids) await detachTcxProgram(t, p.place.ifname, p.place.netns, id);
    };
    try {
      for (const pin of pins) {
        ids.push((await bpftool.progShow(t, { pinned: pin })).id);
        // bpftool appends: attach order is run order.
        await bpftool.netAttachTcxIngress(t, { pinned: pin }, p.place.ifname, { netns: p.place.netns });
      }
      const onHook = (await bpftool.tcxIngress(t, p.place.ifname, p.place.netns)).map((x) => x.id);
      if (onHook.join(',') !== ids.join(',')) {
        throw new LabError('ATTACH', `${t.name}: tcx ingress of ${p.place.ifname} runs ${onHook.join(',')}, expected the clock and ${len} links in order (${ids.join(',')})`);
      }
    } catch (e) {
      await undo().catch(() => undefined);
      throw e;
    }
    return undo;
  }
  const pins = variant === 'filters' ? [p.clock.start, ...p.links.slice(0, len), p.clock.end] : [p.clock.start, p.tail!.head, p.clock.end];
  try {
    await freshClsact(p.place);
    for (const [i, pin] of pins.entries()) await setIngressFilter(p.place, i + 1, pin, 'add');
    const on = await ingressFilters(p.place);
    if (on.length !== pins.length) throw new LabError('ATTACH', `${t.name}: clsact ingress of ${p.place.ifname} has ${on.length} filters, expected ${pins.length}`);
    if (variant === 'tail') await cutTail(t, p.tail!, len);
  } catch (e) {
    await removeClsact(p.place).catch(() => undefined);
    throw e;
  }
  return async () => {
    await removeClsact(p.place);
    if (variant === 'tail') await restoreTail(t, p.tail!, len);
  };
}

/** A tail chain of `len` programs: slot len emptied (the chain's programs fill every slot). */
async function cutTail(t: Target, chain: SlotChain, len: number): Promise<void> {
  if (len < chain.progPins.length) await bpftool.mapDelete(t, { pinned: chain.slots }, u32le(len));
}

async function restoreTail(t: Target, chain: SlotChain, len: number): Promise<void> {
  if (len < chain.progPins.length) await bpftool.mapUpdate(t, { pinned: chain.slots }, u32le(len), { prog: { pinned: chain.progPins[len]! } });
}

/** Which variants this target runs, and why not the others. */
async function variantsOn(target: Target): Promise<{ run: Variant[]; unsupported: Unsupported[] }> {
  const unsupported: Unsupported[] = [];
  const cls = await clsactSupport(target);
  const run: Variant[] = [];
  if (cls.ok) run.push('filters', 'tail');
  else for (const v of ['filters', 'tail'] as const) unsupported.push({ ...TC_LIVE_VARIANTS[v], status: 'unsupported', reason: cls.reason });
  const x = await tcx.supports(target);
  if (x.supported) run.push('tcx');
  else unsupported.push({ ...TC_LIVE_VARIANTS.tcx, status: 'unsupported', reason: x.reason });
  return { run: (['filters', 'tcx', 'tail'] as const).filter((v) => run.includes(v)), unsupported };
}

function maxLinks(v: Variant, maxTail: number): number {
  return v === 'tcx' ? TCX_MAX_LINKS : v === 'filters' ? FILTERS_MAX_LINKS : maxTail;
}

async function loadClock(sb: Sandbox): Promise<{ clock: Clock; links: (n: number) => Promise<string[]> }> {
  const t = sb.target;
  const put = async (name: 'tcStamp' | 'tcNext'): Promise<string> => {
    const local = await buildMicroObject(name);
    const remote = `${sb.workDir}/${basename(local)}`;
    await t.putFile(local, remote);
    return remote;
  };
  const stamp = await put('tcStamp');
  const next = await put('tcNext');
  const dir = `${sb.pinRoot}/clock`;
  await bpftool.loadAll(t, stamp, `${dir}/progs`, { type: BPFTOOL_PROG_TYPE.tc, pinMaps: `${dir}/maps` });
  const clock = { start: `${dir}/progs/stamp_start`, end: `${dir}/progs/stamp_end`, sum: `${dir}/maps/stamp_sum` };
  // One program per link: tcx attaches a program once, and filters get their own ids the same way.
  const links = async (n: number): Promise<string[]> => {
    const pins: string[] = [];
    for (let i = 0; i < n; i++) {
      await bpftool.loadAll(t, next, `${sb.pinRoot}/links/${i}`, { type: BPFTOOL_PROG_TYPE.tc });
      pins.push(`${sb.pinRoot}/links/${i}/stamp_next`);
    }
    return pins;
  };
  return { clock, links };
}

/**
 * Measures every variant the target runs at every length it allows: per length, each variant in
 * turn is attached, `repetitions` iperf3 runs are timed, and it is detached (lengths ascending,
 * variants interleaved, so a drift of the machine moves them alike).
 */
export async function measureTcLiveScaling(sb: Sandbox, opts: TcLiveOptions): Promise<TcLiveResult> {
  const target = sb.target;
  const lengths = [...new Set(opts.lengths ?? (opts.quick ? QUICK_TC_LIVE_LENGTHS : DEFAULT_TC_LIVE_LENGTHS))].sort((a, b) => a - b);
  if (lengths.some((l) => !Number.isInteger(l) || l < 1)) throw new LabError('BAD_INPUT', `TC live scaling: chain lengths must be integers ≥ 1, got ${lengths.join(',')}`);
  const durationS = opts.durationS ?? (opts.quick ? 1 : 2);
  const repetitions = opts.repetitions ?? (opts.quick ? 2 : 3);
  const maxTail = opts.maxTailPrograms ?? 34;
  const cpus = opts.cpus ?? (await iperfCpus(target));
  const { run, unsupported } = await variantsOn(target);
  const result: TcLiveResult = { measurements: [], skbs: new Map(), unsupported };
  if (run.length === 0) return result;
  // The lengths each variant runs at: up to what its hook holds.
  const lengthsOf = (v: Variant): number[] => lengths.filter((l) => l <= maxLinks(v, maxTail));
  const byLength = new Map(run.map((v) => [v, new Map<number, number[]>()]));
  const skbs = new Map(run.map((v) => [v, new Map<number, number[]>()]));
  let tail: SlotChain | null = null;
  try {
    await using env = await createTestEnv(target, { name: opts.envName, ipv4: false });
    const place = { target, ifname: env.b.ifname, netns: env.b.netns };
    const { clock, links } = await loadClock(sb);
    // Links for the longest chain the kernel walks here (the tail chain has its own programs).
    const linkCount = Math.max(0, ...run.filter((v) => v !== 'tail').flatMap(lengthsOf));
    if (run.includes('tail')) tail = await loadManualChain(sb, TC_LIVE_VARIANTS.tail, await buildMicroObject('tcChainContinue'), false, { type: BPFTOOL_PROG_TYPE.tc, pass: TC_ACT_UNSPEC });
    const parts: Parts = { place, clock, links: await links(linkCount), tail };
    const total = run.reduce((n, v) => n + lengthsOf(v).length, 0);
    let done = 0;
    for (const len of lengths) {
      for (const v of run) {
        if (!lengthsOf(v).includes(len)) continue;
        opts.checkpoint?.();
        const what = `${target.name}: ${TC_LIVE_VARIANTS[v].variant}, ${len} program(s)`;
        const undo = await attach(parts, v, len);
        try {
          for (let r = 0; r < repetitions; r++) {
            const before = await readClock(target, clock);
            await env.iperf3({ seconds: durationS, serverCpu: cpus.server, clientCpu: cpus.client });
            const m = nsPerSkb(before, await readClock(target, clock), what);
            byLength.get(v)!.set(len, [...(byLength.get(v)!.get(len) ?? []), m.ns]);
            skbs.get(v)!.set(len, [...(skbs.get(v)!.get(len) ?? []), m.skbs]);
          }
        } finally {
          await undo();
        }
        if (opts.phaseId) opts.progress?.({ kind: 'phase-progress', id: opts.phaseId, done: ++done, total, note: `${TC_LIVE_VARIANTS[v].variant.replace(/^chain\//, '')} × ${len}, ${repetitions} × ${durationS} s of iperf3` });
      }
    }
  } catch (e) {
    const reason = failureReason(e);
    // What was measured before the failure stays; a variant not measured at every length is failed, with the reason.
    for (const v of run) if ((byLength.get(v)?.size ?? 0) < lengthsOf(v).length) result.unsupported.push({ ...TC_LIVE_VARIANTS[v], status: 'failed', reason });
  } finally {
    await tail?.teardown().catch(() => undefined);
  }
  for (const v of run) {
    const m = byLength.get(v)!;
    if (m.size > 0) result.measurements.push({ ...TC_LIVE_VARIANTS[v], byLength: m });
    result.skbs.set(TC_LIVE_VARIANTS[v].variant, skbs.get(v)!);
  }
  return result;
}

/**
 * The records of a live sweep: one per variant and length, timed in-band, `repeat` the fewest skbs
 * a repetition timed (each repetition's ns is a mean over its own skbs).
 */
export function tcLiveRecords(target: Target, stamp: RecordStamp, r: TcLiveResult): MicroRecord[] {
  return r.measurements.flatMap((m) =>
    [...m.byLength].map(([len, ns]): MicroRecord => ({
      ...microRecord(target, stamp, m.variant, m.hop, len, Math.max(1, Math.min(...(r.skbs.get(m.variant)?.get(len) ?? [1]))), ns),
      timing: 'in-band',
    })),
  );
}
