/**
 * The patch's sixth pass: move everything that named an offset in the rewritten section through
 * the rewrite's remap table (relocations, symbols, BTF.ext records: lab/chain/patch/remap.ts), then
 * relocate the entry's marked instructions: the two map loads against the chain's maps and, in
 * subprog mode, the body call against the moved body.
 */
import { type Relocation, R_BPF_64_32, R_BPF_64_64 } from '../../bpf/elf.ts';
import type { BpfObject } from '../../bpf/object.ts';
import { LabError } from '../../errors.ts';
import { MARK_TARGET } from './epilogue.ts';
import { applyRemap, relFor } from './remap.ts';
import type { ChainMapSymbols, Rewrite } from './types.ts';

export function relocate(obj: BpfObject, rewrite: Rewrite, maps: ChainMapSymbols): void {
  applyRemap(obj, rewrite.remap);
  relFor(obj, rewrite.remap.section).relocs.push(...markRelocs(rewrite, maps));
}

function markRelocs({ marks, body }: Rewrite, maps: ChainMapSymbols): Relocation[] {
  return marks.asm.marks.map(({ mark, slot }): Relocation => {
    const offset = marks.base + slot * 8;
    const target = MARK_TARGET[mark];
    switch (target) {
      case 'chain':
        return { offset, type: R_BPF_64_64, symbol: maps.chain };
      case 'verdict':
        return { offset, type: R_BPF_64_64, symbol: maps.verdict };
      case 'body':
        if (!body) throw new LabError('PATCH', `internal: a body call marked in an entry without a moved body (mark ${mark})`, { remedy: 'Report this object; the patcher produced an inconsistent result.' });
        return { offset, type: R_BPF_64_32, symbol: body.symbol };
    }
  });
}
