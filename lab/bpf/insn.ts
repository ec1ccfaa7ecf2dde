/**
 * eBPF instructions. Knows nothing of ELF or kernels (cilium/ebpf's asm/ split): decode bytes to
 * instructions, encode them back, and build the few instructions the patch needs. A 16-byte
 * `ld_imm64` is one instruction of width 2, so instruction indices here are slots (8-byte units),
 * matching the kernel's and libbpf's numbering.
 */
import { LabError } from '../errors.ts';

export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;

export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;

export const BPF_IMM = 0x00;
export const BPF_MEM = 0x60;
export const BPF_MEMSX = 0x80;
export const BPF_ATOMIC = 0xc0;

export const BPF_K = 0x00;
export const BPF_X = 0x08;

export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MOV = 0xb0;

export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JNE = 0x50;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;

export const BPF_PSEUDO_MAP_FD = 1;
export const BPF_PSEUDO_CALL = 1;
export const BPF_PSEUDO_FUNC = 4;
export const BPF_PSEUDO_KFUNC_CALL = 2;

export const HELPER_MAP_LOOKUP_ELEM = 1;
export const HELPER_TAIL_CALL = 12;

export const OP_LD_IMM64 = BPF_LD | BPF_DW | BPF_IMM; // 0x18

export interface Insn {
  code: number;
  dst: number;
  src: number;
  /** signed 16-bit */
  off: number;
  /** signed 32-bit */
  imm: number;
  /** ld_imm64 only: the second slot's imm (upper 32 bits of the constant). */
  imm2?: number;
}

export const cls = (i: Insn): number => i.code & 0x07;
export const isLdImm64 = (i: Insn): boolean => i.code === OP_LD_IMM64;
export const width = (i: Insn): number => (isLdImm64(i) ? 2 : 1);
export const isExit = (i: Insn): boolean => i.code === (BPF_JMP | BPF_EXIT);
export const isCall = (i: Insn): boolean => i.code === (BPF_JMP | BPF_CALL);
export const isHelperCall = (i: Insn, id?: number): boolean =>
  isCall(i) && i.src === 0 && (id === undefined || i.imm === id);
export const isPseudoCall = (i: Insn): boolean => isCall(i) && i.src === BPF_PSEUDO_CALL;
export const isPseudoFuncAddr = (i: Insn): boolean => isLdImm64(i) && i.src === BPF_PSEUDO_FUNC;
/** A jump whose `off` field is a pc-relative target (not call/exit). */
export const isJumpWithOffset = (i: Insn): boolean => {
  const c = cls(i);
  if (c !== BPF_JMP && c !== BPF_JMP32) return false;
  const op = i.code & 0xf0;
  return op !== BPF_CALL && op !== BPF_EXIT;
};

export function insnError(file: string, section: string, index: number, what: string): LabError {
  return new LabError('BAD_ELF', `${file}: section "${section}": insn ${index}: ${what}`, {
    remedy: 'Rebuild the object with clang -O2 -g -target bpf -c; its code is truncated or corrupt.',
  });
}

/** A decoded instruction stream; `slot[k]` is the slot index of insns[k]. */
export interface Decoded {
  insns: Insn[];
  slots: number[];
}

export function decodeInsns(bytes: Uint8Array, file = '<object>', section = '?'): Decoded {
  if (bytes.length % 8 !== 0) {
    throw insnError(file, section, Math.floor(bytes.length / 8), `section size ${bytes.length} is not a multiple of 8`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const insns: Insn[] = [];
  const slots: number[] = [];
  const n = bytes.length / 8;
  for (let k = 0; k < n; k++) {
    const b = k * 8;
    const regs = v.getUint8(b + 1);
    const insn: Insn = {
      code: v.getUint8(b),
      dst: regs & 0x0f,
      src: regs >> 4,
      off: v.getInt16(b + 2, true),
      imm: v.getInt32(b + 4, true),
    };
    slots.push(k);
    if (isLdImm64(insn)) {
      if (k + 1 >= n) throw insnError(file, section, k, 'ld_imm64 truncated (second half missing)');
      const b2 = b + 8;
      if (v.getUint8(b2) !== 0 || v.getUint8(b2 + 1) !== 0 || v.getInt16(b2 + 2, true) !== 0) {
        throw insnError(file, section, k, 'ld_imm64 second half has non-zero code/regs/off');
      }
      insn.imm2 = v.getInt32(b2 + 4, true);
      k++;
    }
    insns.push(insn);
  }
  return { insns, slots };
}

export function encodeInsns(insns: readonly Insn[]): Uint8Array {
  let n = 0;
  for (const i of insns) n += width(i);
  const out = new Uint8Array(n * 8);
  const v = new DataView(out.buffer);
  let b = 0;
  for (const i of insns) {
    v.setUint8(b, i.code);
    v.setUint8(b + 1, ((i.src & 0xf) << 4) | (i.dst & 0xf));
    v.setInt16(b + 2, i.off, true);
    v.setInt32(b + 4, i.imm, true);
    b += 8;
    if (isLdImm64(i)) {
      v.setInt32(b + 4, i.imm2 ?? 0, true);
      b += 8;
    }
  }
  return out;
}

export function slotCount(insns: readonly Insn[]): number {
  let n = 0;
  for (const i of insns) n += width(i);
  return n;
}

// --- builders (the few instructions the patch emits) ---

export const mov64Reg = (dst: number, src: number): Insn => ({ code: BPF_ALU64 | BPF_MOV | BPF_X, dst, src, off: 0, imm: 0 });
export const mov64Imm = (dst: number, imm: number): Insn => ({ code: BPF_ALU64 | BPF_MOV | BPF_K, dst, src: 0, off: 0, imm });
/** 32-bit move: zero-extends, available on every kernel (unlike JMP32, 5.1+). */
export const mov32Reg = (dst: number, src: number): Insn => ({ code: BPF_ALU | BPF_MOV | BPF_X, dst, src, off: 0, imm: 0 });
export const add64Imm = (dst: number, imm: number): Insn => ({ code: BPF_ALU64 | BPF_ADD | BPF_K, dst, src: 0, off: 0, imm });
export const ldxMem = (size: number, dst: number, src: number, off: number): Insn => ({ code: BPF_LDX | BPF_MEM | size, dst, src, off, imm: 0 });
export const stxMem = (size: number, dst: number, src: number, off: number): Insn => ({ code: BPF_STX | BPF_MEM | size, dst, src, off, imm: 0 });
export const stImm = (size: number, dst: number, off: number, imm: number): Insn => ({ code: BPF_ST | BPF_MEM | size, dst, src: 0, off, imm });
export const jeqImm = (dst: number, imm: number, off: number): Insn => ({ code: BPF_JMP | BPF_JEQ | BPF_K, dst, src: 0, off, imm });
export const jneImm = (dst: number, imm: number, off: number): Insn => ({ code: BPF_JMP | BPF_JNE | BPF_K, dst, src: 0, off, imm });
export const ja = (off: number): Insn => ({ code: BPF_JMP | BPF_JA, dst: 0, src: 0, off, imm: 0 });
export const callHelper = (id: number): Insn => ({ code: BPF_JMP | BPF_CALL, dst: 0, src: 0, off: 0, imm: id });
/** bpf-to-bpf call; imm is filled by the loader from the relocation (imm -1 = symbol start). */
export const callPseudo = (): Insn => ({ code: BPF_JMP | BPF_CALL, dst: 0, src: BPF_PSEUDO_CALL, off: 0, imm: -1 });
/** ld_imm64 of a map; the loader fills the fd from the relocation. */
export const ldMap = (dst: number): Insn => ({ code: OP_LD_IMM64, dst, src: BPF_PSEUDO_MAP_FD, off: 0, imm: 0, imm2: 0 });
export const exit = (): Insn => ({ code: BPF_JMP | BPF_EXIT, dst: 0, src: 0, off: 0, imm: 0 });

/**
 * A tiny assembler with labels: jumps name a label and get their pc-relative `off` when the
 * code is finished, so inserting an instruction cannot misplace a target. `M` is the caller's
 * union of marks (what a marked instruction is relocated against); an Asm without one takes none.
 */
export class Asm<M extends string = never> {
  readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string }[] = [];
  /** Instructions a caller attaches a relocation to, by slot; one mark may name several (one map loaded twice). */
  readonly marks: { mark: M; slot: number }[] = [];

  slot(): number {
    return slotCount(this.insns);
  }
  emit(i: Insn, mark?: M): this {
    if (mark) this.marks.push({ mark, slot: this.slot() });
    this.insns.push(i);
    return this;
  }
  label(name: string): this {
    this.labels.set(name, this.slot());
    return this;
  }
  /** Emits a jump whose target is a label (the insn's off is fixed in finish()). */
  jump(i: Insn, label: string): this {
    this.fixups.push({ at: this.insns.length, label });
    this.insns.push(i);
    return this;
  }
  finish(): Insn[] {
    const slotOf: number[] = [];
    let s = 0;
    for (const i of this.insns) {
      slotOf.push(s);
      s += width(i);
    }
    for (const fx of this.fixups) {
      const target = this.labels.get(fx.label);
      if (target === undefined) throw new LabError('PATCH', `internal: undefined label ${fx.label}`);
      const off = target - (slotOf[fx.at]! + 1);
      if (off < -32768 || off > 32767) throw new LabError('PATCH', `jump to ${fx.label} out of 16-bit range (${off})`);
      this.insns[fx.at] = { ...this.insns[fx.at]!, off };
    }
    return this.insns;
  }
}
