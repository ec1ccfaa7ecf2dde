/**
 * The patch's last pass, as libbpf's linker does: parse our own output again, run the object's
 * cross-layer checks, and check the program is where it should be, tail-calls, and (subprog)
 * calls its body.
 */
import { errorMessage, LabError } from '../../errors.ts';
import { HELPER_TAIL_CALL, isHelperCall } from '../../bpf/insn.ts';
import { type BpfObject, checkObject, functionInsns, programSymbols, reachableFunctions, readObject } from '../../bpf/object.ts';
import type { PatchMode } from '../constants.ts';

export function verifyOutput(out: Uint8Array, file: string, name: string, section: string, mode: PatchMode): void {
  let obj: BpfObject;
  try {
    obj = readObject(out, `${file} (patched)`);
    checkObject(obj);
  } catch (e) {
    throw new LabError('PATCH', `${file}: internal error: the patched object does not re-parse: ${errorMessage(e)}`, { cause: e, remedy: 'Report this object; the patcher produced an inconsistent result.' });
  }
  const prog = programSymbols(obj).find((p) => p.name === name && p.section!.name === section);
  if (!prog) throw new LabError('PATCH', `${file}: internal error: program "${name}" missing from the patched object`);
  const { insns } = functionInsns(obj, prog);
  if (!insns.some((i) => isHelperCall(i, HELPER_TAIL_CALL))) throw new LabError('PATCH', `${file}: internal error: patched "${name}" has no tail call`);
  if (mode === 'subprog') {
    const reach = reachableFunctions(obj, prog);
    if (!reach.some((f) => f.name === `${name}__body`)) throw new LabError('PATCH', `${file}: internal error: entry of "${name}" does not call its body`);
  }
}
