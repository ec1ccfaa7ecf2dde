/**
 * `chainStatus`: a chain's state checked against the kernel (pending intent, PROG_ARRAY slots,
 * the attached program). Reads only: it takes no lock and repairs nothing.
 */
import type { Target } from '../../target.ts';
import { readSlots } from '../loader.ts';
import { readIntent } from '../journal.ts';
import type { ChainState } from '../state.ts';
import { attachedId, mustRead } from './shared.ts';

export interface ChainStatus {
  state: ChainState;
  /** Program id attached on the recorded interface (null: none or no attachment recorded). */
  attachedId: number | null;
  /** PROG_ARRAY slots as the kernel has them: index → program id. */
  slots: Record<number, number>;
  /** Empty when the kernel agrees with the state file. */
  problems: string[];
}

/** Reads a chain's state and checks it against the kernel (pins, slots, attachment). */
export async function chainStatus(target: Target, pinDir: string): Promise<ChainStatus> {
  const state = await mustRead(target, pinDir);
  const problems: string[] = [];
  const pending = await readIntent(target, pinDir);
  if (pending) problems.push(`an interrupted ${pending.op} (process ${pending.pid}, ${pending.startedAt}) is pending: the next operation, or \`npm run chain -- repair\`, completes or undoes it`);
  let slots = new Map<number, number>();
  try {
    slots = await readSlots(target, state.maps.chain.pin);
  } catch (e) {
    problems.push(`cannot read ${state.maps.chain.pin}: ${(e as Error).message.split('\n')[0]}`);
  }
  for (const p of state.programs) {
    if (slots.get(p.index) !== p.id) problems.push(`slot ${p.index} holds ${slots.get(p.index) ?? 'nothing'}, state says ${p.id}`);
  }
  for (const k of slots.keys()) {
    if (k >= state.programs.length) problems.push(`slot ${k} holds program ${slots.get(k)} past the chain's end`);
  }
  let attached: number | null = null;
  if (state.attachment) {
    try {
      attached = await attachedId(target, state);
      const at = state.hook === 'sched_cls' ? `${state.attachment.ifname} (TC ingress prio ${state.attachment.tc?.prio})` : state.attachment.ifname;
      if (attached !== state.attachment.progId) problems.push(`${at} runs ${attached ?? 'no program'}, state says ${state.attachment.progId}`);
    } catch (e) {
      problems.push(`cannot read ${state.attachment.ifname}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return { state, attachedId: attached, slots: Object.fromEntries(slots), problems };
}
