/**
 * The trio on TC ingress of the receiving veth (cls_bpf in direct-action mode on a clsact qdisc),
 * built from the same sources as the XDP trio with -DXCL_HOOK_TC (programs/hook.h), three ways:
 *   tc-fused    tc_fused.o alone at priority 1;
 *   tc-manual   tc_filter_manual.o → tc_metrics_manual.o → tc_logger.o by bpf_tail_call through
 *               chain_jmp, the first stage at priority 1 (the XDP manual chain, on TC);
 *   tc-filters  three filters at priorities 1, 2, 3: tc_filter_next.o and tc_metrics_next.o end a
 *               pass with TC_ACT_UNSPEC, which cls_bpf's direct-action mode turns into "no verdict,
 *               try the next priority"; the last is the plain tc_logger.o, whose TC_ACT_OK is final.
 *               A drop (TC_ACT_SHOT) stops the walk, as a drop ends the other chains.
 * Pins follow lab/approaches/lifecycle.ts; detach removes the clsact qdisc with every filter.
 */
import type { Approach, ApproachContext, Description, LoadedProgram } from './approach.ts';
import type { ApproachName } from '../results/record.ts';
import { LabError } from '../errors.ts';
import { loadAllShared, mapUpdate, unpin } from '../bpftool/index.ts';
import { u32le } from '../bytes.ts';
import { BPFTOOL_PROG_TYPE } from '../programs/hook.ts';
import { DEFAULT_TRIO_CONFIG, MAP_NAMES, STAGES, TC_OBJECTS, TC_PROGRAM_NAMES, applyTrioConfig, type Stage } from '../programs/trio.ts';
import { clsactApproachSupport, loadedProgram, mapsDir, objectPath, orTeardown, pinnedMaps, prepareLoad, progDir, promoteReplacement, requireInterface, stageReplacement, teardown } from './lifecycle.ts';
import { freshClsact, ingressFilters, removeClsact, setIngressFilter } from '../tc/clsact.ts';

interface TcStage {
  /** The stage (or "fused") and the pin directory name under progs/. */
  role: Stage | 'fused';
  object: string;
}

interface TcChain {
  name: ApproachName;
  summary: string;
  stages: readonly TcStage[];
  /** Fill chain_jmp with each stage at its manual slot. */
  tailCalls: boolean;
  /** Each stage its own ingress filter (priority = position + 1), or only the first. */
  filterEach: boolean;
  hop: Description['hop'];
}

const tcProg = { type: BPFTOOL_PROG_TYPE.tc };

function progPin(ctx: ApproachContext, s: TcStage): string {
  return `${progDir(ctx, s.role)}/${TC_PROGRAM_NAMES[s.role]}`;
}

/** The ingress priority of a stage's filter; undefined for a stage reached by a tail call. */
function prioOf(chain: TcChain, stage: Stage | 'fused'): number | undefined {
  const i = chain.stages.findIndex((s) => s.role === stage);
  if (i < 0) return undefined;
  return chain.filterEach || i === 0 ? i + 1 : undefined;
}

function tcTeardown(ctx: ApproachContext): Promise<void> {
  return teardown(ctx, async () => {
    const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
    if (ns.exitCode === 0) await removeClsact(ctx);
  });
}

function tcChainApproach(chain: TcChain): Approach {
  return {
    name: chain.name,
    summary: chain.summary,

    supports: clsactApproachSupport,

    async load(ctx: ApproachContext) {
      await prepareLoad(ctx, chain.stages.map((s) => s.object));
      await orTeardown(ctx, async () => {
        for (const s of chain.stages) await loadAllShared(ctx.target, objectPath(ctx, s.object), progDir(ctx, s.role), mapsDir(ctx), tcProg);
        if (chain.tailCalls) {
          for (const s of chain.stages) {
            if (s.role === 'fused') continue;
            await mapUpdate(ctx.target, { pinned: `${mapsDir(ctx)}/${MAP_NAMES.chain}` }, u32le(TC_OBJECTS.manualSlots[s.role]), { prog: { pinned: progPin(ctx, s) } });
          }
        }
        await applyTrioConfig(ctx.target, mapsDir(ctx), DEFAULT_TRIO_CONFIG);
      });
    },

    async attach(ctx: ApproachContext) {
      await requireInterface(ctx);
      await orTeardown(ctx, async () => {
        await freshClsact(ctx);
        for (const s of chain.stages) {
          const prio = prioOf(chain, s.role);
          if (prio !== undefined) await setIngressFilter(ctx, prio, progPin(ctx, s), 'add');
        }
      }, () => removeClsact(ctx));
    },

    /**
     * Loads `objectPath` (built as the stage's own object is: -DXCL_HOOK_TC, and MANUAL_NEXT or
     * XCL_TC_CONTINUE where the chain needs them) with the shared maps, then swaps it in: the
     * chain_jmp slot for a stage reached by a tail call, `tc filter replace` for a filter's program.
     */
    async replace(ctx: ApproachContext, stage: Stage, newObject: string) {
      const s = chain.stages.find((x) => x.role === stage);
      if (s === undefined) {
        throw new LabError('UNSUPPORTED', `approach ${chain.name} has no separate ${stage} program to replace on ${ctx.ifname}`, {
          remedy: 'Rebuild programs/fused.c (npm run build:bpf) and load the approach again.',
        });
      }
      const staged = await stageReplacement(ctx, stage, newObject, tcProg);
      const { pinned } = staged;
      try {
        if (chain.tailCalls) await mapUpdate(ctx.target, { pinned: `${mapsDir(ctx)}/${MAP_NAMES.chain}` }, u32le(TC_OBJECTS.manualSlots[stage]), { prog: { pinned } });
        const prio = prioOf(chain, stage);
        if (prio !== undefined) await setIngressFilter(ctx, prio, pinned, 'replace');
      } catch (e) {
        await unpin(ctx.target, staged.staging);
        throw e;
      }
      await promoteReplacement(ctx, stage, staged, progPin(ctx, s));
    },

    async detach(ctx: ApproachContext) {
      await tcTeardown(ctx);
    },

    async describe(ctx: ApproachContext): Promise<Description> {
      const programs: LoadedProgram[] = [];
      for (const s of chain.stages) programs.push(await loadedProgram(ctx.target, s.role, progPin(ctx, s)));
      const filters = await ingressFilters(ctx);
      const expected = chain.stages.flatMap((s, i) => (prioOf(chain, s.role) !== undefined ? [{ prio: i + 1, id: programs[i]!.id }] : []));
      const attached = filters.length === expected.length && expected.every((e, i) => filters[i]!.prio === e.prio && filters[i]!.id === e.id && filters[i]!.directAction);
      return {
        approach: chain.name,
        attached,
        xdpMode: 'none',
        programs,
        maps: await pinnedMaps(ctx),
        hop: chain.hop,
        notes: [`clsact ingress: ${filters.length === 0 ? 'no filter' : filters.map((f) => `prio ${f.prio} ${f.name} (id ${f.id}${f.directAction ? ', direct-action' : ''})`).join(', ')}`],
      };
    },
  };
}

export const tcFused: Approach = tcChainApproach({
  name: 'tc-fused',
  summary: 'The three jobs compiled into one sched_cls program on TC ingress (cls_bpf, direct-action): the TC lower bound.',
  stages: [{ role: 'fused', object: TC_OBJECTS.fused }],
  tailCalls: false,
  filterEach: false,
  hop: 'inline',
});

export const tcManual: Approach = tcChainApproach({
  name: 'tc-manual',
  summary: 'Three sched_cls programs on TC ingress chained by bpf_tail_call with a constant index, the first one a cls_bpf filter.',
  stages: STAGES.map((s) => ({ role: s, object: TC_OBJECTS.manual[s] })),
  tailCalls: true,
  filterEach: false,
  hop: 'tail-call-constant',
});

export const tcFilters: Approach = tcChainApproach({
  name: 'tc-filters',
  summary: 'Three cls_bpf filters on TC ingress at priorities 1-3; a pass returns TC_ACT_UNSPEC so the next priority runs.',
  stages: STAGES.map((s) => ({ role: s, object: TC_OBJECTS.continuing[s] })),
  tailCalls: false,
  filterEach: true,
  hop: 'tc-next',
});
