/**
 * The thesis's chain on TC ingress: the TC trio's standalone objects (tc_filter.o, tc_metrics.o,
 * tc_logger.o, built from the same sources as the XDP ones the `patched` approach chains) patched
 * with the TC verdict sets (lab/chain/constants.ts: S = {TC_ACT_OK, TC_ACT_UNSPEC}, R =
 * {TC_ACT_REDIRECT}), loaded as sched_cls through lab/chain/ops/ and chained by constant-index tail
 * calls; the head (the patched filter) is a cls_bpf direct-action filter at priority 1 of a fresh
 * clsact qdisc. A filter's TC_ACT_SHOT leaves the chain as it is; a pass runs the next program.
 *
 * Layout under ctx.pinDir, as for `patched`: chain/ (the chain's pins) and maps/<name> (the trio's
 * maps, pinned by name after loading so tests and the bench read and configure them alike).
 */
import type { Approach, ApproachContext, Description, LoadedProgram } from './approach.ts';
import type { Target } from '../target.ts';
import { STAGES, TC_OBJECTS, type Stage } from '../programs/trio.ts';
import { freshClsact, ingressFilters, removeClsact } from '../tc/clsact.ts';
import { CHAIN_MAP, VERDICT_MAP } from '../chain/constants.ts';
import { chainAttach } from '../chain/ops/attach.ts';
import { chainDetach } from '../chain/ops/detach.ts';
import { chainStatus } from '../chain/ops/status.ts';
import { attachedMode, clsactApproachSupport, orTeardown, pinnedMaps, requireInterface, teardown } from './lifecycle.ts';
import { chainDir, loadPatchedChain, patchSupport, replaceStage } from './patched.ts';

/** The head filter's ingress priority: the chain is the only filter on its fresh clsact. */
const HEAD_PRIO = 1;

const OBJECTS = STAGES.map((s) => TC_OBJECTS.standalone[s]);

/** Removes the chain (its filter, pins, state) and the clsact qdisc the approach put there. */
async function tcTeardown(ctx: ApproachContext): Promise<void> {
  await teardown(ctx, async () => {
    await chainDetach(ctx.target, chainDir(ctx));
    const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
    if (ns.exitCode === 0) await removeClsact(ctx);
  });
}

export const tcPatched: Approach = {
  name: 'tc-patched',
  summary: "The thesis's chain on TC ingress: the unmodified TC trio objects patched (Alg. 3.4) with TC's verdict sets and chained by constant-index tail calls, the head a cls_bpf filter.",

  async supports(target: Target) {
    const clsact = await clsactApproachSupport(target);
    return clsact.supported ? patchSupport(target, undefined, OBJECTS) : clsact;
  },

  async load(ctx: ApproachContext) {
    await loadPatchedChain(ctx, OBJECTS, { hook: 'sched_cls' });
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await orTeardown(
      ctx,
      async () => {
        await freshClsact(ctx);
        await chainAttach(ctx.target, chainDir(ctx), { ifname: ctx.ifname, netns: ctx.netns, prio: HEAD_PRIO });
      },
      async () => {
        await chainDetach(ctx.target, chainDir(ctx));
        await removeClsact(ctx);
      },
    );
  },

  /**
   * Metrics and logger: one atomic PROG_ARRAY update (Alg. 3.2). The filter is the head filter's
   * program (no trampoline), so replacing it recreates the chain and swaps the head with `tc
   * filter replace` on its priority (Alg. 3.3). `objectPath` is read on the machine running the
   * lab; the new program reuses the trio maps pinned in maps/.
   */
  async replace(ctx: ApproachContext, stage: Stage, objectPath: string) {
    await replaceStage('tc-patched', ctx, stage, objectPath);
  },

  async detach(ctx: ApproachContext) {
    await tcTeardown(ctx);
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const st = await chainStatus(ctx.target, chainDir(ctx));
    const programs: LoadedProgram[] = st.state.programs.map((p) => ({ role: STAGES[p.index] ?? `slot${p.index}`, name: p.program, id: p.id, tag: p.tag }));
    if (st.state.trampoline) programs.unshift({ role: 'head', name: 'xcl_head', id: st.state.trampoline.id });
    const head = st.state.trampoline?.id ?? st.state.programs[0]?.id;
    const filters = await ingressFilters(ctx);
    const att = await attachedMode(ctx);
    const mode = st.state.modeReason.startsWith(`${st.state.mode}:`) ? st.state.modeReason : `${st.state.mode}: ${st.state.modeReason}`;
    return {
      approach: 'tc-patched',
      attached: head !== undefined && st.attachedId === head && filters.length === 1 && filters[0]!.directAction,
      xdpMode: att.mode,
      programs,
      maps: [...(await pinnedMaps(ctx)), { name: CHAIN_MAP, id: st.state.maps.chain.id }, { name: VERDICT_MAP, id: st.state.maps.verdict.id }],
      hop: 'tail-call-constant',
      notes: [
        `patch mode ${mode}`,
        `clsact ingress: ${filters.length === 0 ? 'no filter' : filters.map((f) => `prio ${f.prio} ${f.name} (id ${f.id}${f.directAction ? ', direct-action' : ''})`).join(', ')}`,
        ...st.state.notes,
        ...st.problems.map((p) => `problem: ${p}`),
      ],
    };
  },
};
