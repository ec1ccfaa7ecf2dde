/**
 * Alg. 3.2 under live traffic: a flood ping crosses a veth whose XDP chain is
 * [counter 0] → [counter 1 | counter 2] → [counter 3], and slot 1 is replaced 1000 times,
 * alternating two equivalent programs with different counters. If any packet had met an empty
 * slot 1 (or run both), counts would disagree: every packet that entered the chain must have run
 * exactly one of the two replaced programs and then the tail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { requirements } from '../support/requirements.ts';
import { counterMoves } from '../support/wait.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { defaultPatcher, type Patcher } from '../../lab/chain/ops/build.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { chainReplace } from '../../lab/chain/ops/replace.ts';
import { chainStatus } from '../../lab/chain/ops/status.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { ReferencePatcher, counterObject, countsFrom, createVethPair, destroyVethPair, hostTarget, type VethPair, RUN_ID } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PIN = `/sys/fs/bpf/xt6-live-${RUN_ID}`;
const REPLACES = Number(process.env.XT6_REPLACES ?? 1000);
const PASS = 2;

describe.skipIf(need.skip)('atomic replace under live traffic', () => {
  let target: Target;
  let features: KernelFeatures;
  let veth: VethPair | null = null;
  let ping: ResultPromise | null = null;

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', skipFreplace: true });
  });

  afterAll(async () => {
    if (ping) {
      ping.kill('SIGKILL');
      await ping.catch(() => {});
    }
    if (target) {
      await chainDetach(target, `${PIN}/chain`).catch(() => {});
      await bpftool.unpin(target, PIN);
      if (veth) await destroyVethPair(target, veth);
    }
  });

  async function run(patcher: Patcher, label: string, mode: 'subprog' | 'inline', replaces: number): Promise<void> {
    // A previous case of this file may have failed half-way: start from nothing.
    await chainDetach(target, `${PIN}/chain`);
    await bpftool.unpin(target, PIN);
    veth = await createVethPair(target, 'l', 61);
    const counts = `${PIN}/counts`;
    await target.run(['mkdir', '-p', PIN]);
    await bpftool.mapCreate(target, counts, { type: 'array', keySize: 4, valueSize: 8, entries: 64, name: 'xt_counts' });
    const maps = [{ name: 'xt_counts', pinned: counts }];
    const S = [PASS];
    const R: number[] = [];
    const ref = patcher instanceof ReferencePatcher ? patcher : null;
    const obj = async (id: number, index: number): Promise<string> => (ref ? ref.prepare(id, index, S, R, PASS) : counterObject(id, PASS));
    const a = await obj(1, 1);
    const b = await obj(2, 1);
    const state = await chainInit(target, {
      pinDir: `${PIN}/chain`,
      programs: [
        { path: await obj(0, 0), success: S, redirect: R, maps },
        { path: a, success: S, redirect: R, maps },
        { path: await obj(3, 2), success: S, redirect: R, maps },
      ],
      attach: { ifname: veth.devB, netns: veth.nsB },
      mode,
      features,
      patcher,
    });
    expect(state.attachment?.progId).toBe(state.programs[0]!.id);

    // ~1000 packets/s: live traffic during every swap without starving the loader of CPU.
    ping = execa('nsenter', [`--net=/run/netns/${veth.nsA}`, 'ping', '-q', '-i', '0.001', '-w', '3600', veth.ipB], { reject: false });
    const readCounts = async () =>
      countsFrom(await bpftool.mapDump(target, { pinned: counts }).then((es) => es.map((e) => ({ key: [...e.key].map((x) => x.toString(16)), value: [...e.value!].map((x) => x.toString(16)) }))));
    const head = async (): Promise<bigint> => (await readCounts()).get(0) ?? 0n;
    let pr;
    let headAtFirstSwap = 0;
    let headAtLastSwap = 0;
    const t0 = Date.now();
    try {
      // Traffic crosses the chain before the first swap, during the swaps, and after the last.
      headAtFirstSwap = await counterMoves('packets through the chain head', head);
      for (let i = 0; i < replaces; i++) {
        await chainReplace(target, `${PIN}/chain`, 1, { path: i % 2 === 0 ? b : a, success: S, redirect: R, maps }, { patcher, mode });
      }
      headAtLastSwap = Number(await head());
      await counterMoves('packets through the chain head after the last swap', head);
    } finally {
      ping.kill('SIGINT');
      pr = await ping;
      ping = null;
    }
    const st = await chainStatus(target, `${PIN}/chain`);
    expect(st.problems).toEqual([]);
    await chainDetach(target, `${PIN}/chain`);
    const c = await readCounts();
    const n = (k: number): bigint => c.get(k) ?? 0n;
    const stats = /(\d+) packets transmitted, (\d+) received/.exec(String(pr.stdout));
    console.log(`[chain-ops] ${label}: ${replaces} replaces in ${((Date.now() - t0) / 1000).toFixed(1)} s; head ${n(0)}, A ${n(1)}, B ${n(2)}, tail ${n(3)}; ping: ${stats?.[0] ?? String(pr.stdout).slice(-200)}`);
    // Packets crossed while slot 1 was being replaced, not only before and after.
    expect(headAtLastSwap).toBeGreaterThan(headAtFirstSwap);
    expect(n(1) > 0n && n(2) > 0n).toBe(true);
    expect(n(1) + n(2)).toBe(n(0));
    expect(n(3)).toBe(n(0));
    expect(stats).not.toBeNull();
    // Ping's last request may still be in flight when it is interrupted.
    expect(Number(stats![1]) - Number(stats![2])).toBeLessThanOrEqual(1);
    await bpftool.unpin(target, PIN);
    await destroyVethPair(target, veth);
    veth = null;
  }

  it(`reference patch (C): ${Math.min(REPLACES, 50)} replaces of slot 1, no packet skips it`, async () => {
    await run(new ReferencePatcher(), 'reference patch', 'subprog', Math.min(REPLACES, 50));
  }, 900_000);

  it(`patch.ts (probed mode): ${REPLACES} replaces of slot 1, no packet skips it`, async () => {
    await run(await defaultPatcher(), `patch.ts ${features.patchMode}`, features.patchMode, REPLACES);
  }, 1_800_000);
});
