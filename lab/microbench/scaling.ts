/**
 * Chain-length scaling: ns per packet of chains of 1..N trivial programs, for each way of going
 * from one program to the next.
 *
 * Slot-based chains (manual and patched): program i tail-calls slot i+1 of one PROG_ARRAY, and the
 * chain ends where a slot is empty (the tail call fails and the program returns XDP_PASS). So every
 * program is loaded once, and a chain of length L is measured by emptying slot L, running the head,
 * and filling slot L again — one batch per repetition covers every length.
 *
 * The dispatcher (libxdp, freplace) has no slots to empty: xdp-loader loads L copies for each L.
 */
import { basename } from 'node:path';
import { errorMessage, isLabError, LabError, wrapError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import type { Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { readU64le, u32le } from '../bytes.ts';
import { chainDetach } from '../chain/ops/detach.ts';
import { chainInit } from '../chain/ops/init.ts';
import type { PatchMode } from '../chain/constants.ts';
import type { KernelFeatures } from '../features.ts';
import type { Description } from '../approaches/approach.ts';
import { XDP_PASS } from '../bpf/uapi.ts';
import { progRunBatch, progRunWords, u32Words } from './runner.ts';
import type { Sandbox } from './sandbox.ts';

/** How a packet gets from one program to the next (MicroRecord.hop); the Approach vocabulary. */
export type Hop = Description['hop'];

export interface VariantInfo {
  variant: string;
  hop: Hop;
  /** One sentence for the table: what the hop is and why it is that kind. */
  explains: string;
}

/**
 * A variant that was not measured: `unsupported` when this kernel cannot run it (with the kernel's
 * or the tool's words), `failed` when it should have run and did not (a bug or a broken setup).
 */
export interface Unsupported {
  variant: string;
  hop: Hop;
  status: 'unsupported' | 'failed';
  reason: string;
}

/** First lines of an error, for a one-line reason. Interruptions are never swallowed. */
export function failureReason(e: unknown): string {
  if (isLabError(e, 'INTERRUPTED')) throw e;
  const text = errorMessage(e);
  return text.split('\n').slice(0, 4).join(' | ');
}

export interface ScalingMeasurement extends VariantInfo {
  /** ns per packet per length, one value per repetition. */
  byLength: Map<number, number[]>;
}

interface SlotChain extends VariantInfo {
  head: string;
  /** The verdict the whole chain returns for a passing packet (XDP_PASS, or TC_ACT_OK on TC). */
  pass?: number;
  slots: string;
  /** Pins of the programs in slot order; slot i holds progPins[i]. */
  progPins: string[];
  teardown(): Promise<void>;
}

export const SCALING_VARIANTS = {
  manualConstant: {
    variant: 'chain/manual-constant',
    hop: 'tail-call-constant',
    explains: 'bpf_tail_call with an immediate index: the verifier sees a constant and the JIT emits a direct jump it patches on map updates',
  },
  manualEndLookup: {
    variant: 'chain/manual-end-lookup',
    hop: 'tail-call-constant',
    explains: "manual-constant plus the patched chain's end: where the tail call fails, the remembered verdict is read from a per-CPU array; the difference to manual-constant is that read, once per packet",
  },
  tcManualConstant: {
    variant: 'chain/tc-manual-constant',
    hop: 'tail-call-constant',
    explains: 'manual-constant built as sched_cls programs (TC ingress, struct __sk_buff) and test-run on the same frame as an skb: the TC manual chain\'s hop',
  },
  manualIndirect: {
    variant: 'chain/manual-indirect',
    hop: 'tail-call-indirect',
    explains: 'bpf_tail_call with the index read from a map: unknown to the verifier, so the JIT emits the generic indirect jump (retpoline where enabled)',
  },
  patched: (mode: PatchMode): VariantInfo => ({
    variant: `chain/patched-${mode}`,
    hop: 'tail-call-constant',
    explains: `the patch's preamble (${mode} mode) tail-calls slot i+1 with an immediate index: a direct jump`,
  }),
  dispatcher: {
    variant: 'chain/dispatcher',
    hop: 'freplace',
    explains: "libxdp's dispatcher calls each slot function, replaced by the component program through a BPF trampoline (freplace)",
  },
} as const satisfies Record<string, VariantInfo | ((m: PatchMode) => VariantInfo)>;

/** Fills slots 0..n-1 of a PROG_ARRAY with the pinned programs, in one batch. */
async function fillSlots(target: Target, slots: string, progPins: readonly string[]): Promise<void> {
  await progRunBatch(
    target,
    progPins.map((p, i) => ['map', 'update', 'pinned', slots, 'key', ...u32Words(i), 'value', 'pinned', p]),
    `filling ${slots}`,
  );
}

/** Loads programs/micro/chain.c (one build of it) and links its 35 programs through their slots. */
export async function loadManualChain(sb: Sandbox, info: VariantInfo, localObject: string, indirect: boolean, hook: { type: string; pass: number } = { type: 'xdp', pass: XDP_PASS }): Promise<SlotChain> {
  const t = sb.target;
  const dir = `${sb.pinRoot}/${info.variant.replace(/\W+/g, '_')}`;
  const remote = `${sb.workDir}/${basename(localObject)}`;
  await t.putFile(localObject, remote);
  try {
    // bpftool creates the last path component only.
    await t.run(['mkdir', '-p', dir]);
    const progs = await bpftool.loadAll(t, remote, `${dir}/progs`, { type: hook.type, pinMaps: `${dir}/maps` });
    const count = Object.keys(progs).filter((n) => /^link_\d+$/.test(n)).length;
    const progPins = Array.from({ length: count }, (_, i) => `${dir}/progs/link_${i}`);
    if (count === 0) throw new LabError('BENCH', `${localObject}: no link_<i> programs loaded`);
    await fillSlots(t, `${dir}/maps/chain_jmp`, progPins);
    if (indirect) {
      await progRunBatch(
        t,
        progPins.map((_, i) => ['map', 'update', 'pinned', `${dir}/maps/chain_next`, 'key', ...u32Words(i), 'value', ...u32Words(i + 1)]),
        `filling ${dir}/maps/chain_next`,
      );
    }
    return { ...info, head: progPins[0]!, pass: hook.pass, slots: `${dir}/maps/chain_jmp`, progPins, teardown: () => bpftool.unpin(t, dir) };
  } catch (e) {
    await bpftool.unpin(t, dir);
    throw e;
  }
}

/**
 * Builds a patched chain of `length` copies of the trivial program with the chain operations
 * (lab/chain/ops/), i.e. exactly the code path the lab's patched approach uses.
 */
export async function loadPatchedChain(
  sb: Sandbox,
  mode: PatchMode,
  passObject: string,
  length: number,
  features: KernelFeatures,
  progress?: ProgressSink,
  /** Maps every copy takes from existing pins (the tests share one run counter this way). */
  sharedMaps: { name: string; pinned: string }[] = [],
): Promise<SlotChain> {
  const t = sb.target;
  const info = SCALING_VARIANTS.patched(mode);
  const pinDir = `${sb.pinRoot}/patched-${mode}`;
  let state;
  try {
    state = await chainInit(t, {
      pinDir,
      name: `${basename(sb.pinRoot)}-${mode}`,
      programs: Array.from({ length }, () => ({ path: passObject, maps: sharedMaps })),
      mode,
      features,
      // One "slot i loaded" line per program would drown the bench's own progress: keep warnings.
      progress: progress ? (e) => { if (e.kind !== 'log' || e.level !== 'info') progress(e); } : undefined,
    });
  } catch (e) {
    await chainDetach(t, pinDir).catch(() => undefined);
    throw e;
  }
  const progPins = [...state.programs].sort((a, b) => a.index - b.index).map((p) => p.pin);
  return {
    ...info,
    head: state.trampoline?.pin ?? progPins[0]!,
    slots: state.maps.chain.pin,
    progPins,
    teardown: async () => {
      await chainDetach(t, pinDir);
    },
  };
}

/**
 * One repetition of every length of a slot chain: empty slot L, run the head, refill slot L.
 * Returns ns per packet per length. Lengths past the chain's programs cannot be measured.
 */
export async function sweepOnce(t: Target, chain: SlotChain, lengths: readonly number[], packet: string, repeat: number): Promise<Map<number, number>> {
  const cmds: string[][] = [];
  for (const len of lengths) {
    if (len < 1 || len > chain.progPins.length) {
      throw new LabError('BAD_INPUT', `${chain.variant}: chain length ${len} is outside 1..${chain.progPins.length}`);
    }
    const cut = len < chain.progPins.length;
    if (cut) cmds.push(['map', 'delete', 'pinned', chain.slots, 'key', ...u32Words(len)]);
    cmds.push(progRunWords(chain.head, packet, repeat));
    if (cut) cmds.push(['map', 'update', 'pinned', chain.slots, 'key', ...u32Words(len), 'value', 'pinned', chain.progPins[len]!]);
  }
  const runs = await progRunBatch(t, cmds, `${chain.variant}: test-running lengths ${lengths.join(',')}`);
  const out = new Map<number, number>();
  lengths.forEach((len, i) => {
    const r = runs[i]!;
    const pass = chain.pass ?? XDP_PASS;
    if ((r.retval | 0) !== pass) {
      throw new LabError('BENCH', `${t.name}: ${chain.variant}, length ${len}: the chain returned ${r.retval | 0}, expected ${pass} (${pass === XDP_PASS ? 'XDP_PASS' : 'TC_ACT_OK'})`, {
        remedy: 'The trivial chain is broken on this kernel; run `npm run chain -- status` or reload the bench objects.',
      });
    }
    out.set(len, r.durationNs);
  });
  return out;
}

/**
 * Measures slot chains together: a warm-up sweep of each (not recorded), then `repetitions` rounds,
 * each sweeping every chain in turn. Odd rounds go from the longest length down, and the chains'
 * order rotates, so that neither a drift of the machine nor a chain's place in the round tilts a
 * slope or a difference between chains.
 */
export async function measureSlotChains(t: Target, chains: readonly SlotChain[], lengths: readonly number[], packet: string, repeat: number, repetitions: number, onRep?: (rep: number) => void): Promise<ScalingMeasurement[]> {
  const byLength = chains.map(() => new Map<number, number[]>(lengths.map((l) => [l, []])));
  for (const c of chains) await sweepOnce(t, c, lengths, packet, Math.max(1, Math.floor(repeat / 10)));
  for (let rep = 0; rep < repetitions; rep++) {
    const order = rep % 2 === 0 ? lengths : [...lengths].reverse();
    for (let k = 0; k < chains.length; k++) {
      const i = (k + rep) % chains.length;
      const ns = await sweepOnce(t, chains[i]!, order, packet, repeat);
      for (const [len, v] of ns) byLength[i]!.get(len)!.push(v);
    }
    onRep?.(rep + 1);
  }
  return chains.map((c, i) => ({ variant: c.variant, hop: c.hop, explains: c.explains, byLength: byLength[i]! }));
}

/**
 * The longest chain the kernel runs, observed on our own chain layout: 35 programs linked, each
 * counting its run; one packet; the count is how many ran.
 */
export async function observeMaxChain(sb: Sandbox, countObject: string, packet: string): Promise<number> {
  const chain = await loadManualChain(sb, { variant: 'chain/max-probe', hop: 'tail-call-constant', explains: '' }, countObject, false);
  try {
    const dir = chain.slots.replace(/\/maps\/chain_jmp$/, '');
    const hits = `${dir}/maps/chain_hits`;
    await bpftool.mapUpdate(sb.target, { pinned: hits }, u32le(0), new Uint8Array(8));
    await bpftool.progRun(sb.target, { pinned: chain.head }, { dataIn: packet, repeat: 1 });
    const e = await bpftool.mapLookup(sb.target, { pinned: hits }, u32le(0));
    if (!e?.value) throw new LabError('BENCH', `${sb.target.name}: chain_hits[0] is missing after the max-chain probe`);
    return Number(readU64le(e.value));
  } finally {
    await chain.teardown();
  }
}

export type { SlotChain };

/** XDP dispatcher chains of 1..10 copies via xdp-loader (libxdp), measured length by length. */
export async function measureDispatcher(sb: Sandbox, passObject: string, lengths: readonly number[], packet: string, repeat: number, repetitions: number, onLength?: (len: number) => void): Promise<ScalingMeasurement> {
  const t = sb.target;
  const { netns, ifname } = await sb.netns();
  const enter = ['nsenter', `--net=/run/netns/${netns}`];
  const remote = `${sb.workDir}/${basename(passObject)}`;
  await t.putFile(passObject, remote);
  const byLength = new Map<number, number[]>();
  const info = SCALING_VARIANTS.dispatcher;
  try {
    for (const len of lengths) {
      await t.run([...enter, 'xdp-loader', 'unload', '--all', ifname], { allowFailure: true });
      const load = await t.run([...enter, 'xdp-loader', 'load', '-m', 'native', ifname, ...Array.from({ length: len }, () => remote)], { allowFailure: true, timeoutMs: 300_000 });
      if (load.exitCode !== 0) {
        throw new LabError('UNSUPPORTED', `${t.name}: xdp-loader could not load ${len} programs on ${ifname}: ${(load.stderr || load.stdout).trim().split('\n').slice(-3).join(' | ')}`);
      }
      const attached = await bpftool.xdpAttached(t, ifname, netns);
      const id = attached[0]?.id;
      if (id === undefined) throw new LabError('BENCH', `${t.name}: xdp-loader loaded ${len} programs but ${ifname} shows no XDP program`);
      const pin = `${sb.pinRoot}/dispatcher-${len}`;
      await bpftool.progPin(t, { id }, pin);
      try {
        const cmds = [progRunWords(pin, `${packet}`, Math.max(1, Math.floor(repeat / 10))), ...Array.from({ length: repetitions }, () => progRunWords(pin, packet, repeat))];
        const runs = await progRunBatch(t, cmds, `dispatcher with ${len} programs`);
        const measured = runs.slice(1);
        for (const r of measured) {
          if (r.retval !== XDP_PASS) throw new LabError('BENCH', `${t.name}: dispatcher with ${len} programs returned ${r.retval}, expected XDP_PASS (2)`);
        }
        byLength.set(len, measured.map((r) => r.durationNs));
      } finally {
        await bpftool.unpin(t, pin);
      }
      onLength?.(len);
    }
  } catch (e) {
    throw isLabError(e) ? e : wrapError('BENCH', `${t.name}: dispatcher scaling`, e);
  } finally {
    await t.run([...enter, 'xdp-loader', 'unload', '--all', ifname], { allowFailure: true });
  }
  return { ...info, byLength };
}
