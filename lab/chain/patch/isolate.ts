/**
 * A pass of the patch over a BpfObject that keeps one entry program and removes every other one, with what
 * describes it: its code (a whole section, or its byte range where it shares a section with the
 * kept program), its relocations, symbols and BTF.ext records. Loaders that take "the" program of
 * an object (bpftool prog load pins the first one libbpf lists) then load exactly the patched one,
 * and no other program is verified, loaded or left behind. .text functions, maps and BTF types
 * stay: libbpf appends only the functions a program reaches and creates the maps either way.
 */
import { LabError } from '../../errors.ts';
import { type ElfSymbol, type Section, relSectionFor } from '../../bpf/elf.ts';
import { type BpfObject, programSymbols } from '../../bpf/object.ts';
import { applyRemap, spliceRemap } from './remap.ts';

export interface Isolated {
  /** Names of the programs removed, in object order. */
  removed: string[];
}

export function keepOnlyProgram(obj: BpfObject, keep: ElfSymbol): Isolated {
  const others = programSymbols(obj).filter((p) => p !== keep);
  if (others.length === 0) return { removed: [] };
  const bySection = new Map<Section, ElfSymbol[]>();
  for (const p of others) bySection.set(p.section!, [...(bySection.get(p.section!) ?? []), p]);
  for (const [sec, progs] of bySection) {
    if (sec === keep.section) {
      // Cut from the end so the offsets of the ranges still to cut stay valid.
      for (const p of [...progs].sort((a, b) => b.value - a.value)) cutRange(obj, sec, p.value, p.value + p.size);
    } else dropSection(obj, sec);
  }
  return { removed: others.map((p) => p.name) };
}

function dropSection(obj: BpfObject, sec: Section): void {
  const elf = obj.elf;
  const rel = relSectionFor(elf, sec);
  const gone = new Set(elf.symbols.filter((s) => s.section === sec));
  for (const s of elf.sections) {
    if (s === rel) continue;
    for (const r of s.relocs) {
      if (gone.has(r.symbol)) {
        throw new LabError('PATCH', `${elf.fileName}: section "${s.name}" relocates against "${r.symbol.name}" in the program section "${sec.name}" being removed`, {
          remedy: 'Report this object: it refers to another program\'s code, which a chain cannot keep apart.',
        });
      }
    }
  }
  elf.sections = elf.sections.filter((s) => s !== sec && s !== rel);
  elf.symbols = elf.symbols.filter((s) => !gone.has(s));
  if (obj.ext) {
    obj.ext.func_info = obj.ext.func_info.filter((b) => b.sec_name !== sec.name);
    obj.ext.line_info = obj.ext.line_info.filter((b) => b.sec_name !== sec.name);
    obj.ext.core_relo = obj.ext.core_relo.filter((b) => b.sec_name !== sec.name);
  }
}

/** Removes bytes [from, to) of a code section and everything that names an offset in them. */
function cutRange(obj: BpfObject, sec: Section, from: number, to: number): void {
  const data = new Uint8Array(sec.data.length - (to - from));
  data.set(sec.data.subarray(0, from));
  data.set(sec.data.subarray(to), from);
  sec.data = data;
  applyRemap(obj, spliceRemap(sec, from, to, { kind: 'drop' }, -(to - from)));
}
