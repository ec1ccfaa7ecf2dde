/**
 * The manual chain: filter_manual.o → metrics_manual.o → logger.o, each stage ending in
 * bpf_tail_call(ctx, &chain_jmp, <constant>) built from the same source as the standalone stage
 * (-DMANUAL_NEXT). The stages share chain_jmp and the trio's maps through pins; this loader fills
 * the PROG_ARRAY and attaches the first stage.
 */
import type { Approach, ApproachContext, Description, LoadedProgram } from './approach.ts';
import { loadAllShared, mapUpdate, netAttachXdp, unpin } from '../bpftool/index.ts';
import { u32le } from '../bytes.ts';
import { DEFAULT_TRIO_CONFIG, MAP_NAMES, OBJECTS, PROGRAM_NAMES, STAGES, applyTrioConfig, type Stage } from '../programs/trio.ts';
import {
  attachedMode,
  loadedProgram,
  mapsDir,
  objectPath,
  orTeardown,
  pinnedMaps,
  prepareLoad,
  progDir,
  requireInterface,
  teardown,
} from './lifecycle.ts';
import { LabError } from '../errors.ts';

function progPin(ctx: ApproachContext, stage: Stage): string {
  return `${progDir(ctx, stage)}/${PROGRAM_NAMES[stage]}`;
}

function chainMap(ctx: ApproachContext): { pinned: string } {
  return { pinned: `${mapsDir(ctx)}/${MAP_NAMES.chain}` };
}

export const manual: Approach = {
  name: 'manual',
  summary: 'Three programs chained by bpf_tail_call with a constant PROG_ARRAY index (direct jump once JITed).',

  async supports() {
    return { supported: true };
  },

  async load(ctx: ApproachContext) {
    const objects = STAGES.map((s) => OBJECTS.manual[s]);
    await prepareLoad(ctx, objects);
    await orTeardown(ctx, async () => {
      // The first stage creates chain_jmp; the others find it pinned and reuse it.
      for (const stage of STAGES) {
        await loadAllShared(ctx.target, objectPath(ctx, OBJECTS.manual[stage]), progDir(ctx, stage), mapsDir(ctx));
      }
      for (const stage of STAGES) {
        await mapUpdate(ctx.target, chainMap(ctx), u32le(OBJECTS.manualSlots[stage]), { prog: { pinned: progPin(ctx, stage) } });
      }
      await applyTrioConfig(ctx.target, mapsDir(ctx), DEFAULT_TRIO_CONFIG);
    });
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await orTeardown(ctx, () =>
      netAttachXdp(ctx.target, { pinned: progPin(ctx, STAGES[0] as Stage) }, ctx.ifname, { netns: ctx.netns, mode: 'xdpdrv' }),
    );
  },

  /**
   * Loads `objectPath` (which must end in the tail call its slot needs, e.g. a MANUAL_NEXT build)
   * with the shared maps, then swaps it in: the PROG_ARRAY slot for later stages (atomic for
   * packets in flight), `net attach ... overwrite` for the first stage.
   */
  async replace(ctx: ApproachContext, stage: Stage, newObject: string) {
    const staging = progDir(ctx, `${stage}_next`);
    const progs = await loadAllShared(ctx.target, newObject, staging, mapsDir(ctx));
    const names = Object.keys(progs);
    if (names.length !== 1) {
      await unpin(ctx.target, staging);
      throw new LabError('BAD_INPUT', `${newObject}: expected one XDP program to replace stage ${stage}, found ${names.length} (${names.join(', ')})`);
    }
    const pinned = `${staging}/${names[0]}`;
    try {
      await mapUpdate(ctx.target, chainMap(ctx), u32le(OBJECTS.manualSlots[stage]), { prog: { pinned } });
      if (stage === STAGES[0]) {
        await netAttachXdp(ctx.target, { pinned }, ctx.ifname, { netns: ctx.netns, mode: 'xdpdrv', overwrite: true });
      }
    } catch (e) {
      await unpin(ctx.target, staging);
      throw e;
    }
    // Keep the layout: the stage's pin now names the new program.
    await unpin(ctx.target, progDir(ctx, stage));
    await ctx.target.run(['mkdir', '-p', progDir(ctx, stage)]);
    await ctx.target.run(['mv', pinned, progPin(ctx, stage)]);
    await unpin(ctx.target, staging);
  },

  async detach(ctx: ApproachContext) {
    await teardown(ctx);
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const programs: LoadedProgram[] = [];
    for (const stage of STAGES) programs.push(await loadedProgram(ctx.target, stage, progPin(ctx, stage)));
    const att = await attachedMode(ctx);
    return {
      approach: 'manual',
      attached: programs[0] !== undefined && att.ids.includes(programs[0].id),
      xdpMode: att.mode,
      programs,
      maps: await pinnedMaps(ctx),
      hop: 'tail-call-constant',
      notes: [`${MAP_NAMES.chain} slots: ${STAGES.map((s) => `${OBJECTS.manualSlots[s]}=${s}`).join(', ')}`],
    };
  },
};
