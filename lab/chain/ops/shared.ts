/**
 * What the chain operations share: where a chain's pins and objects live, reading its state,
 * asking the kernel what an interface runs, and the journaled last steps that both an operation
 * and a repair of it take (commit a replace, finish a recreate, remove a half-built chain).
 *
 * Pin layout, all under the chain's pinDir:
 *   gen-<n>/maps/xcl_chain   gen-<n>/maps/xcl_verdict   gen-<n>/progs/<i>   gen-<n>/head (trampoline)
 * A recreate builds gen-<n+1> beside the running one, swaps the attach point, then drops gen-<n>.
 */
import { LabError } from '../../errors.ts';
import { shellQuote, type Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { CHAIN_MAP, VERDICT_MAP } from '../constants.ts';
import type { ChainMapPins } from '../loader.ts';
import { runningAtAttachment } from '../attach-point.ts';
import { failpoint, intentPath, removeIntent, shellFailpoint, withShellFailpoints, type IntentOf } from '../journal.ts';
import { readState, removeState, statePath, writeState, type ChainState } from '../state.ts';

/** The pins of generation `generation` of the chain at `pinDir`. */
export function genPaths(pinDir: string, generation: number): { genDir: string; maps: ChainMapPins; progs: string; head: string } {
  const genDir = `${pinDir}/gen-${generation}`;
  return { genDir, maps: { chain: `${genDir}/maps/${CHAIN_MAP}`, verdict: `${genDir}/maps/${VERDICT_MAP}` }, progs: `${genDir}/progs`, head: `${genDir}/head` };
}

/** Where a generation's patched objects live on the target (one directory per chain). */
export function objectDirFor(target: Target, pinDir: string, generation: number): string {
  return `${target.workDir}/chains/${pinDir.replace(/^\/sys\/fs\/bpf\//, '').replace(/\//g, '_')}/gen-${generation}`;
}

/** The program a chain's recorded attach point runs now (its hook's: XDP, or the TC filter), or null. */
export async function attachedId(target: Target, state: Pick<ChainState, 'hook' | 'attachment'>): Promise<number | null> {
  return state.attachment ? runningAtAttachment(target, state.hook, state.attachment) : null;
}

/** The chain's state, or a CHAIN error naming where it was looked for. */
export async function mustRead(target: Target, pinDir: string): Promise<ChainState> {
  const state = await readState(target, pinDir);
  if (!state) {
    throw new LabError('CHAIN', `no chain at ${pinDir} on ${target.name} (no ${statePath(pinDir)})`, {
      remedy: 'Build it first (npm run chain -- attach ...); `npm run chain -- status` lists the chains.',
    });
  }
  return state;
}

/** Everything an init made before it could write the state: objects, pins, state, intent. */
export async function removeHalfBuiltChain(target: Target, pinDir: string): Promise<void> {
  await target.run(['rm', '-rf', objectDirFor(target, pinDir, 0).replace(/\/gen-0$/, '')], { allowFailure: true });
  await bpftool.unpin(target, pinDir);
  // The intent first: removeState then prunes the directories both lived in.
  await removeIntent(target, pinDir);
  await removeState(target, pinDir);
}

// The trampoline's slot is a PROG_ARRAY element: the kernel has no compare-and-swap for a map
// update, so what keeps two managers apart there is the chain lock, not the kernel.
export const SLOT0_NOTE = 'slot 0 (behind the trampoline) replaced by a plain PROG_ARRAY update: the kernel offers no compare-and-swap for a map slot; only lab managers, which take the chain lock, are kept apart';

/**
 * The last step of a replace whose slot already runs the new program (a replace, or a repair
 * finishing one): the state names it, its pin takes the slot's name, the old program's pin (and
 * with it the program) goes, and the intent is dropped, in one shell.
 */
export async function commitReplace(target: Target, state: ChainState, intent: IntentOf<'replace'>, loaded: { id: number; tag: string }, pinMoved = false): Promise<void> {
  const oldPin = state.programs[intent.index]!.pin;
  state.programs[intent.index] = { index: intent.index, ...intent.program, id: loaded.id, tag: loaded.tag, pin: oldPin };
  if (intent.index === 0 && !state.notes.includes(SLOT0_NOTE)) state.notes.push(SLOT0_NOTE);
  state.updatedAt = new Date().toISOString();
  // pinMoved: a repair of a commit killed after this step (the new pin already has the slot's name).
  const movePins = pinMoved ? 'true' : `rm -f ${shellQuote(oldPin)} && mv ${shellQuote(intent.newPin)} ${shellQuote(oldPin)}`;
  await withShellFailpoints(['replace:pin-moved', 'replace:state-written'], () =>
    writeState(target, state, `${movePins} && ${shellFailpoint('replace:pin-moved', 'true')}`, shellFailpoint('replace:state-written', `rm -f ${shellQuote(intentPath(state.pinDir))}`)),
  );
}

/** The swap is done (or there was none): the next generation becomes the chain, the old one goes. */
export async function finishRecreate(target: Target, old: ChainState, next: ChainState): Promise<void> {
  await writeState(target, next);
  failpoint('recreate:state-written');
  await dropGeneration(target, old);
}

/**
 * A recreate's last step, after the state names the next generation: the old one is unreachable,
 * so dropping its pins frees its programs and maps; then the intent goes.
 */
export async function dropGeneration(target: Target, old: Pick<ChainState, 'pinDir' | 'genDir' | 'objectDir'>): Promise<void> {
  await bpftool.unpin(target, old.genDir);
  await target.run(['rm', '-rf', old.objectDir], { allowFailure: true });
  await removeIntent(target, old.pinDir);
}
