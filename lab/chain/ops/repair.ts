/**
 * `chainRepair`: finishes or undoes the operation a killed process left half done, from its
 * intent file (lab/chain/journal.ts). Every chain operation runs `repairPending` first.
 */
import { basename } from 'node:path';
import { LabError } from '../../errors.ts';
import type { ProgressSink } from '../../progress.ts';
import { shellQuote, type Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { readSlots } from '../loader.ts';
import { detachHead, runningAt } from '../attach-point.ts';
import { readIntent, removeIntent } from '../journal.ts';
import { withChainLock } from '../lock.ts';
import { readState } from '../state.ts';
import { attachedId, commitReplace, dropGeneration, finishRecreate, genPaths, objectDirFor, removeHalfBuiltChain } from './shared.ts';

export interface RepairResult {
  /** The operation found interrupted, or null when none was. */
  op: 'init' | 'replace' | 'recreate' | null;
  action: 'completed' | 'rolled back' | 'nothing to do';
  detail: string;
}

/**
 * Finishes or undoes an operation a killed process left half done, from its intent file: a
 * replace whose slot already holds the new program is completed (pins moved, state written: from
 * wherever inside that last shell it was killed), otherwise its new pin is dropped; a recreate
 * whose new head is attached is completed (whether or not the state already named it), otherwise
 * its next generation is dropped; an init whose state was written is kept, any other undone (its
 * head detached when it got that far). Every chain operation runs this first; `chain repair` runs it alone.
 */
export async function chainRepair(target: Target, pinDir: string, progress?: ProgressSink): Promise<RepairResult> {
  return withChainLock(target, pinDir, 'chain repair', () => repairPending(target, pinDir, progress));
}

export async function repairPending(target: Target, pinDir: string, progress?: ProgressSink): Promise<RepairResult> {
  const intent = await readIntent(target, pinDir);
  if (!intent) return { op: null, action: 'nothing to do', detail: 'no interrupted operation' };
  const result = await repairIntent(target, pinDir, intent);
  progress?.({ kind: 'log', level: 'warn', message: `chain ${basename(pinDir)}: an interrupted ${intent.op} (process ${intent.pid}, ${intent.startedAt}) was ${result.action}: ${result.detail}` });
  return result;
}

async function repairIntent(target: Target, pinDir: string, intent: NonNullable<Awaited<ReturnType<typeof readIntent>>>): Promise<RepairResult> {
  const state = await readState(target, pinDir);
  if (intent.op === 'init') {
    if (state) {
      await removeIntent(target, pinDir);
      return { op: 'init', action: 'completed', detail: 'the state was written; only the intent was left' };
    }
    let detail = 'its pins and objects removed';
    if (intent.attach) {
      // The half-built head is attached only if the attached program is pinned under this chain.
      // An intent with `tc` was a TC chain's: its head is the filter at the recorded priority.
      const hook = intent.attach.tc ? 'sched_cls' : 'xdp';
      const current = await runningAt(target, hook, { ifname: intent.attach.ifname, netns: intent.attach.netns, prio: intent.attach.tc?.prio }).catch(() => null);
      const ours = current !== null && (await pinnedIds(target, pinDir)).has(current);
      if (ours) {
        await detachHead(target, hook, { ifname: intent.attach.ifname, netns: intent.attach.netns, progId: current, method: hook === 'xdp' ? 'netlink-attach' : 'tc-filter-add', tc: intent.attach.tc });
        detail = `its head ${current} detached from ${intent.attach.ifname}, ${detail}`;
      } else if (intent.attach.tc?.createdClsact) {
        // Killed between adding clsact and adding the filter: the empty qdisc was the init's.
        await detachHead(target, hook, { ifname: intent.attach.ifname, netns: intent.attach.netns, progId: -1, method: 'tc-filter-add', tc: intent.attach.tc }).catch(() => undefined);
      }
    }
    await removeHalfBuiltChain(target, pinDir);
    return { op: 'init', action: 'rolled back', detail };
  }
  if (!state) {
    await removeIntent(target, pinDir);
    return { op: intent.op, action: 'rolled back', detail: 'no chain state: nothing to finish' };
  }
  if (intent.op === 'replace') {
    const slot = (await readSlots(target, state.maps.chain.pin)).get(intent.index);
    const fresh = await bpftool.progShow(target, { pinned: intent.newPin }).catch(() => null);
    if (fresh && slot === fresh.id) {
      await commitReplace(target, state, intent, fresh);
      return { op: 'replace', action: 'completed', detail: `slot ${intent.index} already ran program ${fresh.id}: pins and state updated` };
    }
    // Killed inside the commit, after the new program's pin took the slot's pin name: the slot runs
    // what that name pins, and the state still names the old program, or already the new one.
    const recorded = state.programs[intent.index];
    const named = !fresh && recorded ? await bpftool.progShow(target, { pinned: recorded.pin }).catch(() => null) : null;
    if (named && slot === named.id) {
      if (named.id === recorded!.id) {
        await removeIntent(target, pinDir);
        return { op: 'replace', action: 'completed', detail: `the state already names program ${named.id} in slot ${intent.index}: only the intent was left` };
      }
      await commitReplace(target, state, intent, named, true);
      return { op: 'replace', action: 'completed', detail: `slot ${intent.index} already ran program ${named.id}, pinned under the slot's name: state updated` };
    }
    await target.run(['rm', '-f', intent.newPin], { allowFailure: true });
    await removeIntent(target, pinDir);
    return { op: 'replace', action: 'rolled back', detail: `slot ${intent.index} still runs program ${slot ?? 'none'}: the new program's pin removed` };
  }
  // recreate
  const next = intent.next;
  if (next && state.generation === next.generation) {
    // Killed after the state named the next generation: only the old one is left to drop.
    const prev = state.generation - 1;
    await dropGeneration(target, { pinDir, genDir: genPaths(pinDir, prev).genDir, objectDir: objectDirFor(target, pinDir, prev) });
    return { op: 'recreate', action: 'completed', detail: `the state already named generation ${state.generation}: generation ${prev} removed` };
  }
  const current = await attachedId(target, state).catch(() => null);
  if (next && state.attachment && next.attachment && current === next.attachment.progId) {
    await finishRecreate(target, state, next);
    return { op: 'recreate', action: 'completed', detail: `${state.attachment.ifname} already ran the new head ${current}: generation ${next.generation} recorded, generation ${state.generation} removed` };
  }
  if (state.attachment && current !== state.attachment.progId) {
    throw new LabError('CHAIN', `chain ${state.name}: an interrupted recreate left ${state.attachment.ifname} running program ${current ?? 'none'}, neither the old head ${state.attachment.progId} nor the new one ${next?.attachment?.progId ?? '(not built)'}`, {
      remedy: `Inspect with \`bpftool net show dev ${state.attachment.ifname}\`; then detach the chain (npm run chain -- detach) and build it again.`,
    });
  }
  await bpftool.unpin(target, intent.genDir);
  await target.run(['rm', '-rf', intent.objectDir], { allowFailure: true });
  await removeIntent(target, pinDir);
  return { op: 'recreate', action: 'rolled back', detail: `the old head still runs: generation ${state.generation + 1} removed` };
}

/** Ids of every program pinned under the chain's directory. */
async function pinnedIds(target: Target, pinDir: string): Promise<Set<number>> {
  const r = await target.sh(`find ${shellQuote(pinDir)} -path '*/progs/*' -o -name head 2>/dev/null`, { allowFailure: true });
  const ids = new Set<number>();
  for (const pin of r.stdout.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const p = await bpftool.progShow(target, { pinned: pin }).catch(() => null);
    if (p) ids.add(p.id);
  }
  return ids;
}
