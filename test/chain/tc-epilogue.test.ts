/**
 * The chain epilogue with TC verdict sets, walked in the interpreter (no kernel): every step of
 * Algorithm 3.4 for every TC verdict including TC_ACT_UNSPEC (-1, which a 64-bit compare with an
 * immediate would miss), and whole chains against the reference model.
 */
import { describe, expect, it } from 'vitest';
import { Asm, type Insn, exit, jeqImm, mov32Reg, mov64Imm } from '../../lab/bpf/insn.ts';
import { HOOK_VERDICTS } from '../../lab/chain/constants.ts';
import { emitChainTail } from '../../lab/chain/patch/epilogue.ts';
import { TC_ACTIONS } from '../../lab/bpf/uapi.ts';
import { type InterpWorld, run } from './interp.ts';
import { MODEL_DEFAULTS, type ModelProgram, chainVerdict, tcVerdict } from './model.ts';

const CTX_SLOT = -8;
type Layout = 'roomy' | 'tight';

function build(index: number, p: ModelProgram, layout: Layout = 'roomy'): { insns: Insn[]; mapAt: Map<number, 'chain' | 'verdict'> } {
  const a = new Asm();
  emitChainTail(a, { index, success: [...p.success], redirect: [...p.redirect], ctxSlot: CTX_SLOT, keyOff: layout === 'roomy' ? CTX_SLOT - 8 : CTX_SLOT });
  const insns = a.finish();
  const mapAt = new Map<number, 'chain' | 'verdict'>();
  for (const { mark, slot } of a.marks) mapAt.set(slot, mark === 'chain' ? 'chain' : 'verdict');
  return { insns, mapAt };
}

/** Every TC_ACT_* and two codes the kernel does not name, one of them negative. */
const VERDICTS = [...Object.values(TC_ACTIONS), -5, 0x7fffffff];
const U = TC_ACTIONS.unspec;
const OK = TC_ACTIONS.ok;
const configs: ModelProgram[] = [
  MODEL_DEFAULTS.sched_cls,
  { success: [OK], redirect: [TC_ACTIONS.redirect] },
  { success: [U], redirect: [TC_ACTIONS.redirect, TC_ACTIONS.pipe] },
  { success: [OK], redirect: [U] },
  { success: [OK, U, -5], redirect: [] },
];

describe('the TC default verdict sets', () => {
  it('are S = {TC_ACT_OK, TC_ACT_UNSPEC}, R = {TC_ACT_REDIRECT}, as the model restates them; XDP keeps the thesis\'s', () => {
    expect([...HOOK_VERDICTS.sched_cls.success].sort()).toEqual([...MODEL_DEFAULTS.sched_cls.success].sort());
    expect([...HOOK_VERDICTS.sched_cls.redirect]).toEqual([...MODEL_DEFAULTS.sched_cls.redirect]);
    expect([...HOOK_VERDICTS.xdp.success]).toEqual([...MODEL_DEFAULTS.xdp.success]);
    expect([...HOOK_VERDICTS.xdp.redirect]).toEqual([...MODEL_DEFAULTS.xdp.redirect]);
  });
});

describe('chain epilogue with TC verdicts (interpreted)', () => {
  for (const layout of ['roomy', 'tight'] as const)
  for (const index of [0, 1, 7]) {
    for (const cfg of configs) {
      it(`${layout} stack, index ${index} S=${JSON.stringify(cfg.success)} R=${JSON.stringify(cfg.redirect)}`, () => {
        const { insns, mapAt } = build(index, cfg, layout);
        for (const c of VERDICTS) {
          for (const hasNext of [true, false]) {
            for (const C0 of index === 0 ? [0] : [0, TC_ACTIONS.redirect, U]) {
              const w: InterpWorld = { C: C0, hasNext, lookups: 0, tailCalled: false, mapAt };
              // The body's r0 as clang leaves it for `return -1`: all 64 bits set.
              const out = run(insns, c, w, CTX_SLOT);
              const inR = cfg.redirect.includes(c);
              const inS = cfg.success.includes(c);
              const where = `c=${c} hasNext=${hasNext} C0=${C0}`;
              if (!inR && !inS) {
                expect(out === 'tail' ? out : tcVerdict(out), where).toBe(c);
                expect(w.tailCalled, where).toBe(false);
                expect(w.C, where).toBe(0);
                continue;
              }
              expect(w.tailCalled, where).toBe(true);
              expect(w.tailIndex, where).toBe(index + 1);
              const expectC = inR ? c : C0;
              if (hasNext) {
                expect(out, where).toBe('tail');
                expect(tcVerdict(w.C), where).toBe(expectC);
              } else {
                expect(out === 'tail' ? out : tcVerdict(out), where).toBe(expectC !== 0 ? expectC : c);
                expect(w.C, where).toBe(0);
              }
            }
          }
        }
      });
    }
  }

  it('whole chains of three programs give the reference model\'s verdict for every combination', () => {
    const chains: ModelProgram[][] = [
      [MODEL_DEFAULTS.sched_cls, MODEL_DEFAULTS.sched_cls, MODEL_DEFAULTS.sched_cls],
      [configs[2]!, configs[3]!, configs[1]!],
    ];
    const vocab = [U, OK, TC_ACTIONS.shot, TC_ACTIONS.pipe, TC_ACTIONS.redirect];
    for (const programs of chains) {
      const built = programs.map((p, i) => build(i, p, i === 1 ? 'tight' : 'roomy'));
      let combos = 0;
      for (const a of vocab) for (const b of vocab) for (const c of vocab) {
        const verdicts = [a, b, c];
        const w: InterpWorld = { C: 0, hasNext: true, lookups: 0, tailCalled: false, mapAt: built[0]!.mapAt };
        let got: number | 'tail' = 'tail';
        for (let i = 0; i < built.length && got === 'tail'; i++) {
          w.hasNext = i + 1 < built.length;
          w.mapAt = built[i]!.mapAt;
          w.tailCalled = false;
          got = run(built[i]!.insns, verdicts[i]!, w, CTX_SLOT);
        }
        expect(got, `verdicts ${verdicts.join(',')}`).not.toBe('tail');
        expect(tcVerdict(got as number), `verdicts ${verdicts.join(',')}`).toBe(chainVerdict(programs, verdicts).verdict);
        // No verdict is left behind for the next packet.
        expect(w.C, `verdicts ${verdicts.join(',')}`).toBe(0);
        combos++;
      }
      expect(combos).toBe(vocab.length ** 3);
    }
  });

  it('control: a JEQ with immediate -1 misses r0 = 0xffffffff (the sign extension the epilogue avoids)', () => {
    // w0 = w0; if r0 == -1 goto +1; exit(r0 = 1); r0 = 2; exit — run as the kernel would.
    const probe: Insn[] = [mov32Reg(0, 0), jeqImm(0, U, 2), mov64Imm(0, 1), exit(), mov64Imm(0, 2), exit()];
    const w: InterpWorld = { C: 0, hasNext: false, lookups: 0, tailCalled: false, mapAt: new Map() };
    expect(run(probe, U, w, CTX_SLOT)).toBe(1);
    // The epilogue itself continues on -1 (S holds it by default).
    const { insns, mapAt } = build(0, MODEL_DEFAULTS.sched_cls);
    expect(run(insns, U, { ...w, hasNext: true, mapAt }, CTX_SLOT)).toBe('tail');
  });
});
