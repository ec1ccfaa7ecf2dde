/**
 * A TC chain operation killed (SIGKILL) right after its step on the kernel, then repaired: an init
 * killed after the head filter went on is rolled back to nothing (no filter, and no clsact qdisc
 * unless one was there before); a recreate killed after the head filter was replaced is completed,
 * and one killed before it is rolled back, the filter running the head the state names.
 * Host resources: namespaces tk-<tag>-a|b, interfaces tk<tag>a|b, chains under /sys/fs/bpf/tk<tag>.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { RUN_TAG } from '../support/names.ts';
import { HostTarget, shellQuote } from '../../lab/target.ts';
import { hasClsact, ingressFilters } from '../../lab/tc/clsact.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { chainRepair } from '../../lab/chain/ops/repair.ts';
import { chainStatus } from '../../lab/chain/ops/status.ts';
import { readState } from '../../lab/chain/state.ts';
import type { Failpoint } from '../../lab/chain/journal.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../../lab/programs/build.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { TC_OBJECTS } from '../../lab/programs/trio.ts';
import { FIXTURES } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const NS_A = `tk-${RUN_TAG}-a`;
const NS_B = `tk-${RUN_TAG}-b`;
const DEV_A = `tk${RUN_TAG}a`;
const DEV_B = `tk${RUN_TAG}b`;
const PIN = `/sys/fs/bpf/tk${RUN_TAG}`;
const obj = (n: string): string => join(DEFAULT_OUT_DIR, `${n}.o`);
const TRIO = [TC_OBJECTS.standalone.filter, TC_OBJECTS.standalone.metrics, TC_OBJECTS.standalone.logger].map(obj);

describe.skipIf(need.skip)('TC chain operations killed after their step on the kernel', () => {
  let target: HostTarget;
  const place = () => ({ target, ifname: DEV_B, netns: NS_B });
  const attach = { ifname: DEV_B, netns: NS_B };
  const inB = (...cmd: string[]) => target.run(['nsenter', `--net=/run/netns/${NS_B}`, ...cmd]);

  beforeAll(async () => {
    target = await HostTarget.create(`/tmp/tk-work-${RUN_TAG}`);
    await buildPrograms();
    await target.sh(`ip netns del ${NS_A} 2>/dev/null; ip netns del ${NS_B} 2>/dev/null; true`);
    await target.sh([`ip netns add ${NS_A}`, `ip netns add ${NS_B}`, `ip link add ${DEV_A} netns ${NS_A} type veth peer name ${DEV_B} netns ${NS_B}`, `nsenter --net=/run/netns/${NS_B} ip link set ${DEV_B} up`].join(' && '));
  }, 120_000);

  afterAll(async () => {
    if (!target) return;
    for (const n of ['i', 'c']) await chainDetach(target, `${PIN}/${n}`).catch(() => undefined);
    await target.sh(`rm -rf ${shellQuote(PIN)}; ip netns del ${NS_A}; ip netns del ${NS_B}; true`, { allowFailure: true });
    const left = await target.sh(`ls -d ${shellQuote(PIN)} 2>/dev/null; ip netns list | grep '^tk-${RUN_TAG}'; true`, { allowFailure: true });
    expect(left.stdout.trim()).toBe('');
  }, 120_000);

  /** Runs the operation in a child that kills itself after `at`; the child must die of SIGKILL. */
  async function killedAfter(at: Failpoint, job: Record<string, unknown>): Promise<void> {
    const r = await execa(process.execPath, ['--import', 'tsx', join(FIXTURES, 'chain-op.ts'), JSON.stringify({ workDir: target.workDir, ...job })], {
      cwd: REPO_ROOT,
      reject: false,
      env: { XCL_CHAIN_FAILPOINT: at },
    });
    expect(r.signal, `${at}: ${r.stderr}`).toBe('SIGKILL');
    expect(r.stdout).not.toContain('finished');
  }

  for (const clsactBefore of [false, true]) {
    it(`init killed after the head filter went on${clsactBefore ? ' (clsact there before)' : ''}: repair removes the filter${clsactBefore ? ' and keeps the qdisc' : ' and the qdisc the chain added'}`, async () => {
      const pinDir = `${PIN}/i`;
      if (clsactBefore) await inB('tc', 'qdisc', 'add', 'dev', DEV_B, 'clsact');
      await killedAfter('init:attached', { op: 'init', pinDir, programs: TRIO, attach });
      expect((await ingressFilters(place())).map((f) => f.prio)).toEqual([1]);
      expect(await chainRepair(target, pinDir)).toMatchObject({ op: 'init', action: 'rolled back' });
      expect(await ingressFilters(place())).toEqual([]);
      expect(await hasClsact(place())).toBe(clsactBefore);
      expect((await target.run(['test', '-e', pinDir], { allowFailure: true })).exitCode).not.toBe(0);
      expect(await readState(target, pinDir)).toBeNull();
      if (clsactBefore) await inB('tc', 'qdisc', 'del', 'dev', DEV_B, 'clsact');
    }, 120_000);
  }

  for (const [at, action] of [['recreate:built', 'rolled back'], ['recreate:swapped', 'completed']] as const) {
    it(`recreate killed after ${at.split(':')[1]}: ${action}, the filter runs the head the state names, detach removes it all`, async () => {
      const pinDir = `${PIN}/c`;
      const st = await chainInit(target, { pinDir, programs: TRIO.map((path) => ({ path })), attach });
      await killedAfter(at, { op: 'recreate', pinDir, programs: TRIO });
      expect((await chainStatus(target, pinDir)).problems.join('\n')).toContain('an interrupted recreate');
      expect(await chainRepair(target, pinDir)).toMatchObject({ op: 'recreate', action });
      const s = await chainStatus(target, pinDir);
      expect(s.problems).toEqual([]);
      expect(s.state.generation).toBe(action === 'completed' ? st.generation + 1 : st.generation);
      expect(s.state.programs[0]!.id === st.programs[0]!.id).toBe(action === 'rolled back');
      expect((await ingressFilters(place())).map((f) => [f.prio, f.id])).toEqual([[1, s.state.programs[0]!.id]]);
      expect(s.state.attachment).toMatchObject({ tc: { prio: 1, createdClsact: true } });
      const gens = (await target.sh(`ls -d ${shellQuote(pinDir)}/gen-* 2>/dev/null; true`)).stdout.trim().split('\n').filter(Boolean);
      expect(gens).toEqual([s.state.genDir]);
      expect((await chainDetach(target, pinDir)).detached).toBe(true);
      expect(await ingressFilters(place())).toEqual([]);
      expect(await hasClsact(place())).toBe(false);
    }, 120_000);
  }
});
