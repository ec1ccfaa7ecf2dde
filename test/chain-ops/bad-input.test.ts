/**
 * Bad input to the chain operations: each case gives one clear LabError (code + message naming the
 * thing), and afterwards nothing is attached to the interface, pinned, or recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { isLabError, type LabErrorCode } from '../../lab/errors.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit, type ChainInitOptions } from '../../lab/chain/ops/init.ts';
import { chainReplace } from '../../lab/chain/ops/replace.ts';
import { compileBpfSource } from '../../lab/toolchain/bpf-source.ts';
import { readState, statePath } from '../../lab/chain/state.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { FIXTURES, ReferencePatcher, counterObject, createVethPair, destroyVethPair, hostTarget, type VethPair, RUN_ID } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const PIN = `/sys/fs/bpf/xt6-bad-${RUN_ID}`;

describe.skipIf(need.skip)('bad input: one clear error, nothing left behind', () => {
  let target: Target;
  let features: KernelFeatures;
  let veth: VethPair;
  let good: string;

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', skipFreplace: true });
    veth = await createVethPair(target, 'x', 62);
    good = await counterObject(1, 2);
  });

  afterAll(async () => {
    if (!target) return;
    await chainDetach(target, `${PIN}/c`).catch(() => {});
    await bpftool.unpin(target, PIN);
    if (veth) await destroyVethPair(target, veth);
  });

  async function expectClean(): Promise<void> {
    expect(await bpftool.xdpAttached(target, veth.devB, veth.nsB)).toEqual([]);
    expect((await target.run(['test', '-e', `${PIN}/c`], { allowFailure: true })).exitCode).not.toBe(0);
    expect(await readState(target, `${PIN}/c`)).toBeNull();
    expect((await target.run(['test', '-e', statePath(`${PIN}/c`)], { allowFailure: true })).exitCode).not.toBe(0);
  }

  async function expectInitError(o: Partial<ChainInitOptions>, code: LabErrorCode | LabErrorCode[], message: RegExp): Promise<void> {
    let err: unknown = null;
    try {
      await chainInit(target, { pinDir: `${PIN}/c`, programs: [], features, attach: { ifname: veth.devB, netns: veth.nsB }, ...o });
    } catch (e) {
      err = e;
    }
    expect(isLabError(err), `expected a LabError, got ${String(err)}`).toBe(true);
    const e = err as { code: LabErrorCode; message: string; remedy?: string };
    expect([code].flat()).toContain(e.code);
    expect(e.message).toMatch(message);
    expect(e.remedy ?? '').not.toBe('');
    await expectClean();
  }

  it('a program that tail-calls itself', async () => {
    // The patcher tests' program that already tail-calls itself.
    const self = await compileBpfSource(readFileSync(join(FIXTURES, '..', 'chain', 'tail_self.c'), 'utf8'), 'xt6-tail_self');
    await expectInitError({ programs: [{ path: good }, { path: self }] }, 'CHAIN', /xt6-tail_self.*tail_self.*bpf_tail_call/);
  });

  it('too many programs for the kernel, without and with the trampoline', async () => {
    const max = features.maxChainPrograms!;
    const many = Array.from({ length: max + 1 }, () => ({ path: good }));
    await expectInitError({ programs: many }, 'CHAIN', new RegExp(`${max + 1} programs is too many.*at most ${max}`));
    await expectInitError({ programs: many.slice(1), trampoline: true }, 'CHAIN', new RegExp(`${max} programs is too many.*trampoline.*at most ${max - 1}`));
  });

  it('a missing file', async () => {
    await expectInitError({ programs: [{ path: good }, { path: '/nonexistent/xt6-missing.o' }] }, 'MISSING_FILE', /xt6-missing\.o: no such file/);
  });

  it('an ELF that is not BPF (an x86-64 executable)', async () => {
    await expectInitError({ programs: [{ path: good }, { path: '/bin/true' }] }, ['NOT_BPF', 'BAD_ELF'], /\/bin\/true|true/);
  });

  it('garbage and truncated objects', async () => {
    const garbage = `${target.workDir}/garbage.o`;
    await writeFile(garbage, Buffer.from('this is not an ELF file at all, just text\n'.repeat(8)));
    await expectInitError({ programs: [{ path: garbage }] }, ['BAD_ELF', 'NOT_BPF'], /garbage\.o/);
    const truncated = `${target.workDir}/truncated.o`;
    await writeFile(truncated, readFileSync(good).subarray(0, 200));
    await expectInitError({ programs: [{ path: truncated }] }, ['BAD_ELF', 'NOT_BPF'], /truncated\.o/);
  });

  it('no programs, and a verdict both in S and R', async () => {
    await expectInitError({ programs: [] }, 'BAD_INPUT', /no programs/);
    await expectInitError({ programs: [{ path: good, success: [2], redirect: [2, 4] }] }, 'BAD_INPUT', /both a success and a redirect/);
  });

  it('a chain mixing XDP and TC programs, at init and at replace: refused naming both hooks, nothing changed', async () => {
    const tc = await compileBpfSource(readFileSync(join(FIXTURES, '..', 'chain-tc', 'verdict_tc.c'), 'utf8'), 'xt6-verdict_tc');
    await expectInitError({ programs: [{ path: good }, { path: tc }] }, 'CHAIN', /cannot mix hooks: XDP \(xdp\): .*; TC \(sched_cls\): .*verdict_tc \(section tc\)/);
    const st = await chainInit(target, { pinDir: `${PIN}/c`, programs: [{ path: good }, { path: good }], features, attach: { ifname: veth.devB, netns: veth.nsB } });
    const err = await chainReplace(target, `${PIN}/c`, 1, { path: tc }, {}).catch((e: unknown) => e);
    expect(isLabError(err, 'CHAIN'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/cannot mix hooks/);
    expect((await readState(target, `${PIN}/c`))?.programs.map((p) => p.id)).toEqual(st.programs.map((p) => p.id));
    await chainDetach(target, `${PIN}/c`);
    await expectClean();
  });

  it('replace: slot 0 without trampoline, a slot past the end, a bad object — chain unchanged', async () => {
    const ref = new ReferencePatcher();
    const p0 = await ref.prepare(1, 0, [2], [3, 4], 2);
    const p1 = await ref.prepare(2, 1, [2], [3, 4], 2);
    const st = await chainInit(target, { pinDir: `${PIN}/c`, programs: [{ path: p0 }, { path: p1 }], features, patcher: ref, attach: { ifname: veth.devB, netns: veth.nsB } });
    const check = async (index: number, path: string, code: LabErrorCode, msg: RegExp): Promise<void> => {
      const err = await chainReplace(target, `${PIN}/c`, index, { path }, { patcher: ref }).catch((e: unknown) => e);
      expect(isLabError(err, code), String(err)).toBe(true);
      expect((err as Error).message).toMatch(msg);
      const now = await readState(target, `${PIN}/c`);
      expect(now?.programs.map((p) => p.id)).toEqual(st.programs.map((p) => p.id));
      expect((await bpftool.xdpAttached(target, veth.devB, veth.nsB))[0]?.id).toBe(st.programs[0]!.id);
    };
    await check(0, p0, 'CHAIN', /program 0 is attached to the interface directly/);
    await check(2, p1, 'BAD_INPUT', /no program at index 2/);
    await check(1, '/nonexistent/xt6-missing.o', 'MISSING_FILE', /no such file/);
    await chainDetach(target, `${PIN}/c`);
    await expectClean();
  });

  it('an interface that already has a program, and a chain name in use', async () => {
    const ref = new ReferencePatcher();
    const p0 = await ref.prepare(1, 0, [2], [3, 4], 2);
    await chainInit(target, { pinDir: `${PIN}/c`, programs: [{ path: p0 }], features, patcher: ref, attach: { ifname: veth.devB, netns: veth.nsB } });
    const again = await chainInit(target, { pinDir: `${PIN}/c`, programs: [{ path: p0 }], features, patcher: ref }).catch((e: unknown) => e);
    expect(isLabError(again, 'CHAIN')).toBe(true);
    expect((again as Error).message).toMatch(/already exists/);
    const busy = await chainInit(target, { pinDir: `${PIN}/d`, programs: [{ path: p0 }], features, patcher: ref, attach: { ifname: veth.devB, netns: veth.nsB } }).catch((e: unknown) => e);
    expect(isLabError(busy, 'ATTACH')).toBe(true);
    expect((busy as Error).message).toMatch(/already has XDP program/);
    expect((await target.run(['test', '-e', `${PIN}/d`], { allowFailure: true })).exitCode).not.toBe(0);
    await chainDetach(target, `${PIN}/c`);
    await expectClean();
  });
});
