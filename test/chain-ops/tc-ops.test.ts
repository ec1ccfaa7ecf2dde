/**
 * Chain operations on the TC hook, on the host kernel, through the real CLI where a user would
 * type them: the TC trio attached as a chain on clsact ingress of a veth (the hook read from the
 * objects' sections), status naming the hook, replace of metrics under live traffic with every
 * packet metrics counted reaching the logger, recreate swapping the head filter in place with no
 * ping lost, detach leaving no filter, qdisc, pin or state; a --hook contradicting the objects and
 * a mixed chain refused; slot 0 replaced behind the TC trampoline; a state file written before chains knew TC read as an XDP chain.
 * Host resources: namespaces tp-<tag>-a|b, interfaces tp<tag>a|b, chains tp<tag>*.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { counterMoves } from '../support/wait.ts';
import { RUN_TAG } from '../support/names.ts';
import { HostTarget, shellQuote } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { readU64le, u32le } from '../../lab/bytes.ts';
import { hasClsact, ingressFilters } from '../../lab/tc/clsact.ts';
import { chainStatus, type ChainStatus } from '../../lab/chain/ops/status.ts';
import { chainRecreate } from '../../lab/chain/ops/recreate.ts';
import { chainReplace } from '../../lab/chain/ops/replace.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { CHAINS_PIN_ROOT, pinDirForName, readState, statePath, writeState } from '../../lab/chain/state.ts';
import { formatStatus } from '../../lab/commands/chain.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../../lab/programs/build.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { TC_OBJECTS, metricsFromDump, totalPackets } from '../../lab/programs/trio.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const NAME = `tp${RUN_TAG}tc`;
const NS_A = `tp-${RUN_TAG}-a`;
const NS_B = `tp-${RUN_TAG}-b`;
const DEV_A = `tp${RUN_TAG}a`;
const DEV_B = `tp${RUN_TAG}b`;
const IP_A = '10.207.1.1';
const IP_B = '10.207.1.2';

const tsx = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
const cli = (...args: string[]) => execa(tsx, [join(REPO_ROOT, 'lab', 'cli.ts'), 'chain', ...args], { reject: false, cwd: REPO_ROOT, env: { NO_COLOR: '1' } });
const obj = (n: string): string => join(DEFAULT_OUT_DIR, `${n}.o`);
const TRIO = [TC_OBJECTS.standalone.filter, TC_OBJECTS.standalone.metrics, TC_OBJECTS.standalone.logger].map(obj);

describe.skipIf(need.skip)('chain operations on TC (host kernel, clsact ingress of a veth)', () => {
  let target: HostTarget;
  let ping: ResultPromise | null = null;
  const place = () => ({ target, ifname: DEV_B, netns: NS_B });
  const inA = ['nsenter', `--net=/run/netns/${NS_A}`];

  async function destroy(): Promise<void> {
    for (const n of [NAME, `${NAME}x`, `${NAME}m`]) await cli('detach', '--name', n);
    await target.run(['ip', 'netns', 'del', NS_A], { allowFailure: true });
    await target.run(['ip', 'netns', 'del', NS_B], { allowFailure: true });
  }

  beforeAll(async () => {
    target = await HostTarget.create(`/tmp/tp-work-${RUN_TAG}`);
    await buildPrograms();
    await destroy();
    const a = `nsenter --net=/run/netns/${NS_A}`;
    const b = `nsenter --net=/run/netns/${NS_B}`;
    await target.sh(
      [
        `ip netns add ${NS_A}`,
        `ip netns add ${NS_B}`,
        `ip link add ${DEV_A} netns ${NS_A} type veth peer name ${DEV_B} netns ${NS_B}`,
        `${a} ip addr add ${IP_A}/24 dev ${DEV_A}`,
        `${b} ip addr add ${IP_B}/24 dev ${DEV_B}`,
        `${a} ip link set ${DEV_A} up`,
        `${b} ip link set ${DEV_B} up`,
      ].join(' && '),
    );
  }, 120_000);

  afterAll(async () => {
    ping?.kill('SIGKILL');
    await destroy();
    const left = await target.sh(`ls -1 ${shellQuote(CHAINS_PIN_ROOT)} 2>/dev/null | grep '^tp${RUN_TAG}'; ip netns list | grep '^tp-${RUN_TAG}'; true`, { allowFailure: true });
    expect(left.stdout.trim()).toBe('');
  }, 120_000);

  /** Through the CLI (a separate process finds the chain from its pins and state alone). */
  async function cliStatus(name = NAME): Promise<ChainStatus> {
    const r = await cli('status', '--name', name, '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ChainStatus;
  }

  const status = (): Promise<ChainStatus> => chainStatus(target, pinDirForName(NAME));

  async function mapOf(progId: number, name: string): Promise<number> {
    for (const id of (await bpftool.progShow(target, { id: progId })).mapIds) {
      if ((await bpftool.mapShow(target, { id })).name === name) return id;
    }
    throw new Error(`program ${progId} has no map ${name}`);
  }

  /** Packets metrics counted and the logger saw (log_state), read twice in a row alike (ARP may trickle in). */
  async function settled(s: ChainStatus): Promise<{ metrics: number; logger: number; icmp: number }> {
    const read = async () => {
      const m = metricsFromDump(await bpftool.mapDump(target, { id: await mapOf(s.state.programs[1]!.id, 'metrics_stats') }));
      let logger = 0;
      for (const e of await bpftool.mapDump(target, { id: await mapOf(s.state.programs[2]!.id, 'log_state') })) for (const v of e.values ?? []) logger += Number(readU64le(v.value));
      return { metrics: totalPackets(m), logger, icmp: m.ipv4_icmp.packets };
    };
    let prev = await read();
    for (let i = 0; i < 20; i++) {
      const next = await read();
      if (JSON.stringify(next) === JSON.stringify(prev)) return next;
      prev = next;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('counters never settled: traffic did not stop');
  }

  /** A fast ping from A to B while `work` runs; returns how many were sent and answered. */
  async function underPing(s: () => Promise<ChainStatus>, work: () => Promise<void>): Promise<{ sent: number; received: number }> {
    ping = execa(inA[0]!, [...inA.slice(1), 'ping', '-q', '-i', '0.002', '-w', '600', IP_B], { reject: false });
    const icmp = async () => (await settledOnce(await s())).icmp;
    await counterMoves('ICMP packets counted by metrics', icmp, 5);
    await work();
    await counterMoves('ICMP packets counted by metrics after the change', icmp, 5);
    ping.kill('SIGINT');
    const out = String((await ping).stdout);
    ping = null;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    if (!m) throw new Error(`no ping statistics: ${out}`);
    return { sent: Number(m[1]), received: Number(m[2]) };
  }

  async function settledOnce(s: ChainStatus): Promise<{ icmp: number }> {
    const m = metricsFromDump(await bpftool.mapDump(target, { id: await mapOf(s.state.programs[1]!.id, 'metrics_stats') }));
    return { icmp: m.ipv4_icmp.packets };
  }

  it('attach takes the hook from the sections: the head is a direct-action filter at prio 1 on a clsact the chain added; status says tc', async () => {
    const a = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', NAME, ...TRIO);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^ {2}hook: tc \(TC programs, type sched_cls\)$/m);
    expect(a.stdout).toMatch(/attached: TC ingress \(clsact, cls_bpf direct-action, prio 1\) on .*\(tc-filter-add; clsact added by the chain\)/);
    expect(a.stdout).toMatch(/kernel agrees with the state file/);
    const s = await cliStatus();
    expect(s.problems).toEqual([]);
    expect(s.state.hook).toBe('sched_cls');
    expect(s.state.programs.map((p) => p.program)).toEqual(['tc_filter', 'tc_metrics', 'tc_logger']);
    expect(s.state.programs.map((p) => [p.success, p.redirect])).toEqual([0, 1, 2].map(() => [[0, -1], [7]]));
    expect(s.state.attachment).toMatchObject({ ifname: DEV_B, netns: NS_B, method: 'tc-filter-add', tc: { prio: 1, createdClsact: true } });
    for (const p of s.state.programs) expect((await bpftool.progShow(target, { id: p.id })).type).toBe('sched_cls');
    expect((await ingressFilters(place())).map((f) => [f.prio, f.id, f.directAction])).toEqual([[1, s.state.programs[0]!.id, true]]);
    expect(await bpftool.xdpAttached(target, DEV_B, NS_B)).toEqual([]);
    const again = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', `${NAME}x`, ...TRIO);
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toMatch(/already has program \d+ on clsact ingress at priority 1/);
  }, 120_000);

  it('replace of metrics under a fast ping: no reply lost, every packet metrics counted reached the logger (no packet skipped the stage)', async () => {
    const s = await status();
    await bpftool.mapUpdate(target, { id: await mapOf(s.state.programs[2]!.id, 'log_config') }, u32le(0), u32le(1));
    const statsMap = await mapOf(s.state.programs[1]!.id, 'metrics_stats');
    const c0 = await settled(s);
    const ids: number[] = [];
    const r = await underPing(status, async () => {
      const rep = await cli('replace', '--name', NAME, '--index', '1', obj(TC_OBJECTS.standalone.metrics));
      expect(rep.exitCode, rep.stderr).toBe(0);
      // A few more in-process, each one PROG_ARRAY update while packets cross the slot.
      for (let i = 0; i < 10; i++) ids.push((await chainReplace(target, pinDirForName(NAME), 1, { path: obj(TC_OBJECTS.standalone.metrics), keepMaps: true })).programs[1]!.id);
    });
    expect(r.received).toBe(r.sent);
    const s2 = await status();
    expect(s2.problems).toEqual([]);
    expect(s2.state.programs[1]!.id).toBe(ids.at(-1));
    expect(new Set([s.state.programs[1]!.id, ...ids]).size).toBe(11);
    expect(s2.state.programs[0]!.id).toBe(s.state.programs[0]!.id);
    expect(await mapOf(s2.state.programs[1]!.id, 'metrics_stats')).toBe(statsMap);
    const c1 = await settled(s2);
    expect(c1.icmp - c0.icmp).toBeGreaterThanOrEqual(r.sent);
    expect(c1.logger - c0.logger).toBe(c1.metrics - c0.metrics);
  }, 180_000);

  it('recreate under a fast ping: the head filter swapped in place (tc filter replace, same prio and handle), no reply lost', async () => {
    const s = await status();
    const r = await underPing(status, async () => {
      await chainRecreate(target, pinDirForName(NAME), TRIO.map((path) => ({ path })));
    });
    expect(r.received).toBe(r.sent);
    const s2 = await status();
    expect(s2.problems).toEqual([]);
    expect(s2.state.generation).toBe(s.state.generation + 1);
    expect(s2.state.attachment).toMatchObject({ method: 'tc-filter-replace', tc: { prio: 1, createdClsact: true } });
    const filters = await ingressFilters(place());
    expect(filters.map((f) => [f.prio, f.id])).toEqual([[1, s2.state.programs[0]!.id]]);
    expect(s2.state.programs.every((p, i) => p.id !== s.state.programs[i]!.id)).toBe(true);
    expect((await target.run(['test', '-e', s.state.genDir], { allowFailure: true })).exitCode).not.toBe(0);
    // The CLI's recreate keeps the hook: XDP objects are refused, naming both.
    const bad = await cli('recreate', '--name', NAME, obj('filter'), obj('metrics'), obj('logger'));
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/chain .* is a TC \(sched_cls\) chain, but the objects' sections make filter\.o:xdp_filter \(section xdp\).* an XDP \(xdp\) chain/);
  }, 180_000);

  it('detach removes the filter, the clsact qdisc the chain added, every pin and the state', async () => {
    const dir = pinDirForName(NAME);
    const d = await cli('detach', '--name', NAME);
    expect(d.exitCode, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/detached and removed/);
    expect(await ingressFilters(place())).toEqual([]);
    expect(await hasClsact(place())).toBe(false);
    expect((await target.run(['test', '-e', dir], { allowFailure: true })).exitCode).not.toBe(0);
    expect((await target.run(['test', '-e', statePath(dir)], { allowFailure: true })).exitCode).not.toBe(0);
  }, 60_000);

  it('a clsact qdisc that was there before stays after detach', async () => {
    await target.run(['nsenter', `--net=/run/netns/${NS_B}`, 'tc', 'qdisc', 'add', 'dev', DEV_B, 'clsact']);
    const a = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', NAME, '--prio', '7', ...TRIO);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/prio 7\) on .*clsact was there before/);
    expect((await ingressFilters(place())).map((f) => f.prio)).toEqual([7]);
    expect((await chainDetach(target, pinDirForName(NAME))).detached).toBe(true);
    expect(await ingressFilters(place())).toEqual([]);
    expect(await hasClsact(place())).toBe(true);
    await target.run(['nsenter', `--net=/run/netns/${NS_B}`, 'tc', 'qdisc', 'del', 'dev', DEV_B, 'clsact']);
  }, 60_000);

  it('with the TC trampoline (a sched_cls head that only tail-calls slot 0): slot 0 replaced under a fast ping, the head filter never changes, no reply lost', async () => {
    const dir = pinDirForName(NAME);
    const st = await chainInit(target, { pinDir: dir, name: NAME, programs: TRIO.map((path) => ({ path })), trampoline: true, attach: { ifname: DEV_B, netns: NS_B } });
    expect(st.trampoline).not.toBeNull();
    expect((await bpftool.progShow(target, { id: st.trampoline!.id })).type).toBe('sched_cls');
    expect((await ingressFilters(place())).map((f) => f.id)).toEqual([st.trampoline!.id]);
    const r = await underPing(status, async () => {
      await chainReplace(target, dir, 0, { path: TRIO[0]! });
    });
    expect(r.received).toBe(r.sent);
    const s2 = await status();
    expect(s2.problems).toEqual([]);
    expect(s2.state.programs[0]!.id).not.toBe(st.programs[0]!.id);
    expect((await ingressFilters(place())).map((f) => f.id)).toEqual([st.trampoline!.id]);
    await chainDetach(target, dir);
    expect(await hasClsact(place())).toBe(false);
  }, 120_000);

  it('--hook contradicting the objects, a mixed chain and --prio on XDP are refused before anything is loaded', async () => {
    const x = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', `${NAME}x`, '--hook', 'xdp', ...TRIO);
    expect(x.exitCode).not.toBe(0);
    expect(x.stderr).toMatch(/error \[BAD_INPUT\]: --hook xdp asks for an XDP \(xdp\) chain, but the objects' sections make tc_filter\.o:tc_filter \(section tc\), tc_metrics\.o:tc_metrics \(section tc\), tc_logger\.o:tc_logger \(section tc\) a TC \(sched_cls\) chain/);
    const t = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', `${NAME}x`, '--hook', 'tc', obj('filter'));
    expect(t.exitCode).not.toBe(0);
    expect(t.stderr).toMatch(/--hook tc asks for a TC \(sched_cls\) chain, but .*filter\.o:xdp_filter \(section xdp\) an XDP \(xdp\) chain/);
    const m = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', `${NAME}m`, obj('filter'), TRIO[1]!);
    expect(m.exitCode).not.toBe(0);
    expect(m.stderr).toMatch(/error \[CHAIN\]: a chain cannot mix hooks: XDP \(xdp\): filter\.o:xdp_filter .*; TC \(sched_cls\): tc_metrics\.o:tc_metrics/);
    const p = await cli('attach', '--dev', DEV_B, '--netns', NS_B, '--name', `${NAME}x`, '--prio', '3', obj('filter'));
    expect(p.exitCode).not.toBe(0);
    expect(p.stderr).toMatch(/--prio 3: a priority is a TC filter's, and this is an XDP chain/);
    for (const n of [`${NAME}x`, `${NAME}m`]) expect((await target.run(['test', '-e', pinDirForName(n)], { allowFailure: true })).exitCode).not.toBe(0);
    expect(await ingressFilters(place())).toEqual([]);
    expect(await bpftool.xdpAttached(target, DEV_B, NS_B)).toEqual([]);
  }, 60_000);

  it('a state file written before chains knew TC (no hook, no tc attachment) reads as an XDP chain', async () => {
    const dir = pinDirForName(`${NAME}old`);
    const old = {
      version: 1, name: `${NAME}old`, pinDir: dir, genDir: `${dir}/gen-0`, generation: 0, target: 'host', kernelRelease: target.kernelRelease,
      mode: 'inline', modeReason: 'inline: test', maxPrograms: 34, trampoline: null,
      maps: { chain: { id: 1, pin: `${dir}/gen-0/maps/xcl_chain` }, verdict: { id: 2, pin: `${dir}/gen-0/maps/xcl_verdict` } },
      programs: [{ index: 0, source: '/x/filter.o', program: 'xdp_filter', section: 'xdp', success: [2], redirect: [3, 4], id: 3, tag: 'ab', pin: `${dir}/gen-0/progs/0` }],
      attachment: { ifname: 'eth9', netns: null, progId: 3, method: 'netlink-swap' },
      objectDir: '/tmp/none', notes: [], createdAt: '2026-11-01T00:00:00Z', updatedAt: '2026-11-01T00:00:00Z',
    };
    const path = statePath(dir);
    try {
      await target.sh(`mkdir -p ${shellQuote(path.slice(0, path.lastIndexOf('/')))} && cat > ${shellQuote(path)}`, { input: JSON.stringify(old) });
      const st = await readState(target, dir);
      expect(st?.hook).toBe('xdp');
      expect(st?.attachment?.tc).toBeUndefined();
      expect(formatStatus({ state: st!, attachedId: null, slots: {}, problems: [] })).toMatch(/hook: xdp \(XDP programs, type xdp\)[\s\S]*attached: native XDP on eth9/);
      // Written back, the hook is recorded.
      await writeState(target, st!);
      expect(JSON.parse((await target.run(['cat', path])).stdout).hook).toBe('xdp');
    } finally {
      await chainDetach(target, dir);
    }
    expect((await target.run(['test', '-e', path], { allowFailure: true })).exitCode).not.toBe(0);
  }, 30_000);
});
