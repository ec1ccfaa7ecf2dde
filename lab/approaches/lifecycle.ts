/**
 * The life cycle every approach that loads the trio shares: where its pins live under
 * ctx.pinDir, the checks that turn bad input into one clear LabError before anything is loaded,
 * and the teardown that leaves the interface with no XDP program and no pins on every path.
 *
 * Layout under ctx.pinDir (bpffs names cannot contain '.'):
 *   maps/<map name>       the maps, shared by the stages (deny_ports, metrics_stats, log_*, chain_jmp)
 *   progs/<stage>/<prog>  each loaded program (bpftool prog loadall pins)
 */
import type { Target } from '../target.ts';
import type { ApproachContext, LoadedProgram, Support } from './approach.ts';
import { clsactSupport } from '../tc/clsact.ts';
import { LabError } from '../errors.ts';
import { checkPinPath, ensureBpffs, loadAllShared, mapShow, netDetachXdp, progShow, unpin, xdpAttached } from '../bpftool/index.ts';
import { nsenterArgv } from '../testenv/testenv.ts';

export function mapsDir(ctx: ApproachContext): string {
  return `${ctx.pinDir}/maps`;
}

export function progDir(ctx: ApproachContext, stage: string): string {
  return `${ctx.pinDir}/progs/${stage}`;
}

export function objectPath(ctx: ApproachContext, name: string): string {
  return `${ctx.objectDir}/${name}.o`;
}

export async function requireRoot(target: Target): Promise<void> {
  const r = await target.run(['id', '-u'], { allowFailure: true });
  if (r.stdout.trim() !== '0') {
    throw new LabError('NOT_ROOT', `${target.name}: loading and attaching XDP programs needs root (running as uid ${r.stdout.trim() || '?'})`, {
      remedy: 'Run the lab as root (sudo).',
    });
  }
}

export async function requireInterface(ctx: ApproachContext): Promise<void> {
  const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
  if (ns.exitCode !== 0) {
    throw new LabError('NO_INTERFACE', `${ctx.target.name}: network namespace ${ctx.netns} does not exist (looking for ${ctx.ifname})`, {
      remedy: 'Create the test environment first (lab/testenv createTestEnv) and pass its receiver namespace and interface.',
    });
  }
  const r = await ctx.target.run(nsenterArgv(ctx.netns, ['ip', 'link', 'show', 'dev', ctx.ifname]), { allowFailure: true });
  if (r.exitCode !== 0) {
    throw new LabError('NO_INTERFACE', `${ctx.target.name}: no interface ${ctx.ifname} in network namespace ${ctx.netns}`, {
      remedy: 'Check the interface name (ip link) or create the test environment first.',
    });
  }
}

export async function requireObjects(ctx: ApproachContext, names: readonly string[]): Promise<void> {
  for (const n of names) {
    const p = objectPath(ctx, n);
    const r = await ctx.target.run(['test', '-f', p], { allowFailure: true });
    if (r.exitCode !== 0) {
      throw new LabError('MISSING_FILE', `${ctx.target.name}: BPF object ${p} does not exist`, {
        remedy: 'Build the programs (npm run build:bpf) and copy build/bpf/*.o to the target\'s object directory.',
      });
    }
  }
}

/** Everything load() checks before touching the kernel, then a fresh pin directory. */
export async function prepareLoad(ctx: ApproachContext, objects: readonly string[]): Promise<void> {
  checkPinPath(ctx.pinDir);
  await requireRoot(ctx.target);
  await requireObjects(ctx, objects);
  await requireInterface(ctx);
  await ensureBpffs(ctx.target);
  // Pins left by a crashed run would be reused silently by the next load: start clean.
  await unpin(ctx.target, ctx.pinDir);
  await ctx.target.run(['mkdir', '-p', mapsDir(ctx)]);
}

/**
 * Detaches every XDP program from the interface (all modes) and removes the pins. Both steps are
 * tried whatever happens to the other; a missing namespace or interface means nothing is attached.
 */
export async function teardown(ctx: ApproachContext, extra?: () => Promise<void>): Promise<void> {
  const errors: unknown[] = [];
  if (extra) await extra().catch((e: unknown) => errors.push(e));
  const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
  if (ns.exitCode === 0) await netDetachXdp(ctx.target, ctx.ifname, { netns: ctx.netns }).catch((e: unknown) => errors.push(e));
  await unpin(ctx.target, ctx.pinDir).catch((e: unknown) => errors.push(e));
  if (ns.exitCode === 0) {
    const left = await xdpAttached(ctx.target, ctx.ifname, ctx.netns).catch(() => []);
    if (left.length > 0) errors.push(new Error(`program(s) ${left.map((x) => x.id).join(', ')} still attached to ${ctx.ifname}`));
  }
  if (errors.length > 0) {
    const first = errors[0];
    if (errors.length === 1 && first instanceof LabError) throw first;
    throw new LabError('ATTACH', `${ctx.target.name}: detaching from ${ctx.ifname} in ${ctx.netns}: ${errors.map((e) => (e as Error).message).join('; ')}`, {
      remedy: `Detach by hand: nsenter --net=/run/netns/${ctx.netns} bpftool net detach xdp dev ${ctx.ifname}; rm -rf ${ctx.pinDir}`,
    });
  }
}

/** Runs `work`; on failure tears down what was set up so far, then rethrows the original error. */
export async function orTeardown<T>(ctx: ApproachContext, work: () => Promise<T>, extra?: () => Promise<void>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    await teardown(ctx, extra).catch(() => undefined);
    throw e;
  }
}

export async function attachedMode(ctx: ApproachContext): Promise<{ ids: number[]; mode: 'native' | 'generic' | 'none' }> {
  const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
  if (ns.exitCode !== 0) return { ids: [], mode: 'none' };
  const att = await xdpAttached(ctx.target, ctx.ifname, ctx.netns).catch(() => []);
  if (att.length === 0) return { ids: [], mode: 'none' };
  const mode = att.some((a) => a.mode === 'driver') ? 'native' : att.some((a) => a.mode === 'generic') ? 'generic' : 'native';
  return { ids: att.map((a) => a.id), mode };
}

export async function loadedProgram(target: Target, role: string, pinned: string): Promise<LoadedProgram> {
  const exists = await target.run(['test', '-e', pinned], { allowFailure: true });
  if (exists.exitCode !== 0) {
    throw new LabError('LOAD', `${target.name}: no ${role} program pinned at ${pinned}: the approach is not loaded`, {
      remedy: 'Call load() (and attach()) before describe().',
    });
  }
  const p = await progShow(target, { pinned });
  return { role, name: p.name, id: p.id, tag: p.tag };
}

/** The maps pinned in ctx.pinDir/maps, with their ids. */
export async function pinnedMaps(ctx: ApproachContext): Promise<{ name: string; id: number }[]> {
  const ls = await ctx.target.run(['ls', '-1', mapsDir(ctx)], { allowFailure: true });
  const out: { name: string; id: number }[] = [];
  for (const n of ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    const m = await mapShow(ctx.target, { pinned: `${mapsDir(ctx)}/${n}` }).catch(() => null);
    if (m) out.push({ name: n, id: m.id });
  }
  return out;
}

/** A stage's replacement loaded beside it, sharing the maps, before it is swapped in. */
export interface StagedReplacement {
  staging: string;
  pinned: string;
}

/** Loads `object` under progs/<stage>_next: exactly one program, or nothing is left and it is refused. */
export async function stageReplacement(ctx: ApproachContext, stage: string, object: string, opts: { type?: string } = {}): Promise<StagedReplacement> {
  const staging = progDir(ctx, `${stage}_next`);
  const progs = await loadAllShared(ctx.target, object, staging, mapsDir(ctx), opts);
  const names = Object.keys(progs);
  if (names.length !== 1) {
    await unpin(ctx.target, staging);
    throw new LabError('BAD_INPUT', `${object}: expected one program to replace stage ${stage}, found ${names.length} (${names.join(', ')})`, {
      remedy: 'Pass an object with exactly one program for that stage.',
    });
  }
  return { staging, pinned: `${staging}/${names[0]}` };
}

/** After the swap: the replacement's pin becomes the stage's at `stagePin`, the staging directory goes. */
export async function promoteReplacement(ctx: ApproachContext, stage: string, r: StagedReplacement, stagePin: string): Promise<void> {
  await unpin(ctx.target, progDir(ctx, stage));
  await ctx.target.run(['mkdir', '-p', progDir(ctx, stage)]);
  await ctx.target.run(['mv', r.pinned, stagePin]);
  await unpin(ctx.target, r.staging);
}

/** What every clsact-based TC approach first needs: a kernel that can add the clsact qdisc. */
export async function clsactApproachSupport(target: Target): Promise<Support> {
  const v = await clsactSupport(target);
  return v.ok ? { supported: true } : { supported: false, reason: v.reason };
}
