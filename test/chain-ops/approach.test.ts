/**
 * The lab's `patched` approach on the host kernel: the trio's standalone objects patched and
 * chained, attached on the test environment's veth, with traffic. Replacing metrics is the atomic
 * slot update (Alg. 3.2); replacing the filter, which is attached directly, recreates the chain
 * and swaps the attach point (Alg. 3.3). Both happen under a running ping: no reply may be lost,
 * and every packet metrics counts must reach the logger (their maps survive the swaps).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { counterMoves } from '../support/wait.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { readU64le } from '../../lab/bytes.ts';
import type { ApproachContext } from '../../lab/approaches/approach.ts';
import { patched } from '../../lab/approaches/patched.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../../lab/programs/build.ts';
import { MAP_NAMES, applyTrioConfig, readMetrics, totalPackets, type Stage } from '../../lab/programs/trio.ts';
import { readState, statePath } from '../../lab/chain/state.ts';
import { RUN_ID, hostTarget } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');

describe.skipIf(need.skip)('patched approach (host kernel, veth in namespaces)', () => {
  let target: Target;
  let env: TestEnv;
  let ctx: ApproachContext;

  beforeAll(async () => {
    target = await hostTarget();
    await buildPrograms();
    env = await createTestEnv(target, { name: `xt6ap${RUN_ID}` });
    ctx = { target, ifname: env.b.ifname, netns: env.b.netns, pinDir: `/sys/fs/bpf/xt6ap_${RUN_ID}`, objectDir: DEFAULT_OUT_DIR };
  });

  afterAll(async () => {
    if (ctx) await patched.detach(ctx).catch(() => undefined);
    await env?.[Symbol.asyncDispose]();
  });

  async function loggerSeen(): Promise<number> {
    let n = 0;
    for (const e of await bpftool.mapDump(target, { pinned: `${ctx.pinDir}/maps/${MAP_NAMES.logState}` })) {
      for (const v of e.values ?? []) n += Number(readU64le(v.value));
    }
    return n;
  }

  /**
   * Packets metrics counted and records the logger took, read when no packet arrived during the
   * two reads (IPv6 ND/MLD keeps trickling in): two identical snapshots in a row.
   */
  async function settled(): Promise<{ metrics: number; logger: number }> {
    const read = async () => ({ metrics: totalPackets(await readMetrics(target, `${ctx.pinDir}/maps`)), logger: await loggerSeen() });
    let prev = await read();
    for (let i = 0; i < 20; i++) {
      const next = await read();
      if (next.metrics === prev.metrics && next.logger === prev.logger) return next;
      prev = next;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('counters never settled: traffic did not stop');
  }

  async function underPing(work: () => Promise<void>): Promise<{ transmitted: number; received: number }> {
    const ping = execa('nsenter', [`--net=/run/netns/${env.a.netns}`, 'ping', '-6', '-q', '-i', '0.002', '-w', '600', env.b.ip6], { reject: false });
    try {
      const icmp = async () => (await readMetrics(target, `${ctx.pinDir}/maps`)).icmpv6.packets;
      await counterMoves('ICMPv6 packets counted by metrics', icmp, 5);
      await work();
      await counterMoves('ICMPv6 packets counted by metrics after the replace', icmp, 5);
    } finally {
      ping.kill('SIGINT');
    }
    const out = String((await ping).stdout);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    if (!m) throw new Error(`no ping statistics: ${out}`);
    return { transmitted: Number(m[1]), received: Number(m[2]) };
  }

  it('is supported here, in inline mode: the trio calls no other function', async () => {
    const s = await patched.supports(target);
    expect(s.supported).toBe(true);
    if (s.supported) expect(s.notes?.join(' ')).toMatch(/patch mode inline: no body calls other functions/);
  });

  it('loads and attaches the trio in chain order, natively, with constant-index tail calls', async () => {
    await patched.load(ctx);
    await patched.attach(ctx);
    const d = await patched.describe(ctx);
    expect(d.attached).toBe(true);
    expect(d.xdpMode).toBe('native');
    expect(d.hop).toBe('tail-call-constant');
    expect(d.programs.map((p) => [p.role, p.name])).toEqual([['filter', 'xdp_filter'], ['metrics', 'xdp_metrics'], ['logger', 'xdp_logger']]);
    expect(d.maps.map((m) => m.name)).toEqual(expect.arrayContaining([MAP_NAMES.denyPorts, MAP_NAMES.metrics, MAP_NAMES.logEvents, 'xcl_chain', 'xcl_verdict']));
    expect(d.notes.join('\n')).not.toMatch(/problem/);
  });

  it('ping6 crosses all three; every packet metrics counts is seen by the logger', async () => {
    await applyTrioConfig(target, `${ctx.pinDir}/maps`, { denyPorts: [23], logSampleN: 1 });
    const c0 = await settled();
    const icmp0 = (await readMetrics(target, `${ctx.pinDir}/maps`)).icmpv6.packets;
    expect(await env.ping6(10)).toEqual({ transmitted: 10, received: 10 });
    const c1 = await settled();
    expect((await readMetrics(target, `${ctx.pinDir}/maps`)).icmpv6.packets - icmp0).toBeGreaterThanOrEqual(10);
    expect(c1.metrics - c0.metrics).toBe(c1.logger - c0.logger);
  });

  for (const stage of ['metrics', 'filter'] as Stage[]) {
    it(`replaces ${stage} under traffic without loss (${stage === 'filter' ? 'recreate + attach-point swap' : 'one slot update'})`, async () => {
      const before = await patched.describe(ctx);
      const stats0 = (await bpftool.mapShow(target, { pinned: `${ctx.pinDir}/maps/${MAP_NAMES.metrics}` })).id;
      const c0 = await settled();
      const p = await underPing(() => patched.replace(ctx, stage, join(DEFAULT_OUT_DIR, `${stage}.o`)));
      expect(p.transmitted).toBeGreaterThanOrEqual(10);
      expect(p.transmitted - p.received).toBeLessThanOrEqual(1);
      const after = await patched.describe(ctx);
      expect(after.attached).toBe(true);
      expect(after.notes.join('\n')).not.toMatch(/problem/);
      const id = (d: typeof before, role: string): number | undefined => d.programs.find((x) => x.role === role)?.id;
      expect(id(after, stage)).not.toBe(id(before, stage));
      if (stage === 'metrics') {
        expect(id(after, 'filter')).toBe(id(before, 'filter'));
        expect(id(after, 'logger')).toBe(id(before, 'logger'));
      } else {
        expect((await readState(target, `${ctx.pinDir}/chain`))?.attachment?.method).toBe('xdp-flags-replace');
      }
      // The trio's maps were taken over, not recreated, so the counts carry across the swap.
      expect((await bpftool.mapShow(target, { pinned: `${ctx.pinDir}/maps/${MAP_NAMES.metrics}` })).id).toBe(stats0);
      const c1 = await settled();
      expect(c1.metrics - c0.metrics).toBe(c1.logger - c0.logger);
    }, 120_000);
  }

  it('detaches: nothing attached, no pins, no state file', async () => {
    await patched.detach(ctx);
    expect(await bpftool.xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
    expect((await target.run(['test', '-e', ctx.pinDir], { allowFailure: true })).exitCode).not.toBe(0);
    expect((await target.run(['test', '-e', statePath(`${ctx.pinDir}/chain`)], { allowFailure: true })).exitCode).not.toBe(0);
  });

  it('withMode fixes the patch mode: the inline trio loads, passes ping6, and says which mode it runs', async () => {
    const inline = patched.withMode('inline');
    const ictx = { ...ctx, pinDir: `${ctx.pinDir}-inline` };
    try {
      expect((await inline.supports(target)).supported).toBe(true);
      await inline.load(ictx);
      await inline.attach(ictx);
      const d = await inline.describe(ictx);
      expect(d.attached).toBe(true);
      expect(d.notes.join('\n')).toMatch(/patch mode inline/);
      expect((await readState(target, `${ictx.pinDir}/chain`))?.mode).toBe('inline');
      const ping = await execa('nsenter', [`--net=/run/netns/${env.a.netns}`, 'ping', '-6', '-c', '3', '-i', '0.2', env.b.ip6], { reject: false });
      expect(ping.stdout).toMatch(/3 packets transmitted, 3 received/);
    } finally {
      await inline.detach(ictx);
    }
    expect(await bpftool.xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
  });
});
