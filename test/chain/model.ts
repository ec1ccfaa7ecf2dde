/**
 * Reference model of the thesis's Algorithm 3.4 applied along a whole chain, on any hook (verdicts
 * are numbers; only the sets differ between XDP and TC), with the fix that
 * the remembered redirect verdict C is cleared at the head for every packet. Written from the
 * pseudocode, independently of lab/chain/patch.ts, so tests can compare the kernel against it.
 */
export interface ModelProgram {
  success: readonly number[];
  redirect: readonly number[];
}

/** The chain's verdict for one packet; verdicts[i] is what program i's body returns. */
export function chainVerdict(programs: readonly ModelProgram[], verdicts: readonly number[], reset = true, staleC = 0): { verdict: number; reached: number } {
  let C = reset ? 0 : staleC;
  for (let i = 0; i < programs.length; i++) {
    const { success: S, redirect: R } = programs[i]!;
    const c = verdicts[i]!;
    if (!S.includes(c) && !R.includes(c)) return { verdict: c, reached: i + 1 };
    // C is remembered before the tail call reveals whether a next program exists (the lab's
    // rule; the thesis's pseudocode stores only when it exists, so there a last program's own
    // R verdict loses to an earlier one).
    if (R.includes(c)) C = c;
    if (i + 1 < programs.length) continue;
    return { verdict: C ? C : c, reached: i + 1 };
  }
  throw new Error('empty chain');
}

/**
 * The default sets of each hook, restated from the kernel's headers (enum xdp_action in bpf.h,
 * TC_ACT_* in pkt_cls.h) apart from lab/chain/constants.ts, so a test catches a changed default.
 */
const XDP = { PASS: 2, TX: 3, REDIRECT: 4 };
const TC = { UNSPEC: -1, OK: 0, REDIRECT: 7 };
export const MODEL_DEFAULTS: Readonly<Record<'xdp' | 'sched_cls', ModelProgram>> = {
  xdp: { success: [XDP.PASS], redirect: [XDP.TX, XDP.REDIRECT] },
  sched_cls: { success: [TC.OK, TC.UNSPEC], redirect: [TC.REDIRECT] },
};

/** The TC verdict the hook reads from a program's u32 return value: an int. */
export const tcVerdict = (u32: number): number => u32 | 0;
