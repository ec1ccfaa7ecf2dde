/**
 * The tcx approach's own behaviour: its refusals (a kernel before 6.6, a bpftool before 7.4), the
 * order the kernel runs its three programs in, a detach that removes exactly its programs and
 * leaves another tool's tcx program in place (also after a partial attach), and the atomic
 * replace: under a flood ping, metrics is swapped N times with BPF_F_REPLACE and every packet the
 * logger saw was counted by metrics exactly once (a packet that met the list without metrics, or
 * with both, would make the two counters differ). Live traffic through it is in tc-live.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { checkFeature, requirements } from '../support/requirements.ts';
import { counterMoves } from '../support/wait.ts';
import type { CommandResult, HostTarget, Target } from '../../lab/target.ts';
import { loadAllShared, mapDump, netAttachTcxIngress, tcxIngress, unpin } from '../../lab/bpftool/index.ts';
import { BPFTOOL_PROG_TYPE } from '../../lab/programs/hook.ts';
import { applyTrioConfig, MAP_NAMES, readMetrics, TC_OBJECTS, totalPackets } from '../../lab/programs/trio.ts';
import { helperOnTarget } from '../../lab/programs/user.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import type { ApproachContext } from '../../lab/approaches/approach.ts';
import { hasClsact } from '../../lab/tc/clsact.ts';
import { parseBpftoolVersion, tcx, tcxKernelSupport, tcxToolSupport } from '../../lab/approaches/tcx.ts';
import { readU64le } from '../../lab/bytes.ts';
import { builtObjects, hostTarget, leftovers, removeScratch } from '../programs/support.ts';
import { RUN_TAG } from '../support/names.ts';

const PREFIX = `tx${RUN_TAG}`;
const REPLACES = 30;

/** A target that has run nothing: a refusal must come from the release alone. */
function fakeTarget(kernelRelease: string, bpftoolVersion: string): Target & { argvs: string[][] } {
  const argvs: string[][] = [];
  return {
    name: `fake-${kernelRelease}`,
    accelerator: 'host',
    kernelRelease,
    workDir: '/nonexistent',
    argvs,
    async run(argv: readonly string[]): Promise<CommandResult> {
      argvs.push([...argv]);
      if (argv[0] === 'bpftool' && argv[1] === 'version') return { stdout: bpftoolVersion, stderr: '', exitCode: 0 } as CommandResult;
      throw new Error(`unexpected command ${argv.join(' ')}`);
    },
    async putFile() {
      throw new Error('unexpected putFile');
    },
  } as unknown as Target & { argvs: string[][] };
}

describe('tcx: refused where it cannot run, with the reason', () => {
  it('a kernel before 6.6 (Debian 6.1) is refused, naming the release and when tcx arrived, without running anything', async () => {
    const t = fakeTarget('6.1.0-28-amd64', 'bpftool v7.5.0\nusing libbpf v1.5\n');
    const s = await tcx.supports(t);
    expect(s.supported).toBe(false);
    expect(s.supported ? '' : s.reason).toMatch(/kernel 6\.1\.0-28-amd64 .*tcx \(bpf_mprog\) arrived in Linux 6\.6/);
    expect(t.argvs).toEqual([]);
    expect(tcxKernelSupport('6.5.13').supported).toBe(false);
    expect(tcxKernelSupport('6.6.0').supported).toBe(true);
    expect(tcxKernelSupport('6.12.38+deb13-amd64').supported).toBe(true);
  });

  it('bookworm\'s bpftool 7.1 is refused, saying the version found and what installs a newer one', async () => {
    const old = 'bpftool v7.1.0\nusing libbpf v1.1\nfeatures: libbfd, skeletons\n';
    expect(parseBpftoolVersion(old)?.toString()).toBe('7.1.0');
    expect(parseBpftoolVersion('bpftool v7.5.0\nusing libbpf v1.5\n')?.toString()).toBe('7.5.0');
    expect(parseBpftoolVersion('command not found')).toBeNull();
    const s = tcxToolSupport(old);
    expect(s.supported).toBe(false);
    expect(s.supported ? '' : s.reason).toMatch(/bpftool 7\.1\.0 cannot attach tcx: bpftool 7\.4\+ .*lab\/setup\.sh installs bookworm-backports' bpftool/);
    expect(tcxToolSupport('').supported).toBe(false);
    expect(tcxToolSupport('bpftool v7.4.0\n').supported).toBe(true);
    // Through supports(): a new kernel with the old tool is refused for the tool.
    const t = fakeTarget('6.12.0', old);
    const r = await tcx.supports(t);
    expect(r.supported ? '' : r.reason).toMatch(/bpftool 7\.1\.0/);
  });
});

const need = requirements('root', 'bpf', 'clang', 'bpftool');
const hostSupport = need.skip ? null : await tcx.supports(await hostTarget());
const haveTcx = need.skip ? need : checkFeature('tcx', hostSupport?.supported ? null : `tcx on the host: ${hostSupport && !hostSupport.supported ? hostSupport.reason : '?'}`);

describe.skipIf(haveTcx.skip)('tcx on the host kernel: order, precise detach, atomic replace under traffic', () => {
  let target: HostTarget;
  let env: TestEnv;
  let objectDir: string;
  let ctx: ApproachContext;
  let ping: ResultPromise | null = null;
  const foreignPin = `/sys/fs/bpf/${PREFIX}_foreign`;

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    env = await createTestEnv(target, { name: PREFIX, ipv4: false });
    ctx = { target, ifname: env.b.ifname, netns: env.b.netns, pinDir: `/sys/fs/bpf/${PREFIX}_tcx`, objectDir };
  });

  afterAll(async () => {
    if (ping) {
      ping.kill('SIGKILL');
      await ping.catch(() => undefined);
    }
    if (ctx) await tcx.detach(ctx).catch(() => undefined);
    if (target) await unpin(target, foreignPin).catch(() => undefined);
    await env?.[Symbol.asyncDispose]();
    await removeScratch();
    if (target) expect(await leftovers(target, PREFIX)).toEqual([]);
  });

  /** Another tool's program on the same hook: a tc_logger of its own, pinned outside ctx.pinDir. */
  async function attachForeign(): Promise<number> {
    const progs = await loadAllShared(target, `${objectDir}/${TC_OBJECTS.continuing.logger}.o`, `${foreignPin}/progs`, `${foreignPin}/maps`, { type: BPFTOOL_PROG_TYPE.tc });
    const pin = `${foreignPin}/progs/${Object.keys(progs)[0]}`;
    await netAttachTcxIngress(target, { pinned: pin }, ctx.ifname, { netns: ctx.netns });
    return (await tcxIngress(target, ctx.ifname, ctx.netns)).at(-1)!.id;
  }

  async function detachForeign(id: number): Promise<void> {
    const helper = await helperOnTarget(target, 'tcx');
    await target.run([helper, '--op', 'detach', '--ifname', ctx.ifname, '--netns', ctx.netns, '--id', String(id)]);
    await unpin(target, foreignPin);
  }

  it('the host supports it; the three programs run in stage order on tcx ingress, with no qdisc and no XDP', async () => {
    expect(hostSupport).toMatchObject({ supported: true });
    await tcx.load(ctx);
    await tcx.attach(ctx);
    const d = await tcx.describe(ctx);
    expect(d).toMatchObject({ approach: 'tcx', attached: true, xdpMode: 'none', hop: 'tcx-next' });
    expect(d.programs.map((p) => [p.role, p.name])).toEqual([['filter', 'tc_filter'], ['metrics', 'tc_metrics'], ['logger', 'tc_logger']]);
    expect((await tcxIngress(target, ctx.ifname, ctx.netns)).map((p) => p.id)).toEqual(d.programs.map((p) => p.id));
    expect(await hasClsact(ctx)).toBe(false);
    // Attaching again does not run the chain twice.
    await tcx.attach(ctx);
    const again = await tcx.describe(ctx);
    expect((await tcxIngress(target, ctx.ifname, ctx.netns)).map((p) => p.id)).toEqual(again.programs.map((p) => p.id));
  });

  it('detach removes exactly its programs and pins: another tool\'s tcx program before ours stays attached', async () => {
    await tcx.detach(ctx);
    const foreign = await attachForeign();
    await tcx.load(ctx);
    await tcx.attach(ctx);
    const d = await tcx.describe(ctx);
    expect(d.attached).toBe(true);
    expect((await tcxIngress(target, ctx.ifname, ctx.netns)).map((p) => p.id)).toEqual([foreign, ...d.programs.map((p) => p.id)]);
    expect(d.notes.join(' ')).toMatch(new RegExp(`id ${foreign}, not ours`));
    await tcx.detach(ctx);
    expect((await tcxIngress(target, ctx.ifname, ctx.netns)).map((p) => p.id)).toEqual([foreign]);
    expect((await target.run(['test', '-e', ctx.pinDir], { allowFailure: true })).exitCode).not.toBe(0);
    await detachForeign(foreign);
    expect(await tcxIngress(target, ctx.ifname, ctx.netns)).toEqual([]);
  });

  it('after a partial attach (filter alone on the hook), detach leaves nothing of ours', async () => {
    await tcx.load(ctx);
    await netAttachTcxIngress(target, { pinned: `${ctx.pinDir}/progs/filter/tc_filter` }, ctx.ifname, { netns: ctx.netns });
    const d = await tcx.describe(ctx);
    expect(d.attached).toBe(false);
    expect(await tcxIngress(target, ctx.ifname, ctx.netns)).toHaveLength(1);
    await tcx.detach(ctx);
    expect(await tcxIngress(target, ctx.ifname, ctx.netns)).toEqual([]);
    // And detaching what is not there is no error.
    await tcx.detach(ctx);
  });

  async function loggerSeen(): Promise<number> {
    let n = 0;
    for (const e of await mapDump(target, { pinned: `${ctx.pinDir}/maps/${MAP_NAMES.logState}` })) for (const v of e.values ?? []) n += Number(readU64le(v.value));
    return n;
  }

  /** Metrics' and the logger's packet counts once no packet arrives between two reads. */
  async function settled(): Promise<{ metrics: number; logger: number }> {
    const read = async () => ({ metrics: totalPackets(await readMetrics(target, `${ctx.pinDir}/maps`)), logger: await loggerSeen() });
    let prev = await read();
    for (let i = 0; i < 50; i++) {
      const next = await read();
      if (next.metrics === prev.metrics && next.logger === prev.logger) return next;
      prev = next;
    }
    throw new Error('traffic never settled');
  }

  it(`replace(metrics) ${REPLACES} times under a flood ping: no packet skips metrics or runs it twice`, async () => {
    await tcx.load(ctx);
    await tcx.attach(ctx);
    // The logger counts every packet (log_state) but samples none out: N far above the traffic.
    await applyTrioConfig(target, `${ctx.pinDir}/maps`, { denyPorts: [23], logSampleN: 0x7fffffff });
    const before = await settled();
    const ids = new Set<number>();
    ping = execa('nsenter', [`--net=/run/netns/${env.a.netns}`, 'ping', '-6', '-n', '-q', '-i', '0.001', '-w', '600', env.b.ip6], { reject: false });
    let atFirst = 0;
    let atLast = 0;
    let pr;
    try {
      atFirst = await counterMoves('packets through the logger', loggerSeen);
      for (let i = 0; i < REPLACES; i++) {
        await tcx.replace(ctx, 'metrics', `${objectDir}/${TC_OBJECTS.continuing.metrics}.o`);
        const d = await tcx.describe(ctx);
        expect(d.attached).toBe(true);
        ids.add(d.programs[1]!.id);
      }
      atLast = await loggerSeen();
      await counterMoves('packets through the logger after the last replace', loggerSeen);
    } finally {
      ping.kill('SIGINT');
      pr = await ping;
      ping = null;
    }
    const after = await settled();
    const seen = { metrics: after.metrics - before.metrics, logger: after.logger - before.logger };
    const stats = /(\d+) packets transmitted, (\d+) received/.exec(String(pr.stdout));
    console.info(`[tcx replace] ${REPLACES} replaces; packets: logger ${seen.logger}, metrics ${seen.metrics}, during the replaces ${atLast - atFirst}; ping: ${stats?.[0] ?? '?'}`);
    expect(ids.size).toBe(REPLACES);
    expect(atLast).toBeGreaterThan(atFirst);
    expect(seen.logger).toBeGreaterThan(0);
    expect(seen.metrics).toBe(seen.logger);
    expect(stats).not.toBeNull();
    expect(Number(stats![1]) - Number(stats![2])).toBeLessThanOrEqual(1);
    await tcx.detach(ctx);
  }, 300_000);

  it('replace() while not attached is refused and changes nothing', async () => {
    await tcx.load(ctx);
    const before = await tcx.describe(ctx);
    const err = await tcx.replace(ctx, 'metrics', `${objectDir}/${TC_OBJECTS.continuing.metrics}.o`).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ATTACH');
    expect((err as Error).message).toMatch(/not on tcx ingress/);
    expect((await tcx.describe(ctx)).programs).toEqual(before.programs);
    await tcx.detach(ctx);
  });
});
