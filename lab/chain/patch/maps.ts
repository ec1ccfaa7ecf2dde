/**
 * The patch's fourth pass: add the chain's two maps as BTF-defined maps in .maps (data, BTF types
 * and symbols), so stock libbpf creates them: the PROG_ARRAY of the chain and the one-entry per-CPU
 * array of the remembered verdict.
 */
import { type ElfSymbol, SHF_ALLOC, SHF_WRITE, SHT_PROGBITS, STB_GLOBAL, STT_OBJECT, findSection, newSection } from '../../bpf/elf.ts';
import { BTF_KIND_ARRAY, BTF_KIND_DATASEC, BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_STRUCT, BTF_KIND_VAR, BTF_VAR_GLOBAL_ALLOCATED, type Btf, addType, findType, typeById } from '../../bpf/btf.ts';
import type { BpfObject } from '../../bpf/object.ts';
import { CHAIN_SLOTS } from '../constants.ts';
import type { ChainMapSymbols, CheckedOptions } from './types.ts';
import { BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PROG_ARRAY } from '../../bpf/uapi.ts';

export function addChainMaps(obj: BpfObject, o: CheckedOptions): ChainMapSymbols {
  const chain = addBtfMap(obj, o.chainName, [
    ['type', BPF_MAP_TYPE_PROG_ARRAY],
    ['max_entries', CHAIN_SLOTS],
    ['key_size', 4],
    ['value_size', 4],
  ]);
  const verdict = addBtfMap(obj, o.verdictName, [
    ['type', BPF_MAP_TYPE_PERCPU_ARRAY],
    ['max_entries', 1],
    ['key_size', 4],
    ['value_size', 4],
  ]);
  return { chain, verdict };
}

/** Adds `struct { __uint(k, v)... } name SEC(".maps")` with its BTF, data and symbol. */
function addBtfMap(obj: BpfObject, name: string, fields: [string, number][]): ElfSymbol {
  const btf = obj.btf!;
  const elf = obj.elf;
  let maps = findSection(elf, '.maps');
  if (!maps) {
    maps = newSection('.maps', SHT_PROGBITS, SHF_WRITE | SHF_ALLOC, 8);
    elf.sections.push(maps);
  }
  const size = fields.length * 8;
  const off = Math.ceil(maps.data.length / 8) * 8;
  const data = new Uint8Array(off + size);
  data.set(maps.data);
  maps.data = data;
  maps.addralign = Math.max(maps.addralign, 8);

  const intId = ensureInt(btf, 'int', 4, 1 << 24 | 32);
  const idxId = ensureInt(btf, '__ARRAY_SIZE_TYPE__', 4, 32);
  const members = fields.map(([field, value], k) => {
    const arr = addType(btf, { kind: BTF_KIND_ARRAY, name: '', vlen: 0, kind_flag: false, size_type: 0, array: { type: intId, index_type: idxId, nelems: value } });
    const ptr = addType(btf, { kind: BTF_KIND_PTR, name: '', vlen: 0, kind_flag: false, size_type: arr });
    return { name: field, type: ptr, offset: k * 64 };
  });
  const st = addType(btf, { kind: BTF_KIND_STRUCT, name: '', vlen: members.length, kind_flag: false, size_type: size, members });
  const v = addType(btf, { kind: BTF_KIND_VAR, name, vlen: 0, kind_flag: false, size_type: st, var_linkage: BTF_VAR_GLOBAL_ALLOCATED });
  let ds = findType(btf, BTF_KIND_DATASEC, '.maps');
  if (!ds) ds = addType(btf, { kind: BTF_KIND_DATASEC, name: '.maps', vlen: 0, kind_flag: false, size_type: 0, secinfo: [] });
  const dst = typeById(btf, ds)!;
  // clang leaves the size 0: libbpf then fills in the section size and every var offset from the
  // symbols (btf_fixup_datasec), and a non-zero size would make it skip that fixup. The BPF static
  // linker (bpftool gen object) writes the real size: it must then cover the maps added here, or
  // the kernel refuses the BTF ("Invalid offset") and libbpf loads the program without it.
  if ((dst.size_type ?? 0) !== 0) dst.size_type = maps.data.length;
  dst.secinfo = [...(dst.secinfo ?? []), { type: v, offset: off, size }];
  const sym: ElfSymbol = { name, bind: STB_GLOBAL, type: STT_OBJECT, other: 0, section: maps, special: 0, value: off, size };
  elf.symbols.push(sym);
  return sym;
}

function ensureInt(btf: Btf, name: string, size: number, encoding: number): number {
  const k = btf.types.findIndex((t) => t.kind === BTF_KIND_INT && t.name === name && t.size_type === size);
  if (k >= 0) return k + 1;
  return addType(btf, { kind: BTF_KIND_INT, name, vlen: 0, kind_flag: false, size_type: size, int_encoding: encoding });
}
