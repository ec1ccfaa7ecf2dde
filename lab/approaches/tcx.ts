/**
 * The trio on tcx ingress of the receiving veth: the kernel's own multi-program attach (bpf_mprog,
 * Linux 6.6+), three sched_cls programs in stage order, no qdisc. The stages are tc-filters'
 * objects: tc_filter_next.o and tc_metrics_next.o end a pass with TC_ACT_UNSPEC, which tcx reads
 * as TCX_NEXT (run the next program), and the plain tc_logger.o's TC_ACT_OK ends the walk.
 *
 * bpftool attaches (it appends, so three attaches give stage order) and lists them in run order;
 * the lab's tcx helper (programs/user/tcx_user.c) detaches exactly our programs (bpftool's own
 * detach removes whichever is last) and replaces a stage in place with BPF_F_REPLACE, so the stage
 * is never missing from the kernel's list. Pins follow lab/approaches/lifecycle.ts.
 */
import type { Approach, ApproachContext, Description, LoadedProgram, Support } from './approach.ts';
import type { Target } from '../target.ts';
import { LabError } from '../errors.ts';
import { Version } from '../version.ts';
import { loadAllShared, netAttachTcxIngress, progShow, tcxIngress, unpin } from '../bpftool/index.ts';
import { BPFTOOL_PROG_TYPE } from '../programs/hook.ts';
import { DEFAULT_TRIO_CONFIG, STAGES, TC_OBJECTS, TC_PROGRAM_NAMES, applyTrioConfig, type Stage } from '../programs/trio.ts';
import { nsenterArgv } from '../testenv/testenv.ts';
import { helperOnTarget, parseHelperLines, type HelperLine } from '../programs/user.ts';
import { loadedProgram, mapsDir, objectPath, orTeardown, pinnedMaps, prepareLoad, progDir, promoteReplacement, requireInterface, stageReplacement, teardown } from './lifecycle.ts';

/** bpf_mprog and the tcx hook arrived together in Linux 6.6. */
export const TCX_MIN_KERNEL = Version.of(6, 6);
/** The first bpftool whose `net attach` knows tcx_ingress (7.4, with libbpf 1.4). */
export const TCX_MIN_BPFTOOL = Version.of(7, 4);

const tcProg = { type: BPFTOOL_PROG_TYPE.tc };

function progPin(ctx: ApproachContext, stage: Stage): string {
  return `${progDir(ctx, stage)}/${TC_PROGRAM_NAMES[stage]}`;
}

/** Whether a kernel release has tcx; the reason names the release when not. */
export function tcxKernelSupport(release: string): Support {
  const v = Version.ofRelease(release);
  if (v === null) return { supported: false, reason: `kernel ${release}: cannot read its version; tcx (bpf_mprog) arrived in Linux 6.6` };
  if (v.compare(TCX_MIN_KERNEL) < 0) return { supported: false, reason: `kernel ${release} has no tcx: tcx (bpf_mprog) arrived in Linux 6.6` };
  return { supported: true };
}

/** bpftool's version from the first line of `bpftool version` ("bpftool v7.5.0" → 7.5.0); null without one. */
export function parseBpftoolVersion(text: string): Version | null {
  const m = /^bpftool v(\d+(?:\.\d+)*)/m.exec(text.trim());
  return m ? Version.parse(m[1]!) : null;
}

/** Whether the bpftool that printed `versionText` can attach tcx; the reason says which version was found. */
export function tcxToolSupport(versionText: string): Support {
  const v = parseBpftoolVersion(versionText);
  const found = v === null ? `bpftool printed no version (${JSON.stringify(versionText.trim().split('\n')[0] ?? '')})` : `bpftool ${v.toString()}`;
  if (v === null || v.compare(TCX_MIN_BPFTOOL) < 0) {
    return {
      supported: false,
      reason: `${found} cannot attach tcx: bpftool 7.4+ is needed (bash lab/setup.sh installs bookworm-backports' bpftool; bookworm's own is 7.1)`,
    };
  }
  return { supported: true, notes: [found] };
}

/** Runs the tcx helper on the target; its last JSON line and exit code. */
async function tcxHelper(target: Target, args: readonly string[]): Promise<{ line: HelperLine | undefined; exitCode: number; stderr: string }> {
  const helper = await helperOnTarget(target, 'tcx');
  const r = await target.run([helper, ...args], { allowFailure: true });
  return { line: parseHelperLines(r.stdout).at(-1), exitCode: r.exitCode, stderr: r.stderr.trim() };
}

function helperWords(h: { line: HelperLine | undefined; exitCode: number; stderr: string }): string {
  return String(h.line?.message ?? (h.stderr || `exit ${h.exitCode}`));
}

/** The ids of every program pinned under ctx.pinDir/progs (the stages, and a replacement being staged). */
async function pinnedIds(ctx: ApproachContext): Promise<number[]> {
  const ls = await ctx.target.run(['find', `${ctx.pinDir}/progs`, '-mindepth', '2', '-maxdepth', '2'], { allowFailure: true });
  const ids: number[] = [];
  for (const p of ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    const info = await progShow(ctx.target, { pinned: p }).catch(() => null);
    if (info) ids.push(info.id);
  }
  return ids;
}

/** Detaches from tcx ingress the programs this approach pinned, each by its id, and no other. */
async function detachOurs(ctx: ApproachContext): Promise<void> {
  const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
  if (ns.exitCode !== 0) return;
  const ifaceUp = await ctx.target.run(nsenterArgv(ctx.netns, ['ip', 'link', 'show', 'dev', ctx.ifname]), { allowFailure: true });
  if (ifaceUp.exitCode !== 0) return;
  const ours = new Set(await pinnedIds(ctx));
  if (ours.size === 0) return;
  for (const p of await tcxIngress(ctx.target, ctx.ifname, ctx.netns)) {
    if (ours.has(p.id)) await detachTcxProgram(ctx.target, ctx.ifname, ctx.netns, p.id, `remove the pins under ${ctx.pinDir}`);
  }
}

/**
 * Detaches program `id` from tcx ingress of `ifname` in `netns`, and no other (bpftool's own
 * detach removes whichever is last). Already gone is not an error: that is what was wanted.
 */
export async function detachTcxProgram(target: Target, ifname: string, netns: string, id: number, thenByHand = 'remove its pins'): Promise<void> {
  const h = await tcxHelper(target, ['--op', 'detach', '--ifname', ifname, '--netns', netns, '--id', String(id)]);
  // Exit 3: gone between the listing and the detach.
  if (h.exitCode !== 0 && h.exitCode !== 3) {
    throw new LabError('ATTACH', `${target.name}: detaching program ${id} from tcx ingress of ${ifname} failed: ${helperWords(h)}`, {
      remedy: `Detach it by hand: nsenter --net=/run/netns/${netns} bpftool net show dev ${ifname}, then ${thenByHand}.`,
    });
  }
}

function tcxTeardown(ctx: ApproachContext): Promise<void> {
  return teardown(ctx, () => detachOurs(ctx));
}

export const tcx: Approach = {
  name: 'tcx',
  summary: 'Three sched_cls programs attached with tcx (bpf_mprog, 6.6+) on ingress in stage order; a pass returns TCX_NEXT so the next one runs.',

  async supports(target: Target): Promise<Support> {
    const kernel = tcxKernelSupport(target.kernelRelease);
    if (!kernel.supported) return kernel;
    const version = await target.run(['bpftool', 'version'], { allowFailure: true });
    const tool = tcxToolSupport(version.exitCode === 0 ? version.stdout : '');
    if (!tool.supported) return tool;
    // Tried where it is cheap: a BPF_PROG_QUERY of tcx ingress on lo through the helper answers
    // only where the kernel has tcx and the target's libbpf has bpf_prog_query_opts.
    const probe = await tcxHelper(target, ['--op', 'query', '--ifname', 'lo']);
    if (probe.exitCode !== 0 || probe.line?.event !== 'query') {
      return { supported: false, reason: `kernel ${target.kernelRelease}: querying tcx ingress failed: ${helperWords(probe)} (tcx needs Linux 6.6+ and libbpf 1.3+; lab/setup.sh installs bookworm-backports' libbpf1)` };
    }
    return { supported: true, notes: tool.notes };
  },

  async load(ctx: ApproachContext) {
    const objects = STAGES.map((s) => TC_OBJECTS.continuing[s]);
    await prepareLoad(ctx, objects);
    await orTeardown(ctx, async () => {
      for (const s of STAGES) await loadAllShared(ctx.target, objectPath(ctx, TC_OBJECTS.continuing[s]), progDir(ctx, s), mapsDir(ctx), tcProg);
      await applyTrioConfig(ctx.target, mapsDir(ctx), DEFAULT_TRIO_CONFIG);
    });
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await orTeardown(ctx, async () => {
      // Attached twice would run twice: start from none of ours on the hook.
      await detachOurs(ctx);
      for (const s of STAGES) await netAttachTcxIngress(ctx.target, { pinned: progPin(ctx, s) }, ctx.ifname, { netns: ctx.netns });
    }, () => detachOurs(ctx));
  },

  /**
   * Loads `newObject` (a TC continuing stage: -DXCL_HOOK_TC, and XCL_TC_CONTINUE but for the
   * logger) with the shared maps, then puts it where the stage's program is in one BPF_F_REPLACE
   * attach: the kernel publishes the new program array at once.
   */
  async replace(ctx: ApproachContext, stage: Stage, newObject: string) {
    const old = await progShow(ctx.target, { pinned: progPin(ctx, stage) }).catch(() => null);
    if (old === null) {
      throw new LabError('LOAD', `${ctx.target.name}: no ${stage} program pinned at ${progPin(ctx, stage)}: the tcx approach is not loaded`, {
        remedy: 'Call load() and attach() before replace().',
      });
    }
    const staged = await stageReplacement(ctx, stage, newObject, tcProg);
    const h = await tcxHelper(ctx.target, ['--op', 'replace', '--ifname', ctx.ifname, '--netns', ctx.netns, '--new', staged.pinned, '--old-id', String(old.id)]);
    if (h.exitCode !== 0 || h.line?.event !== 'replaced') {
      await unpin(ctx.target, staged.staging);
      const notAttached = h.exitCode === 3;
      throw new LabError(notAttached ? 'ATTACH' : 'UNSUPPORTED', `${ctx.target.name}: replacing ${stage} (program ${old.id}) on tcx ingress of ${ctx.ifname} failed: ${helperWords(h)}`, {
        remedy: notAttached ? 'Attach the approach (attach()) before replacing a stage.' : 'tcx replace needs Linux 6.6+ and libbpf 1.3+ (bash lab/setup.sh).',
        details: { stage: h.line?.stage, errno: h.line?.errno },
      });
    }
    await promoteReplacement(ctx, stage, staged, progPin(ctx, stage));
  },

  async detach(ctx: ApproachContext) {
    await tcxTeardown(ctx);
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const programs: LoadedProgram[] = [];
    for (const s of STAGES) programs.push(await loadedProgram(ctx.target, s, progPin(ctx, s)));
    const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
    const onHook = ns.exitCode === 0 ? await tcxIngress(ctx.target, ctx.ifname, ctx.netns).catch(() => []) : [];
    const ids = onHook.map((p) => p.id);
    const first = ids.indexOf(programs[0]!.id);
    // In stage order and adjacent: another tool's program between two stages would be measured too.
    const attached = first >= 0 && programs.every((p, i) => ids[first + i] === p.id);
    const ours = new Set(programs.map((p) => p.id));
    return {
      approach: 'tcx',
      attached,
      xdpMode: 'none',
      programs,
      maps: await pinnedMaps(ctx),
      hop: 'tcx-next',
      notes: [`tcx ingress: ${onHook.length === 0 ? 'no program' : onHook.map((p) => `${p.name} (id ${p.id}${ours.has(p.id) ? '' : ', not ours'})`).join(', ')}`],
    };
  },
};
