/**
 * The kernel side of a chain: the source of the head trampoline the chain itself needs, loading
 * patched programs so that they share one pinned PROG_ARRAY and one pinned per-CPU verdict map, and
 * reading the slots back.
 * Everything goes through lab/bpftool/; this file only adds the chain's vocabulary on top.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { u32le } from '../bytes.ts';
import { BPFTOOL_PROG_TYPE } from '../programs/hook.ts';
import { CHAIN_MAP, CHAIN_SLOTS, VERDICT_MAP, type Hook } from './constants.ts';

/**
 * The head trampoline of the thesis's Annexe I: a program that only tail-calls slot 0, so it never
 * changes and the real first program sits in slot 0 where one map update can replace it. The
 * thesis declares the map as an ARRAY; it must be a PROG_ARRAY for bpf_tail_call, and the map is
 * replaced at load time by the chain's pinned xcl_chain anyway (bpftool `map name ... pinned`).
 * When slot 0 is empty (never the case once a chain is built) the packet is dropped, so a broken
 * chain is visible, not silent: XDP_ABORTED as in the annex (xdp:xdp_exception), TC_ACT_SHOT on
 * TC, which has no "aborted". The TC head is a sched_cls program because a PROG_ARRAY holds
 * programs of the type of the first one put in it, and the kernel tail-calls only within a type.
 */
export function trampolineSource(hook: Hook): string {
  const xdp = hook === 'xdp';
  return `
#include <linux/bpf.h>
${xdp ? '' : '#include <linux/pkt_cls.h>\n'}#include <bpf/bpf_helpers.h>
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, ${CHAIN_SLOTS});
  __type(key, __u32);
  __type(value, __u32);
} ${CHAIN_MAP} SEC(".maps");

SEC("${xdp ? 'xdp' : 'tc'}")
int xcl_head(${xdp ? 'struct xdp_md' : 'struct __sk_buff'} *ctx)
{
  bpf_tail_call(ctx, &${CHAIN_MAP}, 0);
  return ${xdp ? 'XDP_ABORTED' : 'TC_ACT_SHOT'};
}
char LICENSE[] SEC("license") = "GPL";
`;
}

/** bpftool's `type` word for a hook's programs (`classifier` is sched_cls on every bpftool). */
export function progTypeOf(hook: Hook): string {
  return BPFTOOL_PROG_TYPE[hook === 'xdp' ? 'xdp' : 'tc'];
}

export interface ChainMapPins {
  chain: string;
  verdict: string;
}

/**
 * Pins the chain's two maps created by the first loaded program. The first program's own
 * definitions (from the patch) decide the maps' sizes; every later program and the trampoline then
 * reuse the maps by fd, which libbpf accepts without comparing definitions, so the kernel's
 * verifier is what checks that each program's accesses fit the map.
 */
export async function pinChainMaps(target: Target, prog: bpftool.ProgInfo, pins: ChainMapPins, where: string): Promise<{ chainId: number; verdictId: number }> {
  let chainId: number | undefined;
  let verdictId: number | undefined;
  for (const id of prog.mapIds) {
    const m = await bpftool.mapShow(target, { id });
    if (m.name === CHAIN_MAP && m.type === 'prog_array') chainId = id;
    else if (m.name === VERDICT_MAP && m.type === 'percpu_array') verdictId = id;
  }
  if (chainId === undefined) {
    throw new LabError('CHAIN', `${where}: program ${prog.name} (id ${prog.id}) has no PROG_ARRAY "${CHAIN_MAP}" map`, {
      remedy: 'Only objects produced by the chain patch (npm run chain -- patch) can be chained.',
    });
  }
  await bpftool.mapPin(target, { id: chainId }, pins.chain);
  if (verdictId === undefined) {
    // A head whose verdicts are all success verdicts never touches C (it is zero at the head), so
    // the kernel dropped the map from it: the chain's copy is made here for the programs after it.
    const m = await bpftool.mapCreate(target, pins.verdict, { type: 'percpu_array', keySize: 4, valueSize: 4, entries: 1, name: VERDICT_MAP });
    verdictId = m.id;
  } else {
    await bpftool.mapPin(target, { id: verdictId }, pins.verdict);
  }
  return { chainId, verdictId };
}

/** Loads an object's program pinned at `pinPath`, sharing the chain's pinned maps when given. */
export async function loadChainProgram(target: Target, objectPath: string, pinPath: string, maps: ChainMapPins | null, reuseChainOnly = false, hook: Hook = 'xdp'): Promise<bpftool.ProgInfo> {
  const reuse: bpftool.MapReuse[] = [];
  if (maps) {
    reuse.push({ name: CHAIN_MAP, pinned: maps.chain });
    if (!reuseChainOnly) reuse.push({ name: VERDICT_MAP, pinned: maps.verdict });
  }
  return bpftool.load(target, objectPath, pinPath, { type: progTypeOf(hook), maps: reuse });
}

/**
 * Points slot `index` of the PROG_ARRAY at the pinned program. One bpf_map_update_elem: the kernel
 * swaps the slot with xchg and, for callers using a constant index (our patch), re-patches their
 * JITed direct jump with one text poke, so a packet sees either the old or the new program.
 */
export async function setSlot(target: Target, chainPin: string, index: number, progPin: string): Promise<void> {
  await bpftool.mapUpdate(target, { pinned: chainPin }, u32le(index), { prog: { pinned: progPin } });
}

/** The PROG_ARRAY's filled slots: index → program id. */
export async function readSlots(target: Target, chainPin: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const e of await bpftool.mapDump(target, { pinned: chainPin })) {
    if (!e.value || e.key.length < 4) continue;
    const k = new DataView(e.key.buffer, e.key.byteOffset, 4).getUint32(0, true);
    const v = new DataView(e.value.buffer, e.value.byteOffset, 4).getUint32(0, true);
    out.set(k, v);
  }
  return out;
}

/** Whether a path exists on the target (pins and state files). */
export async function existsOn(target: Target, path: string): Promise<boolean> {
  return (await target.run(['test', '-e', path], { allowFailure: true })).exitCode === 0;
}
