/**
 * Walks every path of the emitted chain epilogue in a small interpreter (no kernel): one step of
 * Algorithm 3.4 with the saved verdict cleared wherever a packet leaves the chain, the immediate
 * tail-call index, and which paths touch the per-CPU verdict map.
 */
import { describe, expect, it } from 'vitest';
import { Asm, type Insn } from '../../lab/bpf/insn.ts';
import { emitChainTail } from '../../lab/chain/patch/epilogue.ts';
import { type InterpWorld, run } from './interp.ts';

/** roomy: the key has a slot of its own; tight: it shares ctx's (a body using all but 8 bytes). */
type Layout = 'roomy' | 'tight';
const CTX_SLOT = -8;

function build(index: number, success: number[], redirect: number[], layout: Layout = 'roomy'): { insns: Insn[]; mapAt: Map<number, 'chain' | 'verdict'> } {
  const a = new Asm();
  emitChainTail(a, { index, success, redirect, ctxSlot: CTX_SLOT, keyOff: layout === 'roomy' ? CTX_SLOT - 8 : CTX_SLOT });
  const insns = a.finish();
  const mapAt = new Map<number, 'chain' | 'verdict'>();
  for (const { mark, slot } of a.marks) mapAt.set(slot, mark === 'chain' ? 'chain' : 'verdict');
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
  for (const layout of ['roomy', 'tight'] as const)
  for (const index of [0, 1, 7, 32]) {
    for (const cfg of configs) {
      it(`${layout} stack, index ${index} S=${JSON.stringify(cfg.success)} R=${JSON.stringify(cfg.redirect)}`, () => {
        const { insns, mapAt } = build(index, cfg.success, cfg.redirect, layout);
        for (let c = 0; c <= 5; c++) {
          for (const hasNext of [true, false]) {
            // C is zero at the head (every way out of the chain leaves it zero); further down it
            // holds whatever an earlier program remembered.
            for (const C0 of index === 0 ? [0] : [0, 3, 4]) {
              const w: InterpWorld = { C: C0, hasNext, lookups: 0, tailCalled: false, mapAt };
              const out = run(insns, c, w, CTX_SLOT);
              const inR = cfg.redirect.includes(c);
              const inS = cfg.success.includes(c);
              if (!inR && !inS) {
                // Leaving early: the body's verdict, and C cleared for the next packet.
                expect(out).toBe(c);
                expect(w.tailCalled).toBe(false);
                expect(w.C).toBe(0);
                expect(w.lookups).toBe(index === 0 ? 0 : 1);
                continue;
              }
              expect(w.tailCalled).toBe(true);
              expect(w.tailIndex).toBe(index + 1);
              // What the next program sees in C.
              const expectC = inR ? c : C0;
              if (hasNext) {
                expect(out).toBe('tail');
                expect(w.C).toBe(expectC);
                // The common path (an S verdict) never touches the map before the tail call, not
                // even at the head.
                expect(w.lookups).toBe(inR ? 1 : 0);
              } else {
                // No next program: return C (as the next program would have seen it) if set, else
                // c; and leave C zero. A verdict this program remembered costs a second lookup.
                expect(out).toBe(expectC ? expectC : c);
                expect(w.C).toBe(0);
                expect(w.lookups).toBe(inR ? 2 : index === 0 ? 0 : 1);
              }
            }
          }
        }
      });
    }
  }

  it('a packet that every program passes does one map lookup in all, at the end of the chain', () => {
    const chain = [0, 1, 2].map((i) => build(i, [2], [3, 4]));
    const w: InterpWorld = { C: 0, hasNext: true, lookups: 0, tailCalled: false, mapAt: chain[0]!.mapAt };
    for (const [i, p] of chain.entries()) {
      w.hasNext = i < chain.length - 1;
      w.mapAt = p.mapAt;
      const out = run(p.insns, 2, w, CTX_SLOT);
      expect(out).toBe(i < chain.length - 1 ? 'tail' : 2);
    }
    expect(w.lookups).toBe(1);
  });

  it('a remembered redirect followed by a drop leaves no stale verdict for the next packet', () => {
    const chain = [0, 1, 2].map((i) => build(i, [2], [3, 4]));
    const w: InterpWorld = { C: 0, hasNext: true, lookups: 0, tailCalled: false, mapAt: chain[0]!.mapAt };
    expect(run(chain[0]!.insns, 4, w, CTX_SLOT)).toBe('tail'); // head: XDP_REDIRECT remembered
    expect(w.C).toBe(4);
    w.mapAt = chain[1]!.mapAt;
    expect(run(chain[1]!.insns, 1, w, CTX_SLOT)).toBe(1); // second: XDP_DROP leaves the chain
    expect(w.C).toBe(0);
    // The next packet passes everywhere: its verdict is XDP_PASS, not the old redirect.
    for (const [i, p] of chain.entries()) {
      w.hasNext = i < chain.length - 1;
      w.mapAt = p.mapAt;
      expect(run(p.insns, 2, w, CTX_SLOT)).toBe(i < chain.length - 1 ? 'tail' : 2);
    }
  });

  it('uses no callee-saved register when the key has its own slot (the JIT then saves none for it)', () => {
    for (const index of [0, 3]) {
      for (const cfg of configs) {
        const { insns } = build(index, cfg.success, cfg.redirect, 'roomy');
        const used = insns.flatMap((i) => [i.dst, i.src]).filter((r) => r >= 6 && r <= 9);
        expect(used, `index ${index} ${JSON.stringify(cfg)}`).toEqual([]);
      }
    }
  });

  it('the all-pass path is the verdict test, then ctx reloaded, the map, the index and the call', () => {
    const { insns } = build(1, [2], [3, 4]);
    const w: InterpWorld = { C: 0, hasNext: true, lookups: 0, tailCalled: false, mapAt: build(1, [2], [3, 4]).mapAt };
    expect(run(insns, 2, w, CTX_SLOT)).toBe('tail');
    // w0 = w0; if r0 == 2 goto success; success: r1 = *(r10 - 8); r2 = map (2 slots); r3 = 2; call.
    const call = insns.findIndex((i) => i.code === 0x85 && i.imm === 12);
    expect(insns.slice(0, 2).map((i) => i.code)).toEqual([0xbc, 0x15]);
    expect(insns.slice(call - 3, call + 1).map((i) => i.code)).toEqual([0x79, 0x18, 0xb7, 0x85]);
  });

  it('tail-call index is an immediate move right before the call', () => {
    const { insns } = build(5, [2], [3, 4]);
    const k = insns.findIndex((i) => i.code === 0x85 && i.imm === 12);
    expect(insns[k - 1]).toMatchObject({ code: 0xb7, dst: 3, imm: 6 });
  });
});
