/**
 * Which part of the stack a function can touch. The inline patch keeps ctx in a stack slot the
 * body provably never reads or writes; this analysis finds the deepest byte (lowest offset from
 * r10) any access can reach, following pointers derived from r10 through moves and constant
 * adds across the control-flow graph. Anything it cannot bound (variable offsets, a stack
 * pointer stored to memory, arithmetic other than +/- constant) makes it give up with a reason.
 */
import {
  BPF_ADD,
  BPF_ALU,
  BPF_ALU64,
  BPF_ATOMIC,
  BPF_JA,
  BPF_JMP,
  BPF_JMP32,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_MOV,
  BPF_ST,
  BPF_STX,
  BPF_SUB,
  BPF_X,
  type Insn,
  cls,
  isCall,
  isExit,
  isLdImm64,
  width,
} from './insn.ts';

/** Per register: null = not derived from r10; a number m = r10 + x with x >= m. */
type RegState = (number | null)[];

export type StackUse = { ok: true; deepest: number } | { ok: false; reason: string; insn: number };

const STACK_LIMIT = -512;

export function analyseStack(insns: readonly Insn[]): StackUse {
  const slotOf: number[] = [];
  const bySlot = new Map<number, number>();
  let s = 0;
  insns.forEach((i, k) => {
    slotOf.push(s);
    bySlot.set(s, k);
    s += width(i);
  });
  const n = insns.length;
  if (n === 0) return { ok: false, reason: 'empty function', insn: 0 };
  const states: (RegState | null)[] = new Array<RegState | null>(n).fill(null);
  const entry: RegState = new Array<number | null>(11).fill(null);
  entry[10] = 0;
  states[0] = entry;
  let deepest = 0;
  const work: number[] = [0];
  const inWork = new Set<number>([0]);

  const fail = (k: number, reason: string): StackUse => ({ ok: false, reason, insn: slotOf[k] ?? k });

  const flowTo = (k: number, st: RegState): string | null => {
    const prev = states[k];
    if (!prev) {
      states[k] = st.slice();
    } else {
      let changed = false;
      for (let r = 0; r < 11; r++) {
        const a = prev[r] ?? null;
        const b = st[r] ?? null;
        let j: number | null;
        if (a === null) j = b;
        else if (b === null) j = a;
        else j = Math.min(a, b);
        if (j !== a) {
          prev[r] = j;
          changed = true;
        }
        if (j !== null && j < 2 * STACK_LIMIT) return 'a stack pointer decreases without bound';
      }
      if (!changed) return null;
    }
    if (!inWork.has(k)) {
      inWork.add(k);
      work.push(k);
    }
    return null;
  };

  let guard = 0;
  while (work.length > 0) {
    if (++guard > 200_000) return fail(0, 'analysis did not converge');
    const k = work.pop()!;
    inWork.delete(k);
    const insn = insns[k]!;
    const st = states[k]!.slice();
    const c = cls(insn);
    const touch = (base: number, off: number): string | null => {
      const m = st[base] ?? null;
      if (m === null) return null;
      const at = m + off;
      if (at < deepest) deepest = at;
      if (deepest < STACK_LIMIT) return `stack access at r10${at} beyond the 512-byte stack`;
      return null;
    };
    const dst = insn.dst;
    const src = insn.src;
    if (dst > 10 || (src > 10 && c !== BPF_JMP && c !== BPF_LD)) return fail(k, `bad register r${Math.max(dst, src)}`);

    let succ: number[] = [];
    const next = k + 1;
    if (c === BPF_ALU64 || c === BPF_ALU) {
      const op = insn.code & 0xf0;
      const isX = (insn.code & BPF_X) === BPF_X;
      const dstPtr = st[dst] ?? null;
      const srcPtr = isX ? (st[src] ?? null) : null;
      if (dst === 10) return fail(k, 'writes r10');
      if (c === BPF_ALU64 && op === BPF_MOV) {
        st[dst] = isX ? srcPtr : null;
      } else if (c === BPF_ALU64 && (op === BPF_ADD || op === BPF_SUB) && (insn.code & BPF_X) === BPF_K && dstPtr !== null) {
        st[dst] = op === BPF_ADD ? dstPtr + insn.imm : dstPtr - insn.imm;
      } else if (dstPtr !== null || srcPtr !== null) {
        return fail(k, 'computes a stack pointer with a variable or non-additive offset');
      } else {
        st[dst] = null;
      }
      succ = [next];
    } else if (c === BPF_LDX) {
      const e = touch(src, insn.off);
      if (e) return fail(k, e);
      st[dst] = null;
      succ = [next];
    } else if (c === BPF_ST) {
      const e = touch(dst, insn.off);
      if (e) return fail(k, e);
      succ = [next];
    } else if (c === BPF_STX) {
      const e = touch(dst, insn.off);
      if (e) return fail(k, e);
      if ((st[src] ?? null) !== null) return fail(k, 'stores a stack pointer to memory');
      if ((insn.code & 0xe0) === BPF_ATOMIC) {
        // fetch variants write back into src (cmpxchg into r0)
        st[src] = null;
        st[0] = null;
      }
      succ = [next];
    } else if (c === BPF_LD) {
      if (isLdImm64(insn)) st[dst] = null;
      else for (let r = 0; r <= 5; r++) st[r] = null; // legacy LD_ABS/LD_IND
      succ = [next];
    } else if (c === BPF_JMP || c === BPF_JMP32) {
      if (isExit(insn)) succ = [];
      else if (isCall(insn)) {
        for (let r = 1; r <= 5; r++) {
          const e = touch(r, 0);
          if (e) return fail(k, e);
        }
        for (let r = 0; r <= 5; r++) st[r] = null;
        succ = [next];
      } else {
        const op = insn.code & 0xf0;
        const off = c === BPF_JMP32 && op === BPF_JA ? insn.imm : insn.off;
        const target = bySlot.get(slotOf[k]! + 1 + off);
        if (target === undefined) return fail(k, `jump to slot ${slotOf[k]! + 1 + off} outside the function`);
        succ = op === BPF_JA ? [target] : [next, target];
      }
    } else {
      return fail(k, `unknown instruction class ${c}`);
    }
    for (const t of succ) {
      if (t >= n) return fail(k, 'falls off the end of the function');
      const e = flowTo(t, st);
      if (e) return fail(k, e);
    }
  }
  return { ok: true, deepest };
}

/**
 * The verifier adds up the frames of a call chain against 512 bytes, each frame rounded up: to 16
 * bytes on current kernels when the program is JITed, to 32 (at least one) on older kernels and
 * for the interpreter. Both sums, so a caller can refuse what no kernel loads and warn about what
 * older ones refuse.
 */
export interface CallChainStack<F> {
  /** Frames of the deepest chain, root first. */
  chain: F[];
  /** Combined stack with 16-byte rounding (the most lenient kernels). */
  lenient: number;
  /** Combined stack with 32-byte rounding, at least 32 a frame (older kernels). */
  strict: number;
  /** Functions whose stack use could not be bounded (counted as 0). */
  unknown: F[];
}

export const STACK_MAX = 512;

export function deepestCallChain<F>(root: F, frameBytes: (f: F) => number | null, callees: (f: F) => readonly F[]): CallChainStack<F> {
  const unknown = new Set<F>();
  const frame = (f: F): number => {
    const b = frameBytes(f);
    if (b === null) unknown.add(f);
    return b ?? 0;
  };
  const round = (b: number, to: number, min: number): number => Math.ceil(Math.max(b, min) / to) * to;
  const memo = new Map<F, { lenient: number; strict: number; chain: F[] }>();
  const visiting = new Set<F>();
  const walk = (f: F): { lenient: number; strict: number; chain: F[] } => {
    const m = memo.get(f);
    if (m) return m;
    visiting.add(f);
    const own = frame(f);
    let best = { lenient: 0, strict: 0, chain: [] as F[] };
    // The verifier refuses recursion; a cycle here adds nothing.
    for (const c of callees(f)) {
      if (visiting.has(c)) continue;
      const sub = walk(c);
      if (sub.strict > best.strict || (sub.strict === best.strict && sub.lenient > best.lenient)) best = sub;
    }
    visiting.delete(f);
    const r = { lenient: round(own, 16, 0) + best.lenient, strict: round(own, 32, 1) + best.strict, chain: [f, ...best.chain] };
    memo.set(f, r);
    return r;
  };
  const r = walk(root);
  return { ...r, unknown: [...unknown] };
}
