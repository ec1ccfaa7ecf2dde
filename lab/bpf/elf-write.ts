/**
 * Writes an ElfObject back to an ELF64 little-endian relocatable file: the symbol table (locals
 * first), its string tables and every REL section are regenerated from the model; other sections'
 * bytes are written as they are, each at its alignment, then the section header table.
 */
import { type ElfObject, type ElfSymbol, type Section, EM_BPF, ET_REL, SHN_UNDEF, SHT_LLVM_ADDRSIG, SHT_NOBITS, SHT_REL, STB_LOCAL, badElf } from './elf.ts';
import { StringTableBuilder } from './strtab.ts';

const align = (n: number, a: number): number => (a > 1 ? Math.ceil(n / a) * a : n);

/**
 * Writes the object. Symbols are emitted locals first (ELF requires it; sh_info of the
 * symbol table is the first non-local), REL sections and string tables are regenerated.
 */
export function writeElf(obj: ElfObject): Uint8Array {
  const f = obj.fileName;
  const sections = obj.sections;
  const secIndex = new Map<Section, number>();
  sections.forEach((s, i) => secIndex.set(s, i + 1));
  if (!secIndex.has(obj.symtab) || !secIndex.has(obj.strtab) || !secIndex.has(obj.shstrtab)) {
    throw badElf(f, 'writer: symbol table or string table missing from the section list');
  }

  const nullSym = obj.symbols[0];
  const rest = obj.symbols.slice(1);
  const locals = rest.filter((s) => s.bind === STB_LOCAL);
  const globals = rest.filter((s) => s.bind !== STB_LOCAL);
  const ordered = [nullSym ?? emptySymbol(), ...locals, ...globals];
  const symIndex = new Map<ElfSymbol, number>();
  ordered.forEach((s, i) => symIndex.set(s, i));

  // String tables.
  const sharedStrtab = obj.strtab === obj.shstrtab;
  const symStr = new StringTableBuilder();
  const shStr = sharedStrtab ? symStr : new StringTableBuilder();
  const shNameOff = sections.map((s) => shStr.add(s.name));
  const symNameOff = ordered.map((s) => symStr.add(s.name));

  // Symbol table bytes.
  const symBytes = new Uint8Array(ordered.length * 24);
  const sv = new DataView(symBytes.buffer);
  ordered.forEach((s, i) => {
    const b = i * 24;
    sv.setUint32(b, symNameOff[i]!, true);
    sv.setUint8(b + 4, ((s.bind & 0xf) << 4) | (s.type & 0xf));
    sv.setUint8(b + 5, s.other);
    let shndx = s.special;
    if (s.section) {
      const idx = secIndex.get(s.section);
      if (idx === undefined) throw badElf(f, `writer: symbol "${s.name}" is in section "${s.section.name}" which is not written`);
      shndx = idx;
    }
    sv.setUint16(b + 6, shndx, true);
    sv.setBigUint64(b + 8, BigInt(s.value), true);
    sv.setBigUint64(b + 16, BigInt(s.size), true);
  });

  const contents = new Map<Section, Uint8Array>();
  for (const s of sections) {
    if (s === obj.symtab) contents.set(s, symBytes);
    else if (s === obj.strtab) contents.set(s, symStr.bytes());
    else if (s === obj.shstrtab) contents.set(s, shStr.bytes());
    else if (s.type === SHT_REL) {
      const out = new Uint8Array(s.relocs.length * 16);
      const v = new DataView(out.buffer);
      s.relocs.forEach((rel, k) => {
        const si = symIndex.get(rel.symbol);
        if (si === undefined) throw badElf(f, `writer: section "${s.name}": relocation ${k} names a symbol not in the table`);
        v.setBigUint64(k * 16, BigInt(rel.offset), true);
        v.setBigUint64(k * 16 + 8, (BigInt(si) << 32n) | BigInt(rel.type >>> 0), true);
      });
      contents.set(s, out);
    } else contents.set(s, s.data);
  }

  // Layout: header, section contents in order, section header table.
  let off = 64;
  const offsets: number[] = [];
  for (const s of sections) {
    const a = Math.max(1, s.addralign);
    off = align(off, a);
    offsets.push(off);
    if (s.type !== SHT_NOBITS) off += contents.get(s)!.length;
  }
  const shoff = align(off, 8);
  const total = shoff + (sections.length + 1) * 64;
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, obj.osabi]);
  v.setUint16(16, ET_REL, true);
  v.setUint16(18, EM_BPF, true);
  v.setUint32(20, 1, true);
  v.setBigUint64(40, BigInt(shoff), true);
  v.setUint32(48, obj.eflags, true);
  v.setUint16(52, 64, true);
  v.setUint16(58, 64, true);
  v.setUint16(60, sections.length + 1, true);
  v.setUint16(62, secIndex.get(obj.shstrtab)!, true);

  sections.forEach((s, i) => {
    const data = contents.get(s)!;
    if (s.type !== SHT_NOBITS) out.set(data, offsets[i]!);
    const b = shoff + (i + 1) * 64;
    let link = s.rawLink;
    let info = s.rawInfo;
    let entsize = s.entsize;
    if (s === obj.symtab) {
      link = secIndex.get(obj.strtab)!;
      info = 1 + locals.length;
      entsize = 24;
    } else if (s.type === SHT_REL) {
      if (!s.target || !secIndex.has(s.target)) throw badElf(f, `writer: section "${s.name}" relocates a section that is not written`);
      link = secIndex.get(obj.symtab)!;
      info = secIndex.get(s.target)!;
      entsize = 16;
    } else if (s.type === SHT_LLVM_ADDRSIG) {
      link = secIndex.get(obj.symtab)!;
    }
    v.setUint32(b, shNameOff[i]!, true);
    v.setUint32(b + 4, s.type, true);
    v.setBigUint64(b + 8, BigInt(s.flags), true);
    v.setBigUint64(b + 16, BigInt(s.addr), true);
    v.setBigUint64(b + 24, BigInt(offsets[i]!), true);
    v.setBigUint64(b + 32, BigInt(s.type === SHT_NOBITS ? s.nobitsSize : data.length), true);
    v.setUint32(b + 40, link, true);
    v.setUint32(b + 44, info, true);
    v.setBigUint64(b + 48, BigInt(s.addralign), true);
    v.setBigUint64(b + 56, BigInt(entsize), true);
  });
  return out;
}

function emptySymbol(): ElfSymbol {
  return { name: '', bind: 0, type: 0, other: 0, section: null, special: SHN_UNDEF, value: 0, size: 0 };
}
