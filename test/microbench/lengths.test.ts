/**
 * The bench's chains are as long as it says: the way a length L is measured (empty slot L of the
 * chain's PROG_ARRAY, run the head, refill slot L) makes one packet run exactly L programs, for the
 * manual chain (35 counting copies of programs/micro/chain.c, constant index) and for the patched
 * chain in each mode the kernel supports (copies of programs/micro/count.c sharing one counter).
 * The counters are read back from the kernel, so this fails if a cut, a refill or a hop is wrong.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { HostTarget } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { readU64le, u32le } from '../../lab/bytes.ts';
import { probeFeatures, type KernelFeatures } from '../../lab/features.ts';
import { buildMicroObject } from '../../lab/programs/micro.ts';
import { openSandbox, type Sandbox } from '../../lab/microbench/sandbox.ts';
import { loadManualChain, loadPatchedChain, sweepOnce, SCALING_VARIANTS, type SlotChain } from '../../lab/microbench/scaling.ts';
import { putRepresentativePacket } from '../../lab/microbench/approaches.ts';
import { supportedPatchModes } from '../../lab/microbench/index.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const LENGTHS = [1, 2, 3, 17, 33, 34];

async function runsAt(sb: Sandbox, chain: SlotChain, counter: string, packet: string, len: number): Promise<number> {
  await bpftool.mapUpdate(sb.target, { pinned: counter }, u32le(0), new Uint8Array(8));
  await sweepOnce(sb.target, chain, [len], packet, 1);
  const e = await bpftool.mapLookup(sb.target, { pinned: counter }, u32le(0));
  return Number(readU64le(e!.value!));
}

describe.skipIf(need.skip)('chain lengths are real', () => {
  let dir: string;
  let sb: Sandbox;
  let features: KernelFeatures;
  let packet: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'xt8-len-'));
    const target = await HostTarget.create(join(dir, 'work'));
    features = await probeFeatures(target, { prefix: 'xt8', skipFreplace: true });
    sb = await openSandbox(target, 'xt8');
    packet = (await putRepresentativePacket(sb)).path;
  }, 300_000);

  afterAll(async () => {
    const root = sb?.pinRoot;
    await sb?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (root) expect(existsSync(root)).toBe(false);
  });

  it.each([
    ['constant', 'chainCount', false],
    ['indirect', 'chainCountIndirect', true],
  ] as const)('manual chain (%s index): cutting slot L runs L programs; the full chain stops at the kernel limit', async (_kind, object, indirect) => {
    const info = indirect ? SCALING_VARIANTS.manualIndirect : SCALING_VARIANTS.manualConstant;
    const chain = await loadManualChain(sb, info, await buildMicroObject(object), indirect);
    try {
      const counter = chain.slots.replace(/chain_jmp$/, 'chain_hits');
      for (const len of LENGTHS) expect(await runsAt(sb, chain, counter, packet, len), `length ${len}`).toBe(len);
      // All 35 slots filled: the kernel, not the chain, ends the packet's path.
      expect(await runsAt(sb, chain, counter, packet, chain.progPins.length)).toBe(features.maxChainPrograms);
    } finally {
      await chain.teardown();
    }
  });

  it('patched chain, each supported mode: cutting slot L runs L programs', async () => {
    const countObj = await buildMicroObject('count');
    const counter = `${sb.pinRoot}/chain_count`;
    await bpftool.mapCreate(sb.target, counter, { type: 'array', keySize: 4, valueSize: 8, entries: 1, name: 'chain_count' });
    const modes = supportedPatchModes(features).modes;
    expect(modes).toContain('inline');
    for (const mode of modes) {
      const chain = await loadPatchedChain(sb, mode, countObj, Math.min(Math.max(...LENGTHS), features.maxChainPrograms ?? 34), features, undefined, [{ name: 'chain_count', pinned: counter }]);
      try {
        for (const len of LENGTHS.filter((l) => l <= chain.progPins.length)) expect(await runsAt(sb, chain, counter, packet, len), `${mode}, length ${len}`).toBe(len);
      } finally {
        await chain.teardown();
      }
    }
  }, 300_000);
});
