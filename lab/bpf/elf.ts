/**
 * ELF64 little-endian relocatable objects, as clang writes them for the BPF target.
 *
 * The model keeps links as object references (a symbol points at its Section, a relocation at
 * its Symbol, a REL section at its target), so a pass can add, move or drop sections and symbols
 * without renumbering anything by hand; indices are recomputed only when writing. String tables,
 * the symbol table and REL sections are regenerated from the model (elf-write.ts); every other
 * section's bytes are kept as they are. String tables are built by strtab.ts.
 */
import { LabError } from '../errors.ts';

export const EM_BPF = 247;
export const ET_REL = 1;

export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHT_LLVM_ADDRSIG = 0x6fff4c03;

export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const SHF_INFO_LINK = 0x40;

export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;
export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;

export const SHN_UNDEF = 0;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;

/** BPF relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def). */
export const R_BPF_NONE = 0;
export const R_BPF_64_64 = 1;
export const R_BPF_64_ABS64 = 2;
export const R_BPF_64_ABS32 = 3;
export const R_BPF_64_NODYLD32 = 4;
export const R_BPF_64_32 = 10;

/** Section types we understand; anything else is refused rather than copied blindly. */
const KNOWN_SECTION_TYPES = new Set([
  SHT_NULL,
  SHT_PROGBITS,
  SHT_SYMTAB,
  SHT_STRTAB,
  SHT_NOTE,
  SHT_NOBITS,
  SHT_REL,
  SHT_LLVM_ADDRSIG,
]);

export interface Section {
  name: string;
  type: number;
  flags: number;
  addr: number;
  /** Raw sh_link / sh_info for sections whose links we do not model (NOTE, ADDRSIG...). */
  rawLink: number;
  rawInfo: number;
  addralign: number;
  entsize: number;
  /** Contents; empty for SYMTAB/STRTAB/REL (regenerated) and NOBITS. */
  data: Uint8Array;
  /** sh_size of a NOBITS section (which has no bytes in the file). */
  nobitsSize: number;
  /** REL: the section the relocations apply to. */
  target: Section | null;
  /** REL: the relocations, in file order. */
  relocs: Relocation[];
}

export interface ElfSymbol {
  name: string;
  bind: number;
  type: number;
  other: number;
  /** The section the symbol is defined in, or null for SHN_UNDEF / SHN_ABS / SHN_COMMON. */
  section: Section | null;
  /** The special st_shndx when section is null (SHN_UNDEF, SHN_ABS, SHN_COMMON). */
  special: number;
  value: number;
  size: number;
}

export interface Relocation {
  offset: number;
  type: number;
  symbol: ElfSymbol;
}

export interface ElfObject {
  fileName: string;
  /** e_ident[EI_OSABI], e_flags: copied through. */
  osabi: number;
  eflags: number;
  /** All sections except the null section 0, in file order. */
  sections: Section[];
  /** The symbol table; symbols[0] is the null symbol. */
  symbols: ElfSymbol[];
  symtab: Section;
  /** The string table holding symbol names. */
  strtab: Section;
  /** The string table holding section names (clang: the same section as strtab). */
  shstrtab: Section;
}

/** A malformed ELF file (or a model the writer cannot write), with the remedy for both. */
export function badElf(file: string, what: string): LabError {
  return new LabError('BAD_ELF', `${file}: ${what}`, {
    remedy: 'Rebuild the object with clang -O2 -g -target bpf -c; the file is truncated or corrupt.',
  });
}

function notBpf(file: string, what: string): LabError {
  return new LabError('NOT_BPF', `${file}: ${what}`, {
    remedy: 'Pass a BPF object file compiled with clang -target bpf -c (not an executable or a host .o).',
  });
}

/** Bounds-checked little-endian reads over a byte array. */
class Reader {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(off: number, len: number, what: string): void {
    if (!Number.isSafeInteger(off) || off < 0 || len < 0 || off + len > this.bytes.length) {
      throw badElf(this.file, `${what}: bytes ${off}..${off + len} beyond end of file (${this.bytes.length} bytes)`);
    }
  }
  u8(off: number, what: string): number {
    this.need(off, 1, what);
    return this.view.getUint8(off);
  }
  u16(off: number, what: string): number {
    this.need(off, 2, what);
    return this.view.getUint16(off, true);
  }
  u32(off: number, what: string): number {
    this.need(off, 4, what);
    return this.view.getUint32(off, true);
  }
  u64(off: number, what: string): number {
    this.need(off, 8, what);
    const v = this.view.getBigUint64(off, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw badElf(this.file, `${what}: value 0x${v.toString(16)} too large`);
    return Number(v);
  }
}

/** Reads a NUL-terminated string from a string table section's bytes. */
export function readCString(table: Uint8Array, off: number, file: string, what: string): string {
  if (off < 0 || off >= table.length) {
    if (off === 0 && table.length === 0) return '';
    throw badElf(file, `${what}: string offset ${off} outside string table (${table.length} bytes)`);
  }
  const end = table.indexOf(0, off);
  if (end < 0) throw badElf(file, `${what}: string at ${off} is not NUL-terminated`);
  return new TextDecoder().decode(table.subarray(off, end));
}

/** Parses an ELF64 LE relocatable object for EM_BPF, checking every index and offset. */
export function parseElf(bytes: Uint8Array, fileName = '<object>'): ElfObject {
  const f = fileName;
  const r = new Reader(bytes, f);
  if (bytes.length < 16 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw badElf(f, 'not an ELF file (bad magic)');
  }
  const cls = bytes[4];
  const data = bytes[5];
  if (cls !== 2) throw notBpf(f, `ELF class ${cls} is not ELF64; BPF objects are 64-bit`);
  if (data !== 1) throw notBpf(f, `ELF data encoding ${data} is not little-endian; only LE BPF objects are supported`);
  if (bytes.length < 64) throw badElf(f, `ELF header truncated (${bytes.length} bytes)`);
  const osabi = r.u8(7, 'e_ident');
  const eType = r.u16(16, 'e_type');
  const machine = r.u16(18, 'e_machine');
  if (machine !== EM_BPF) throw notBpf(f, `e_machine ${machine} is not EM_BPF (247)`);
  if (eType !== ET_REL) throw notBpf(f, `e_type ${eType} is not ET_REL: not a relocatable object`);
  const eflags = r.u32(48, 'e_flags');
  const shoff = r.u64(40, 'e_shoff');
  const shentsize = r.u16(58, 'e_shentsize');
  let shnum = r.u16(60, 'e_shnum');
  const shstrndx = r.u16(62, 'e_shstrndx');
  if (shentsize !== 64) throw badElf(f, `e_shentsize ${shentsize} is not 64`);
  if (shoff === 0) throw badElf(f, 'no section header table');
  if (shnum === 0) {
    // More than 0xff00 sections: the count lives in section 0's sh_size. We refuse them.
    throw badElf(f, 'extended section numbering is not supported');
  }
  r.need(shoff, shnum * 64, 'section header table');
  if (shstrndx === SHN_XINDEX || shstrndx >= shnum || shstrndx === 0) {
    throw badElf(f, `e_shstrndx ${shstrndx} out of range (${shnum} sections)`);
  }

  interface RawSh {
    nameOff: number;
    type: number;
    flags: number;
    addr: number;
    offset: number;
    size: number;
    link: number;
    info: number;
    addralign: number;
    entsize: number;
  }
  const raw: RawSh[] = [];
  for (let i = 0; i < shnum; i++) {
    const b = shoff + i * 64;
    const w = `section header ${i}`;
    raw.push({
      nameOff: r.u32(b, w),
      type: r.u32(b + 4, w),
      flags: r.u64(b + 8, w),
      addr: r.u64(b + 16, w),
      offset: r.u64(b + 24, w),
      size: r.u64(b + 32, w),
      link: r.u32(b + 40, w),
      info: r.u32(b + 44, w),
      addralign: r.u64(b + 48, w),
      entsize: r.u64(b + 56, w),
    });
  }
  const shstrRaw = raw[shstrndx]!;
  if (shstrRaw.type !== SHT_STRTAB) throw badElf(f, `e_shstrndx ${shstrndx} is not a string table`);
  r.need(shstrRaw.offset, shstrRaw.size, 'section name table');
  const shstrBytes = bytes.subarray(shstrRaw.offset, shstrRaw.offset + shstrRaw.size);

  const sections: (Section | null)[] = [null];
  for (let i = 1; i < shnum; i++) {
    const s = raw[i]!;
    const name = readCString(shstrBytes, s.nameOff, f, `section ${i} name`);
    const where = `section ${i} "${name}"`;
    if (!KNOWN_SECTION_TYPES.has(s.type)) {
      throw badElf(f, `${where}: unknown section type 0x${s.type.toString(16)}`);
    }
    if (s.type === SHT_NULL) throw badElf(f, `${where}: SHT_NULL section after index 0`);
    if (s.type !== SHT_NOBITS) r.need(s.offset, s.size, `${where} contents`);
    if (s.addralign > 1 && (s.addralign & (s.addralign - 1)) !== 0) {
      throw badElf(f, `${where}: alignment ${s.addralign} is not a power of two`);
    }
    if (s.addralign > 4096) throw badElf(f, `${where}: alignment ${s.addralign} unreasonably large`);
    const keepsBytes = s.type === SHT_PROGBITS || s.type === SHT_NOTE || s.type === SHT_LLVM_ADDRSIG;
    sections.push({
      name,
      type: s.type,
      flags: s.flags,
      addr: s.addr,
      rawLink: s.link,
      rawInfo: s.info,
      addralign: s.addralign,
      entsize: s.entsize,
      data: keepsBytes ? bytes.slice(s.offset, s.offset + s.size) : new Uint8Array(0),
      nobitsSize: s.type === SHT_NOBITS ? s.size : 0,
      target: null,
      relocs: [],
    });
  }
  const sectionAt = (i: number, what: string): Section => {
    const s = i > 0 && i < sections.length ? sections[i] : null;
    if (!s) throw badElf(f, `${what}: section index ${i} out of range (1..${shnum - 1})`);
    return s;
  };

  // Symbol table: exactly one.
  const symtabIdx = raw.map((s, i) => (s.type === SHT_SYMTAB ? i : -1)).filter((i) => i > 0);
  if (symtabIdx.length !== 1) throw badElf(f, `expected one symbol table, found ${symtabIdx.length}`);
  const stIdx = symtabIdx[0]!;
  const st = raw[stIdx]!;
  const symtab = sectionAt(stIdx, 'symbol table');
  if (st.entsize !== 24) throw badElf(f, `section "${symtab.name}": symbol entry size ${st.entsize} is not 24`);
  if (st.size % 24 !== 0) throw badElf(f, `section "${symtab.name}": size ${st.size} not a multiple of 24`);
  const strtab = sectionAt(st.link, `section "${symtab.name}" sh_link`);
  if (strtab.type !== SHT_STRTAB) throw badElf(f, `section "${symtab.name}": sh_link ${st.link} is not a string table`);
  const strRaw = raw[st.link]!;
  const strBytes = bytes.subarray(strRaw.offset, strRaw.offset + strRaw.size);
  const nsyms = st.size / 24;
  if (nsyms === 0) throw badElf(f, 'symbol table is empty (no null symbol)');
  if (st.info > nsyms) throw badElf(f, `symbol table sh_info ${st.info} beyond ${nsyms} symbols`);
  const symbols: ElfSymbol[] = [];
  for (let i = 0; i < nsyms; i++) {
    const b = st.offset + i * 24;
    const w = `symbol ${i}`;
    const nameOff = r.u32(b, w);
    const info = r.u8(b + 4, w);
    const other = r.u8(b + 5, w);
    const shndx = r.u16(b + 6, w);
    const value = r.u64(b + 8, w);
    const size = r.u64(b + 16, w);
    const name = readCString(strBytes, nameOff, f, `${w} name`);
    let section: Section | null = null;
    let special = 0;
    if (shndx === SHN_XINDEX) throw badElf(f, `${w} "${name}": SHN_XINDEX is not supported`);
    if (shndx === SHN_UNDEF || shndx === SHN_ABS || shndx === SHN_COMMON) special = shndx;
    else if (shndx >= 0xff00) throw badElf(f, `${w} "${name}": reserved section index 0x${shndx.toString(16)}`);
    else section = sectionAt(shndx, `${w} "${name}"`);
    const sym: ElfSymbol = { name, bind: info >> 4, type: info & 0xf, other, section, special, value, size };
    if (section && section.type !== SHT_NOBITS && sym.type !== STT_SECTION) {
      const secSize = section.data.length + section.nobitsSize;
      if (value > secSize || value + size > secSize) {
        throw badElf(f, `${w} "${name}": value ${value} size ${size} beyond section "${section.name}" (${secSize} bytes)`);
      }
    }
    symbols.push(sym);
  }

  // REL sections.
  for (let i = 1; i < shnum; i++) {
    const s = raw[i]!;
    if (s.type !== SHT_REL) continue;
    const sec = sections[i]!;
    const where = `section "${sec.name}"`;
    if (s.entsize !== 16) throw badElf(f, `${where}: relocation entry size ${s.entsize} is not 16`);
    if (s.size % 16 !== 0) throw badElf(f, `${where}: size ${s.size} not a multiple of 16`);
    if (s.link !== stIdx) throw badElf(f, `${where}: sh_link ${s.link} is not the symbol table (${stIdx})`);
    const target = sectionAt(s.info, `${where} sh_info`);
    if (target.type === SHT_REL || target.type === SHT_SYMTAB || target.type === SHT_STRTAB) {
      throw badElf(f, `${where}: relocates a ${target.type === SHT_REL ? 'REL' : 'table'} section`);
    }
    sec.target = target;
    const tsize = target.data.length;
    for (let k = 0; k < s.size / 16; k++) {
      const b = s.offset + k * 16;
      const w = `${where}: relocation ${k}`;
      const offset = r.u64(b, w);
      const rInfo = r.view.getBigUint64(b + 8, true);
      const symIdx = Number(rInfo >> 32n);
      const type = Number(rInfo & 0xffffffffn);
      if (symIdx >= nsyms) throw badElf(f, `${w}: symbol index ${symIdx} beyond ${nsyms} symbols`);
      if (offset >= tsize) throw badElf(f, `${w}: offset ${offset} beyond section "${target.name}" (${tsize} bytes)`);
      sec.relocs.push({ offset, type, symbol: symbols[symIdx]! });
    }
  }

  const shstrtab = sections[shstrndx]!;
  // STRTAB sections other than the two we regenerate keep their bytes.
  for (let i = 1; i < shnum; i++) {
    const s = sections[i]!;
    if (s.type === SHT_STRTAB && s !== shstrtab && s !== strtab) {
      s.data = bytes.slice(raw[i]!.offset, raw[i]!.offset + raw[i]!.size);
    }
  }
  return {
    fileName: f,
    osabi,
    eflags,
    sections: sections.filter((s): s is Section => s !== null),
    symbols,
    symtab,
    strtab,
    shstrtab,
  };
}

export function findSection(obj: ElfObject, name: string): Section | undefined {
  return obj.sections.find((s) => s.name === name);
}

/** The REL section that relocates `target`, if any. */
export function relSectionFor(obj: ElfObject, target: Section): Section | undefined {
  return obj.sections.find((s) => s.type === SHT_REL && s.target === target);
}

/** A fresh section with defaults; the caller inserts it into obj.sections. */
export function newSection(name: string, type: number, flags: number, addralign: number, data = new Uint8Array(0)): Section {
  return {
    name,
    type,
    flags,
    addr: 0,
    rawLink: 0,
    rawInfo: 0,
    addralign,
    entsize: 0,
    data,
    nobitsSize: 0,
    target: null,
    relocs: [],
  };
}
