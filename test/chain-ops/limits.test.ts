/**
 * The chain length limit, found by test: chains one program longer than the limit are built anyway
 * (ignoreLengthLimit) and one packet is run; the counters show how many programs the kernel really
 * ran. That number must be what the feature probe measured and what chainInit enforces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { maxChainLength } from '../../lab/chain/ops/build.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { ReferencePatcher, bpftoolBatch, countsFrom, hostTarget, RUN_ID } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PIN = `/sys/fs/bpf/xt6-limit-${RUN_ID}`;

describe.skipIf(need.skip)('longest chain on this kernel', () => {
  let target: Target;
  let features: KernelFeatures;

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', skipFreplace: true });
    await bpftool.unpin(target, PIN);
    await target.run(['mkdir', '-p', PIN]);
  });

  afterAll(async () => {
    if (target) await bpftool.unpin(target, PIN);
  });

  /** Builds `length` counters (ids 0..length-1), runs one packet, returns how many ran in a row. */
  async function programsRun(length: number, trampoline: boolean): Promise<{ ran: number; counts: number[] }> {
    const ref = new ReferencePatcher();
    const counts = `${PIN}/counts${trampoline ? 't' : ''}`;
    await bpftool.mapCreate(target, counts, { type: 'array', keySize: 4, valueSize: 8, entries: 64, name: 'xt_counts' });
    const programs = [];
    for (let i = 0; i < length; i++) {
      programs.push({ path: await ref.prepare(i, i, [2], [3, 4], 2), maps: [{ name: 'xt_counts', pinned: counts }] });
    }
    const pinDir = `${PIN}/chain${trampoline ? 't' : ''}`;
    try {
      const st = await chainInit(target, { pinDir, programs, trampoline, features, patcher: ref, ignoreLengthLimit: true });
      await target.sh(`head -c 64 /dev/zero > ${target.workDir}/xt6-limit.bin`);
      const [run, dump] = await bpftoolBatch(target, [
        `prog run pinned ${st.trampoline?.pin ?? st.programs[0]!.pin} data_in ${target.workDir}/xt6-limit.bin`,
        `map dump pinned ${counts}`,
      ]);
      expect((run as { retval: number }).retval).toBe(2);
      const c = countsFrom(dump);
      const perProgram = Array.from({ length }, (_, i) => Number(c.get(i) ?? 0n));
      const ran = perProgram.findIndex((n) => n === 0);
      return { ran: ran === -1 ? length : ran, counts: perProgram };
    } finally {
      await chainDetach(target, pinDir);
      await bpftool.unpin(target, counts);
    }
  }

  it('without the trampoline: the longest chain that runs every program is the probed maximum', async () => {
    const max = features.maxChainPrograms!;
    const { ran, counts } = await programsRun(max + 1, false);
    console.log(`[chain-ops] ${target.kernelRelease}: chain of ${max + 1} without trampoline: ${ran} programs ran`);
    expect(ran).toBe(max);
    expect(counts.slice(0, ran).every((n) => n === 1)).toBe(true);
    expect(counts.slice(ran).every((n) => n === 0)).toBe(true);
    expect(maxChainLength(features, false)).toBe(ran);
  }, 300_000);

  it('with the trampoline: one program fewer', async () => {
    const max = features.maxChainPrograms!;
    const { ran, counts } = await programsRun(max, true);
    console.log(`[chain-ops] ${target.kernelRelease}: chain of ${max} behind the trampoline: ${ran} programs ran`);
    expect(ran).toBe(max - 1);
    expect(counts.slice(ran).every((n) => n === 0)).toBe(true);
    expect(maxChainLength(features, true)).toBe(ran);
  }, 300_000);
});
