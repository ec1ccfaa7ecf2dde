/**
 * The patch's eighth pass: put every relocation and BTF.ext record list back in offset order (the
 * rewrite appended some), then encode BTF, BTF.ext and the ELF.
 */
import type { ExtInfoSec } from '../../bpf/btf-ext.ts';
import { type BpfObject, writeObject } from '../../bpf/object.ts';

export function finalize(obj: BpfObject): Uint8Array {
  for (const s of obj.elf.sections) s.relocs.sort((a, b) => a.offset - b.offset);
  if (obj.ext) {
    for (const list of [obj.ext.func_info, obj.ext.line_info, obj.ext.core_relo] as ExtInfoSec<{ insn_off: number }>[][]) {
      for (const b of list) b.records.sort((a, b2) => a.insn_off - b2.insn_off);
    }
  }
  return writeObject(obj);
}
