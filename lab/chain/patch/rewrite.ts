/**
 * The patch's fifth pass: rewrite the entry program's code. subprog: the body moves to .text as a
 * static function `<prog>__body` and the entry, which keeps the program's name and section, spills
 * ctx, calls the body and runs the epilogue. inline: the body stays in place behind a
 * one-instruction preamble that spills ctx, and each exit becomes a jump to the epilogue. The
 * bytes are replaced here; where every old offset went is left as a remap table for the next pass.
 */
import { type ElfSymbol, type Section, SHF_ALLOC, SHF_EXECINSTR, SHT_PROGBITS, STB_LOCAL, STT_FUNC, findSection, newSection } from '../../bpf/elf.ts';
import { Asm, BPF_DW, callPseudo, encodeInsns, isExit, ja, slotCount, stxMem, width } from '../../bpf/insn.ts';
import { type BpfObject, functionInsns } from '../../bpf/object.ts';
import { type ChainMark, emitChainTail } from './epilogue.ts';
import { patchError } from './errors.ts';
import { SUBPROG_ENTRY_STACK } from './layout.ts';
import { spliceRemap } from './remap.ts';
import type { CheckedOptions, Entry, ModePlan, Rewrite } from './types.ts';

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

export function rewriteEntry(obj: BpfObject, entry: Entry, plan: ModePlan, o: CheckedOptions, notes: string[]): Rewrite {
  return plan.mode === 'subprog' ? rewriteSubprog(obj, entry, plan, o, notes) : rewriteInline(obj, entry, plan, o, notes);
}

/** The entry's func_info record and first line_info record, read before anything moves. */
function entryInfo(obj: BpfObject, sec: Section, start: number, end: number): Pick<Rewrite, 'funcInfo' | 'firstLine'> {
  return {
    funcInfo: obj.ext?.func_info.find((b) => b.sec_name === sec.name)?.records.find((r) => r.insn_off === start),
    firstLine: obj.ext?.line_info.find((b) => b.sec_name === sec.name)?.records.filter((r) => r.insn_off >= start && r.insn_off < end).sort((p, q) => p.insn_off - q.insn_off)[0],
  };
}

function rewriteSubprog(obj: BpfObject, { prog, section: sec }: Entry, plan: Extract<ModePlan, { mode: 'subprog' }>, o: CheckedOptions, notes: string[]): Rewrite {
  const elf = obj.elf;
  const X = prog.value;
  const E = prog.value + prog.size;
  let text = findSection(elf, '.text');
  if (!text) {
    text = newSection('.text', SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 8);
    elf.sections.splice(elf.sections.indexOf(sec), 0, text);
  }
  text.addralign = Math.max(text.addralign, 8);
  const T = text.data.length;

  const a = new Asm<ChainMark>();
  // ctx survives the call in the entry's own frame, not in a callee-saved register (see emitChainTail).
  a.emit(stxMem(BPF_DW, 10, 1, -8));
  a.emit(callPseudo(), 'body');
  emitChainTail(a, { index: o.index, success: o.success, redirect: o.redirect, ctxSlot: -8, keyOff: -SUBPROG_ENTRY_STACK });
  const code = encodeInsns(a.finish());
  const delta = code.length - (E - X);

  const bodySym: ElfSymbol = { name: `${prog.name}__body`, bind: STB_LOCAL, type: STT_FUNC, other: 0, section: text, special: 0, value: T, size: prog.size };
  const info = entryInfo(obj, sec, X, E);
  const remap = spliceRemap(sec, X, E, { kind: 'move', section: text, base: T }, delta, new Set([prog]));
  text.data = concat(text.data, sec.data.subarray(X, E));
  sec.data = concat(sec.data.subarray(0, X), code, sec.data.subarray(E));
  prog.size = code.length;
  elf.symbols.push(bodySym);
  notes.push(...plan.notes);
  notes.push(`mode subprog: body moved to .text as static function "${bodySym.name}" (${E - X} bytes at .text+${T}); entry is ${slotCount(a.insns)} instructions`);
  return { remap, marks: { asm: a, base: X }, body: { symbol: bodySym, text }, ...info };
}

function rewriteInline(obj: BpfObject, { prog, section: sec }: Entry, plan: Extract<ModePlan, { mode: 'inline' }>, o: CheckedOptions, notes: string[]): Rewrite {
  const file = obj.elf.fileName;
  const X = prog.value;
  const E = prog.value + prog.size;
  const body = functionInsns(obj, prog).insns;
  const bodySlots = slotCount(body);
  let s = 0;
  const rewritten = body.map((insn) => {
    const at = s;
    s += width(insn);
    if (!isExit(insn)) return insn;
    const off = bodySlots - at - 1;
    if (off > 32767) throw patchError(file, `program "${prog.name}": exit at insn ${at} is too far from the epilogue for a 16-bit jump`, "Use mode 'subprog'.");
    return ja(off);
  });
  const a = new Asm();
  a.emit(stxMem(BPF_DW, 10, 1, plan.ctxSlot));
  const pre = a.slot();
  for (const insn of rewritten) a.emit(insn);
  const epi = a.slot();
  const tail = new Asm<ChainMark>();
  emitChainTail(tail, { index: o.index, success: o.success, redirect: o.redirect, keyOff: plan.keyOff, ctxSlot: plan.ctxSlot });
  const tailInsns = tail.finish();
  const code = concat(encodeInsns(a.finish()), encodeInsns(tailInsns));
  const delta = code.length - (E - X);

  const info = entryInfo(obj, sec, X, E);
  const remap = spliceRemap(sec, X, E, { kind: 'move', section: sec, base: X + pre * 8 }, delta, new Set([prog]));
  sec.data = concat(sec.data.subarray(0, X), code, sec.data.subarray(E));
  prog.size = code.length;
  notes.push(`mode inline: body stack reaches r10${plan.deepest}; ctx kept at r10${plan.ctxSlot}, map key at r10${plan.keyOff}; ${rewritten.filter((_, k) => isExit(body[k]!)).length} exits jump to a ${slotCount(tailInsns)}-instruction epilogue`);
  return { remap, marks: { asm: tail, base: X + epi * 8 }, body: null, ...info };
}
