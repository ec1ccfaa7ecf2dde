/**
 * A chain operation killed (SIGKILL) right after each of its steps, then the next operation: the
 * chain is whole again, completed where the kernel had taken the decisive step (a replace's slot
 * update, a recreate's attach-point swap) and rolled back before it, with state and kernel in
 * agreement and nothing stray pinned or attached. Steps proven: init after the build, after the
 * attach and inside its last shell (state written, intent left); replace after the load, after the
 * slot update, and inside its commit's shell (after the pin move, after the state write); recreate
 * after the build of the next generation, after the swap and after the state write.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { chainRepair } from '../../lab/chain/ops/repair.ts';
import { chainStatus } from '../../lab/chain/ops/status.ts';
import { readState } from '../../lab/chain/state.ts';
import type { Failpoint } from '../../lab/chain/journal.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { FIXTURES, RUN_ID, bpftoolBatch, counterBench, counterObject, countsFrom, createVethPair, destroyVethPair, hostTarget, type VethPair } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang', 'veth');
const PIN = `/sys/fs/bpf/xt6-kill-${RUN_ID}`;

describe.skipIf(need.skip)('chain operations killed after each step', () => {
  let target: Target;
  let features: KernelFeatures;
  let veth: VethPair;
  let bench: { counts: string; packet: string };
  const obj = new Map<number, string>();

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', chainOnly: true });
    bench = await counterBench(target, PIN, 'xt6-kill.bin');
    veth = await createVethPair(target, 'kl', 232);
    for (const id of [1, 2, 3, 4, 5, 6]) obj.set(id, await counterObject(id, 2));
  }, 120_000);

  afterAll(async () => {
    if (!target) return;
    for (const n of ['i', 'r', 'c']) await chainDetach(target, `${PIN}/${n}`).catch(() => undefined);
    if (veth) await destroyVethPair(target, veth);
    await bpftool.unpin(target, PIN);
  });

  const attach = () => ({ ifname: veth.devB, netns: veth.nsB });
  const attached = async (): Promise<number | null> => (await bpftool.xdpAttached(target, veth.devB, veth.nsB))[0]?.id ?? null;
  const spec = (id: number) => ({ path: obj.get(id)!, maps: [{ name: 'xt_counts', pinned: bench.counts }] });

  /** Runs the operation in a child that kills itself after `at`; the child must die of SIGKILL. */
  async function killedAfter(at: Failpoint, job: Record<string, unknown>): Promise<void> {
    const r = await execa(process.execPath, ['--import', 'tsx', join(FIXTURES, 'chain-op.ts'), JSON.stringify({ workDir: target.workDir, counts: bench.counts, ...job })], {
      cwd: REPO_ROOT,
      reject: false,
      env: { XCL_CHAIN_FAILPOINT: at },
    });
    expect(r.signal, `${at}: ${r.stderr}`).toBe('SIGKILL');
    expect(r.stdout).not.toContain('finished');
  }

  /** Which counters one packet through the chain's head moves. */
  async function ran(pinDir: string): Promise<number[]> {
    const s = await chainStatus(target, pinDir);
    const before = countsFrom((await bpftoolBatch(target, [`map dump pinned ${bench.counts}`]))[0]);
    const [, dump] = await bpftoolBatch(target, [`prog run pinned ${s.state.programs[0]!.pin} data_in ${bench.packet}`, `map dump pinned ${bench.counts}`]);
    const after = countsFrom(dump);
    return [...after.keys()].filter((k) => (after.get(k) ?? 0n) !== (before.get(k) ?? 0n)).sort((a, b) => a - b);
  }

  async function whole(pinDir: string): Promise<void> {
    const s = await chainStatus(target, pinDir);
    expect(s.problems).toEqual([]);
    const stray = (await target.sh(`find ${pinDir} -name '*_new-*'; ls -d ${pinDir}/gen-* 2>/dev/null`)).stdout.trim().split('\n').filter(Boolean);
    expect(stray).toEqual([s.state.genDir]);
  }

  for (const at of ['init:built', 'init:attached'] as const) {
    it(`init killed after ${at.split(':')[1]}: repair undoes it, nothing pinned or attached, a new init works`, async () => {
      const pinDir = `${PIN}/i`;
      await killedAfter(at, { op: 'init', pinDir, programs: [obj.get(1), obj.get(2)], attach: attach() });
      if (at === 'init:attached') expect(await attached()).not.toBeNull();
      expect(await chainRepair(target, pinDir)).toMatchObject({ op: 'init', action: 'rolled back' });
      expect(await attached()).toBeNull();
      expect((await target.run(['test', '-e', pinDir], { allowFailure: true })).exitCode).not.toBe(0);
      expect(await readState(target, pinDir)).toBeNull();
      await chainInit(target, { pinDir, programs: [spec(1), spec(2)], features, attach: attach() });
      expect(await ran(pinDir)).toEqual([1, 2]);
      await chainDetach(target, pinDir);
      expect(await attached()).toBeNull();
    }, 120_000);
  }

  for (const [at, action, expected] of [
    ['replace:loaded', 'rolled back', [1, 2, 3]],
    ['replace:slot-set', 'completed', [1, 3, 4]],
    // Inside the commit's one shell: the new pin already took the old one's name, the state not yet written.
    ['replace:pin-moved', 'completed', [1, 3, 4]],
    // The state written, only the intent left.
    ['replace:state-written', 'completed', [1, 3, 4]],
  ] as const) {
    it(`replace killed after ${at.split(':')[1]}: status reports it pending, repair finds it ${action}`, async () => {
      const pinDir = `${PIN}/r`;
      await chainInit(target, { pinDir, programs: [spec(1), spec(2), spec(3)], features });
      await killedAfter(at, { op: 'replace', pinDir, index: 1, program: obj.get(4) });
      expect((await chainStatus(target, pinDir)).problems.join('\n')).toContain('an interrupted replace');
      expect(await chainRepair(target, pinDir)).toMatchObject({ op: 'replace', action });
      await whole(pinDir);
      expect(await ran(pinDir)).toEqual(expected);
      await chainDetach(target, pinDir);
    }, 120_000);
  }

  it('init killed inside its last shell (state written, intent not yet removed): repair keeps the chain, attached and running', async () => {
    const pinDir = `${PIN}/i`;
    await killedAfter('init:state-written', { op: 'init', pinDir, programs: [obj.get(1), obj.get(2)], attach: attach() });
    expect(await chainRepair(target, pinDir)).toMatchObject({ op: 'init', action: 'completed' });
    await whole(pinDir);
    const s = (await chainStatus(target, pinDir)).state;
    expect(await attached()).toBe(s.attachment!.progId);
    expect(await ran(pinDir)).toEqual([1, 2]);
    await chainDetach(target, pinDir);
    expect(await attached()).toBeNull();
  }, 120_000);

  it('replace killed after the slot update: the next operation (a replace of another slot) completes it first', async () => {
    const pinDir = `${PIN}/r`;
    await chainInit(target, { pinDir, programs: [spec(1), spec(2), spec(3)], features });
    await killedAfter('replace:slot-set', { op: 'replace', pinDir, index: 1, program: obj.get(4) });
    const { chainReplace } = await import('../../lab/chain/ops/replace.ts');
    await chainReplace(target, pinDir, 2, spec(5), { features });
    await whole(pinDir);
    expect(await ran(pinDir)).toEqual([1, 4, 5]);
    await chainDetach(target, pinDir);
  }, 120_000);

  for (const [at, action] of [['recreate:built', 'rolled back'], ['recreate:swapped', 'completed'], ['recreate:state-written', 'completed']] as const) {
    it(`recreate killed after ${at.split(':')[1]}: ${action}; detach then knows the attached head`, async () => {
      const pinDir = `${PIN}/c`;
      const st = await chainInit(target, { pinDir, programs: [spec(1), spec(2)], features, attach: attach() });
      await killedAfter(at, { op: 'recreate', pinDir, programs: [obj.get(5), obj.get(6)] });
      const r = await chainRepair(target, pinDir);
      expect(r).toMatchObject({ op: 'recreate', action });
      await whole(pinDir);
      const after = (await chainStatus(target, pinDir)).state;
      expect(after.generation).toBe(action === 'completed' ? st.generation + 1 : st.generation);
      expect(await attached()).toBe(after.attachment!.progId);
      expect(await ran(pinDir)).toEqual(action === 'completed' ? [5, 6] : [1, 2]);
      const d = await chainDetach(target, pinDir);
      expect(d.detached).toBe(true);
      expect(await attached()).toBeNull();
    }, 120_000);
  }

  it('recreate killed after the swap and no repair: detach alone completes it and detaches the new head', async () => {
    const pinDir = `${PIN}/c`;
    await chainInit(target, { pinDir, programs: [spec(1), spec(2)], features, attach: attach() });
    await killedAfter('recreate:swapped', { op: 'recreate', pinDir, programs: [obj.get(5), obj.get(6)] });
    const d = await chainDetach(target, pinDir);
    expect(d.detached).toBe(true);
    expect(d.notes.join('\n')).toContain('an interrupted recreate was completed');
    expect(await attached()).toBeNull();
    expect((await target.run(['test', '-e', pinDir], { allowFailure: true })).exitCode).not.toBe(0);
  }, 120_000);
});
