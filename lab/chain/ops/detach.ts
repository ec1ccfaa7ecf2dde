/**
 * `chainDetach`: detaches a chain's head if it is still ours and removes every pin, object and
 * the state file, after repairing an interrupted operation.
 */
import { isLabError } from '../../errors.ts';
import type { Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { attachPointText, detachHead } from '../attach-point.ts';
import { withChainLock } from '../lock.ts';
import { readState, removeState, type ChainState } from '../state.ts';
import { repairPending } from './repair.ts';
import { attachedId } from './shared.ts';

/**
 * Detaches the head (if it is still ours) and removes every pin, object and the state file. Safe
 * after a partial build and when nothing is left: it then only clears what exists.
 */
export async function chainDetach(target: Target, pinDir: string): Promise<{ detached: boolean; notes: string[] }> {
  return withChainLock(target, pinDir, 'chain detach', () => chainDetachLocked(target, pinDir));
}

async function chainDetachLocked(target: Target, pinDir: string): Promise<{ detached: boolean; notes: string[] }> {
  const notes: string[] = [];
  // A chain an interrupted operation left half changed is made whole first, so detach knows its head.
  try {
    const r = await repairPending(target, pinDir);
    if (r.op) notes.push(`an interrupted ${r.op} was ${r.action}: ${r.detail}`);
  } catch (e) {
    if (!isLabError(e, 'CHAIN')) throw e;
    notes.push(e.message);
  }
  let state: ChainState | null = null;
  try {
    state = await readState(target, pinDir);
  } catch (e) {
    if (!isLabError(e, 'CHAIN')) throw e;
    notes.push(e.message);
  }
  let detached = false;
  if (state?.attachment) {
    const { progId } = state.attachment;
    const current = await attachedId(target, state).catch(() => null);
    if (current === progId) {
      notes.push(...(await detachHead(target, state.hook, state.attachment)));
      detached = true;
    } else if (current !== null) {
      notes.push(`${attachPointText(state.hook, { ...state.attachment, prio: state.attachment.tc?.prio })} runs program ${current}, not the chain's head ${progId}: left attached`);
    }
  }
  // Every generation's objects live under one directory per chain.
  if (state) await target.run(['rm', '-rf', state.objectDir.replace(/\/gen-\d+$/, '')], { allowFailure: true });
  await bpftool.unpin(target, pinDir);
  await removeState(target, pinDir);
  return { detached, notes };
}
