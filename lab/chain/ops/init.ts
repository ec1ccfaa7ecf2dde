/**
 * Alg. 3.1: `chainInit` builds a chain (lab/chain/ops/build.ts) and, when asked, attaches its
 * head; on any failure nothing of the chain stays loaded, pinned or attached.
 */
import { basename } from 'node:path';
import { LabError } from '../../errors.ts';
import { silent } from '../../progress.ts';
import { shellQuote, type Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { hasClsact } from '../../tc/clsact.ts';
import { DEFAULT_TC_PRIO, attachHead, detachHead, refuseOccupied, type AttachAt, type Attachment } from '../attach-point.ts';
import type { Hook } from '../constants.ts';
import { existsOn } from '../loader.ts';
import { failpoint, intentPath, shellFailpoint, withShellFailpoints, writeIntent } from '../journal.ts';
import { withChainLock } from '../lock.ts';
import { readState, statePath, writeState, type ChainState } from '../state.ts';
import { type BuiltGeneration, type ChainCommon, type ChainProgramSpec, buildGeneration, checkLength, defaultPatcher, hookOfPrograms, maxChainLength, resolveMode } from './build.ts';
import { repairPending } from './repair.ts';
import { removeHalfBuiltChain } from './shared.ts';

export interface ChainInitOptions extends ChainCommon {
  /** bpffs directory owned by this chain (created; must not exist). */
  pinDir: string;
  /** Name shown by status; defaults to the pin directory's last component. */
  name?: string;
  programs: readonly ChainProgramSpec[];
  /** Put the Annexe I head in front so that program 0 can be replaced too (costs one tail call). */
  trampoline?: boolean;
  /**
   * Attach the head on this interface: native XDP for XDP programs, a cls_bpf filter on clsact
   * ingress at `prio` for TC ones (the programs' sections decide). Absent: load only.
   */
  attach?: AttachAt;
  /**
   * The hook the caller expects (e.g. the CLI's --hook): programs of another hook are refused
   * before anything is loaded, naming both.
   */
  hook?: Hook;
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
  const hook = await hookOfPrograms(options.programs, patcher, options.hook);
  let createdClsact = false;
  if (options.attach) {
    await refuseOccupied(target, hook, options.attach);
    if (hook === 'sched_cls') createdClsact = !(await hasClsact({ target, ...options.attach }));
  }
  await bpftool.ensureBpffs(target);
  const attachIntent = options.attach ? { ifname: options.attach.ifname, netns: options.attach.netns ?? null, ...(hook === 'sched_cls' ? { tc: { prio: options.attach.prio ?? DEFAULT_TC_PRIO, createdClsact } } : {}) } : null;
  await writeIntent(target, pinDir, { op: 'init', attach: attachIntent, startedAt: new Date().toISOString(), pid: process.pid });
  await target.run(['mkdir', '-p', pinDir]);
  let built: BuiltGeneration | null = null;
  let attached: Attachment | null = null;
  try {
    built = await buildGeneration(target, pinDir, 0, options.programs, trampoline, mode, patcher, progress, hook);
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
      hook: built.hook,
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
      attached = await attachHead(target, built.hook, options.attach, built.headPin, built.headId);
      state.attachment = attached;
      progress({ kind: 'log', level: 'info', message: `chain ${name}: head ${built.headId} attached to ${options.attach.ifname}${built.hook === 'sched_cls' ? ` (TC ingress, prio ${attached.tc?.prio})` : ''}` });
      failpoint('init:attached');
    }
    await withShellFailpoints(['init:state-written'], () => writeState(target, state, undefined, shellFailpoint('init:state-written', `rm -f ${shellQuote(intentPath(pinDir))}`)));
    return state;
  } catch (e) {
    if (attached && built) await detachHead(target, built.hook, attached).catch(() => {});
    await removeHalfBuiltChain(target, pinDir);
    throw e;
  }
}
