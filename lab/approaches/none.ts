/**
 * The baseline: no XDP program at all on the receiving interface. attach() makes sure of it (a
 * program left by someone else would falsify the baseline), detach() checks it again.
 */
import type { Approach, ApproachContext, Description } from './approach.ts';
import { LabError } from '../errors.ts';
import { checkPinPath } from '../bpftool/index.ts';
import { attachedMode, requireInterface, requireRoot, teardown } from './lifecycle.ts';

export const none: Approach = {
  name: 'none',
  summary: 'No XDP program: the veth path without XDP, the baseline every other approach is compared with.',

  async supports() {
    return { supported: true };
  },

  async load(ctx: ApproachContext) {
    checkPinPath(ctx.pinDir);
    await requireRoot(ctx.target);
    await requireInterface(ctx);
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await teardown(ctx);
  },

  async replace(ctx: ApproachContext, stage) {
    throw new LabError('UNSUPPORTED', `approach none runs no program: nothing to replace for stage ${stage} on ${ctx.ifname}`);
  },

  async detach(ctx: ApproachContext) {
    await teardown(ctx);
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const att = await attachedMode(ctx);
    return {
      approach: 'none',
      attached: false,
      xdpMode: att.mode,
      programs: [],
      maps: [],
      hop: 'none',
      notes: att.ids.length > 0 ? [`unexpected XDP program(s) ${att.ids.join(', ')} on ${ctx.ifname}`] : [],
    };
  },
};
