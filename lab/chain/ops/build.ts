/**
 * Building a chain's programs: what a chain is built from (program specs, the patcher), the mode
 * and length checks, patching each object for its slot and putting it on the target, and loading
 * one whole generation (Alg. 3.1 minus the attach) that shares one pinned PROG_ARRAY (xcl_chain,
 * the edges E) and one pinned per-CPU verdict map (xcl_verdict, the saved code C). Shared by
 * init, replace and recreate.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { LabError, wrapError } from '../../errors.ts';
import type { ProgressSink } from '../../progress.ts';
import { putObject, type Target } from '../../target.ts';
import * as bpftool from '../../bpftool/index.ts';
import { cachedFeatures, type KernelFeatures } from '../../features.ts';
import { listPrograms, patchObject } from '../patch.ts';
import type { PatchOptions, PatchResult } from '../patch/types.ts';
import { CHAIN_MAP, HOOK_VERDICTS, VERDICT_MAP, type Hook, type PatchMode } from '../constants.ts';
import { hookOfSection, verdictName } from '../hook.ts';
import { choosePatchMode, type ModeBody } from '../mode.ts';
import { loadChainProgram, pinChainMaps, progTypeOf, setSlot, trampolineSource } from '../loader.ts';
import { compileBpfSource } from '../../toolchain/bpf-source.ts';
import type { ChainProgram, ChainState } from '../state.ts';
import { genPaths, objectDirFor } from './shared.ts';

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

/** Most programs a chain may hold on this kernel (trampoline accounted for). */
export function maxChainLength(features: KernelFeatures, trampoline: boolean): number {
  // 34 = 1 + MAX_TAIL_CALL_CNT(33) on every kernel since 5.17 and, through an off-by-one, before.
  const perPacket = features.maxChainPrograms ?? 34;
  return perPacket - (trampoline ? 1 : 0);
}

export function checkLength(count: number, features: KernelFeatures, trampoline: boolean, where: string): number {
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

export interface PreparedProgram {
  spec: ChainProgramSpec;
  index: number;
  success: number[];
  redirect: number[];
  result: PatchResult;
  /** Patched object on the target. */
  remote: string;
}

/** Patches one object for slot `index` and puts it on the target. Errors name the file. */
export async function prepare(target: Target, spec: ChainProgramSpec, index: number, mode: PatchMode, patcher: Patcher, localDir: string, remoteDir: string): Promise<PreparedProgram> {
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
  // The defaults are the program's hook's (its section says which), never XDP's for a TC program.
  const hook = hookOfSection(chosen[0]?.section ?? '') ?? 'xdp';
  const success = [...(spec.success ?? HOOK_VERDICTS[hook].success)];
  const redirect = [...(spec.redirect ?? HOOK_VERDICTS[hook].redirect)];
  const overlap = success.filter((v) => redirect.includes(v));
  if (overlap.length > 0) {
    throw new LabError('BAD_INPUT', `${spec.path}: verdict ${overlap.map((v) => verdictName(hook, v)).join(', ')} is both a success and a redirect verdict`, {
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

export interface BuiltGeneration {
  generation: number;
  genDir: string;
  objectDir: string;
  maps: ChainState['maps'];
  programs: ChainProgram[];
  trampoline: ChainState['trampoline'];
  /** The programs' hook (their sections say which): where the head attaches. */
  hook: Hook;
  headPin: string;
  headId: number;
  notes: string[];
}

/**
 * The kernel tail-calls only between programs of one type (the PROG_ARRAY takes the first
 * program's type), and a chain's verdict sets are one hook's: a chain mixing XDP and TC programs
 * is refused, naming both sides. Returns the chain's hook: XDP chains attach on native XDP, TC
 * (sched_cls) chains on clsact ingress.
 */
export function checkChainHook(programs: readonly { where: string; section: string }[]): Hook {
  const hooks = programs.map((p) => ({ ...p, hook: hookOfSection(p.section) ?? 'xdp' }));
  const first = hooks[0]?.hook ?? 'xdp';
  const other = hooks.filter((p) => p.hook !== first);
  if (other.length > 0) {
    const side = (h: Hook): string => hooks.filter((p) => p.hook === h).map((p) => `${p.where} (section ${p.section})`).join(', ');
    throw new LabError('CHAIN', `a chain cannot mix hooks: ${HOOK_VERDICTS[first].label} (${first}): ${side(first)}; ${HOOK_VERDICTS[other[0]!.hook].label} (${other[0]!.hook}): ${side(other[0]!.hook)}. The kernel tail-calls only between programs of one type, and their verdicts mean different things`, {
      remedy: 'Chain programs of one hook: rebuild the others with the same kind of section (SEC("xdp") or SEC("tc")), or build one chain per hook.',
    });
  }
  return first;
}

/**
 * Refuses programs whose hook (`hook`, from their sections) is not the one expected, naming both:
 * `why` says where the expectation comes from ("--hook asks for", "the chain being rebuilt is").
 */
export function refuseOtherHook(programs: readonly { where: string; section: string }[], hook: Hook, expected: Hook, why: string): void {
  if (hook === expected) return;
  const e = HOOK_VERDICTS[expected];
  const h = HOOK_VERDICTS[hook];
  throw new LabError('BAD_INPUT', `${why} ${e.article} ${e.label} (${expected}) chain, but the objects' sections make ${programs.map((p) => `${p.where} (section ${p.section})`).join(', ')} ${h.article} ${h.label} (${hook}) chain`, {
    remedy: `Give ${e.label} programs (SEC("${expected === 'xdp' ? 'xdp' : 'tc'}")); these objects make ${h.article} ${h.label} chain of their own (attach them without --hook).`,
  });
}

/**
 * The hook of the programs a chain is built from, read from their sections before anything is
 * patched or loaded: mixed hooks are refused, and so is a hook other than `expected` when given.
 * An object that cannot be read is left to the patch, which reports it with its context.
 */
export async function hookOfPrograms(programs: readonly ChainProgramSpec[], patcher: Patcher, expected?: Hook, why = '--hook asks for'): Promise<Hook> {
  const members: { where: string; section: string }[] = [];
  for (const spec of programs) {
    let listed: ProgramListing[];
    try {
      listed = patcher.listPrograms(new Uint8Array(await readFile(spec.path)), basename(spec.path));
    } catch {
      continue;
    }
    const p = spec.program === undefined ? listed[0] : listed.find((x) => x.name === spec.program);
    if (p) members.push({ where: `${basename(spec.path)}:${p.name}`, section: p.section });
  }
  if (members.length === 0) return expected ?? 'xdp';
  const hook = checkChainHook(members);
  if (expected !== undefined) refuseOtherHook(members, hook, expected, why);
  return hook;
}

/**
 * The kernel tail-calls between XDP programs only if all of them do or all of them do not accept
 * multi-buffer packets (SEC("xdp.frags"), 5.18+): a mix is refused at load with a bare EINVAL.
 */
export function checkFrags(programs: readonly { where: string; section: string }[]): void {
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
export async function buildGeneration(target: Target, pinDir: string, generation: number, programs: readonly ChainProgramSpec[], trampoline: boolean, mode: PatchMode, patcher: Patcher, progress: ProgressSink, expectHook?: Hook): Promise<BuiltGeneration> {
  const paths = genPaths(pinDir, generation);
  const objectDir = objectDirFor(target, pinDir, generation);
  const localDir = await mkdtemp(join(tmpdir(), 'xcl-chain-'));
  try {
    await target.run(['mkdir', '-p', objectDir]);
    const prepared: PreparedProgram[] = [];
    for (const [i, spec] of programs.entries()) {
      prepared.push(await prepare(target, spec, i, mode, patcher, localDir, objectDir));
    }
    const where = prepared.map((p) => ({ where: `${basename(p.spec.path)}:${p.result.program}`, section: p.result.section }));
    const hook = checkChainHook(where);
    if (expectHook !== undefined) refuseOtherHook(where, hook, expectHook, 'the chain being rebuilt is');
    checkFrags(where);
    const type = progTypeOf(hook);
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
          info = await bpftool.load(target, p.remote, pin, { type, maps: extra });
          const ids = await pinChainMaps(target, info, paths.maps, p.spec.path);
          maps = { chain: { id: ids.chainId, pin: paths.maps.chain }, verdict: { id: ids.verdictId, pin: paths.maps.verdict } };
        } else {
          info = await bpftool.load(target, p.remote, pin, {
            type,
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
        const local = await compileBpfSource(trampolineSource(hook), hook === 'xdp' ? 'xcl-head' : 'xcl-head-tc');
        const remote = await putObject(target, local, objectDir, 'xcl-head.o');
        const info = await loadChainProgram(target, remote, paths.head, paths.maps, true, hook);
        tramp = { id: info.id, pin: paths.head };
      }
      const head = tramp ?? { id: chained[0]!.id, pin: chained[0]!.pin };
      return { generation, genDir: paths.genDir, objectDir, maps, programs: chained, trampoline: tramp, hook, headPin: head.pin, headId: head.id, notes };
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

export async function resolveMode(target: Target, common: ChainCommon, programs: readonly ChainProgramSpec[], patcher: Patcher): Promise<{ features: KernelFeatures; mode: PatchMode; reason: string }> {
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
