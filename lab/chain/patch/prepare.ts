/**
 * The patch's third pass: make the object fit to be rewritten. DATASEC offsets are written out
 * (the .rel.BTF that asked for them goes), sections describing the old code layout are dropped,
 * the object's other programs are removed, and a BTF is created when the object has none (the
 * chain maps are BTF-defined).
 */
import { type Section, SHT_LLVM_ADDRSIG, SHT_PROGBITS, SHT_REL, STT_OBJECT, newSection } from '../../bpf/elf.ts';
import { BTF_KIND_DATASEC, BTF_KIND_VAR, typeById } from '../../bpf/btf.ts';
import type { BpfObject } from '../../bpf/object.ts';
import { patchError } from './errors.ts';
import { keepOnlyProgram } from './isolate.ts';
import type { Entry } from './types.ts';

export function prepareObject(obj: BpfObject, { prog }: Entry, notes: string[]): void {
  resolveDatasecOffsets(obj);
  dropUnneeded(obj, notes);
  const isolated = keepOnlyProgram(obj, prog);
  if (isolated.removed.length > 0) {
    notes.push(`removed the object's other programs (${isolated.removed.join(', ')}): the patched object holds "${prog.name}" alone, so a loader that takes an object's first program loads exactly it`);
  }
  if (!obj.btf) {
    obj.btf = { version: 1, flags: 0, types: [] };
    obj.elf.sections.push(newSection('.BTF', SHT_PROGBITS, 0, 4));
    notes.push('object had no BTF: created one for the chain maps');
  }
}

/**
 * Writes each DATASEC var's offset from its ELF symbol, which is what .rel.BTF asks a linker to
 * do (and what libbpf does at open). We drop .rel.BTF, so the offsets must be right on their own.
 */
function resolveDatasecOffsets(obj: BpfObject): void {
  const btf = obj.btf;
  if (!btf) return;
  for (const t of btf.types) {
    if (t.kind !== BTF_KIND_DATASEC) continue;
    for (const vsi of t.secinfo ?? []) {
      const v = typeById(btf, vsi.type);
      if (!v || v.kind !== BTF_KIND_VAR) continue;
      const sym = obj.elf.symbols.find((s) => s.name === v.name && s.section?.name === t.name && s.type === STT_OBJECT);
      if (sym) vsi.offset = sym.value;
    }
  }
}

/** Debug info and linker-only sections would describe the old layout; libbpf needs none of them. */
function dropUnneeded(obj: BpfObject, notes: string[]): void {
  const elf = obj.elf;
  const drop = new Set<Section>();
  for (const s of elf.sections) {
    if (s.name.startsWith('.debug_') || s.type === SHT_LLVM_ADDRSIG) drop.add(s);
  }
  for (const s of elf.sections) {
    if (s.type === SHT_REL && s.target && (drop.has(s.target) || s.target.name === '.BTF' || s.target.name === '.BTF.ext')) drop.add(s);
  }
  if (drop.size === 0) return;
  elf.sections = elf.sections.filter((s) => !drop.has(s));
  const gone = new Set(elf.symbols.filter((s) => s.section !== null && drop.has(s.section)));
  elf.symbols = elf.symbols.filter((s) => !gone.has(s));
  for (const s of elf.sections) {
    for (const r of s.relocs) {
      if (gone.has(r.symbol)) {
        throw patchError(elf.fileName, `section "${s.name}" relocates against "${r.symbol.name}" in a dropped debug section`, 'Report this object; it has an unusual layout.');
      }
    }
  }
  notes.push(`dropped ${drop.size} sections that describe the old code layout (DWARF, .rel.BTF*, .llvm_addrsig); libbpf uses none of them`);
}
