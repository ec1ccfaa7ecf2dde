/**
 * The patch's seventh pass: BTF and BTF.ext for the rewritten entry. subprog: the body gets a
 * static FUNC with the program's prototype and its func_info in .text, while the entry keeps the
 * program's FUNC, func_info and first line at its start. inline: the program's func_info, which
 * the remap moved with the body's first instruction, goes back to the function start (the preamble
 * is part of the function), and the body's first line is repeated there.
 */
import { BTF_FUNC_STATIC, BTF_KIND_FUNC, addType, typeById } from '../../bpf/btf.ts';
import { infoFor } from '../../bpf/btf-ext.ts';
import type { BpfObject } from '../../bpf/object.ts';
import { patchError } from './errors.ts';
import { remapOffset } from './remap.ts';
import type { Entry, Rewrite } from './types.ts';

export function fixDebugInfo(obj: BpfObject, { prog, section: sec }: Entry, rewrite: Rewrite): void {
  const X = prog.value;
  const { funcInfo, firstLine } = rewrite;
  if (!rewrite.body) {
    const ext = obj.ext;
    if (funcInfo && ext) {
      const bodyStart = remapOffset(rewrite.remap, X)!.off;
      const moved = infoFor(ext.func_info, sec.name).records.find((r) => r.insn_off === bodyStart && r.type_id === funcInfo.type_id);
      if (moved) moved.insn_off = X;
    }
    if (firstLine && ext) infoFor(ext.line_info, sec.name).records.push({ ...firstLine, insn_off: X });
    return;
  }
  const { symbol: bodySym } = rewrite.body;
  const T = bodySym.value;
  const btf = obj.btf!;
  let funcId = funcInfo?.type_id ?? 0;
  if (!funcId) funcId = btf.types.findIndex((t) => t.kind === BTF_KIND_FUNC && t.name === prog.name) + 1;
  if (funcId > 0 && obj.ext) {
    const proto = typeById(btf, funcId)!.size_type;
    const bodyFunc = addType(btf, { kind: BTF_KIND_FUNC, name: bodySym.name, vlen: BTF_FUNC_STATIC, kind_flag: false, size_type: proto });
    const moved = infoFor(obj.ext.func_info, '.text').records.find((r) => r.insn_off === T);
    const extra = new Uint8Array(Math.max(0, obj.ext.func_info_rec_size - 8));
    if (moved) moved.type_id = bodyFunc;
    else if (obj.ext.func_info.some((b) => b.records.length > 0)) infoFor(obj.ext.func_info, '.text').records.push({ insn_off: T, type_id: bodyFunc, extra });
    if (obj.ext.func_info.some((b) => b.records.length > 0)) {
      infoFor(obj.ext.func_info, sec.name).records.push({ insn_off: X, type_id: funcId, extra: funcInfo?.extra ?? extra });
    }
    if (firstLine) infoFor(obj.ext.line_info, sec.name).records.push({ ...firstLine, insn_off: X });
  } else if (obj.ext && obj.ext.func_info.some((b) => b.records.length > 0)) {
    throw patchError(obj.elf.fileName, `program "${prog.name}": no BTF FUNC describes it, but the object has func_info`, 'Rebuild the object with clang -g.');
  }
}
