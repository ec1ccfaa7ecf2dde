/**
 * The TC baseline: a clsact qdisc on the receiving interface with no filter on it, and no XDP
 * program. What every TC approach adds on top of it is its programs alone; the qdisc's own cost
 * (sch_handle_ingress with an empty filter list) is in the baseline.
 */
import type { Approach, ApproachContext, Description } from './approach.ts';
import { LabError } from '../errors.ts';
import { checkPinPath } from '../bpftool/index.ts';
import { attachedMode, clsactApproachSupport, requireInterface, requireRoot, teardown } from './lifecycle.ts';
import { freshClsact, hasClsact, ingressFilters, removeClsact } from '../tc/clsact.ts';

async function tcTeardown(ctx: ApproachContext): Promise<void> {
  await teardown(ctx, async () => {
    const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
    if (ns.exitCode === 0) await removeClsact(ctx);
  });
}

export const tcNone: Approach = {
  name: 'tc-none',
  summary: 'A clsact qdisc with no filter and no XDP program: the TC hook\'s baseline.',

  supports: clsactApproachSupport,

  async load(ctx: ApproachContext) {
    checkPinPath(ctx.pinDir);
    await requireRoot(ctx.target);
    await requireInterface(ctx);
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await tcTeardown(ctx);
    await freshClsact(ctx);
  },

  async replace(ctx: ApproachContext, stage) {
    throw new LabError('UNSUPPORTED', `approach tc-none runs no program: nothing to replace for stage ${stage} on ${ctx.ifname}`);
  },

  async detach(ctx: ApproachContext) {
    await tcTeardown(ctx);
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const att = await attachedMode(ctx);
    const filters = await ingressFilters(ctx);
    const clsact = att.mode === 'none' && filters.length === 0 ? await hasClsact(ctx).catch(() => false) : false;
    const notes = [
      ...(att.ids.length > 0 ? [`unexpected XDP program(s) ${att.ids.join(', ')} on ${ctx.ifname}`] : []),
      ...(filters.length > 0 ? [`unexpected ingress filter(s) ${filters.map((f) => `prio ${f.prio} id ${f.id}`).join(', ')}`] : []),
    ];
    return {
      approach: 'tc-none',
      attached: clsact,
      xdpMode: att.mode,
      programs: [],
      maps: [],
      hop: 'none',
      notes: [`clsact qdisc ${clsact ? 'present, no filter' : 'absent'}`, ...notes],
    };
  },
};
