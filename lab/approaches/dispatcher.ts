/**
 * libxdp's multi-program dispatcher, driven with xdp-loader: the three standalone objects
 * (filter.o, metrics.o, logger.o — the same object code as the other approaches) are loaded
 * together; libxdp orders them by the XDP_RUN_CONFIG priority each object carries in its BTF
 * (filter 10, metrics 20, logger 30) and calls the next one only on XDP_PASS (chain_call_actions),
 * as in the manual chain and the fused program.
 *
 * libxdp needs freplace (BPF_PROG_TYPE_EXT, kernel ≥ 5.10 in practice). Without it, libxdp refuses
 * to load several programs ("Can't fall back to legacy load with 3 programs"): supports() reports
 * exactly that message and attach() fails with it. The approach never falls back to one program.
 *
 * xdp-loader loads and attaches in one step, so load() only checks the inputs and attach() does
 * the work; the stages' maps are then pinned under ctx.pinDir/maps like the other approaches'.
 */
import type { Approach, ApproachContext, Description, LoadedProgram, Support } from './approach.ts';
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError } from '../errors.ts';
import { mapPin, mapShow, progShow } from '../bpftool/index.ts';
import { buildPrograms } from '../programs/build.ts';
import { DEFAULT_TRIO_CONFIG, MAP_NAMES, OBJECTS, STAGES, applyTrioConfig, type Stage } from '../programs/trio.ts';
import { attachedMode, mapsDir, objectPath, orTeardown, pinnedMaps, prepareLoad, requireInterface, teardown } from './lifecycle.ts';
import { nsenterArgv } from '../testenv/testenv.ts';

const supportCache = new WeakMap<Target, Support>();

/** libxdp's words when the kernel cannot run its dispatcher with several programs. */
const NO_MULTIPROG = /Can't fall back to legacy load|does not support the features needed|multiprog dispatcher/;

function loaderError(ctx: ApproachContext, out: string): LabError {
  if (NO_MULTIPROG.test(out)) {
    return new LabError('UNSUPPORTED', `${ctx.target.name} (kernel ${ctx.target.kernelRelease}): xdp-loader cannot chain 3 programs on ${ctx.ifname}:\n${out}`, {
      remedy: 'The libxdp dispatcher needs freplace (BPF_PROG_TYPE_EXT) support: use a kernel ≥ 5.10 with BTF, or another approach.',
    });
  }
  return new LabError('ATTACH', `${ctx.target.name}: xdp-loader load on ${ctx.ifname} in ${ctx.netns} failed:\n${out}`, {
    remedy: 'Read libxdp\'s message above (run with xdp-loader -vv by hand for more).',
  });
}

async function xdpLoader(target: Target, netns: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await target.run(nsenterArgv(netns, ['xdp-loader', ...args]), { allowFailure: true });
  return { ok: r.exitCode === 0, out: `${r.stderr}\n${r.stdout}`.trim() };
}

interface StatusRow {
  prio: number;
  name: string;
  id: number;
  actions: string;
}

/** The component programs of the dispatcher attached to ifname, from `xdp-loader status`. */
async function statusRows(ctx: ApproachContext): Promise<{ dispatcherId?: number; rows: StatusRow[] }> {
  const r = await ctx.target.run(nsenterArgv(ctx.netns, ['xdp-loader', 'status', ctx.ifname]), { allowFailure: true });
  const rows: StatusRow[] = [];
  let dispatcherId: number | undefined;
  for (const line of r.stdout.split('\n')) {
    const d = new RegExp(`^${ctx.ifname}\\s+(?:\\d+\\s+)?xdp_dispatcher\\s+\\S+\\s+(\\d+)`).exec(line);
    if (d) dispatcherId = Number(d[1]);
    const m = /^\s*=>\s+(\d+)\s+(\S+)\s+(\d+)\s+[0-9a-f]+\s*(.*)$/.exec(line);
    if (m) rows.push({ prio: Number(m[1]), name: m[2] ?? '', id: Number(m[3]), actions: (m[4] ?? '').trim() });
  }
  return { dispatcherId, rows };
}

/** Pins each component program's maps under ctx.pinDir/maps by their names. */
async function pinComponentMaps(ctx: ApproachContext, ids: number[]): Promise<void> {
  await ctx.target.run(['mkdir', '-p', mapsDir(ctx)]);
  for (const id of ids) {
    const p = await progShow(ctx.target, { id });
    for (const mid of p.mapIds) {
      const m = await mapShow(ctx.target, { id: mid });
      // The dispatcher's own config map has no name we use; only the trio's maps are pinned.
      if (!(Object.values(MAP_NAMES) as string[]).includes(m.name)) continue;
      const exists = await ctx.target.run(['test', '-e', `${mapsDir(ctx)}/${m.name}`], { allowFailure: true });
      if (exists.exitCode !== 0) await mapPin(ctx.target, { id: mid }, `${mapsDir(ctx)}/${m.name}`);
    }
  }
}

async function unloadAll(ctx: ApproachContext): Promise<void> {
  const ns = await ctx.target.run(['test', '-e', `/run/netns/${ctx.netns}`], { allowFailure: true });
  if (ns.exitCode !== 0) return;
  const has = await ctx.target.sh('command -v xdp-loader', { allowFailure: true });
  if (has.exitCode !== 0) return;
  const link = await ctx.target.run(nsenterArgv(ctx.netns, ['ip', 'link', 'show', 'dev', ctx.ifname]), { allowFailure: true });
  if (link.exitCode !== 0) return;
  // unload --all removes libxdp's pins under /sys/fs/bpf/xdp too; teardown() then checks nothing is left.
  await xdpLoader(ctx.target, ctx.netns, ['unload', '--all', ctx.ifname]);
  await xdpLoader(ctx.target, ctx.netns, ['clean', ctx.ifname]);
}

/**
 * Tries xdp-loader with the three objects on a throwaway veth pair in a throwaway namespace:
 * the only reliable answer is libxdp's own.
 */
async function probe(target: Target): Promise<Support> {
  const has = await target.sh('command -v xdp-loader', { allowFailure: true });
  if (has.exitCode !== 0) return { supported: false, reason: `${target.name}: xdp-loader is not installed (xdp-tools)` };
  const id = await target.run(['id', '-u'], { allowFailure: true });
  if (id.stdout.trim() !== '0') return { supported: false, reason: `${target.name}: probing the libxdp dispatcher needs root` };
  const built = await buildPrograms();
  const dir = `${target.workDir}/dispatcher-probe`;
  const objs: string[] = [];
  for (const s of STAGES) {
    const local = built[OBJECTS.standalone[s]];
    if (!local) throw new LabError('MISSING_FILE', `dispatcher probe: ${OBJECTS.standalone[s]}.o was not built`);
    const remote = `${dir}/${OBJECTS.standalone[s]}.o`;
    await target.putFile(local, remote);
    objs.push(remote);
  }
  const ns = `xcldp${process.pid % 100000}`;
  const q = shellQuote;
  try {
    await target.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    await target.sh(
      [
        'set -e',
        `ip netns add ${q(ns)}`,
        `nsenter --net=/run/netns/${q(ns)} ip link add ${q(ns)}0 type veth peer name ${q(ns)}1`,
        `nsenter --net=/run/netns/${q(ns)} ip link set ${q(ns)}0 up`,
        `nsenter --net=/run/netns/${q(ns)} ip link set ${q(ns)}1 up`,
      ].join('\n'),
    );
    const r = await xdpLoader(target, ns, ['load', '-m', 'native', `${ns}0`, ...objs]);
    if (r.ok) {
      const st = await target.run(nsenterArgv(ns, ['xdp-loader', 'status', `${ns}0`]), { allowFailure: true });
      const n = st.stdout.split('\n').filter((l) => /^\s*=>/.test(l)).length;
      await xdpLoader(target, ns, ['unload', '--all', `${ns}0`]);
      if (n !== 3) return { supported: false, reason: `${target.name}: xdp-loader loaded ${n} program(s) instead of 3 behind a dispatcher:\n${st.stdout.trim()}` };
      return { supported: true, notes: ['libxdp dispatcher with 3 programs (freplace)'] };
    }
    return { supported: false, reason: r.out };
  } finally {
    await target.run(nsenterArgv(ns, ['xdp-loader', 'unload', '--all', `${ns}0`]), { allowFailure: true });
    await target.run(['ip', 'netns', 'del', ns], { allowFailure: true });
    await target.run(['rm', '-rf', dir], { allowFailure: true });
  }
}

export const dispatcher: Approach = {
  name: 'dispatcher',
  summary: "libxdp's dispatcher (xdp-loader): the three programs attached as freplace extensions, run by priority.",

  async supports(target: Target): Promise<Support> {
    const cached = supportCache.get(target);
    if (cached) return cached;
    const s = await probe(target);
    supportCache.set(target, s);
    return s;
  },

  async load(ctx: ApproachContext) {
    await prepareLoad(ctx, STAGES.map((s) => OBJECTS.standalone[s]));
  },

  async attach(ctx: ApproachContext) {
    await requireInterface(ctx);
    await orTeardown(
      ctx,
      async () => {
        const objs = STAGES.map((s) => objectPath(ctx, OBJECTS.standalone[s]));
        const r = await xdpLoader(ctx.target, ctx.netns, ['load', '-m', 'native', ctx.ifname, ...objs]);
        if (!r.ok) throw loaderError(ctx, r.out);
        const { rows } = await statusRows(ctx);
        const order = rows.map((x) => x.name).join(' → ');
        const expected = STAGES.map((s) => `xdp_${s}`).join(' → ');
        // Never run with fewer programs or another order than the other approaches.
        if (order !== expected) {
          throw new LabError('ATTACH', `${ctx.target.name}: xdp-loader attached [${order}] on ${ctx.ifname}, expected [${expected}]`, {
            remedy: 'Check the XDP_RUN_CONFIG priorities in programs/*.c and the xdp-tools version.',
          });
        }
        await pinComponentMaps(ctx, rows.map((x) => x.id));
        await applyTrioConfig(ctx.target, mapsDir(ctx), DEFAULT_TRIO_CONFIG, [MAP_NAMES.denyPorts, MAP_NAMES.logConfig]);
      },
      () => unloadAll(ctx),
    );
  },

  async replace(ctx: ApproachContext, stage: Stage) {
    throw new LabError('UNSUPPORTED', `approach dispatcher: replacing stage ${stage} in place is not offered by xdp-loader (on ${ctx.ifname})`, {
      remedy: 'Detach and attach again with the new object.',
    });
  },

  async detach(ctx: ApproachContext) {
    await teardown(ctx, () => unloadAll(ctx));
  },

  async describe(ctx: ApproachContext): Promise<Description> {
    const { dispatcherId, rows } = await statusRows(ctx);
    const att = await attachedMode(ctx);
    const programs: LoadedProgram[] = [];
    if (dispatcherId !== undefined) {
      const d = await progShow(ctx.target, { id: dispatcherId });
      programs.push({ role: 'dispatcher', name: d.name, id: d.id, tag: d.tag });
    }
    for (const r of rows) {
      const p = await progShow(ctx.target, { id: r.id });
      programs.push({ role: r.name.replace(/^xdp_/, ''), name: p.name, id: p.id, tag: p.tag });
    }
    return {
      approach: 'dispatcher',
      attached: dispatcherId !== undefined && att.ids.includes(dispatcherId),
      xdpMode: att.mode,
      programs,
      maps: await pinnedMaps(ctx),
      hop: 'freplace',
      notes: rows.map((r) => `${r.name}: priority ${r.prio}, chain_call_actions ${r.actions || '?'}`),
    };
  },
};
