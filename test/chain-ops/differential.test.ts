/**
 * Randomized differential test: random chains of counter programs whose verdicts come from the
 * packet bytes, random S and R per program, with and without the head trampoline. For every packet
 * the kernel's verdict (BPF_PROG_TEST_RUN on the chain's head) must equal the Alg. 3.4 model's,
 * and each program's counter must have grown by exactly one iff the model says the packet reached it.
 * Seeded: the seed is printed, and XT6_SEED=<n> replays a run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile, mkdir } from 'node:fs/promises';
import { requirements } from '../support/requirements.ts';
import type { Target } from '../../lab/target.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { defaultPatcher, type ChainProgramSpec, type Patcher } from '../../lab/chain/ops/build.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import type { PatchMode } from '../../lab/chain/constants.ts';
import { cachedFeatures, type KernelFeatures } from '../../lab/features.ts';
import { pick, rng, runModel, type ModelProgram } from './model.ts';
import { ReferencePatcher, bpftoolBatch, counterObject, countsFrom, hostTarget, RUN_ID } from './support.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang');
const SEED = Number(process.env.XT6_SEED ?? Date.now() % 1_000_000);
const PIN_ROOT = `/sys/fs/bpf/xt6-diff-${RUN_ID}`;
const CHAINS_PER_KIND = Number(process.env.XT6_CHAINS ?? 8);
const PACKETS = 16;

const VERDICTS = [0, 1, 2, 3, 4];

interface Kind {
  label: string;
  mode: PatchMode;
  patcher: () => Promise<Patcher>;
}


describe.skipIf(need.skip)(`differential: kernel vs Alg. 3.4 model (seed ${SEED})`, () => {
  let target: Target;
  let features: KernelFeatures;
  let patch: Patcher;

  beforeAll(async () => {
    target = await hostTarget();
    features = await cachedFeatures(target, { prefix: 'xt6', skipFreplace: true });
    patch = await defaultPatcher();
    console.log(`[chain-ops] differential seed ${SEED} (XT6_SEED=${SEED} replays)`);
    await bpftool.unpin(target, PIN_ROOT);
    await target.run(['mkdir', '-p', PIN_ROOT]);
  });

  afterAll(async () => {
    if (target) await bpftool.unpin(target, PIN_ROOT);
  });

  interface ChainCase {
    ids: number[];
    model: ModelProgram[];
    specs: ChainProgramSpec[];
    packets: Uint8Array[];
    counts: string;
    trampoline: boolean;
    mode: PatchMode;
    patcher: Patcher;
  }

  /** Builds the chain, runs every packet through its head, compares with the model, removes it. */
  async function checkChain(tag: string, label: string, t: ChainCase): Promise<void> {
    const pinDir = `${PIN_ROOT}/${tag}`;
    await bpftool.mapCreate(target, t.counts, { type: 'array', keySize: 4, valueSize: 8, entries: 64, name: 'xt_counts' });
    const dir = `${target.workDir}/xt6-diff`;
    await mkdir(dir, { recursive: true });
    try {
      const state = await chainInit(target, { pinDir, programs: t.specs, trampoline: t.trampoline, mode: t.mode, features, patcher: t.patcher });
      const head = state.trampoline?.pin ?? state.programs[0]!.pin;
      const cmds: string[] = [];
      for (const [n, p] of t.packets.entries()) {
        await writeFile(`${dir}/p${n}.bin`, p);
        cmds.push(`prog run pinned ${head} data_in ${dir}/p${n}.bin`, `map dump pinned ${t.counts}`);
      }
      const out = await bpftoolBatch(target, cmds);
      let before = new Map<number, bigint>(t.ids.map((id) => [id, 0n]));
      for (const [n, p] of t.packets.entries()) {
        const want = runModel(t.model, p);
        const run = out[2 * n] as { retval: number };
        const after = countsFrom(out[2 * n + 1]);
        const where = `${label} packet ${n}`;
        const ran = t.ids.map((id) => Number((after.get(id) ?? 0n) - (before.get(id) ?? 0n)));
        const expected = t.ids.map((_, i) => (i < want.reached ? 1 : 0));
        if (process.env.XT6_DEBUG && run.retval !== want.verdict) {
          console.log(where, t.model.map((m, i) => `${i}:${m.verdict(p)} S${m.success.join('')} R${m.redirect.join('')}`).join(' '));
        }
        expect({ verdict: run.retval, ran }, where).toEqual({ verdict: want.verdict, ran: expected });
        before = after;
      }
    } finally {
      await chainDetach(target, pinDir);
      await bpftool.unpin(target, t.counts);
    }
  }

  // The thesis's pseudocode never clears C: a redirect remembered for one packet would be returned
  // for the next. Packet 1 is redirected by program 0 (or 1), packet 2 passes everywhere.
  for (const mode of ['subprog', 'inline'] as const) {
    it(`patch.ts ${mode}: no stale redirect verdict leaks into the next packet`, async () => {
      for (const [k, redirector] of [0, 1].entries()) {
        const ids = [10, 11, 12];
        const counts = `${PIN_ROOT}/reset-${mode}-${k}-counts`;
        const S = [2];
        const R = [3, 4];
        const model = ids.map((id) => ({ success: S, redirect: R, verdict: (p: Uint8Array) => p[id]! % 5 }));
        const specs = [];
        for (const id of ids) specs.push({ path: await counterObject(id), success: S, redirect: R, maps: [{ name: 'xt_counts', pinned: counts }] });
        const first = new Uint8Array(64).fill(2);
        first[ids[redirector]!] = 4;
        const second = new Uint8Array(64).fill(2);
        expect(runModel(model, first).verdict).toBe(4);
        expect(runModel(model, second).verdict).toBe(2);
        await checkChain(`reset-${mode}-${k}`, `reset (${mode}, redirect by program ${redirector})`, {
          ids, model, specs, packets: [first, second, first, second], counts, trampoline: k === 1, mode, patcher: patch!,
        });
      }
    }, 120_000);
  }

  const kinds: Kind[] = [
    { label: 'reference patch (C)', mode: 'subprog', patcher: async () => new ReferencePatcher() },
    { label: 'patch.ts subprog', mode: 'subprog', patcher: async () => patch },
    { label: 'patch.ts inline', mode: 'inline', patcher: async () => patch },
  ];

  for (const [k, kind] of kinds.entries()) {
    it(`${kind.label}: ${CHAINS_PER_KIND} random chains x ${PACKETS} packets`, async () => {
      const r = rng(SEED * 7 + k);
      const patcher = await kind.patcher();
      const max = features.maxChainPrograms ?? 34;
      for (let c = 0; c < CHAINS_PER_KIND; c++) {
        // Always cover the ends: one program, and the longest chain the kernel allows without and
        // with the trampoline; the rest random.
        const trampoline = c === 1 ? false : c === 2 ? true : r() < 0.5;
        const limit = max - (trampoline ? 1 : 0);
        const length = c === 0 ? 1 : c <= 2 ? limit : 1 + Math.floor(r() * Math.min(33, limit));
        const ids = [...Array(64).keys()].sort(() => r() - 0.5).slice(0, length);
        const model: ModelProgram[] = [];
        const specs: ChainProgramSpec[] = [];
        const counts = `${PIN_ROOT}/c${k}-${c}-counts`;
        for (const [i, id] of ids.entries()) {
          const success = VERDICTS.filter(() => r() < 0.35);
          if (success.length === 0) success.push(2);
          // ABORTED (0) is never a redirect verdict: "if C" in Alg. 3.4 cannot tell it from "none".
          const redirect = [1, 2, 3, 4].filter((v) => !success.includes(v) && r() < 0.4);
          model.push({ success, redirect, verdict: (p) => p[id]! % 5 });
          const path = patcher instanceof ReferencePatcher ? await patcher.prepare(id, i, success, redirect) : await counterObject(id);
          specs.push({ path, success, redirect, maps: [{ name: 'xt_counts', pinned: counts }] });
        }
        // Packets: each program's byte picks a verdict that mostly continues the chain.
        const packets: Uint8Array[] = [];
        for (let n = 0; n < PACKETS; n++) {
          const p = new Uint8Array(64);
          for (let b = 0; b < 64; b++) p[b] = Math.floor(r() * 50) * 5 + pick(r, [0, 1, 2, 2, 2, 3, 4]);
          // Make the continue verdicts continue: map bytes onto each program's S ∪ R most of the time.
          for (const [i, id] of ids.entries()) {
            const m = model[i]!;
            const go = [...m.success, ...m.redirect];
            if (r() < 0.93) p[id] = Math.floor(r() * 50) * 5 + pick(r, go);
          }
          packets.push(p);
        }
        await checkChain(`c${k}-${c}`, `seed ${SEED} chain ${c} (length ${length}, trampoline ${trampoline})`, { ids, model, specs, packets, counts, trampoline, mode: kind.mode, patcher });
      }
    }, 600_000);
  }
});
