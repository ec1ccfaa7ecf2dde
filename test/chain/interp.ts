/**
 * A deliberately small eBPF interpreter for the instructions the chain epilogue uses (mov, add,
 * ld/st, jeq/jne/ja, map lookup, tail call, exit). Registers are 64-bit as the kernel's: a JEQ
 * with an immediate compares against the immediate sign-extended, a 32-bit move zero-extends, the
 * verdict map holds a u32, and exit returns r0's low 32 bits (the hook reads them as u32 for XDP,
 * as int for TC). It lets a test walk every path of the emitted
 * code without a kernel and count map lookups per path.
 */
import { type Insn, width } from '../../lab/bpf/insn.ts';

export interface InterpWorld {
  /** value stored in the verdict map (one u32; a negative number is taken as its u32) */
  C: number;
  /** whether the tail call finds a next program */
  hasNext: boolean;
  lookups: number;
  tailCalled: boolean;
  /** r3 at the tail call */
  tailIndex?: number;
  /** which ld_imm64 (by slot) loads which map */
  mapAt: Map<number, 'chain' | 'verdict'>;
}

/** Runs the epilogue with r0 = the body's verdict and ctx spilled at r10 + ctxSlot (r6-r9 hold junk). */
export function run(insns: readonly Insn[], r0: number, world: InterpWorld, ctxSlot: number, ctx = 0xc7c7): number | 'tail' {
  const reg: bigint[] = new Array<bigint>(11).fill(0x7777n);
  const stack = new Map<number, bigint>();
  reg[0] = BigInt(r0);
  reg[10] = 0n;
  stack.set(ctxSlot, BigInt(ctx));
  const slots: number[] = [];
  const bySlot = new Map<number, number>();
  let s = 0;
  insns.forEach((i, k) => {
    slots.push(s);
    bySlot.set(s, k);
    s += width(i);
  });
  const VERDICT_PTR = 0x1000n;
  const mask32 = (v: bigint): bigint => v & 0xffffffffn;
  let pc = 0;
  for (let steps = 0; steps < 10_000; steps++) {
    const i = insns[pc];
    if (!i) throw new Error(`pc ${pc} out of code`);
    const jumpTo = (off: number): void => {
      const k = bySlot.get(slots[pc]! + 1 + off);
      if (k === undefined) throw new Error(`bad jump from ${pc}`);
      pc = k;
    };
    let next = true;
    switch (i.code) {
      case 0xbf: reg[i.dst] = reg[i.src]!; break; // mov64 reg
      case 0xb7: reg[i.dst] = BigInt(i.imm); break; // mov64 imm
      case 0xbc: reg[i.dst] = mask32(reg[i.src]!); break; // mov32 reg
      case 0xb4: reg[i.dst] = mask32(BigInt(i.imm)); break; // mov32 imm
      case 0x07: reg[i.dst] = reg[i.dst]! + BigInt(i.imm); break; // add64 imm
      case 0x18: reg[i.dst] = world.mapAt.get(slots[pc]!) === 'chain' ? 0xaaaan : 0xbbbbn; break;
      case 0x62: // st32
        if (reg[i.dst] === VERDICT_PTR) world.C = i.imm >>> 0;
        else stack.set(Number(reg[i.dst]!) + i.off, BigInt(i.imm));
        break;
      case 0x7b: stack.set(Number(reg[i.dst]!) + i.off, reg[i.src]!); break; // stx64
      case 0x63: // stx32
        if (reg[i.dst] === VERDICT_PTR) world.C = Number(mask32(reg[i.src]!));
        else stack.set(Number(reg[i.dst]!) + i.off, mask32(reg[i.src]!));
        break;
      case 0x79: reg[i.dst] = stack.get(Number(reg[i.src]!) + i.off) ?? 0n; break; // ldx64
      case 0x61: // ldx32
        reg[i.dst] = reg[i.src] === VERDICT_PTR ? BigInt(world.C >>> 0) : mask32(stack.get(Number(reg[i.src]!) + i.off) ?? 0n);
        break;
      case 0x15: if (reg[i.dst] === BigInt(i.imm)) { jumpTo(i.off); next = false; } break;
      case 0x1d: if (reg[i.dst] === reg[i.src]) { jumpTo(i.off); next = false; } break; // jeq reg
      case 0x55: if (reg[i.dst] !== BigInt(i.imm)) { jumpTo(i.off); next = false; } break;
      case 0x05: jumpTo(i.off); next = false; break;
      case 0x85:
        if (i.imm === 1) {
          world.lookups++;
          reg[0] = reg[1] === 0xbbbbn ? VERDICT_PTR : 0n;
        } else if (i.imm === 12) {
          if (reg[1] !== BigInt(ctx) || reg[2] !== 0xaaaan) throw new Error('tail call with wrong ctx or map');
          world.tailCalled = true;
          world.tailIndex = Number(reg[3]);
          if (world.hasNext) return 'tail';
        } else throw new Error(`helper ${i.imm}`);
        for (let r = 1; r <= 5; r++) reg[r] = 0xdeadn;
        break;
      case 0x95: return Number(mask32(reg[0]!));
      default: throw new Error(`opcode 0x${i.code.toString(16)} not modelled`);
    }
    if (next) pc++;
  }
  throw new Error('no exit after 10000 steps');
}
