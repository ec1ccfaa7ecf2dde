import { describe, expect, it } from 'vitest';
import { runModel, type ModelProgram } from './model.ts';

const PASS = 2, DROP = 1, TX = 3, REDIRECT = 4, ABORTED = 0;
const S = [PASS];
const R = [TX, REDIRECT];
const fixed = (...vs: number[]): ModelProgram[] => vs.map((v) => ({ success: S, redirect: R, verdict: () => v }));
const pkt = new Uint8Array(64);

describe('Algorithm 3.4 reference model', () => {
  it('runs every program while verdicts are in S or R and returns the last verdict', () => {
    expect(runModel(fixed(PASS, PASS, PASS), pkt)).toEqual({ verdict: PASS, reached: 3 });
  });
  it('stops at the first verdict outside S ∪ R and returns it', () => {
    expect(runModel(fixed(PASS, DROP, PASS), pkt)).toEqual({ verdict: DROP, reached: 2 });
    expect(runModel(fixed(ABORTED, PASS), pkt)).toEqual({ verdict: ABORTED, reached: 1 });
  });
  it('remembers a redirect verdict and returns it at the end of the chain', () => {
    expect(runModel(fixed(PASS, REDIRECT, PASS), pkt)).toEqual({ verdict: REDIRECT, reached: 3 });
    // The last redirect wins.
    expect(runModel(fixed(TX, REDIRECT, PASS), pkt)).toEqual({ verdict: REDIRECT, reached: 3 });
    // The last program's own R verdict is saved before its (failing) tail call, so it wins.
    expect(runModel(fixed(REDIRECT, TX), pkt)).toEqual({ verdict: TX, reached: 2 });
    expect(runModel(fixed(REDIRECT, PASS), pkt)).toEqual({ verdict: REDIRECT, reached: 2 });
  });
  it('a drop after a redirect still drops', () => {
    expect(runModel(fixed(REDIRECT, DROP), pkt)).toEqual({ verdict: DROP, reached: 2 });
  });
  it('resets the saved verdict for each packet (no stale redirect)', () => {
    const byByte: ModelProgram[] = [0, 1].map((k) => ({ success: S, redirect: R, verdict: (p: Uint8Array) => p[k]! }));
    expect(runModel(byByte, Uint8Array.of(REDIRECT, PASS)).verdict).toBe(REDIRECT);
    expect(runModel(byByte, Uint8Array.of(PASS, PASS)).verdict).toBe(PASS);
  });
  it('treats programs past the kernel limit as absent', () => {
    expect(runModel(fixed(REDIRECT, PASS, DROP), pkt, 2)).toEqual({ verdict: REDIRECT, reached: 2 });
  });
  it('honours per-program S and R', () => {
    const chain: ModelProgram[] = [
      { success: [PASS, DROP], redirect: [], verdict: () => DROP },
      { success: [PASS], redirect: [TX], verdict: () => TX },
      { success: [PASS], redirect: [], verdict: () => PASS },
    ];
    expect(runModel(chain, pkt)).toEqual({ verdict: TX, reached: 3 });
  });
});
