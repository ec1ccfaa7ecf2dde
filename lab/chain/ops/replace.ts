/**
 * Alg. 3.2: `chainReplace` swaps one program of a running chain for a new object with one
 * PROG_ARRAY update, journaled so a killed replace is completed or undone by the next operation.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { LabError } from '../../errors.ts';
import type { Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { CHAIN_MAP, VERDICT_MAP } from '../constants.ts';
import { progTypeOf, setSlot } from '../loader.ts';
import { failpoint, removeIntent, writeIntent, type IntentOf } from '../journal.ts';
import { withChainLock } from '../lock.ts';
import type { ChainState } from '../state.ts';
import { type ChainCommon, type ChainProgramSpec, checkChainHook, checkFrags, defaultPatcher, prepare } from './build.ts';
import { repairPending } from './repair.ts';
import { SLOT0_NOTE, commitReplace, mustRead } from './shared.ts';

/**
 * Alg. 3.2: replaces program `index` with a new object, atomically for packets.
 *
 * Why one map update is the whole algorithm here: the new program p' is patched with the same
 * index i, so its own tail call already targets slot i+1 of the shared PROG_ARRAY — the edge
 * (p', V_{i+1}) of line 5 exists the moment p' is loaded, before anything can reach p'. Line 7,
 * replacing (V_{i-1}, p) by (V_{i-1}, p'), is a single bpf_map_update_elem on slot i: the kernel
 * exchanges the slot's pointer (xchg) and, because our tail calls use a constant index, re-points
 * the JITed direct jump of every caller with one atomic text poke. A packet therefore reads slot i
 * once and runs p or p', never neither and never both. Line 9, dropping (p, V_{i+1}), needs no
 * action: p keeps its edge until the last packet inside it leaves (RCU), then it is freed when its
 * pin goes. Slot 0 can be replaced the same way only behind the trampoline (Annexe I); without it
 * program 0 is attached directly and only chainRecreate can change it.
 */
export async function chainReplace(target: Target, pinDir: string, index: number, spec: ChainProgramSpec, common: ChainCommon = {}): Promise<ChainState> {
  return withChainLock(target, pinDir, `chain replace of slot ${index}`, () => chainReplaceLocked(target, pinDir, index, spec, common));
}

async function chainReplaceLocked(target: Target, pinDir: string, index: number, spec: ChainProgramSpec, common: ChainCommon = {}): Promise<ChainState> {
  await repairPending(target, pinDir, common.progress);
  const state = await mustRead(target, pinDir);
  const patcher = common.patcher ?? (await defaultPatcher());
  const n = state.programs.length;
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new LabError('BAD_INPUT', `chain ${state.name}: no program at index ${index} (the chain has ${n}: 0..${n - 1})`, {
      remedy: `Give an index from ${state.trampoline ? 0 : 1} to ${n - 1}.`,
    });
  }
  if (index === 0 && !state.trampoline) {
    throw new LabError('CHAIN', `chain ${state.name}: program 0 is attached to the interface directly, so it cannot be swapped inside the chain (thesis §3.3.1)`, {
      remedy: 'Recreate the chain with the new first program (npm run chain -- recreate), or build chains with --trampoline so slot 0 is replaceable.',
    });
  }
  const mode = common.mode ?? state.mode;
  const localDir = await mkdtemp(join(tmpdir(), 'xcl-chain-'));
  // Per operation: a pin name no other replace (of this or another process) can share.
  const newPin = `${state.genDir}/progs/${index}_new-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const p = await prepare(target, spec, index, mode, patcher, localDir, state.objectDir);
    const members = [
      ...state.programs.filter((x) => x.index !== index).map((x) => ({ where: `slot ${x.index} (${x.program})`, section: x.section })),
      { where: `${basename(spec.path)}:${p.result.program}`, section: p.result.section },
    ];
    const hook = checkChainHook(members);
    checkFrags(members);
    const reuse: bpftool.MapReuse[] = [{ name: CHAIN_MAP, pinned: state.maps.chain.pin }, { name: VERDICT_MAP, pinned: state.maps.verdict.pin }, ...(spec.maps ?? [])];
    if (spec.keepMaps) reuse.push(...(await inheritedMaps(target, p.remote, state.programs[index]!.id, reuse)));
    const intent: IntentOf<'replace'> = {
      op: 'replace',
      index,
      newPin,
      program: { source: spec.path, program: p.result.program, section: p.result.section, success: p.success, redirect: p.redirect },
      startedAt: new Date().toISOString(),
      pid: process.pid,
    };
    await writeIntent(target, pinDir, intent);
    const info = await bpftool.load(target, p.remote, newPin, { type: progTypeOf(hook), maps: reuse });
    failpoint('replace:loaded');
    // The decisive step: from here on a repair completes this replace rather than undoing it.
    await setSlot(target, state.maps.chain.pin, index, newPin);
    failpoint('replace:slot-set');
    await commitReplace(target, state, intent, info);
    if (index === 0) common.progress?.({ kind: 'log', level: 'warn', message: `chain ${state.name}: ${SLOT0_NOTE}` });
    common.progress?.({ kind: 'log', level: 'info', message: `chain ${state.name}: slot ${index} now runs program ${info.id}` });
    return state;
  } catch (e) {
    await target.run(['rm', '-f', newPin], { allowFailure: true });
    await removeIntent(target, pinDir);
    throw e;
  } finally {
    await rm(localDir, { recursive: true, force: true });
  }
}

/** Maps of the running program `oldId` that the new object also declares (same name), by id. */
async function inheritedMaps(target: Target, newObject: string, oldId: number, already: readonly bpftool.MapReuse[]): Promise<bpftool.MapReuse[]> {
  const wanted = new Set(await bpftool.objectMapNames(target, newObject));
  const out: bpftool.MapReuse[] = [];
  for (const id of (await bpftool.progShow(target, { id: oldId })).mapIds) {
    const m = await bpftool.mapShow(target, { id });
    if (wanted.has(m.name) && !already.some((r) => r.name === m.name)) out.push({ name: m.name, id });
  }
  return out;
}
