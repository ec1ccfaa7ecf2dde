/**
 * `chainAttach`: attaches an already built chain's head (the Approach interface separates load
 * and attach).
 */
import { LabError } from '../../errors.ts';
import type { Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { withChainLock } from '../lock.ts';
import { writeState, type ChainState } from '../state.ts';
import { repairPending } from './repair.ts';
import { attachedId, mustRead } from './shared.ts';

export async function chainAttach(target: Target, pinDir: string, at: { ifname: string; netns?: string }): Promise<ChainState> {
  return withChainLock(target, pinDir, 'chain attach', () => chainAttachLocked(target, pinDir, at));
}

async function chainAttachLocked(target: Target, pinDir: string, at: { ifname: string; netns?: string }): Promise<ChainState> {
  await repairPending(target, pinDir);
  const state = await mustRead(target, pinDir);
  const head = state.trampoline ?? state.programs[0]!;
  const current = await attachedId(target, at.ifname, at.netns);
  if (current === head.id) return state;
  if (current !== null) {
    throw new LabError('ATTACH', `${at.ifname} already has XDP program ${current} attached`, { remedy: 'Detach it first.' });
  }
  await bpftool.netAttachXdp(target, { pinned: head.pin }, at.ifname, { netns: at.netns });
  state.attachment = { ifname: at.ifname, netns: at.netns ?? null, progId: head.id, method: 'netlink-attach' };
  state.updatedAt = new Date().toISOString();
  await writeState(target, state);
  return state;
}
