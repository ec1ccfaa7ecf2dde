/**
 * Alg. 3.1: `chainInit` builds a chain (lab/chain/ops/build.ts) and, when asked, attaches its
 * head; on any failure nothing of the chain stays loaded, pinned or attached.
 */
import { basename } from 'node:path';
import { LabError } from '../../errors.ts';
import { silent } from '../../progress.ts';
import { shellQuote, type Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { existsOn } from '../loader.ts';
import { failpoint, intentPath, writeIntent } from '../journal.ts';
import { withChainLock } from '../lock.ts';
import { readState, statePath, writeState, type ChainState } from '../state.ts';
import { type BuiltGeneration, type ChainCommon, type ChainProgramSpec, buildGeneration, checkLength, defaultPatcher, maxChainLength, resolveMode } from './build.ts';
import { repairPending } from './repair.ts';
import { attachedId, removeHalfBuiltChain } from './shared.ts';

export interface ChainInitOptions extends ChainCommon {
  /** bpffs directory owned by this chain (created; must not exist). */
  pinDir: string;
  /** Name shown by status; defaults to the pin directory's last component. */
  name?: string;
  programs: readonly ChainProgramSpec[];
  /** Put the Annexe I head in front so that program 0 can be replaced too (costs one tail call). */
  trampoline?: boolean;
  /** Attach the head on this interface (native XDP). Absent: load only. */
  attach?: { ifname: string; netns?: string };
  /**
   * Build chains longer than the kernel runs. Only for measuring the limit: the programs past it
   * are loaded and never run.
   */
  ignoreLengthLimit?: boolean;
}

/**
 * Alg. 3.1: builds a chain and, when asked, attaches its head. On any failure nothing of the chain
 * stays loaded, pinned or attached.
 */
export async function chainInit(target: Target, options: ChainInitOptions): Promise<ChainState> {
  return withChainLock(target, options.pinDir, 'chain init', () => chainInitLocked(target, options));
}

async function chainInitLocked(target: Target, options: ChainInitOptions): Promise<ChainState> {
  const progress = options.progress ?? silent;
  const patcher = options.patcher ?? (await defaultPatcher());
  const pinDir = options.pinDir.replace(/\/+$/, '');
  const name = options.name ?? basename(pinDir);
  const trampoline = options.trampoline ?? false;
  if (options.programs.length === 0) {
    throw new LabError('BAD_INPUT', `chain ${name}: no programs given`, { remedy: 'Name at least one BPF object to chain.' });
  }
  statePath(pinDir); // validates the directory before anything is made
  await repairPending(target, pinDir, progress);
  const { features, mode, reason } = await resolveMode(target, options, options.programs, patcher);
  const maxPrograms = options.ignoreLengthLimit ? Math.max(options.programs.length, maxChainLength(features, trampoline)) : checkLength(options.programs.length, features, trampoline, `chain ${name}`);
  if ((await readState(target, pinDir)) !== null || (await existsOn(target, pinDir))) {
    throw new LabError('CHAIN', `chain ${name} already exists (${pinDir})`, {
      remedy: `Detach it first (npm run chain -- detach --name ${name}), or choose another name.`,
    });
  }
  if (options.attach) {
    const current = await attachedId(target, options.attach.ifname, options.attach.netns);
    if (current !== null) {
      throw new LabError('ATTACH', `${options.attach.ifname}${options.attach.netns ? ` (netns ${options.attach.netns})` : ''} already has XDP program ${current} attached`, {
        remedy: 'Detach it first (bpftool net detach xdp dev IFACE, or npm run chain -- detach for a chain).',
      });
    }
  }
  await bpftool.ensureBpffs(target);
  await writeIntent(target, pinDir, { op: 'init', attach: options.attach ? { ifname: options.attach.ifname, netns: options.attach.netns ?? null } : null, startedAt: new Date().toISOString(), pid: process.pid });
  await target.run(['mkdir', '-p', pinDir]);
  let built: BuiltGeneration | null = null;
  let attached = false;
  try {
    built = await buildGeneration(target, pinDir, 0, options.programs, trampoline, mode, patcher, progress);
    failpoint('init:built');
    const now = new Date().toISOString();
    const state: ChainState = {
      version: 1,
      name,
      pinDir,
      genDir: built.genDir,
      generation: 0,
      target: target.name,
      kernelRelease: target.kernelRelease,
      mode,
      modeReason: reason,
      maxPrograms,
      trampoline: built.trampoline,
      maps: built.maps,
      programs: built.programs,
      attachment: null,
      objectDir: built.objectDir,
      notes: built.notes,
      createdAt: now,
      updatedAt: now,
    };
    if (options.attach) {
      // Alg. 3.1 line 9, last: the chain is complete before the first packet can enter it.
      await bpftool.netAttachXdp(target, { pinned: built.headPin }, options.attach.ifname, { netns: options.attach.netns });
      attached = true;
      state.attachment = { ifname: options.attach.ifname, netns: options.attach.netns ?? null, progId: built.headId, method: 'netlink-attach' };
      progress({ kind: 'log', level: 'info', message: `chain ${name}: head ${built.headId} attached to ${options.attach.ifname}` });
      failpoint('init:attached');
    }
    await writeState(target, state, undefined, `rm -f ${shellQuote(intentPath(pinDir))}`);
    return state;
  } catch (e) {
    if (attached && options.attach) {
      await bpftool.netDetachXdp(target, options.attach.ifname, { netns: options.attach.netns }).catch(() => {});
    }
    await removeHalfBuiltChain(target, pinDir);
    throw e;
  }
}
