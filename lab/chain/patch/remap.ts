/**
 * The offset remap of a rewritten code section, as a table (libbpf's linker shifts relocation and
 * BTF.ext offsets by a section's new base the same way): each byte range of the old section either
 * moves to a section at a new base or is dropped. One function, applyRemap, moves everything that
 * names an offset in the section through the table: relocations, symbols and BTF.ext records.
 */
import { LabError } from '../../errors.ts';
import { type ElfSymbol, type Relocation, type Section, SHF_INFO_LINK, SHT_REL, STT_SECTION, newSection, relSectionFor } from '../../bpf/elf.ts';
import { type ExtInfoSec, infoFor } from '../../bpf/btf-ext.ts';
import type { BpfObject } from '../../bpf/object.ts';

/** Bytes [from, to) of the old section: moved to `section` at `base` (keeping their order), or dropped. */
export type RemapRange =
  | { from: number; to: number; kind: 'move'; section: Section; base: number }
  | { from: number; to: number; kind: 'drop' };

export interface Remap {
  /** The section whose old offsets the ranges cover. */
  section: Section;
  /** Disjoint ranges covering every offset anything may name (the last one may end at Infinity). */
  ranges: RemapRange[];
  /** Symbols that keep their place although they sit in a moved range (an entry that stays put). */
  keep: ReadonlySet<ElfSymbol>;
}

export type Place = { section: Section; off: number } | null;

/** Where old offset `off` of the remapped section goes; null when its range is dropped. */
export function remapOffset(remap: Remap, off: number): Place {
  const r = remap.ranges.find((x) => off >= x.from && off < x.to);
  if (!r) throw new LabError('PATCH', `internal: offset ${off} of section "${remap.section.name}" is outside the remap table`, { remedy: 'Report this object; the patcher produced an inconsistent result.' });
  return r.kind === 'drop' ? null : { section: r.section, off: r.base + (off - r.from) };
}

/** The REL section of `target`, created right after it when the object has none yet. */
export function relFor(obj: BpfObject, target: Section): Section {
  let rel = relSectionFor(obj.elf, target);
  if (!rel) {
    rel = newSection(`.rel${target.name}`, SHT_REL, SHF_INFO_LINK, 8);
    rel.entsize = 16;
    rel.target = target;
    const at = obj.elf.sections.indexOf(target);
    obj.elf.sections.splice(at + 1, 0, rel);
  }
  return rel;
}

/**
 * Moves the relocations, symbols and BTF.ext records of `remap.section` through the table. What
 * stays in the section keeps its order; what moves to another section is appended there. Section
 * symbols (STT_SECTION) name the section itself and never move.
 */
export function applyRemap(obj: BpfObject, remap: Remap): void {
  const elf = obj.elf;
  const sec = remap.section;
  const rel = relSectionFor(elf, sec);
  if (rel) {
    const stay: Relocation[] = [];
    for (const r of rel.relocs) {
      const p = remapOffset(remap, r.offset);
      if (p === null) continue;
      if (p.section === sec) stay.push({ ...r, offset: p.off });
      else relFor(obj, p.section).relocs.push({ ...r, offset: p.off });
    }
    rel.relocs = stay;
  }
  const gone = new Set<ElfSymbol>();
  for (const s of elf.symbols) {
    if (s.section !== sec || remap.keep.has(s) || s.type === STT_SECTION) continue;
    const p = remapOffset(remap, s.value);
    if (p === null) gone.add(s);
    else {
      s.section = p.section;
      s.value = p.off;
    }
  }
  if (gone.size > 0) elf.symbols = elf.symbols.filter((s) => !gone.has(s));
  const ext = obj.ext;
  if (!ext) return;
  const move = <T extends { insn_off: number }>(secs: ExtInfoSec<T>[]): void => {
    // Every block naming the section: the format allows several, and a record left in a second
    // one would keep its old offset.
    for (const block of secs.filter((b) => b.sec_name === sec.name)) {
      const stay: T[] = [];
      for (const r of block.records) {
        const p = remapOffset(remap, r.insn_off);
        if (p === null) continue;
        if (p.section === sec) stay.push({ ...r, insn_off: p.off });
        else infoFor(secs, p.section.name).records.push({ ...r, insn_off: p.off });
      }
      block.records = stay;
    }
  };
  move(ext.func_info);
  move(ext.line_info);
  move(ext.core_relo);
}

/** The usual table of a rewrite: [0, from) stays, [from, to) goes to `body`, the rest shifts by `delta`. */
export function spliceRemap(section: Section, from: number, to: number, body: { kind: 'move'; section: Section; base: number } | { kind: 'drop' }, delta: number, keep: ReadonlySet<ElfSymbol> = new Set()): Remap {
  return {
    section,
    keep,
    ranges: [
      { from: 0, to: from, kind: 'move', section, base: 0 },
      { from, to, ...body },
      { from: to, to: Infinity, kind: 'move', section, base: to + delta },
    ],
  };
}
