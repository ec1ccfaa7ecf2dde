/**
 * The chain epilogue (thesis Algorithm 3.4, after the body): continue, remember or leave on the
 * body's verdict, tail-call the next index, and return the remembered verdict at the chain's end.
 * Emitted into an Asm whose marked instructions the relocation pass ties to the chain's maps.
 */
import {
  type Asm,
  BPF_ALU,
  BPF_DW,
  BPF_JEQ,
  BPF_JMP,
  BPF_K,
  BPF_MOV,
  BPF_X,
  type Insn,
  BPF_W,
  HELPER_MAP_LOOKUP_ELEM,
  HELPER_TAIL_CALL,
  add64Imm,
  callHelper,
  exit,
  jeqImm,
  ldMap,
  ldxMem,
  mov32Reg,
  mov64Imm,
  mov64Reg,
  stImm,
  stxMem,
} from '../../bpf/insn.ts';

/** Which use of the verdict map an ld_imm64 is for (all relocate against the same map). */
export type VerdictMark = 'verdict:store' | 'verdict:end' | 'verdict:clear';
/** What a marked instruction of the patched entry is relocated against. */
export type ChainMark = 'chain' | 'body' | VerdictMark;

/** The symbol each mark's relocation names: the chain map, the verdict map, or the moved body. */
export const MARK_TARGET: Readonly<Record<ChainMark, 'chain' | 'verdict' | 'body'>> = {
  chain: 'chain',
  body: 'body',
  'verdict:store': 'verdict',
  'verdict:end': 'verdict',
  'verdict:clear': 'verdict',
};

/**
 * The jump to `label` when c (zero-extended to 64 bits by the mov32 before) equals verdict v. A
 * JEQ with an immediate compares 64 bits against the immediate sign-extended, so a negative
 * verdict (TC_ACT_UNSPEC, -1: 0xffffffff in r0, 0xffffffffffffffff as the immediate) would never
 * match: it goes through r1 loaded by a 32-bit move, which zero-extends like r0. (JMP32 would do
 * in one instruction but needs 5.1+; this keeps every kernel.) r1 is free here: the body's call
 * or exit left it dead.
 */
function jumpIfVerdict(a: Asm<ChainMark>, v: number, label: string): void {
  if (v >= 0) {
    a.jump(jeqImm(0, v, 0), label);
    return;
  }
  const mov32Imm: Insn = { code: BPF_ALU | BPF_MOV | BPF_K, dst: 1, src: 0, off: 0, imm: v };
  const jeqReg: Insn = { code: BPF_JMP | BPF_JEQ | BPF_X, dst: 0, src: 1, off: 0, imm: 0 };
  a.emit(mov32Imm);
  a.jump(jeqReg, label);
}

export interface TailOptions {
  index: number;
  success: number[];
  redirect: number[];
}

/**
 * Emits the chain epilogue. On entry r0 holds the body's verdict and the stack slot ctxSlot holds
 * ctx; keyOff names 4 bytes for the map key. Only reachable blocks are emitted: the verifier
 * rejects unreachable instructions.
 *
 * The saved verdict C is zero whenever no packet is inside the chain on this CPU (XDP and TC run
 * one packet at a time per CPU, with preemption off): every way out of the chain leaves it zero. So the head needs no reset,
 * and the common path (every program returns an S verdict) touches the map once, at the end of
 * the chain, which must read C anyway:
 * - c ∉ S ∪ R: the packet leaves early; a non-head clears C (an earlier program may have set it);
 *   the head returns at once (C is zero at the head by the invariant).
 * - c ∈ R: C ← c, then the tail call.
 * - no next program (the tail call returned): return C ≠ 0 ? C : c and clear C.
 * When the last program itself returns an R verdict, its own verdict wins over an earlier
 * remembered one (it stores before the tail call tells it that it is last).
 *
 * Each verdict of S and R gets its own block, in which c is a constant: then nothing needs a
 * callee-saved register (r6-r9), which the x86-64 JIT (5.10+) pushes in the prologue and pops at
 * every tail call only when the program uses it. Where the stack has a slot for the key apart from
 * ctx's, the early exit keeps c in ctx's slot (ctx is no longer needed there); otherwise c, and
 * ctx on the remembering path, stay in r6.
 */
export function emitChainTail(a: Asm<ChainMark>, o: TailOptions & { keyOff: number; ctxSlot: number }): void {
  const head = o.index === 0;
  const R = o.redirect;
  const S = o.success.filter((v) => !R.includes(v));
  const lookup = (mark: VerdictMark): void => {
    a.emit(stImm(BPF_W, 10, o.keyOff, 0));
    a.emit(mov64Reg(2, 10));
    a.emit(add64Imm(2, o.keyOff));
    a.emit(ldMap(1), mark);
    a.emit(callHelper(HELPER_MAP_LOOKUP_ELEM));
  };
  // Without a slot of its own, the key overwrites ctx's slot: a path that looks up before its tail
  // call keeps ctx in r6 first.
  const roomy = o.keyOff !== o.ctxSlot;
  const tailCall = (ctxInR6 = false): void => {
    a.emit(ctxInR6 ? mov64Reg(1, 6) : ldxMem(BPF_DW, 1, 10, o.ctxSlot));
    a.emit(ldMap(2), 'chain');
    a.emit(mov64Imm(3, o.index + 1)); // immediate: lets the JIT emit a direct jump
    a.emit(callHelper(HELPER_TAIL_CALL));
  };
  // Only reached when there is no next program: return C if set (and clear it), else v.
  const endOfChain = (v: number, ret: string): void => {
    lookup('verdict:end');
    a.jump(jeqImm(0, 0, 0), ret);
    a.emit(ldxMem(BPF_W, 1, 0, 0));
    a.jump(jeqImm(1, 0, 0), ret);
    a.emit(stImm(BPF_W, 0, 0, 0)); // C ← 0
    a.emit(mov64Reg(0, 1));
    a.emit(exit());
    a.label(ret);
    a.emit(mov64Imm(0, v));
    a.emit(exit());
  };

  a.emit(mov32Reg(0, 0)); // c, as the kernel sees it (u32)
  // Success verdicts first: the common path takes the first branch. (S and R are disjoint here.)
  S.forEach((v, k) => jumpIfVerdict(a, v, `success:${k}`));
  R.forEach((v, k) => jumpIfVerdict(a, v, `redirect:${k}`));
  // c ∉ S ∪ R: the packet leaves the chain here.
  if (!head) {
    a.emit(roomy ? stxMem(BPF_DW, 10, 0, o.ctxSlot) : mov64Reg(6, 0));
    lookup('verdict:clear');
    a.jump(jeqImm(0, 0, 0), 'leave');
    a.emit(stImm(BPF_W, 0, 0, 0)); // C ← 0
    a.label('leave');
    a.emit(roomy ? ldxMem(BPF_DW, 0, 10, o.ctxSlot) : mov64Reg(0, 6));
  }
  a.emit(exit());
  S.forEach((v, k) => {
    a.label(`success:${k}`);
    tailCall();
    if (head) {
      // C is zero at the head and nothing stored it: no lookup.
      a.emit(mov64Imm(0, v));
      a.emit(exit());
    } else endOfChain(v, `return:success:${k}`);
  });
  R.forEach((v, k) => {
    a.label(`redirect:${k}`);
    if (!roomy) a.emit(ldxMem(BPF_DW, 6, 10, o.ctxSlot));
    lookup('verdict:store');
    a.jump(jeqImm(0, 0, 0), `tail:${k}`);
    a.emit(stImm(BPF_W, 0, 0, v)); // C ← c
    a.label(`tail:${k}`);
    tailCall(!roomy);
    endOfChain(v, `return:redirect:${k}`);
  });
}
