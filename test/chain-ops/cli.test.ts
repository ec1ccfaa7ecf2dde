/**
 * The `npm run chain` CLI. Parsing is tested in-process; the acceptance scenario runs the real CLI
 * (tsx lab/cli.ts chain ...) as separate processes, so each step finds the chain through its pins
 * and state file only: attach the trio on a veth in a namespace, check with status --json that
 * the three programs sit in order, show traffic crosses all three in order, replace metrics under
 * traffic without loss, detach and leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { counterMoves } from '../support/wait.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { readU64le, u16le, u32le } from '../../lab/bytes.ts';
import { parseProgramSpec, parseVerdicts } from '../../lab/commands/chain.ts';
import type { ChainStatus } from '../../lab/chain/ops/status.ts';
import { pinDirForName, statePath } from '../../lab/chain/state.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../../lab/programs/build.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { metricsFromDump, totalPackets } from '../../lab/programs/trio.ts';
import { createVethPair, destroyVethPair, hostTarget, type VethPair, RUN_ID } from './support.ts';

describe('chain CLI parsing', () => {
  it('accepts verdict names, XDP_ names and numbers, deduplicated', () => {
    expect(parseVerdicts('pass,drop')).toEqual([2, 1]);
    expect(parseVerdicts('XDP_TX, redirect,4')).toEqual([3, 4]);
    expect(parseVerdicts('none')).toEqual([]);
    expect(parseVerdicts('')).toEqual([]);
    expect(() => parseVerdicts('pass,bogus')).toThrow(/"bogus" is not a verdict/);
  });
  it('parses per-program overrides', () => {
    const d = { success: [2], redirect: [3, 4] };
    expect(parseProgramSpec('/x/a.o', d)).toMatchObject({ path: '/x/a.o', success: [2], redirect: [3, 4] });
    expect(parseProgramSpec('/x/a.o:success=pass,drop:redirect=', d)).toMatchObject({ success: [2, 1], redirect: [] });
    expect(parseProgramSpec('/x/a.o:r=tx:program=xdp_x', d)).toMatchObject({ success: [2], redirect: [3], program: 'xdp_x' });
    expect(() => parseProgramSpec('/x/a.o:colour=red', d)).toThrow(/unknown option "colour=red"/);
    expect(() => parseProgramSpec('/x/a.o:success=maybe', d)).toThrow(/"maybe" is not a verdict/);
  });
});

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const NAME = `xt6acc${RUN_ID}`;

describe.skipIf(need.skip)('acceptance: npm run chain on the trio', () => {
  let target: Target;
  let veth: VethPair | null = null;
  let ping: ResultPromise | null = null;
  const tsx = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const cli = (...args: string[]) => execa(tsx, [join(REPO_ROOT, 'lab', 'cli.ts'), 'chain', ...args], { reject: false, cwd: REPO_ROOT });
  const obj = (n: string): string => join(DEFAULT_OUT_DIR, `${n}.o`);

  beforeAll(async () => {
    target = await hostTarget();
    await buildPrograms();
    await cli('detach', '--name', NAME);
    veth = await createVethPair(target, 'c', 63);
  });

  afterAll(async () => {
    if (ping) {
      ping.kill('SIGKILL');
      await ping.catch(() => {});
    }
    await cli('detach', '--name', NAME);
    if (target && veth) await destroyVethPair(target, veth);
  });

  async function status(): Promise<ChainStatus> {
    const r = await cli('status', '--name', NAME, '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ChainStatus;
  }

  /** Id of the map `name` used by program `progId`. */
  async function mapOf(progId: number, name: string): Promise<number> {
    for (const id of (await bpftool.progShow(target, { id: progId })).mapIds) {
      if ((await bpftool.mapShow(target, { id })).name === name) return id;
    }
    throw new Error(`program ${progId} has no map ${name}`);
  }

  async function counts(s: ChainStatus): Promise<{ metrics: number; logger: number; tcp: number; icmp: number }> {
    const m = metricsFromDump(await bpftool.mapDump(target, { id: await mapOf(s.state.programs[1]!.id, 'metrics_stats') }));
    let logger = 0;
    for (const e of await bpftool.mapDump(target, { id: await mapOf(s.state.programs[2]!.id, 'log_state') })) {
      for (const v of e.values ?? []) logger += Number(readU64le(v.value));
    }
    return { metrics: totalPackets(m), logger, tcp: m.ipv4_tcp.packets, icmp: m.ipv4_icmp.packets };
  }

  /**
   * counts() when no packet arrived while it read the two maps (IPv6 ND/MLD keeps trickling in):
   * two identical snapshots in a row. A packet landing between the metrics read and the logger
   * read would otherwise look like a packet one of them missed.
   */
  async function stableCounts(s: ChainStatus): Promise<Awaited<ReturnType<typeof counts>>> {
    let prev = await counts(s);
    for (let i = 0; i < 20; i++) {
      const next = await counts(s);
      if (JSON.stringify(next) === JSON.stringify(prev)) return next;
      prev = next;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('counters never settled: traffic did not stop');
  }

  it('attach, status, traffic through all three in order, replace under traffic, detach', async () => {
    const v = veth!;
    const a = await cli('attach', '--dev', v.devB, '--netns', v.nsB, '--name', NAME, obj('filter'), obj('metrics'), obj('logger'));
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/kernel agrees with the state file/);

    const s = await status();
    expect(s.problems).toEqual([]);
    expect(s.state.programs.map((p) => p.program)).toEqual(['xdp_filter', 'xdp_metrics', 'xdp_logger']);
    expect(s.state.programs.map((p) => s.slots[p.index])).toEqual(s.state.programs.map((p) => p.id));
    expect(s.attachedId).toBe(s.state.programs[0]!.id);
    expect(s.state.attachment).toMatchObject({ ifname: v.devB, netns: v.nsB });
    expect(['subprog', 'inline']).toContain(s.state.mode);
    expect((await bpftool.xdpAttached(target, v.devB, v.nsB))[0]?.mode).toBe('driver');

    // Configure the trio through the maps the chain's programs own: drop TCP port 4444 in the
    // filter, log every packet in the logger (log_state then counts every packet it sees).
    await bpftool.mapUpdate(target, { id: await mapOf(s.state.programs[0]!.id, 'deny_ports') }, u16le(4444), [1]);
    await bpftool.mapUpdate(target, { id: await mapOf(s.state.programs[2]!.id, 'log_config') }, u32le(0), u32le(1));

    // Baseline after configuring: packets seen before (IPv6 DAD/ND on link-up) met a logger that was off.
    const c0 = await stableCounts(s);
    const inA = ['nsenter', `--net=/run/netns/${v.nsA}`];
    const p1 = await execa(inA[0]!, [...inA.slice(1), 'ping', '-c', '20', '-i', '0.01', '-W', '1', v.ipB], { reject: false });
    expect(p1.stdout).toMatch(/20 packets transmitted, 20 received/);
    // SYNs to the denied port: the filter drops them, so metrics and logger never see them.
    await execa(inA[0]!, [...inA.slice(1), 'bash', '-c', `for i in 1 2 3; do timeout 0.3 bash -c 'echo > /dev/tcp/${v.ipB}/4444' 2>/dev/null; done; true`], { reject: false });
    const c1 = await stableCounts(s);
    expect(c1.icmp - c0.icmp).toBe(20);
    expect(c1.tcp - c0.tcp).toBe(0);
    // Every packet metrics counted went on to the logger, and nothing reached the logger otherwise.
    expect(c1.logger - c0.logger).toBe(c1.metrics - c0.metrics);

    // Replace metrics (slot 1) under traffic; the new program takes over metrics_stats.
    const statsMap = await mapOf(s.state.programs[1]!.id, 'metrics_stats');
    ping = execa(inA[0]!, [...inA.slice(1), 'ping', '-q', '-i', '0.002', '-w', '600', v.ipB], { reject: false });
    const icmp = async () => (await counts(s)).icmp;
    await counterMoves('ICMP packets counted by metrics', icmp, 5);
    const rep = await cli('replace', '--name', NAME, '--index', '1', obj('metrics'));
    expect(rep.exitCode, rep.stderr).toBe(0);
    await counterMoves('ICMP packets counted by the new metrics', async () => (await counts(await status())).icmp, 5);
    ping.kill('SIGINT');
    const pr = await ping;
    ping = null;
    const st = /(\d+) packets transmitted, (\d+) received/.exec(String(pr.stdout));
    expect(st, String(pr.stdout)).not.toBeNull();
    expect(Number(st![1]) - Number(st![2])).toBeLessThanOrEqual(1);
    const s2 = await status();
    expect(s2.problems).toEqual([]);
    expect(s2.state.programs[1]!.id).not.toBe(s.state.programs[1]!.id);
    expect(s2.state.programs[0]!.id).toBe(s.state.programs[0]!.id);
    expect(s2.state.programs[2]!.id).toBe(s.state.programs[2]!.id);
    expect(await mapOf(s2.state.programs[1]!.id, 'metrics_stats')).toBe(statsMap);
    const c2 = await stableCounts(s2);
    expect(c2.icmp - c1.icmp).toBeGreaterThanOrEqual(Number(st![1]) - 1);
    // Packets that crossed the swap: each ran metrics (old or new, same map) and then the logger.
    expect(c2.logger - c1.logger).toBe(c2.metrics - c1.metrics);

    // Human-readable status and errors.
    const text = await cli('status', '--name', NAME);
    expect(text.stdout).toMatch(/xdp_filter[\s\S]*xdp_metrics[\s\S]*xdp_logger/);
    const bad = await cli('replace', '--name', NAME, '--index', '0', obj('metrics'));
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(new RegExp(`error \\[CHAIN\\]: chain ${NAME}: program 0 is attached to the interface directly`));
    const none = await cli('status', '--name', 'xt6nosuch');
    expect(none.exitCode).not.toBe(0);
    expect(none.stderr).toMatch(/no chain at/);

    const d = await cli('detach', '--name', NAME);
    expect(d.exitCode, d.stderr).toBe(0);
    expect(await bpftool.xdpAttached(target, v.devB, v.nsB)).toEqual([]);
    expect((await target.run(['test', '-e', pinDirForName(NAME)], { allowFailure: true })).exitCode).not.toBe(0);
    expect((await target.run(['test', '-e', statePath(pinDirForName(NAME))], { allowFailure: true })).exitCode).not.toBe(0);
  }, 300_000);
});
