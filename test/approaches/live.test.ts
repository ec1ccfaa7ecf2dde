/**
 * Live traffic through the test environment with each approach attached in native mode on the
 * receiving veth: ping6 (neighbour discovery must survive the filter) and a 2 s iperf3. The
 * counters are checked against what was sent: exactly for ping (with the logger at N=1 as a
 * second witness of every packet), and with bounds TCP cannot escape for iperf3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { captureEvents, xdpAttached } from '../../lab/bpftool/index.ts';
import { applyTrioConfig, MAP_NAMES, parseLogRecord, readMetrics, type MetricsSnapshot } from '../../lab/programs/trio.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import type { Approach, ApproachContext } from '../../lab/approaches/approach.ts';
import { none } from '../../lab/approaches/none.ts';
import { fused } from '../../lab/approaches/fused.ts';
import { manual } from '../../lab/approaches/manual.ts';
import { isLabError } from '../../lab/errors.ts';
import { builtObjects, hostTarget, leftovers, removeScratch } from '../programs/support.ts';
import { RUN_TAG } from '../support/names.ts';
import { NS_FRAME, PING_COUNT, PING_FRAME, PING_SIZE, delta, fromRecords } from './traffic.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool', 'iperf3');

export const measured: Record<string, unknown> = {};

describe.skipIf(need.skip)('approaches with live traffic (host kernel, veth in namespaces)', () => {
  let target: HostTarget;
  let env: TestEnv;
  let objectDir: string;
  const ctxOf = (a: Approach): ApproachContext => ({ target, ifname: env.b.ifname, netns: env.b.netns, pinDir: `/sys/fs/bpf/xt2live${RUN_TAG}_${a.name}`, objectDir });

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    env = await createTestEnv(target, { name: `xt2live${RUN_TAG}` });
  });

  afterAll(async () => {
    await removeScratch();
    for (const a of [none, fused, manual]) await a.detach(ctxOf(a)).catch(() => undefined);
    await env?.[Symbol.asyncDispose]();
    console.info('[live traffic]', JSON.stringify(measured));
    expect(await leftovers(target, `xt2live${RUN_TAG}`)).toEqual([]);
  });

  async function flushNeighbours(): Promise<void> {
    for (const ep of [env.a, env.b]) await env.exec(ep.netns, ['ip', '-6', 'neigh', 'flush', 'dev', ep.ifname]);
  }

  it('none: nothing attached; ping6 and iperf3 go through', async () => {
    const ctx = ctxOf(none);
    await none.load(ctx);
    await none.attach(ctx);
    const d = await none.describe(ctx);
    expect(d).toMatchObject({ attached: false, xdpMode: 'none', programs: [], hop: 'none' });
    expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
    await flushNeighbours();
    expect(await env.ping6(PING_COUNT, { size: PING_SIZE })).toEqual({ transmitted: PING_COUNT, received: PING_COUNT });
    const ip = await env.iperf3({ seconds: 2 });
    expect(ip.bytesReceived).toBeGreaterThan(0);
    measured.none = { gbps: +(ip.bitsPerSecond / 1e9).toFixed(3), retransmits: ip.retransmits };
    await none.detach(ctx);
  });

  for (const approach of [fused, manual]) {
    describe(approach.name, () => {
      beforeAll(async () => {
        const ctx = ctxOf(approach);
        await approach.load(ctx);
        await approach.attach(ctx);
      });
      afterAll(async () => {
        const ctx = ctxOf(approach);
        await approach.detach(ctx);
        expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
        expect((await target.run(['test', '-e', ctx.pinDir], { allowFailure: true })).exitCode).not.toBe(0);
      });

      it('is attached in native mode with its programs in chain order', async () => {
        const d = await approach.describe(ctxOf(approach));
        expect(d.attached).toBe(true);
        expect(d.xdpMode).toBe('native');
        if (approach.name === 'manual') {
          expect(d.programs.map((p) => p.name)).toEqual(['xdp_filter', 'xdp_metrics', 'xdp_logger']);
          expect(d.hop).toBe('tail-call-constant');
        } else {
          expect(d.programs.map((p) => p.name)).toEqual(['xdp_fused']);
          expect(d.hop).toBe('inline');
        }
        expect(d.maps.map((m) => m.name)).toEqual(expect.arrayContaining([MAP_NAMES.denyPorts, MAP_NAMES.metrics, MAP_NAMES.logEvents]));
      });

      it('ping6: all replies come back (ND passes the filter); every packet is counted and logged exactly once', async () => {
        const ctx = ctxOf(approach);
        const maps = `${ctx.pinDir}/maps`;
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
          const records = cap.records.map((r) => parseLogRecord(r.data));
          const seen = delta(after, before);
          expect(cap.lost).toBe(0);
          // Exactly PING_COUNT echo requests of the size sent reached the receiver's XDP.
          expect(records.filter((r) => r.klass === 'icmpv6' && r.len === PING_FRAME).length).toBe(PING_COUNT);
          // The sender's neighbour solicitation (flushed caches) went through the filter too.
          expect(records.some((r) => r.klass === 'icmpv6' && r.len === NS_FRAME)).toBe(true);
          // metrics and logger saw the same packets: counters equal what the records add up to.
          expect(seen).toEqual(fromRecords(records));
          measured[`${approach.name}_ping`] = { icmpv6: seen.icmpv6, records: records.length };
          break;
        }
      });

      it('TCP to a denied port is dropped (the connection never opens)', async () => {
        const ctx = ctxOf(approach);
        const maps = `${ctx.pinDir}/maps`;
        await applyTrioConfig(target, maps, { denyPorts: [5299], logSampleN: 0 });
        const before = await readMetrics(target, maps);
        const err = await env.iperf3({ seconds: 1, port: 5299, clientArgs: ['--connect-timeout', '1500'] }).catch((e: unknown) => e);
        expect(isLabError(err, 'BENCH')).toBe(true);
        expect((err as Error).message).toMatch(/unable to connect|timed out|Connection timed out/i);
        // Dropped SYNs never reached metrics (it runs after the filter).
        expect(delta(await readMetrics(target, maps), before).ipv6_tcp.packets).toBe(0);
      });

      it('iperf3 2 s: the TCP counters cover every byte the server received', async () => {
        const ctx = ctxOf(approach);
        const maps = `${ctx.pinDir}/maps`;
        await applyTrioConfig(target, maps, { denyPorts: [23], logSampleN: 0 });
        const before = await readMetrics(target, maps);
        const ip = await env.iperf3({ seconds: 2 });
        const seen = delta(await readMetrics(target, maps), before);
        expect(ip.bytesReceived).toBeGreaterThan(0);
        // Every received payload byte arrived in an IPv6/TCP frame at this interface, each frame
        // carrying at least Ethernet + IPv6 + TCP headers (74 bytes) on top of its payload.
        expect(seen.ipv6_tcp.bytes).toBeGreaterThanOrEqual(ip.bytesReceived + 74 * seen.ipv6_tcp.packets);
        // The frames fit the 1500-byte MTU (XDP on veth turns the peer's GSO off): at most 1440 payload bytes each.
        expect(seen.ipv6_tcp.packets * 1440).toBeGreaterThanOrEqual(ip.bytesReceived);
        expect(seen.ipv4_tcp.packets).toBe(0);
        measured[`${approach.name}_iperf3`] = {
          gbps: +(ip.bitsPerSecond / 1e9).toFixed(3),
          retransmits: ip.retransmits,
          bytesReceived: ip.bytesReceived,
          tcpPackets: seen.ipv6_tcp.packets,
          tcpBytes: seen.ipv6_tcp.bytes,
        };
      });
    });
  }
});
