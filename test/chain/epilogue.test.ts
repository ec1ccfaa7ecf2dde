/**
 * Walks every path of the emitted chain epilogue in a small interpreter (no kernel): one step of
 * Algorithm 3.4 with the head reset, the immediate tail-call index, and which paths touch the
 * per-CPU verdict map.
 */
import { describe, expect, it } from 'vitest';
import { Asm, type Insn } from '../../lab/chain/insn.ts';
import { emitChainTail } from '../../lab/chain/patch.ts';
import { type InterpWorld, run } from './interp.ts';

function build(index: number, success: number[], redirect: number[]): { insns: Insn[]; mapAt: Map<number, 'chain' | 'verdict'> } {
  const a = new Asm();
  emitChainTail(a, { index, success, redirect, keyOff: -8 });
  const insns = a.finish();
  const mapAt = new Map<number, 'chain' | 'verdict'>();
  for (const [mark, slot] of a.marks) mapAt.set(slot, mark === 'chain' ? 'chain' : 'verdict');
  return { insns, mapAt };
}

const configs: { success: number[]; redirect: number[] }[] = [
  { success: [2], redirect: [3, 4] },
  { success: [2, 1], redirect: [3] },
  { success: [2], redirect: [] },
  { success: [], redirect: [4] },
  { success: [], redirect: [] },
  { success: [2, 3], redirect: [3] }, // overlap: R wins
];

describe('chain epilogue (interpreted)', () => {
  for (const index of [0, 1, 7, 32]) {
    for (const cfg of configs) {
      it(`index ${index} S=${JSON.stringify(cfg.success)} R=${JSON.stringify(cfg.redirect)}`, () => {
        const { insns, mapAt } = build(index, cfg.success, cfg.redirect);
        for (let c = 0; c <= 5; c++) {
          for (const hasNext of [true, false]) {
            for (const C0 of [0, 3, 4]) {
              const w: InterpWorld = { C: C0, hasNext, lookups: 0, tailCalled: false, mapAt };
              const out = run(insns, c, w);
              const inR = cfg.redirect.includes(c);
              const inS = cfg.success.includes(c);
              if (!inR && !inS) {
                expect(out).toBe(c);
                expect(w.tailCalled).toBe(false);
                expect(w.lookups).toBe(0);
                expect(w.C).toBe(C0);
                continue;
              }
              expect(w.tailCalled).toBe(true);
              expect(w.tailIndex).toBe(index + 1);
              // What the next program sees in C.
              const expectC = index === 0 ? (inR ? c : 0) : inR ? c : C0;
              if (hasNext) {
                expect(out).toBe('tail');
                expect(w.C).toBe(expectC);
                // The common path (S, not R, not head) never touches the map.
                expect(w.lookups).toBe(index === 0 || inR ? 1 : 0);
              } else {
                // no next program: return C (as the next program would have seen it) if set, else c
                expect(out).toBe(expectC ? expectC : c);
                expect(w.lookups).toBeLessThanOrEqual(1);
              }
            }
          }
        }
      });
    }
  }
  it('tail-call index is an immediate move right before the call', () => {
    const { insns } = build(5, [2], [3, 4]);
    const k = insns.findIndex((i) => i.code === 0x85 && i.imm === 12);
    expect(insns[k - 1]).toMatchObject({ code: 0xb7, dst: 3, imm: 6 });
  });
});
