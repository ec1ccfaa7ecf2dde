/**
 * Live traffic through the test environment with each TC approach on clsact ingress of the
 * receiving veth: ping6 (neighbour discovery must survive the filter), TCP to a denied port, a
 * 2 s iperf3, and a stage replaced while attached. Counters are checked against what was sent:
 * exactly for ping (the logger at N=1 is a second witness of every packet), with bounds TCP
 * cannot escape for iperf3. TC sees skbs, which over veth may be GSO aggregates: the bytes bound
 * holds per skb, the per-frame MTU bound of the XDP test does not apply. tcx runs the same three
 * continuing objects as tc-filters, attached with tcx (no qdisc); no test runs a tcx chain through
 * BPF_PROG_TEST_RUN, which runs one program: the kernel walks tcx's programs outside any of them,
 * so its stages' verdicts are tested one by one (test/programs/tc-trio.test.ts) and the chain here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFeature, requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { captureEvents, tcxIngress, xdpAttached } from '../../lab/bpftool/index.ts';
import { applyTrioConfig, MAP_NAMES, parseLogRecord, readMetrics, TC_OBJECTS, type LogRecord, type MetricsSnapshot } from '../../lab/programs/trio.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import type { Approach, ApproachContext } from '../../lab/approaches/approach.ts';
import { tcNone } from '../../lab/approaches/tc-none.ts';
import { tcFilters, tcFused, tcManual } from '../../lab/approaches/tc-chains.ts';
import { tcx } from '../../lab/approaches/tcx.ts';
import { tcPatched } from '../../lab/approaches/tc-patched.ts';
import { hasClsact, ingressFilters } from '../../lab/tc/clsact.ts';
import { getApproach } from '../../lab/approaches/index.ts';
import { readState } from '../../lab/chain/state.ts';
import { STAGES } from '../../lab/programs/trio.ts';
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_UNSPEC } from '../../lab/bpf/uapi.ts';
import { resolveSettings } from '../../lab/bench/plan.ts';
import { isLabError } from '../../lab/errors.ts';
import { builtObjects, hostTarget, leftovers, removeScratch } from '../programs/support.ts';
import { RUN_TAG } from '../support/names.ts';
import { NS_FRAME, PING_COUNT, PING_FRAME, PING_SIZE, delta, fromRecords } from './traffic.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool', 'iperf3');
const PREFIX = `xt2tclive${RUN_TAG}`;

export const measured: Record<string, unknown> = {};
const tcxSupport = need.skip ? null : await tcx.supports(await hostTarget());
const haveTcx = need.skip ? need : checkFeature('tcx', tcxSupport?.supported ? null : `tcx on the host: ${tcxSupport && !tcxSupport.supported ? tcxSupport.reason : '?'}`);
const CHAINS = haveTcx.skip ? [tcFused, tcManual, tcPatched, tcFilters] : [tcFused, tcManual, tcPatched, tcFilters, tcx];

describe('TC approaches: registered under their schema names, measured by the bench', () => {
  it('the registry returns each one; the matrix settings take them', () => {
    for (const a of [tcNone, tcFused, tcManual, tcPatched, tcFilters, tcx]) expect(getApproach(a.name)).toBe(a);
    const s = resolveSettings({ kernels: ['host'], approaches: ['tc-fused'], runs: 1, durationS: 1, quick: true });
    expect(s.approaches).toEqual(['tc-fused']);
  });
});

describe.skipIf(need.skip)('TC approaches with live traffic (host kernel, clsact ingress of the receiving veth)', () => {
  let target: HostTarget;
  let env: TestEnv;
  let objectDir: string;
  const ctxOf = (a: Approach): ApproachContext => ({ target, ifname: env.b.ifname, netns: env.b.netns, pinDir: `/sys/fs/bpf/${PREFIX}_${a.name.replace('-', '_')}`, objectDir });

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    env = await createTestEnv(target, { name: PREFIX });
  });

  afterAll(async () => {
    await removeScratch();
    for (const a of [tcNone, ...CHAINS]) await a.detach(ctxOf(a)).catch(() => undefined);
    await env?.[Symbol.asyncDispose]();
    console.info('[tc live traffic]', JSON.stringify(measured));
    expect(await leftovers(target, PREFIX)).toEqual([]);
  });

  async function flushNeighbours(): Promise<void> {
    for (const ep of [env.a, env.b]) await env.exec(ep.netns, ['ip', '-6', 'neigh', 'flush', 'dev', ep.ifname]);
  }

  /** ping6 with the logger at N=1; returns what metrics counted and what the logger recorded. */
  async function countedPing(maps: string): Promise<{ seen: MetricsSnapshot; records: LogRecord[] }> {
    await applyTrioConfig(target, maps, { denyPorts: [23], logSampleN: 1 });
    await flushNeighbours();
    // Packets may keep arriving (MLD, ND) after the ping: a run counts only when the counters
    // did not move between the end of the ping and the end of the capture.
    for (let attempt = 1; ; attempt++) {
      const before = await readMetrics(target, maps);
      let during: MetricsSnapshot | undefined;
      const cap = await captureEvents(target, { pinned: `${maps}/${MAP_NAMES.logEvents}` }, async () => {
        const p = await env.ping6(PING_COUNT, { size: PING_SIZE });
        during = await readMetrics(target, maps);
        return p;
      });
      const after = await readMetrics(target, maps);
      expect(cap.result).toEqual({ transmitted: PING_COUNT, received: PING_COUNT });
      if (JSON.stringify(after) !== JSON.stringify(during) && attempt < 3) {
        await flushNeighbours();
        continue;
      }
      expect(cap.lost).toBe(0);
      return { seen: delta(after, before), records: cap.records.map((r) => parseLogRecord(r.data)) };
    }
  }

  it('tc-none: a clsact qdisc with no filter, no XDP; ping6 and iperf3 go through; detach removes the qdisc', async () => {
    const ctx = ctxOf(tcNone);
    await tcNone.load(ctx);
    await tcNone.attach(ctx);
    const d = await tcNone.describe(ctx);
    expect(d).toMatchObject({ approach: 'tc-none', attached: true, xdpMode: 'none', programs: [], hop: 'none' });
    expect(await ingressFilters(ctx)).toEqual([]);
    expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
    await flushNeighbours();
    expect(await env.ping6(PING_COUNT, { size: PING_SIZE })).toEqual({ transmitted: PING_COUNT, received: PING_COUNT });
    const ip = await env.iperf3({ seconds: 2 });
    expect(ip.bytesReceived).toBeGreaterThan(0);
    measured['tc-none'] = { gbps: +(ip.bitsPerSecond / 1e9).toFixed(3), retransmits: ip.retransmits };
    await tcNone.detach(ctx);
    expect(await hasClsact(ctx)).toBe(false);
  });

  const shapes = {
    'tc-fused': { names: ['tc_fused'], prios: [1], hop: 'inline' },
    'tc-manual': { names: ['tc_filter', 'tc_metrics', 'tc_logger'], prios: [1], hop: 'tail-call-constant' },
    'tc-filters': { names: ['tc_filter', 'tc_metrics', 'tc_logger'], prios: [1, 2, 3], hop: 'tc-next' },
    'tc-patched': { names: ['tc_filter', 'tc_metrics', 'tc_logger'], prios: [1], hop: 'tail-call-constant' },
    // No clsact filter: the three are on tcx ingress, in this order.
    tcx: { names: ['tc_filter', 'tc_metrics', 'tc_logger'], prios: [], hop: 'tcx-next' },
  } as const;

  for (const approach of CHAINS) {
    const shape = shapes[approach.name as keyof typeof shapes];
    describe(approach.name, () => {
      beforeAll(async () => {
        const ctx = ctxOf(approach);
        await approach.load(ctx);
        await approach.attach(ctx);
      });
      afterAll(async () => {
        const ctx = ctxOf(approach);
        await approach.detach(ctx);
        expect(await hasClsact(ctx)).toBe(false);
        expect(await tcxIngress(target, env.b.ifname, env.b.netns)).toEqual([]);
        expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
        expect((await target.run(['test', '-e', ctx.pinDir], { allowFailure: true })).exitCode).not.toBe(0);
      });

      it(approach === tcx ? 'is on tcx ingress, its programs in chain order, no clsact filter, no XDP' : 'is on clsact ingress in direct-action mode, its programs in chain order at the expected priorities, no XDP', async () => {
        const ctx = ctxOf(approach);
        const d = await approach.describe(ctx);
        expect(d).toMatchObject({ approach: approach.name, attached: true, xdpMode: 'none', hop: shape.hop });
        expect(d.programs.map((p) => p.name)).toEqual(shape.names);
        const filters = await ingressFilters(ctx);
        expect(filters.map((f) => [f.prio, f.directAction])).toEqual(shape.prios.map((p) => [p, true]));
        expect(filters.map((f) => f.id)).toEqual(shape.prios.map((p) => d.programs[p - 1]!.id));
        expect((await tcxIngress(target, env.b.ifname, env.b.netns)).map((p) => p.id)).toEqual(approach === tcx ? d.programs.map((p) => p.id) : []);
        expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
        expect(d.maps.map((m) => m.name)).toEqual(expect.arrayContaining([MAP_NAMES.denyPorts, MAP_NAMES.metrics, MAP_NAMES.logEvents]));
      });

      it('ping6: all replies come back (ND passes the filter); every packet is counted and logged exactly once', async () => {
        const { seen, records } = await countedPing(`${ctxOf(approach).pinDir}/maps`);
        expect(records.filter((r) => r.klass === 'icmpv6' && r.len === PING_FRAME).length).toBe(PING_COUNT);
        expect(records.some((r) => r.klass === 'icmpv6' && r.len === NS_FRAME)).toBe(true);
        expect(seen).toEqual(fromRecords(records));
        measured[`${approach.name}_ping`] = { icmpv6: seen.icmpv6, records: records.length };
      });

      it('TCP to a denied port is dropped (TC_ACT_SHOT: the connection never opens, metrics never sees it)', async () => {
        const maps = `${ctxOf(approach).pinDir}/maps`;
        await applyTrioConfig(target, maps, { denyPorts: [5299], logSampleN: 0 });
        const before = await readMetrics(target, maps);
        const err = await env.iperf3({ seconds: 1, port: 5299, clientArgs: ['--connect-timeout', '1500'] }).catch((e: unknown) => e);
        expect(isLabError(err, 'BENCH')).toBe(true);
        expect((err as Error).message).toMatch(/unable to connect|timed out|Connection timed out/i);
        expect(delta(await readMetrics(target, maps), before).ipv6_tcp.packets).toBe(0);
      });

      it('iperf3 2 s: the TCP counters cover every byte the server received', async () => {
        const maps = `${ctxOf(approach).pinDir}/maps`;
        await applyTrioConfig(target, maps, { denyPorts: [23], logSampleN: 0 });
        const before = await readMetrics(target, maps);
        const ip = await env.iperf3({ seconds: 2 });
        const seen = delta(await readMetrics(target, maps), before);
        expect(ip.bytesReceived).toBeGreaterThan(0);
        // Each skb carries at least Ethernet + IPv6 + TCP headers (74 bytes) on top of its payload.
        expect(seen.ipv6_tcp.packets).toBeGreaterThan(0);
        expect(seen.ipv6_tcp.bytes).toBeGreaterThanOrEqual(ip.bytesReceived + 74 * seen.ipv6_tcp.packets);
        expect(seen.ipv4_tcp.packets).toBe(0);
        measured[`${approach.name}_iperf3`] = { gbps: +(ip.bitsPerSecond / 1e9).toFixed(3), retransmits: ip.retransmits, skbs: seen.ipv6_tcp.packets, bytes: seen.ipv6_tcp.bytes };
      });

      if (approach.name === 'tc-patched') {
        it('replace() of the filter, the head: a new chain generation, the head filter swapped in place at priority 1 (tc filter replace), traffic still counted', async () => {
          const ctx = ctxOf(approach);
          const before = await approach.describe(ctx);
          await approach.replace(ctx, 'filter', `${objectDir}/${TC_OBJECTS.standalone.filter}.o`);
          const after = await approach.describe(ctx);
          expect(after.attached).toBe(true);
          expect(after.programs.map((p) => p.name)).toEqual(shape.names);
          expect(after.programs.every((p, i) => p.id !== before.programs[i]!.id)).toBe(true);
          const filters = await ingressFilters(ctx);
          expect(filters.map((f) => [f.prio, f.id, f.directAction])).toEqual([[1, after.programs[0]!.id, true]]);
          expect(after.notes.join('\n')).toMatch(/swapped in place \(tc filter replace/);
          const { seen, records } = await countedPing(`${ctx.pinDir}/maps`);
          expect(records.filter((r) => r.klass === 'icmpv6' && r.len === PING_FRAME).length).toBe(PING_COUNT);
          expect(seen).toEqual(fromRecords(records));
        });

        it('describe(): the patch mode and the TC verdict sets are the chain\'s', async () => {
          const d = await approach.describe(ctxOf(approach));
          expect(d.notes[0]).toMatch(/^patch mode (inline|subprog): /);
          const state = await readState(target, `${ctxOf(approach).pinDir}/chain`);
          expect(state?.hook).toBe('sched_cls');
          expect(state?.programs.map((p) => [p.success, p.redirect])).toEqual(STAGES.map(() => [[TC_ACT_OK, TC_ACT_UNSPEC], [TC_ACT_REDIRECT]]));
        });
      }

      if (approach.name !== 'tc-fused') {
        it('replace(): a new metrics program in place while attached, same maps, traffic still counted', async () => {
          const ctx = ctxOf(approach);
          const before = await approach.describe(ctx);
          const object = approach.name === 'tc-manual' ? TC_OBJECTS.manual.metrics : approach.name === 'tc-patched' ? TC_OBJECTS.standalone.metrics : TC_OBJECTS.continuing.metrics;
          await approach.replace(ctx, 'metrics', `${objectDir}/${object}.o`);
          const after = await approach.describe(ctx);
          expect(after.attached).toBe(true);
          expect(after.programs.map((p) => p.name)).toEqual(shape.names);
          expect(after.programs[1]!.id).not.toBe(before.programs[1]!.id);
          expect(after.programs[0]!.id).toBe(before.programs[0]!.id);
          expect(after.maps).toEqual(before.maps);
          const { seen, records } = await countedPing(`${ctx.pinDir}/maps`);
          expect(records.filter((r) => r.klass === 'icmpv6' && r.len === PING_FRAME).length).toBe(PING_COUNT);
          expect(seen).toEqual(fromRecords(records));
        });
      } else {
        it('replace() is refused: one program, no stage to swap', async () => {
          const err = await approach.replace(ctxOf(approach), 'metrics', `${objectDir}/${TC_OBJECTS.fused}.o`).catch((e: unknown) => e);
          expect(isLabError(err, 'UNSUPPORTED')).toBe(true);
        });
      }
    });
  }
});
