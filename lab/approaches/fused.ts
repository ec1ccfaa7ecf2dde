/**
 * One program (programs/fused.c) running filter, metrics and logger in sequence through the same
 * inline job functions the separate stages use: the lower bound on the cost of chaining.
 */
import type { Approach, ApproachContext, Description } from './approach.ts';
import { LabError } from '../errors.ts';
import { loadAllShared, netAttachXdp } from '../bpftool/index.ts';
import { DEFAULT_TRIO_CONFIG, OBJECTS, PROGRAM_NAMES, applyTrioConfig, type Stage } from '../programs/trio.ts';
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

function progPin(ctx: ApproachContext): string {
  return `${progDir(ctx, 'fused')}/${PROGRAM_NAMES.fused}`;
}

export const fused: Approach = {
  name: 'fused',
  summary: 'The three jobs compiled into one XDP program: no hop at all, the lower bound on cost.',

  async supports() {
    return { supported: true };
  },

  async load(ctx: ApproachContext) {
    await prepareLoad(ctx, [OBJECTS.fused]);
    await orTeardown(ctx, async () => {
      await loadAllShared(ctx.target, objectPath(ctx, OBJECTS.fused), progDir(ctx, 'fused'), mapsDir(ctx));
      await applyTrioConfig(ctx.target, mapsDir(ctx), DEFAULT_TRIO_CONFIG);
    });
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await orTeardown(ctx, () => netAttachXdp(ctx.target, { pinned: progPin(ctx) }, ctx.ifname, { netns: ctx.netns, mode: 'xdpdrv' }));
  },

  async replace(ctx: ApproachContext, stage: Stage) {
    throw new LabError('UNSUPPORTED', `approach fused has no separate ${stage} program to replace on ${ctx.ifname}`, {
      remedy: 'Rebuild programs/fused.c and load the approach again.',
    });
  },

  async detach(ctx: ApproachContext) {
    await teardown(ctx);
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const prog = await loadedProgram(ctx.target, 'fused', progPin(ctx));
    const att = await attachedMode(ctx);
    return {
      approach: 'fused',
      attached: att.ids.includes(prog.id),
      xdpMode: att.mode,
      programs: [prog],
      maps: await pinnedMaps(ctx),
      hop: 'inline',
      notes: [],
    };
  },
};
