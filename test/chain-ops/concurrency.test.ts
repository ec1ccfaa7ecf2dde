/**
 * Two managers of one chain at once: two processes replacing the same slot, then two replacing
 * different slots, 100 rounds each. The chain lock makes them take turns; afterwards the state
 * file and the kernel agree (every slot holds the program the state names, no stray pin is left),
 * and a packet still runs through every program.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import type { ChainProgramSpec } from '../../lab/chain/ops/build.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { chainStatus } from '../../lab/chain/ops/status.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { FIXTURES, RUN_ID, bpftoolBatch, counterBench, counterObject, countsFrom, hostTarget } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PIN = `/sys/fs/bpf/xt6-conc-${RUN_ID}`;
const ROUNDS = 100;

describe.skipIf(need.skip)('chain operations under concurrency', () => {
  let target: Target;
  let features: KernelFeatures;
  const counts = `${PIN}/counts`;
  const chain = `${PIN}/chain`;
  const spec = async (id: number): Promise<ChainProgramSpec> => ({ path: await counterObject(id, 2), maps: [{ name: 'xt_counts', pinned: counts }] });
  const objects = new Map<number, string>();

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', chainOnly: true });
    await counterBench(target, PIN, 'xt6-conc.bin');
    // Compiled once here: the children only patch and load.
    for (const id of [1, 2, 3, 11, 12, 21, 22]) objects.set(id, await counterObject(id, 2));
    await chainInit(target, { pinDir: chain, programs: [await spec(1), await spec(2), await spec(3)], features });
  }, 120_000);

  afterAll(async () => {
    if (!target) return;
    await chainDetach(target, chain);
    await bpftool.unpin(target, PIN);
  });

  const manager = (index: number, a: number, b: number) =>
    execa(process.execPath, ['--import', 'tsx', join(FIXTURES, 'replace-loop.ts'), target.workDir, chain, String(index), String(ROUNDS), objects.get(a)!, objects.get(b)!, counts], { cwd: REPO_ROOT });

  /** State and kernel agree, nothing stray is pinned, and a packet runs through all three. */
  async function consistent(): Promise<number[]> {
    const s = await chainStatus(target, chain);
    expect(s.problems).toEqual([]);
    expect(s.slots).toEqual(Object.fromEntries(s.state.programs.map((p) => [p.index, p.id])));
    const pins = (await target.run(['ls', `${s.state.genDir}/progs`])).stdout.trim().split('\n').sort();
    expect(pins).toEqual(['0', '1', '2']);
    const before = countsFrom((await bpftoolBatch(target, [`map dump pinned ${counts}`]))[0]);
    const [run, dump] = await bpftoolBatch(target, [`prog run pinned ${s.state.programs[0]!.pin} data_in ${target.workDir}/xt6-conc.bin`, `map dump pinned ${counts}`]);
    expect((run as { retval: number }).retval).toBe(2);
    const after = countsFrom(dump);
    return [...after.keys()].filter((k) => (after.get(k) ?? 0n) !== (before.get(k) ?? 0n)).sort((x, y) => x - y);
  }

  it(`two processes replacing the same slot, ${ROUNDS} rounds each`, async () => {
    const [p, q] = await Promise.all([manager(1, 11, 12), manager(1, 12, 11)]);
    expect(p.stdout.trim()).toBe(`done ${ROUNDS}`);
    expect(q.stdout.trim()).toBe(`done ${ROUNDS}`);
    const ran = await consistent();
    // Slot 1 ends with one of the two programs; slots 0 and 2 are untouched.
    expect(ran).toHaveLength(3);
    expect(ran[0]).toBe(1);
    expect(ran.slice(1)).toContain(3);
    expect([11, 12]).toContain(ran.find((k) => k !== 1 && k !== 3));
  }, 600_000);

  it(`two processes replacing different slots, ${ROUNDS} rounds each`, async () => {
    const [p, q] = await Promise.all([manager(1, 11, 12), manager(2, 21, 22)]);
    expect(p.stdout.trim()).toBe(`done ${ROUNDS}`);
    expect(q.stdout.trim()).toBe(`done ${ROUNDS}`);
    // Each ran an even number of rounds from its first object: both ended on their second one,
    // and neither's last write was lost to the other's.
    expect(await consistent()).toEqual([1, 12, 22]);
    const s = await chainStatus(target, chain);
    expect(s.state.programs.map((x) => x.source)).toEqual([objects.get(1), objects.get(12), objects.get(22)]);
  }, 600_000);
});
