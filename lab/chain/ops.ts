/**
 * Chain operations of the thesis (§3.1) over a Target: init (Alg. 3.1), atomic replace of one
 * program (Alg. 3.2), recreate with a swap on the attach point (Alg. 3.3), the optional head
 * trampoline (Annexe I), status and detach. Each program is patched (Alg. 3.4, lab/chain/patch.ts)
 * with its own index, loaded with bpftool so that all of them share one pinned PROG_ARRAY
 * (xcl_chain, the edges E) and one pinned per-CPU verdict map (xcl_verdict, the saved code C).
 *
 * Pin layout, all under the chain's pinDir:
 *   gen-<n>/maps/xcl_chain   gen-<n>/maps/xcl_verdict   gen-<n>/progs/<i>   gen-<n>/head (trampoline)
 * A recreate builds gen-<n+1> beside the running one, swaps the attach point, then drops gen-<n>.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { LabError, isLabError, wrapError } from '../errors.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { shellQuote, type Target } from '../target.ts';
import * as bpftool from '../bpftool/index.ts';
import { cachedFeatures, type KernelFeatures } from '../features.ts';
import { listPrograms, patchObject, type PatchOptions, type PatchResult } from './patch.ts';
import { CHAIN_MAP, DEFAULT_REDIRECT, DEFAULT_SUCCESS, VERDICT_MAP, XDP_ACTION_NAMES, type PatchMode } from './constants.ts';
import { choosePatchMode, type ModeBody } from './mode.ts';
import {
  TRAMPOLINE_SOURCE,
  compileBpfSource,
  existsOn,
  loadChainProgram,
  pinChainMaps,
  putObject,
  readSlots,
  setSlot,
  type ChainMapPins,
} from './loader.ts';
import { failpoint, intentPath, readIntent, removeIntent, writeIntent, type IntentOf } from './journal.ts';
import { withChainLock } from './lock.ts';
import { swapXdp } from './swap.ts';
import { readState, removeState, statePath, writeState, type ChainProgram, type ChainState } from './state.ts';

/** The patcher's two entry points; tests may pass their own (e.g. a reference patch). */
export interface Patcher {
  patchObject(input: Uint8Array, options: PatchOptions): PatchResult;
  listPrograms(input: Uint8Array, fileName?: string): ProgramListing[];
}
export type ProgramListing = ReturnType<typeof listPrograms>[number];

/** lab/chain/patch.ts. */
export async function defaultPatcher(): Promise<Patcher> {
  return { patchObject, listPrograms };
}

export interface ChainProgramSpec {
  /** BPF object on the machine running the lab. */
  path: string;
  /** Program to chain when the object holds several XDP programs. */
  program?: string;
  success?: readonly number[];
  redirect?: readonly number[];
  /**
   * Maps of this program to take from existing pins instead of creating them, so state such as
   * counters survives a replace (bpftool `map name NAME pinned PATH`).
   */
  maps?: { name: string; pinned: string }[];
  /**
   * Replace only: the new program takes over the maps of the program it replaces that have the same
   * name (reused by id), so counters and configuration survive the swap.
   */
  keepMaps?: boolean;
}

export interface ChainCommon {
  /** Defaults to choosePatchMode (lab/chain/mode.ts): inline unless a body calls other functions. */
  mode?: PatchMode;
  /** Probed once per target when absent. */
  features?: KernelFeatures;
  patcher?: Patcher;
  progress?: ProgressSink;
}

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

function verdictName(v: number): string {
  return XDP_ACTION_NAMES[v] ?? String(v);
}

/** Most programs a chain may hold on this kernel (trampoline accounted for). */
export function maxChainLength(features: KernelFeatures, trampoline: boolean): number {
  // 34 = 1 + MAX_TAIL_CALL_CNT(33) on every kernel since 5.17 and, through an off-by-one, before.
  const perPacket = features.maxChainPrograms ?? 34;
  return perPacket - (trampoline ? 1 : 0);
}

function checkLength(count: number, features: KernelFeatures, trampoline: boolean, where: string): number {
  const max = maxChainLength(features, trampoline);
  if (count > max) {
    const measured = features.maxChainPrograms === null ? 'assumed' : 'measured';
    throw new LabError(
      'CHAIN',
      `${where}: ${count} programs is too many: kernel ${features.kernelRelease} runs at most ${features.maxChainPrograms ?? 34} programs per packet through tail calls (${measured})${trampoline ? ', one of them the head trampoline' : ''}, so a chain holds at most ${max}`,
      { remedy: trampoline ? `Chain at most ${max} programs, or drop --trampoline to gain one.` : `Chain at most ${max} programs (merge some, or split the work across hooks).` },
    );
  }
  return max;
}

interface PreparedProgram {
  spec: ChainProgramSpec;
  index: number;
  success: number[];
  redirect: number[];
  result: PatchResult;
  /** Patched object on the target. */
  remote: string;
}

/** Patches one object for slot `index` and puts it on the target. Errors name the file. */
async function prepare(target: Target, spec: ChainProgramSpec, index: number, mode: PatchMode, patcher: Patcher, localDir: string, remoteDir: string): Promise<PreparedProgram> {
  let input: Uint8Array;
  try {
    input = new Uint8Array(await readFile(spec.path));
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new LabError('MISSING_FILE', `${spec.path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`, {
      remedy: 'Give the path of a compiled BPF object (.o), e.g. build/bpf/filter.o after `npm run build:bpf`.',
    });
  }
  const file = basename(spec.path);
  // Refuse programs that already tail-call: a successful tail call never returns, so the patch's
  // epilogue (and every program after this one) would silently be skipped for those packets.
  let listed: ProgramListing[];
  try {
    listed = patcher.listPrograms(input, file);
  } catch (e) {
    throw wrapError('BAD_ELF', spec.path, e, 'Give a BPF object compiled with clang -target bpf.');
  }
  const chosen = spec.program === undefined ? listed : listed.filter((p) => p.name === spec.program);
  for (const p of chosen) {
    if (p.hasTailCalls) {
      throw new LabError('CHAIN', `${spec.path}: program ${p.name} (section ${p.section}) calls bpf_tail_call itself; a tail call never returns, so the programs after it in the chain would be skipped`, {
        remedy: 'Chain only programs that do not tail-call; chain its tail-call targets as separate programs instead.',
      });
    }
  }
  const success = [...(spec.success ?? DEFAULT_SUCCESS)];
  const redirect = [...(spec.redirect ?? DEFAULT_REDIRECT)];
  const overlap = success.filter((v) => redirect.includes(v));
  if (overlap.length > 0) {
    throw new LabError('BAD_INPUT', `${spec.path}: verdict ${overlap.map(verdictName).join(', ')} is both a success and a redirect verdict`, {
      remedy: 'A verdict either continues the chain (success) or continues and is remembered (redirect), not both.',
    });
  }
  let result: PatchResult;
  try {
    result = patcher.patchObject(input, { index, success, redirect, mode, program: spec.program, chainMap: CHAIN_MAP, verdictMap: VERDICT_MAP, fileName: file });
  } catch (e) {
    throw wrapError('PATCH', `${spec.path}: patching for slot ${index}`, e);
  }
  const localName = `${index}-${file.replace(/\.o$/, '')}.chain.o`;
  const local = join(localDir, localName);
  await writeFile(local, result.object);
  const remote = await putObject(target, local, remoteDir, localName);
  return { spec, index, success, redirect, result, remote };
}

function genPaths(pinDir: string, generation: number): { genDir: string; maps: ChainMapPins; progs: string; head: string } {
  const genDir = `${pinDir}/gen-${generation}`;
  return { genDir, maps: { chain: `${genDir}/maps/${CHAIN_MAP}`, verdict: `${genDir}/maps/${VERDICT_MAP}` }, progs: `${genDir}/progs`, head: `${genDir}/head` };
}

function objectDirFor(target: Target, pinDir: string, generation: number): string {
  return `${target.workDir}/chains/${pinDir.replace(/^\/sys\/fs\/bpf\//, '').replace(/\//g, '_')}/gen-${generation}`;
}

interface BuiltGeneration {
  generation: number;
  genDir: string;
  objectDir: string;
  maps: ChainState['maps'];
  programs: ChainProgram[];
  trampoline: ChainState['trampoline'];
  headPin: string;
  headId: number;
  notes: string[];
}

/**
 * The kernel tail-calls between XDP programs only if all of them do or all of them do not accept
 * multi-buffer packets (SEC("xdp.frags"), 5.18+): a mix is refused at load with a bare EINVAL.
 */
function checkFrags(programs: readonly { where: string; section: string }[]): void {
  const frags = programs.filter((p) => p.section.startsWith('xdp.frags'));
  if (frags.length === 0 || frags.length === programs.length) return;
  const plain = programs.filter((p) => !p.section.startsWith('xdp.frags'));
  throw new LabError('CHAIN', `a chain cannot mix multi-buffer programs (${frags.map((p) => `${p.where} in ${p.section}`).join(', ')}) with plain ones (${plain.map((p) => p.where).join(', ')}): the kernel refuses tail calls between them`, {
    remedy: 'Chain only SEC("xdp") programs, or only SEC("xdp.frags") ones (rebuild the others with the same section).',
  });
}

/**
 * Alg. 3.1 minus the attach: patch every program with its index, load it sharing the two maps,
 * and fill the PROG_ARRAY. Removes everything it made when any step fails.
 */
async function buildGeneration(target: Target, pinDir: string, generation: number, programs: readonly ChainProgramSpec[], trampoline: boolean, mode: PatchMode, patcher: Patcher, progress: ProgressSink): Promise<BuiltGeneration> {
  const paths = genPaths(pinDir, generation);
  const objectDir = objectDirFor(target, pinDir, generation);
  const localDir = await mkdtemp(join(tmpdir(), 'xcl-chain-'));
  try {
    await target.run(['mkdir', '-p', objectDir]);
    const prepared: PreparedProgram[] = [];
    for (const [i, spec] of programs.entries()) {
      prepared.push(await prepare(target, spec, i, mode, patcher, localDir, objectDir));
    }
    checkFrags(prepared.map((p) => ({ where: `${basename(p.spec.path)}:${p.result.program}`, section: p.result.section })));
    const notes = [...new Set(prepared.flatMap((p) => p.result.notes.map((n) => `${basename(p.spec.path)}: ${n}`)))];
    await target.run(['mkdir', '-p', `${paths.genDir}/maps`, paths.progs]);
    try {
      const chained: ChainProgram[] = [];
      let maps: ChainState['maps'] | null = null;
      for (const p of prepared) {
        const pin = `${paths.progs}/${p.index}`;
        const extra = p.spec.maps ?? [];
        let info: bpftool.ProgInfo;
        if (maps === null) {
          // The first program creates the chain's maps from the patch's own definitions.
          info = await bpftool.load(target, p.remote, pin, { type: 'xdp', maps: extra });
          const ids = await pinChainMaps(target, info, paths.maps, p.spec.path);
          maps = { chain: { id: ids.chainId, pin: paths.maps.chain }, verdict: { id: ids.verdictId, pin: paths.maps.verdict } };
        } else {
          info = await bpftool.load(target, p.remote, pin, {
            type: 'xdp',
            maps: [{ name: CHAIN_MAP, pinned: paths.maps.chain }, { name: VERDICT_MAP, pinned: paths.maps.verdict }, ...extra],
          });
        }
        // Alg. 3.1 line 6: the edge (p_{i-1}, p_i) is slot i; slot 0 is what the trampoline calls.
        await setSlot(target, paths.maps.chain, p.index, pin);
        chained.push({
          index: p.index,
          source: p.spec.path,
          program: p.result.program,
          section: p.result.section,
          success: p.success,
          redirect: p.redirect,
          id: info.id,
          tag: info.tag,
          pin,
        });
        progress({ kind: 'log', level: 'info', message: `slot ${p.index}: ${basename(p.spec.path)} (${p.result.program}) loaded as program ${info.id}` });
      }
      if (maps === null) throw new LabError('CHAIN', 'a chain needs at least one program');
      let tramp: ChainState['trampoline'] = null;
      if (trampoline) {
        const local = await compileBpfSource(TRAMPOLINE_SOURCE, 'xcl-head');
        const remote = await putObject(target, local, objectDir, 'xcl-head.o');
        const info = await loadChainProgram(target, remote, paths.head, paths.maps, true);
        tramp = { id: info.id, pin: paths.head };
      }
      const head = tramp ?? { id: chained[0]!.id, pin: chained[0]!.pin };
      return { generation, genDir: paths.genDir, objectDir, maps, programs: chained, trampoline: tramp, headPin: head.pin, headId: head.id, notes };
    } catch (e) {
      await bpftool.unpin(target, paths.genDir);
      throw e;
    }
  } catch (e) {
    await target.run(['rm', '-rf', objectDir], { allowFailure: true });
    throw e;
  } finally {
    await rm(localDir, { recursive: true, force: true });
  }
}

async function attachedId(target: Target, ifname: string, netns: string | undefined): Promise<number | null> {
  const xs = await bpftool.xdpAttached(target, ifname, netns);
  return xs[0]?.id ?? null;
}

async function resolveMode(target: Target, common: ChainCommon, programs: readonly ChainProgramSpec[], patcher: Patcher): Promise<{ features: KernelFeatures; mode: PatchMode; reason: string }> {
  const features = common.features ?? (await cachedFeatures(target, { chainOnly: true }));
  if (common.mode) return { features, mode: common.mode, reason: `${common.mode}: chosen by the caller` };
  return { features, ...choosePatchMode(features, await bodiesOf(programs, patcher)) };
}

/** What the mode choice needs of each program; one that cannot be read is left to the patch to report. */
async function bodiesOf(programs: readonly ChainProgramSpec[], patcher: Patcher): Promise<ModeBody[]> {
  const out: ModeBody[] = [];
  for (const spec of programs) {
    try {
      const listed = patcher.listPrograms(new Uint8Array(await readFile(spec.path)), spec.path);
      const p = spec.program ? listed.find((x) => x.name === spec.program) : listed.length === 1 ? listed[0] : undefined;
      if (p) out.push({ where: `${basename(spec.path)}:${p.name}`, hasSubprogCalls: p.hasSubprogCalls });
    } catch {
      /* reported with its context when the program is patched */
    }
  }
  return out;
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

/** Everything an init made before it could write the state: objects, pins, state, intent. */
async function removeHalfBuiltChain(target: Target, pinDir: string): Promise<void> {
  await target.run(['rm', '-rf', objectDirFor(target, pinDir, 0).replace(/\/gen-0$/, '')], { allowFailure: true });
  await bpftool.unpin(target, pinDir);
  // The intent first: removeState then prunes the directories both lived in.
  await removeIntent(target, pinDir);
  await removeState(target, pinDir);
}

// The trampoline's slot is a PROG_ARRAY element: the kernel has no compare-and-swap for a map
// update, so what keeps two managers apart there is the chain lock, not the kernel.
const SLOT0_NOTE = 'slot 0 (behind the trampoline) replaced by a plain PROG_ARRAY update: the kernel offers no compare-and-swap for a map slot; only lab managers, which take the chain lock, are kept apart';

/**
 * The last step of a replace whose slot already runs the new program (a replace, or a repair
 * finishing one): the state names it, its pin takes the slot's name, the old program's pin (and
 * with it the program) goes, and the intent is dropped, in one shell.
 */
async function commitReplace(target: Target, state: ChainState, intent: IntentOf<'replace'>, loaded: { id: number; tag: string }): Promise<void> {
  const oldPin = state.programs[intent.index]!.pin;
  state.programs[intent.index] = { index: intent.index, ...intent.program, id: loaded.id, tag: loaded.tag, pin: oldPin };
  if (intent.index === 0 && !state.notes.includes(SLOT0_NOTE)) state.notes.push(SLOT0_NOTE);
  state.updatedAt = new Date().toISOString();
  await writeState(target, state, `rm -f ${shellQuote(oldPin)} && mv ${shellQuote(intent.newPin)} ${shellQuote(oldPin)}`, `rm -f ${shellQuote(intentPath(state.pinDir))}`);
}

export interface RepairResult {
  /** The operation found interrupted, or null when none was. */
  op: 'init' | 'replace' | 'recreate' | null;
  action: 'completed' | 'rolled back' | 'nothing to do';
  detail: string;
}

/**
 * Finishes or undoes an operation a killed process left half done, from its intent file: a
 * replace whose slot already holds the new program is completed (pins moved, state written),
 * otherwise its new pin is dropped; a recreate whose new head is attached is completed, otherwise
 * its next generation is dropped; an init is always undone (its head detached when it got that
 * far). Every chain operation runs this first; `chain repair` runs it alone.
 */
export async function chainRepair(target: Target, pinDir: string, progress?: ProgressSink): Promise<RepairResult> {
  return withChainLock(target, pinDir, 'chain repair', () => repairPending(target, pinDir, progress));
}

async function repairPending(target: Target, pinDir: string, progress?: ProgressSink): Promise<RepairResult> {
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
      const current = await attachedId(target, intent.attach.ifname, intent.attach.netns ?? undefined).catch(() => null);
      const ours = current !== null && (await pinnedIds(target, pinDir)).has(current);
      if (ours) {
        await bpftool.netDetachXdp(target, intent.attach.ifname, { netns: intent.attach.netns ?? undefined });
        detail = `its head ${current} detached from ${intent.attach.ifname}, ${detail}`;
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
    await target.run(['rm', '-f', intent.newPin], { allowFailure: true });
    await removeIntent(target, pinDir);
    return { op: 'replace', action: 'rolled back', detail: `slot ${intent.index} still runs program ${slot ?? 'none'}: the new program's pin removed` };
  }
  // recreate
  const next = intent.next;
  const current = state.attachment ? await attachedId(target, state.attachment.ifname, state.attachment.netns ?? undefined).catch(() => null) : null;
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

async function mustRead(target: Target, pinDir: string): Promise<ChainState> {
  const state = await readState(target, pinDir);
  if (!state) {
    throw new LabError('CHAIN', `no chain at ${pinDir} on ${target.name} (no ${statePath(pinDir)})`, {
      remedy: 'Build it first (npm run chain -- attach ...); `npm run chain -- status` lists the chains.',
    });
  }
  return state;
}

/** Attaches an already built chain's head (the Approach interface separates load and attach). */
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
    checkFrags([
      ...state.programs.filter((x) => x.index !== index).map((x) => ({ where: `slot ${x.index} (${x.program})`, section: x.section })),
      { where: `${basename(spec.path)}:${p.result.program}`, section: p.result.section },
    ]);
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
    const info = await bpftool.load(target, p.remote, newPin, { type: 'xdp', maps: reuse });
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
    built = await buildGeneration(target, pinDir, generation, programs, trampoline, mode, patcher, progress);
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
    attachment: old.attachment ? { ...old.attachment, progId: built.headId, method: cas ? 'xdp-flags-replace' : 'netlink-overwrite' } : null,
    objectDir: built.objectDir,
    notes,
    updatedAt: new Date().toISOString(),
  };
  try {
    await writeIntent(target, pinDir, { ...intent, next });
    failpoint('recreate:built');
    if (old.attachment) {
      const { ifname, netns } = old.attachment;
      // The decisive step: once the new head is attached, a repair completes this recreate.
      const swapped = await swapXdp(target, { ifname, netns: netns ?? undefined, newPin: built.headPin, expectId: old.attachment.progId }, cas);
      failpoint('recreate:swapped');
      if (swapped.newId !== built.headId) {
        throw new LabError('ATTACH', `chain ${old.name}: after the swap ${ifname} runs program ${swapped.newId}, not the new head ${built.headId}`);
      }
      next.attachment = { ifname, netns, progId: built.headId, method: swapped.method };
      if (swapped.method === 'xdp-flags-replace') {
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

/** The swap is done (or there was none): the next generation becomes the chain, the old one goes. */
async function finishRecreate(target: Target, old: ChainState, next: ChainState): Promise<void> {
  await writeState(target, next);
  // The old generation is unreachable now; dropping its pins frees its programs and maps.
  await bpftool.unpin(target, old.genDir);
  await target.run(['rm', '-rf', old.objectDir], { allowFailure: true });
  await removeIntent(target, old.pinDir);
}

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
      attached = await attachedId(target, state.attachment.ifname, state.attachment.netns ?? undefined);
      if (attached !== state.attachment.progId) problems.push(`${state.attachment.ifname} runs ${attached ?? 'no program'}, state says ${state.attachment.progId}`);
    } catch (e) {
      problems.push(`cannot read ${state.attachment.ifname}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return { state, attachedId: attached, slots: Object.fromEntries(slots), problems };
}

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
    const { ifname, netns, progId } = state.attachment;
    const current = await attachedId(target, ifname, netns ?? undefined).catch(() => null);
    if (current === progId) {
      await bpftool.netDetachXdp(target, ifname, { netns: netns ?? undefined });
      detached = true;
    } else if (current !== null) {
      notes.push(`${ifname} runs program ${current}, not the chain's head ${progId}: left attached`);
    }
  }
  // Every generation's objects live under one directory per chain.
  if (state) await target.run(['rm', '-rf', state.objectDir.replace(/\/gen-\d+$/, '')], { allowFailure: true });
  await bpftool.unpin(target, pinDir);
  await removeState(target, pinDir);
  return { detached, notes };
}
