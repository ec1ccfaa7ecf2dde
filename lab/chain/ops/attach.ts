/**
 * `chainAttach`: attaches an already built chain's head (the Approach interface separates load
 * and attach), on the attach point of the chain's hook (lab/chain/attach-point.ts).
 */
import { LabError } from '../../errors.ts';
import type { Target } from '../../target.ts';
import { attachHead, attachPointText, refuseOccupied, runningAt, type AttachAt } from '../attach-point.ts';
import { withChainLock } from '../lock.ts';
import { writeState, type ChainState } from '../state.ts';
import { repairPending } from './repair.ts';
import { mustRead } from './shared.ts';

export async function chainAttach(target: Target, pinDir: string, at: AttachAt): Promise<ChainState> {
  return withChainLock(target, pinDir, 'chain attach', () => chainAttachLocked(target, pinDir, at));
}

async function chainAttachLocked(target: Target, pinDir: string, at: AttachAt): Promise<ChainState> {
  await repairPending(target, pinDir);
  const state = await mustRead(target, pinDir);
  const head = state.trampoline ?? state.programs[0]!;
  if (state.attachment) {
    if (state.attachment.ifname === at.ifname && (state.attachment.netns ?? null) === (at.netns ?? null) && (await runningAt(target, state.hook, { ...at, prio: state.attachment.tc?.prio })) === head.id) return state;
    throw new LabError('ATTACH', `chain ${state.name} is attached already (${attachPointText(state.hook, { ...state.attachment, prio: state.attachment.tc?.prio })})`, { remedy: 'Detach the chain first, or build another one.' });
  }
  await refuseOccupied(target, state.hook, at);
  state.attachment = await attachHead(target, state.hook, at, head.pin, head.id);
  state.updatedAt = new Date().toISOString();
  await writeState(target, state);
  return state;
}
