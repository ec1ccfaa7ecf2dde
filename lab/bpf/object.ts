/**
 * A BPF object: the ELF model plus its decoded BTF and BTF.ext, read and written in the
 * fixed pass order of libbpf's linker (ELF → sanity checks → BTF → BTF.ext), then checked
 * across layers (code sections decode, relocations sit on instructions that take them,
 * BTF.ext records point inside existing code sections at FUNC types).
 */
import { LabError } from '../errors.ts';
import {
  type ElfObject,
  type ElfSymbol,
  type Section,
  SHF_EXECINSTR,
  SHT_PROGBITS,
  STT_FUNC,
  findSection,
  parseElf,
  relSectionFor,
} from './elf.ts';
import { writeElf } from './elf-write.ts';
import { StringTableBuilder } from './strtab.ts';
import { type Btf, BTF_KIND_FUNC, assembleBtf, encodeBtfTypes, parseBtf, typeById } from './btf.ts';
import { type BtfExt, encodeBtfExt, parseBtfExt } from './btf-ext.ts';
import {
  HELPER_TAIL_CALL,
  decodeInsns,
  isCall,
  isHelperCall,
  isLdImm64,
  isPseudoCall,
  isPseudoFuncAddr,
  type Insn,
} from './insn.ts';

export interface BpfObject {
  elf: ElfObject;
  btf: Btf | null;
  ext: BtfExt | null;
}

export const isCodeSection = (s: Section): boolean => s.type === SHT_PROGBITS && (s.flags & SHF_EXECINSTR) !== 0;

export function readObject(bytes: Uint8Array, fileName = '<object>'): BpfObject {
  const elf = parseElf(bytes, fileName);
  const btfSec = findSection(elf, '.BTF');
  const extSec = findSection(elf, '.BTF.ext');
  let btf: Btf | null = null;
  let ext: BtfExt | null = null;
  if (btfSec) {
    const parsed = parseBtf(btfSec.data, fileName);
    btf = parsed.btf;
    if (extSec) ext = parseBtfExt(extSec.data, parsed.strings, fileName);
  } else if (extSec) {
    throw new LabError('BTF', `${fileName}: section ".BTF.ext" present without ".BTF"`, {
      remedy: 'Rebuild the object with clang -g -target bpf.',
    });
  }
  const obj: BpfObject = { elf, btf, ext };
  checkObject(obj);
  return obj;
}

/** Re-encodes BTF and BTF.ext into their sections, then writes the ELF. */
export function writeObject(obj: BpfObject): Uint8Array {
  if (obj.btf) {
    const strings = new StringTableBuilder();
    const types = encodeBtfTypes(obj.btf, strings);
    const extBytes = obj.ext ? encodeBtfExt(obj.ext, strings, obj.elf.fileName) : null;
    const btfSec = findSection(obj.elf, '.BTF');
    if (!btfSec) throw new LabError('BTF', `${obj.elf.fileName}: writer: BTF present but no ".BTF" section`);
    btfSec.data = assembleBtf(obj.btf, types, strings.bytes());
    if (extBytes) {
      const extSec = findSection(obj.elf, '.BTF.ext');
      if (!extSec) throw new LabError('BTF', `${obj.elf.fileName}: writer: BTF.ext present but no ".BTF.ext" section`);
      extSec.data = extBytes;
    }
  }
  return writeElf(obj.elf);
}

function insnErr(file: string, sec: string, what: string): LabError {
  return new LabError('BAD_ELF', `${file}: section "${sec}": ${what}`, {
    remedy: 'Rebuild the object with clang -O2 -g -target bpf -c; it is corrupt.',
  });
}

/** Cross-layer sanity checks; the patch runs them on its own output too. */
export function checkObject(obj: BpfObject): void {
  const f = obj.elf.fileName;
  for (const s of obj.elf.sections) {
    if (!isCodeSection(s)) continue;
    const { insns, slots } = decodeInsns(s.data, f, s.name);
    const bySlot = new Map<number, Insn>();
    insns.forEach((i, k) => bySlot.set(slots[k]!, i));
    const rel = relSectionFor(obj.elf, s);
    for (const r of rel?.relocs ?? []) {
      if (r.offset % 8 !== 0) throw insnErr(f, s.name, `relocation at offset ${r.offset} is not on an instruction boundary`);
      const insn = bySlot.get(r.offset / 8);
      if (!insn) throw insnErr(f, s.name, `relocation at offset ${r.offset} points into the second half of ld_imm64`);
      if (!isLdImm64(insn) && !isCall(insn)) {
        throw insnErr(f, s.name, `insn ${r.offset / 8}: relocation on opcode 0x${insn.code.toString(16)} (expected ld_imm64 or call)`);
      }
    }
  }
  if (!obj.btf || !obj.ext) return;
  const btf = obj.btf;
  const checkSecs = (secs: { sec_name: string; records: { insn_off: number }[] }[], what: string): void => {
    for (const s of secs) {
      const sec = findSection(obj.elf, s.sec_name);
      if (!sec || !isCodeSection(sec)) {
        throw new LabError('BTF', `${f}: section ".BTF.ext": ${what} for "${s.sec_name}" which is not a code section`);
      }
      for (const r of s.records) {
        if (r.insn_off % 8 !== 0 || r.insn_off >= sec.data.length) {
          throw new LabError('BTF', `${f}: section ".BTF.ext": ${what} for "${s.sec_name}": insn_off ${r.insn_off} outside the section (${sec.data.length} bytes)`);
        }
      }
    }
  };
  checkSecs(obj.ext.func_info, 'func_info');
  checkSecs(obj.ext.line_info, 'line_info');
  checkSecs(obj.ext.core_relo, 'core_relo');
  for (const s of obj.ext.func_info) {
    for (const r of s.records) {
      const t = typeById(btf, r.type_id);
      if (!t || t.kind !== BTF_KIND_FUNC) {
        throw new LabError('BTF', `${f}: section ".BTF.ext": func_info for "${s.sec_name}" at ${r.insn_off}: type ${r.type_id} is not a FUNC`);
      }
    }
  }
  for (const s of obj.ext.core_relo) {
    for (const r of s.records) {
      if (r.type_id < 1 || r.type_id > btf.types.length) {
        throw new LabError('BTF', `${f}: section ".BTF.ext": core_relo for "${s.sec_name}" at ${r.insn_off}: type ${r.type_id} out of range`);
      }
    }
  }
}

export interface ProgramInfo {
  name: string;
  section: string;
  insns: number;
  hasSubprogCalls: boolean;
  hasTailCalls: boolean;
}

/** Entry programs: FUNC symbols in code sections other than .text (libbpf's rule). */
export function programSymbols(obj: BpfObject): ElfSymbol[] {
  return obj.elf.symbols.filter(
    (s) => s.type === STT_FUNC && s.section !== null && isCodeSection(s.section) && s.section.name !== '.text',
  );
}

/** The instructions of a function symbol (slot-indexed from the function start). */
export function functionInsns(obj: BpfObject, sym: ElfSymbol): { insns: Insn[]; slots: number[] } {
  const sec = sym.section!;
  if (sym.value % 8 !== 0 || sym.size % 8 !== 0) {
    throw insnErr(obj.elf.fileName, sec.name, `function "${sym.name}" at ${sym.value} size ${sym.size} not on instruction boundaries`);
  }
  return decodeInsns(sec.data.subarray(sym.value, sym.value + sym.size), obj.elf.fileName, sec.name);
}

export function listProgramInfo(obj: BpfObject): ProgramInfo[] {
  return programSymbols(obj).map((sym) => {
    const { insns } = functionInsns(obj, sym);
    const reach = reachableFunctions(obj, sym);
    return {
      name: sym.name,
      section: sym.section!.name,
      insns: sym.size / 8,
      // A callback's address is an ld_imm64 with src 0 and a relocation to .text in an object
      // (libbpf sets BPF_PSEUDO_FUNC only at load): reachability sees it, the opcode does not.
      hasSubprogCalls: reach.length > 1 || insns.some((i) => isPseudoCall(i) || isPseudoFuncAddr(i)),
      hasTailCalls: reach.some((f) => functionInsns(obj, f).insns.some((i) => isHelperCall(i, HELPER_TAIL_CALL))),
    };
  });
}

/**
 * The .text functions `fn` calls (bpf-to-bpf) or hands to a helper as a callback, following
 * relocations as libbpf does (sym value / 8 + imm + 1), and pc-relative calls within .text.
 */
export function calleesOf(obj: BpfObject, fn: ElfSymbol): ElfSymbol[] {
  const text = findSection(obj.elf, '.text');
  const textFuncs = obj.elf.symbols.filter((s) => s.type === STT_FUNC && s.section === text);
  const sec = fn.section!;
  const rel = relSectionFor(obj.elf, sec);
  const { insns, slots } = functionInsns(obj, fn);
  const out: ElfSymbol[] = [];
  insns.forEach((insn, k) => {
    const absSlot = fn.value / 8 + slots[k]!;
    const r = rel?.relocs.find((x) => x.offset === absSlot * 8);
    // A callback's address in a .o: ld_imm64 with src 0 relocated against .text; its target is
    // (symbol value + imm) bytes, as libbpf reads it before it sets BPF_PSEUDO_FUNC.
    const callbackAddr = isLdImm64(insn) && r !== undefined && text !== undefined && r.symbol.section === text;
    if (!isPseudoCall(insn) && !isPseudoFuncAddr(insn) && !callbackAddr) return;
    let targetSlot: number;
    if (callbackAddr || (r && isPseudoFuncAddr(insn))) targetSlot = (r!.symbol.value + insn.imm) / 8;
    else if (r) targetSlot = r.symbol.value / 8 + insn.imm + 1;
    else if (sec === text) targetSlot = absSlot + insn.imm + 1;
    else return;
    const callee = textFuncs.find((t) => targetSlot * 8 >= t.value && targetSlot * 8 < t.value + t.size);
    if (callee && !out.includes(callee)) out.push(callee);
  });
  return out;
}

/** The function and every .text function reachable from it by calls or callback addresses. */
export function reachableFunctions(obj: BpfObject, root: ElfSymbol): ElfSymbol[] {
  const seen = new Set<ElfSymbol>([root]);
  const work = [root];
  while (work.length > 0) {
    for (const callee of calleesOf(obj, work.pop()!)) {
      if (seen.has(callee)) continue;
      seen.add(callee);
      work.push(callee);
    }
  }
  return [...seen];
}
