/**
 * Alg. 3.3: `chainRecreate` builds a whole new generation beside the running chain and swaps the
 * attach point with a compare-and-swap where the kernel has one (lab/chain/swap.ts), or, on TC,
 * with `tc filter replace` on the head filter's priority (lab/chain/attach-point.ts).
 */
import { LabError } from '../../errors.ts';
import { silent } from '../../progress.ts';
import type { Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { swapHead } from '../attach-point.ts';
import { failpoint, removeIntent, writeIntent, type IntentOf } from '../journal.ts';
import { withChainLock } from '../lock.ts';
import type { ChainState } from '../state.ts';
import { type BuiltGeneration, type ChainCommon, type ChainProgramSpec, buildGeneration, checkLength, defaultPatcher, resolveMode } from './build.ts';
import { repairPending } from './repair.ts';
import { finishRecreate, genPaths, mustRead, objectDirFor } from './shared.ts';

export interface RecreateOptions extends ChainCommon {
  /** Default: keep whether the chain had a trampoline. */
  trampoline?: boolean;
}

/**
 * Alg. 3.3: builds a whole new chain (new maps, new generation) beside the running one, then swaps
 * the attach point in one netlink call: the kernel installs the new program under RTNL (veth: one
 * rcu_assign_pointer per queue), so each packet meets the old chain or the new one, never none.
 * The swap is a compare-and-swap (XDP_FLAGS_REPLACE with the old head, 5.7+, lab/chain/swap.ts):
 * if another manager changed the interface meanwhile, nothing is changed and the new generation is
 * dropped. Kernels without it get the plain overwrite between two checks, with a warning.
 * A TC chain keeps its hook and its head filter's priority: the new head goes into the same
 * filter with `tc filter replace` (cls_bpf swaps the program in place, so a packet meets the old
 * chain or the new one), between two checks that the filter still runs the old head.
 */
export async function chainRecreate(target: Target, pinDir: string, programs: readonly ChainProgramSpec[], options: RecreateOptions = {}): Promise<ChainState> {
  return withChainLock(target, pinDir, 'chain recreate', () => chainRecreateLocked(target, pinDir, programs, options));
}

async function chainRecreateLocked(target: Target, pinDir: string, programs: readonly ChainProgramSpec[], options: RecreateOptions = {}): Promise<ChainState> {
  const progress = options.progress ?? silent;
  await repairPending(target, pinDir, progress);
  const old = await mustRead(target, pinDir);
  const trampoline = options.trampoline ?? old.trampoline !== null;
  const patcher = options.patcher ?? (await defaultPatcher());
  const { features, mode, reason } = await resolveMode(target, options, programs, patcher);
  const maxPrograms = checkLength(programs.length, features, trampoline, `chain ${old.name}`);
  const generation = old.generation + 1;
  const cas = features.features.xdpFlagsReplace?.ok ?? false;
  const swapMethod = old.hook === 'sched_cls' ? 'tc-filter-replace' : cas ? 'xdp-flags-replace' : 'netlink-overwrite';
  const intent: IntentOf<'recreate'> = {
    op: 'recreate',
    genDir: genPaths(pinDir, generation).genDir,
    objectDir: objectDirFor(target, pinDir, generation),
    next: null,
    startedAt: new Date().toISOString(),
    pid: process.pid,
  };
  await writeIntent(target, pinDir, intent);
  let built: BuiltGeneration;
  try {
    built = await buildGeneration(target, pinDir, generation, programs, trampoline, mode, patcher, progress, old.hook);
  } catch (e) {
    await removeIntent(target, pinDir);
    throw e;
  }
  const notes = [...built.notes];
  const next: ChainState = {
    ...old,
    genDir: built.genDir,
    generation,
    mode,
    modeReason: reason,
    maxPrograms,
    trampoline: built.trampoline,
    maps: built.maps,
    programs: built.programs,
    attachment: old.attachment ? { ...old.attachment, progId: built.headId, method: swapMethod } : null,
    objectDir: built.objectDir,
    notes,
    updatedAt: new Date().toISOString(),
  };
  try {
    await writeIntent(target, pinDir, { ...intent, next });
    failpoint('recreate:built');
    if (old.attachment) {
      const { ifname } = old.attachment;
      // The decisive step: once the new head is attached, a repair completes this recreate.
      const swapped = await swapHead(target, old.hook, old.attachment, built.headPin, cas);
      failpoint('recreate:swapped');
      if (swapped.newId !== built.headId) {
        throw new LabError('ATTACH', `chain ${old.name}: after the swap ${ifname} runs program ${swapped.newId}, not the new head ${built.headId}`);
      }
      next.attachment = { ...old.attachment, progId: built.headId, method: swapped.method };
      if (swapped.method === 'tc-filter-replace') {
        notes.push(`recreated as generation ${generation}: the head filter at ingress priority ${old.attachment.tc?.prio} swapped in place (tc filter replace, after checking it ran program ${old.attachment.progId})`);
      } else if (swapped.method === 'xdp-flags-replace') {
        notes.push(`recreated as generation ${generation}: attach point swapped by compare-and-swap (XDP_FLAGS_REPLACE, expected program ${old.attachment.progId})`);
      } else {
        const why = `no compare-and-swap on this kernel (${features.features.xdpFlagsReplace?.detail ?? 'not probed'}): the attach point was overwritten in one netlink call between two checks of the attached program`;
        notes.push(`recreated as generation ${generation}: ${why}`);
        progress({ kind: 'log', level: 'warn', message: `chain ${old.name}: ${why}` });
      }
    }
  } catch (e) {
    await bpftool.unpin(target, built.genDir);
    await target.run(['rm', '-rf', built.objectDir], { allowFailure: true });
    await removeIntent(target, pinDir);
    throw e;
  }
  await finishRecreate(target, old, next);
  return next;
}
