/**
 * The thesis's approach: the trio's standalone objects (filter.o, metrics.o, logger.o), which know
 * nothing of each other, are patched (Alg. 3.4) and chained by constant-index tail calls through
 * lab/chain/ops/. The patch mode (bpf2bpf subprogram or inline body) is the one lab/chain/mode.ts
 * chose, so the approach runs on kernels that forbid mixing tail calls and bpf2bpf calls too.
 *
 * Layout under ctx.pinDir: chain/ (the chain's own pins, see ops.ts) and maps/<name> (the trio's
 * maps, pinned by name after loading so the bench reads and configures them like other approaches).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Approach, ApproachContext, Description, LoadedProgram, Support } from './approach.ts';
import { HostTarget, type Target } from '../target.ts';
import { LabError } from '../errors.ts';
import { mapPin, mapShow, objectMapNames, progShow } from '../bpftool/index.ts';
import { cachedFeatures } from '../features.ts';
import { DEFAULT_TRIO_CONFIG, OBJECTS, STAGES, applyTrioConfig, type Stage } from '../programs/trio.ts';
import { DEFAULT_OUT_DIR } from '../programs/build.ts';
import { attachedMode, mapsDir, orTeardown, pinnedMaps, prepareLoad, requireInterface, teardown } from './lifecycle.ts';
import { CHAIN_MAP, VERDICT_MAP, type Hook, type PatchMode } from '../chain/constants.ts';
import { chainAttach } from '../chain/ops/attach.ts';
import { defaultPatcher, maxChainLength, type ChainProgramSpec } from '../chain/ops/build.ts';
import { chainDetach } from '../chain/ops/detach.ts';
import { chainInit } from '../chain/ops/init.ts';
import { chainRecreate } from '../chain/ops/recreate.ts';
import { chainReplace } from '../chain/ops/replace.ts';
import { chainStatus } from '../chain/ops/status.ts';
import { readState } from '../chain/state.ts';
import { choosePatchMode, type ModeBody, type ModeChoice } from '../chain/mode.ts';

export function chainDir(ctx: ApproachContext): string {
  return `${ctx.pinDir}/chain`;
}

/**
 * The patch runs on the machine running the lab, so it reads the objects there: the target's object
 * directory when the target is this machine, else the local build output (the same files the bench
 * copies to guests).
 */
export function localObject(ctx: ApproachContext, name: string): string {
  const onTarget = join(ctx.objectDir, `${name}.o`);
  if (ctx.target.name === 'host' && existsSync(onTarget)) return onTarget;
  return join(DEFAULT_OUT_DIR, `${name}.o`);
}

let localHost: Promise<HostTarget> | null = null;
function host(): Promise<HostTarget> {
  localHost ??= HostTarget.create(join(tmpdir(), 'xdp-chain-lab-host'));
  return localHost;
}

/** The object's maps already pinned in maps/: reused so counters and config survive a swap. */
async function sharedMaps(ctx: ApproachContext, objectPath: string): Promise<{ name: string; pinned: string }[]> {
  const names = await objectMapNames(await host(), objectPath);
  const ls = await ctx.target.run(['ls', '-1', mapsDir(ctx)], { allowFailure: true });
  const pinned = new Set(ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  return names.filter((n) => pinned.has(n)).map((n) => ({ name: n, pinned: `${mapsDir(ctx)}/${n}` }));
}

/** Pins, by name, every map of the chain's programs that is not the chain's own and not pinned yet. */
/**
 * A patched chain's stage swapped (either hook): a slot by one atomic PROG_ARRAY update (Alg. 3.2),
 * or, for the first program when no trampoline holds the attach point, the chain recreated and
 * the attach point swapped (Alg. 3.3). The new program reuses the trio maps pinned in maps/.
 */
export async function replaceStage(approach: string, ctx: ApproachContext, stage: Stage, objectPath: string): Promise<void> {
  const index = STAGES.indexOf(stage);
  const state = await readState(ctx.target, chainDir(ctx));
  if (!state) {
    throw new LabError('CHAIN', `${approach}: no chain loaded under ${chainDir(ctx)}`, { remedy: 'Call load() (and attach()) before replace().' });
  }
  let ids: number[];
  if (index === 0 && !state.trampoline) {
    const programs = [await spec(ctx, objectPath)];
    for (const p of state.programs.slice(1)) programs.push(await spec(ctx, p.source));
    ids = (await chainRecreate(ctx.target, chainDir(ctx), programs)).programs.map((p) => p.id);
  } else {
    ids = [(await chainReplace(ctx.target, chainDir(ctx), index, await spec(ctx, objectPath))).programs[index]!.id];
  }
  await pinProgramMaps(ctx.target, mapsDir(ctx), ids);
}

/**
 * Alg. 3.1 for either hook: the stage objects (build-output names) patched and chained by the chain
 * operations under chain/, the trio maps pinned by name in maps/ and configured. A crashed run may
 * have left the chain's state file (it lives outside bpffs): it goes first.
 */
export async function loadPatchedChain(ctx: ApproachContext, objects: readonly string[], how: { mode?: PatchMode; hook?: Hook }): Promise<void> {
  await prepareLoad(ctx, objects);
  await chainDetach(ctx.target, chainDir(ctx));
  await orTeardown(
    ctx,
    async () => {
      const features = await cachedFeatures(ctx.target, { chainOnly: true });
      const programs = [];
      for (const name of objects) programs.push(await spec(ctx, localObject(ctx, name)));
      const state = await chainInit(ctx.target, { pinDir: chainDir(ctx), name: `${ctx.netns}-${ctx.ifname}`, programs, features, ...how });
      const present = await pinProgramMaps(ctx.target, mapsDir(ctx), state.programs.map((p) => p.id));
      await applyTrioConfig(ctx.target, mapsDir(ctx), DEFAULT_TRIO_CONFIG, present);
    },
    async () => {
      await chainDetach(ctx.target, chainDir(ctx));
    },
  );
}

export async function pinProgramMaps(target: Target, dir: string, progIds: readonly number[]): Promise<string[]> {
  const ls = await target.run(['ls', '-1', dir], { allowFailure: true });
  const have = new Set(ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  for (const id of progIds) {
    for (const mapId of (await progShow(target, { id })).mapIds) {
      const m = await mapShow(target, { id: mapId });
      if (m.name === CHAIN_MAP || m.name === VERDICT_MAP || m.name === '' || m.name.includes('.') || have.has(m.name)) continue;
      await mapPin(target, { id: mapId }, `${dir}/${m.name}`);
      have.add(m.name);
    }
  }
  return [...have];
}

/** A program of the chain that reuses the trio maps already pinned in maps/ (verdict sets: its hook's defaults). */
export async function spec(ctx: ApproachContext, path: string): Promise<ChainProgramSpec> {
  return { path, maps: await sharedMaps(ctx, path) };
}

/**
 * Whether this kernel runs the patched trio built from `objects` (build/bpf/<name>.o): chain
 * length, and the patch mode (fixed, or the one lab/chain/mode.ts chooses for the bodies) the
 * kernel accepts. Shared by the XDP and TC patched approaches.
 */
export async function patchSupport(target: Target, fixedMode: PatchMode | undefined, objects: readonly string[]): Promise<Support> {
  let f;
  try {
    f = await cachedFeatures(target, { chainOnly: true });
  } catch (e) {
    return { supported: false, reason: `kernel probe failed: ${(e as Error).message.split('\n')[0]}` };
  }
  if (f.maxChainPrograms !== null && maxChainLength(f, false) < STAGES.length) {
    return { supported: false, reason: `${f.kernelRelease} runs only ${f.maxChainPrograms} programs per packet through tail calls` };
  }
  const patcher = await defaultPatcher();
  const bodies: ModeBody[] = [];
  for (const name of objects) {
    const path = join(DEFAULT_OUT_DIR, `${name}.o`);
    if (!existsSync(path)) continue;
    for (const p of patcher.listPrograms(new Uint8Array(await readFile(path)), path)) bodies.push({ where: `${basename(path)}:${p.name}`, hasSubprogCalls: p.hasSubprogCalls });
  }
  let choice: ModeChoice;
  try {
    choice = fixedMode ? { mode: fixedMode, reason: `${fixedMode} (fixed)` } : choosePatchMode(f, bodies);
  } catch (e) {
    return { supported: false, reason: (e as Error).message };
  }
  if (choice.mode === 'subprog' && !f.features.tailCallsWithBpf2bpf.ok) {
    return { supported: false, reason: `subprog mode: ${f.kernelRelease} forbids tail calls mixed with bpf2bpf calls (${f.features.tailCallsWithBpf2bpf.detail})` };
  }
  const calling = bodies.filter((b) => b.hasSubprogCalls);
  if (choice.mode === 'inline' && calling.length > 0) {
    return { supported: false, reason: `inline mode: ${calling.map((b) => b.where).join(', ')} call other functions` };
  }
  const notes = [`patch mode ${choice.reason}`];
  return { supported: true, notes };
}

/** The patched approach, with its patch mode fixed (for the microbenchmarks) or probed (default). */
export interface PatchedApproach extends Approach {
  /** The fixed mode; undefined = the one lab/chain/mode.ts chooses for the trio on this kernel. */
  readonly mode: PatchMode | undefined;
  /** The same approach with the patch mode fixed (e.g. to measure inline where subprog also loads). */
  withMode(mode: PatchMode): PatchedApproach;
}

function patchedApproach(fixedMode: PatchMode | undefined): PatchedApproach {
  return {
    name: 'patched',
    mode: fixedMode,
    summary:
      fixedMode === undefined
        ? "The thesis's chain: the unmodified trio objects patched (Alg. 3.4) and chained by constant-index tail calls, inline patch mode unless a body calls other functions."
        : `The thesis's chain, patch mode fixed to ${fixedMode}.`,

    withMode(mode: PatchMode): PatchedApproach {
      return patchedApproach(mode);
    },

    supports(target: Target) {
      return patchSupport(target, fixedMode, STAGES.map((s) => OBJECTS.standalone[s]));
    },

    async load(ctx: ApproachContext) {
      await loadPatchedChain(ctx, STAGES.map((s) => OBJECTS.standalone[s]), { mode: fixedMode });
    },

    async attach(ctx: ApproachContext) {
      await requireInterface(ctx);
      await orTeardown(
        ctx,
        async () => {
          await chainAttach(ctx.target, chainDir(ctx), { ifname: ctx.ifname, netns: ctx.netns });
        },
        async () => {
          await chainDetach(ctx.target, chainDir(ctx));
        },
      );
    },

    /**
     * Metrics and logger: one atomic PROG_ARRAY update (Alg. 3.2). The filter is attached directly
     * (no trampoline, as in the thesis's measurements), so replacing it recreates the chain and
     * swaps the attach point in one netlink call (Alg. 3.3). `objectPath` is read on the machine
     * running the lab. The new program reuses the trio maps pinned in maps/.
     */
    async replace(ctx: ApproachContext, stage: Stage, objectPath: string) {
      await replaceStage('patched', ctx, stage, objectPath);
    },

    async detach(ctx: ApproachContext) {
      await teardown(ctx, async () => {
        await chainDetach(ctx.target, chainDir(ctx));
      });
    },

    async describe(ctx: ApproachContext): Promise<Description> {
      const st = await chainStatus(ctx.target, chainDir(ctx));
      const programs: LoadedProgram[] = st.state.programs.map((p) => ({ role: STAGES[p.index] ?? `slot${p.index}`, name: p.program, id: p.id, tag: p.tag }));
      if (st.state.trampoline) programs.unshift({ role: 'head', name: 'xcl_head', id: st.state.trampoline.id });
      const att = await attachedMode(ctx);
      const head = st.state.trampoline?.id ?? st.state.programs[0]?.id;
      return {
        approach: 'patched',
        attached: head !== undefined && att.ids.includes(head),
        xdpMode: att.mode,
        programs,
        maps: [
          ...(await pinnedMaps(ctx)),
          { name: CHAIN_MAP, id: st.state.maps.chain.id },
          { name: VERDICT_MAP, id: st.state.maps.verdict.id },
        ],
        hop: 'tail-call-constant',
        notes: [`patch mode ${st.state.modeReason.startsWith(`${st.state.mode}:`) ? st.state.modeReason : `${st.state.mode}: ${st.state.modeReason}`}`, ...st.state.notes, ...st.problems.map((p) => `problem: ${p}`)],
      };
    },
  };
}

export const patched: PatchedApproach = patchedApproach(undefined);
