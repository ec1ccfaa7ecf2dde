/**
 * Reference model of the thesis's Algorithm 3.4, with the per-packet reset of the saved code C
 * that the thesis's pseudocode lacks (without it a stale XDP_REDIRECT leaks into the next packet).
 * The tests compare the kernel's verdicts and per-program run counts against it.
 */
import { mulberry32 } from '../../lab/random.ts';

export interface ModelProgram {
  success: readonly number[];
  redirect: readonly number[];
  /** What the unpatched program returns for this packet. */
  verdict(packet: Uint8Array): number;
}

export interface ModelOutcome {
  verdict: number;
  /** Programs that ran, in order: 0..reached-1. */
  reached: number;
}

/**
 * Runs one packet through the chain. `runnable` is how many programs the kernel lets run (its
 * tail-call limit); a tail call to a program past it fails like one to an empty slot.
 */
export function runModel(chain: readonly ModelProgram[], packet: Uint8Array, runnable = Infinity): ModelOutcome {
  let saved: number | null = null; // C, cleared at the head for every packet
  for (let i = 0; i < chain.length; i++) {
    const p = chain[i]!;
    const c = p.verdict(packet);
    const inS = p.success.includes(c);
    const inR = p.redirect.includes(c);
    if (!inS && !inR) return { verdict: c, reached: i + 1 };
    // The patch saves an R verdict before it tries the tail call, since only the tail call itself
    // tells whether V_{i+1} exists (the lab's rule: remember it, tail-call i+1, and when there is no next
    // program return the remembered redirect verdict). The thesis's pseudocode saves only when
    // V_{i+1} exists; the two differ only when the last program returns an R verdict after an
    // earlier program saved a different one: here the last one wins.
    if (inR) saved = c;
    const nextExists = i + 1 < chain.length && i + 1 < runnable;
    if (nextExists) continue;
    return { verdict: saved ?? c, reached: i + 1 };
  }
  throw new Error('empty chain');
}

/** Deterministic PRNG so every random test prints and replays its seed. */
export const rng = mulberry32;

export function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}
