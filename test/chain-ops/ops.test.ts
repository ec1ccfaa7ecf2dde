/**
 * Chain operations one by one on the host kernel, with counter programs run by BPF_PROG_TEST_RUN:
 * the Annexe I trampoline makes slot 0 replaceable, recreate builds a new generation and drops the
 * old one, status notices when the kernel no longer matches the state file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { u32le } from '../../lab/bytes.ts';
import type { ChainProgramSpec } from '../../lab/chain/ops/build.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { chainRecreate } from '../../lab/chain/ops/recreate.ts';
import { chainReplace } from '../../lab/chain/ops/replace.ts';
import { chainStatus } from '../../lab/chain/ops/status.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { FIXTURES, RUN_ID, bpftoolBatch, counterBench, counterObject, countsFrom, hostTarget } from './support.ts';
import { compileBpfSource } from '../../lab/toolchain/bpf-source.ts';
import { statePath } from '../../lab/chain/state.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PIN = `/sys/fs/bpf/xt6-ops-${RUN_ID}`;

describe.skipIf(need.skip)('chain operations', () => {
  let target: Target;
  let features: KernelFeatures;
  const counts = `${PIN}/counts`;
  const spec = async (id: number): Promise<ChainProgramSpec> => ({ path: await counterObject(id, 2), maps: [{ name: 'xt_counts', pinned: counts }] });

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', chainOnly: true });
    await counterBench(target, PIN, 'xt6-ops.bin');
  });

  afterAll(async () => {
    if (!target) return;
    await chainDetach(target, `${PIN}/chain`);
    await bpftool.unpin(target, PIN);
  });

  /** Runs one packet through `headPin`; returns the verdict and which counters moved. */
  async function runOnce(headPin: string): Promise<{ retval: number; ran: number[] }> {
    const before = countsFrom((await bpftoolBatch(target, [`map dump pinned ${counts}`]))[0]);
    const [run, dump] = await bpftoolBatch(target, [`prog run pinned ${headPin} data_in ${target.workDir}/xt6-ops.bin`, `map dump pinned ${counts}`]);
    const after = countsFrom(dump);
    const ran = [...after.keys()].filter((k) => (after.get(k) ?? 0n) !== (before.get(k) ?? 0n)).sort((a, b) => a - b);
    return { retval: (run as { retval: number }).retval, ran };
  }

  it('several programs in one object: the chain loads exactly the one named, at any index', async () => {
    const several = await compileBpfSource(readFileSync(join(FIXTURES, 'several.c'), 'utf8'), 'xt6-several');
    const named = (program: string): ChainProgramSpec => ({ path: several, program, maps: [{ name: 'xt_counts', pinned: counts }] });
    // second shares its section with first (DROP), third has its own section: either way, only it runs.
    const st = await chainInit(target, { pinDir: `${PIN}/several`, programs: [named('second'), await spec(1), named('third')], trampoline: false, features });
    try {
      expect(st.programs.map((p) => p.program)).toEqual(['second', 'xt_prog', 'third']);
      for (const p of st.programs) expect((await bpftool.progShow(target, { pinned: p.pin })).name).toBe(p.program.slice(0, 15));
      expect(await runOnce(st.programs[0]!.pin)).toEqual({ retval: 2, ran: [1, 21, 22] });
    } finally {
      await chainDetach(target, `${PIN}/several`);
    }
    // A multi-buffer program among plain ones: refused before anything is loaded.
    await expect(chainInit(target, { pinDir: `${PIN}/frags`, programs: [named('second'), named('fourth')], features })).rejects.toMatchObject({
      code: 'CHAIN',
      message: expect.stringContaining('cannot mix multi-buffer programs'),
    });
    expect((await target.run(['test', '-e', `${PIN}/frags`], { allowFailure: true })).exitCode).not.toBe(0);
    // Nor anything of it in the state tree.
    expect((await target.run(['test', '-e', statePath(`${PIN}/frags`).replace(/\/chain\.json$/, '')], { allowFailure: true })).exitCode).not.toBe(0);
  });

  it('trampoline: slot 0 is replaced in place, the attached head never changes', async () => {
    const st = await chainInit(target, { pinDir: `${PIN}/chain`, programs: [await spec(1), await spec(2)], trampoline: true, features });
    expect(st.trampoline).not.toBeNull();
    expect(st.maxPrograms).toBe(maxWith(features, true));
    expect(await runOnce(st.trampoline!.pin)).toEqual({ retval: 2, ran: [1, 2] });
    const st2 = await chainReplace(target, `${PIN}/chain`, 0, await spec(5));
    expect(st2.trampoline).toEqual(st.trampoline);
    // No compare-and-swap exists for a map slot: the state says so.
    expect(st2.notes.some((n) => n.startsWith('slot 0 (behind the trampoline) replaced by a plain PROG_ARRAY update'))).toBe(true);
    expect(st2.programs[0]!.id).not.toBe(st.programs[0]!.id);
    expect(await runOnce(st.trampoline!.pin)).toEqual({ retval: 2, ran: [2, 5] });
    const s = await chainStatus(target, `${PIN}/chain`);
    expect(s.problems).toEqual([]);
    expect(s.slots).toEqual({ 0: st2.programs[0]!.id, 1: st2.programs[1]!.id });
  });

  it('recreate: a new generation with new maps, the old one gone', async () => {
    const old = (await chainStatus(target, `${PIN}/chain`)).state;
    const st = await chainRecreate(target, `${PIN}/chain`, [await spec(7), await spec(8), await spec(9)], { features, trampoline: false });
    expect(st.generation).toBe(old.generation + 1);
    expect(st.trampoline).toBeNull();
    expect(st.maps.chain.id).not.toBe(old.maps.chain.id);
    expect((await target.run(['test', '-e', old.genDir], { allowFailure: true })).exitCode).not.toBe(0);
    expect(await runOnce(st.programs[0]!.pin)).toEqual({ retval: 2, ran: [7, 8, 9] });
    expect((await chainStatus(target, `${PIN}/chain`)).problems).toEqual([]);
  });

  it('status reports a slot changed behind the chain\'s back', async () => {
    const st = (await chainStatus(target, `${PIN}/chain`)).state;
    await bpftool.mapDelete(target, { pinned: st.maps.chain.pin }, u32le(2));
    const s = await chainStatus(target, `${PIN}/chain`);
    expect(s.problems).toEqual([`slot 2 holds nothing, state says ${st.programs[2]!.id}`]);
    // The chain now ends early, as Alg. 3.4 does when V_{i+1} does not exist.
    expect(await runOnce(st.programs[0]!.pin)).toEqual({ retval: 2, ran: [7, 8] });
    await chainDetach(target, `${PIN}/chain`);
    expect((await target.run(['test', '-e', `${PIN}/chain`], { allowFailure: true })).exitCode).not.toBe(0);
  });
});

function maxWith(f: KernelFeatures, trampoline: boolean): number {
  return (f.maxChainPrograms ?? 34) - (trampoline ? 1 : 0);
}
