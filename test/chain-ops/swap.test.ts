/**
 * The compare-and-swap on an interface's XDP program (lab/chain/swap.ts with the xdp_swap helper):
 * with the expected program attached it swaps in one call; with another one attached it fails,
 * naming it, and changes nothing; a chain recreate uses it and records the method.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { swapXdp } from '../../lab/chain/swap.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { chainRecreate } from '../../lab/chain/ops/recreate.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { RUN_ID, counterObject, createVethPair, destroyVethPair, hostTarget, type VethPair } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang', 'veth');
const PIN = `/sys/fs/bpf/xt6-swap-${RUN_ID}`;

describe.skipIf(need.skip)('compare-and-swap on the attach point', () => {
  let target: Target;
  let features: KernelFeatures;
  let veth: VethPair;
  const pins = { a: `${PIN}/a`, b: `${PIN}/b`, c: `${PIN}/c` };
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', chainOnly: true });
    await bpftool.unpin(target, PIN);
    await target.run(['mkdir', '-p', PIN]);
    veth = await createVethPair(target, 'sw', 231);
    for (const [k, id] of [['a', 31], ['b', 32], ['c', 33]] as const) {
      await bpftool.load(target, await counterObject(id, 2), pins[k], { type: 'xdp' });
      ids[k] = (await bpftool.progShow(target, { pinned: pins[k] })).id;
    }
    await bpftool.netAttachXdp(target, { pinned: pins.a }, veth.devB, { netns: veth.nsB });
  }, 120_000);

  afterAll(async () => {
    if (!target) return;
    await chainDetach(target, `${PIN}/chain`).catch(() => undefined);
    if (veth) await destroyVethPair(target, veth);
    await bpftool.unpin(target, PIN);
  });

  const attached = async (): Promise<number | undefined> => (await bpftool.xdpAttached(target, veth.devB, veth.nsB))[0]?.id;

  it('this kernel has XDP_FLAGS_REPLACE (5.7+)', () => {
    expect(features.features.xdpFlagsReplace.ok, features.features.xdpFlagsReplace.detail).toBe(true);
  });

  it('swaps when the expected program is attached', async () => {
    const r = await swapXdp(target, { ifname: veth.devB, netns: veth.nsB, newPin: pins.b, expectId: ids.a! }, true);
    expect(r).toEqual({ method: 'xdp-flags-replace', newId: ids.b });
    expect(await attached()).toBe(ids.b);
  });

  it('fails and changes nothing when the expected program is no longer attached', async () => {
    // b is attached now; a swap that still expects a must not install c.
    await expect(swapXdp(target, { ifname: veth.devB, netns: veth.nsB, newPin: pins.c, expectId: ids.a! }, true)).rejects.toMatchObject({
      code: 'ATTACH',
      message: expect.stringContaining(`does not run program ${ids.a} any more`),
    });
    expect(await attached()).toBe(ids.b);
    // The fallback without the kernel's CAS checks before it overwrites: the same refusal.
    await expect(swapXdp(target, { ifname: veth.devB, netns: veth.nsB, newPin: pins.c, expectId: ids.a! }, false)).rejects.toMatchObject({ code: 'ATTACH' });
    expect(await attached()).toBe(ids.b);
  });

  it('a chain recreate swaps by compare-and-swap and records it; behind its back it refuses', async () => {
    await bpftool.netDetachXdp(target, veth.devB, { netns: veth.nsB });
    const obj = async (id: number) => ({ path: await counterObject(id, 2) });
    await chainInit(target, { pinDir: `${PIN}/chain`, programs: [await obj(41), await obj(42)], features, attach: { ifname: veth.devB, netns: veth.nsB } });
    const st = await chainRecreate(target, `${PIN}/chain`, [await obj(43), await obj(44)], { features });
    expect(st.attachment?.method).toBe('xdp-flags-replace');
    expect(await attached()).toBe(st.programs[0]!.id);
    expect(st.notes.some((n) => n.includes('compare-and-swap (XDP_FLAGS_REPLACE'))).toBe(true);
    // Another manager puts its own program there: the next recreate must not overwrite it.
    await swapXdp(target, { ifname: veth.devB, netns: veth.nsB, newPin: pins.c, expectId: st.programs[0]!.id }, true);
    await expect(chainRecreate(target, `${PIN}/chain`, [await obj(45), await obj(46)], { features })).rejects.toMatchObject({ code: 'ATTACH' });
    expect(await attached()).toBe(ids.c);
  });
});
