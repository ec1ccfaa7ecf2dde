/**
 * The chain patch (thesis §3.2, Algorithm 3.4): the pipeline of passes over a BpfObject, in the
 * fixed order of libbpf's linker, each pass in its own file under lab/chain/patch/.
 *
 * The patched program behaves as:
 *
 *   c ← body(ctx)
 *   if c ∉ S ∪ R: C ← 0; return c           ← leaving the chain: no stale C for the next packet
 *   if c ∈ R: C ← c
 *   tail_call(ctx, chain, index + 1)       ← immediate index: the JIT patches a direct jump
 *   r ← C ≠ 0 ? C : c; C ← 0; return r      ← only reached when there is no next program
 *
 * (The thesis stores C only when a next program exists, so a last program's own R verdict loses
 * to an earlier remembered one; here it wins. The thesis never clears C, so a remembered
 * XDP_REDIRECT leaks into the next packet; here C is zero whenever no packet is in the chain.)
 *
 * C lives in a one-entry per-CPU array. Since every exit clears it, the head needs no reset and a
 * packet that every program passes touches the map once, at the end of the chain (see
 * emitChainTail in patch/epilogue.ts for each path).
 *
 * Two ways to run the body:
 * - 'subprog': the body moves to .text as a static function `<prog>__body` and the entry, which
 *   keeps the program's name and section, calls it (bpf-to-bpf). Needs kernels that allow tail
 *   calls mixed with bpf-to-bpf calls (x86-64 5.10+, arm64 6.0+).
 * - 'inline': the body stays in place behind a one-instruction preamble that spills ctx to a stack
 *   slot the body provably never uses; each exit becomes a jump to the epilogue. Works on every
 *   kernel with tail calls, but not for bodies that make bpf-to-bpf calls themselves.
 *
 * Both modes add the two maps as BTF-defined maps in .maps so stock libbpf loads the result.
 *
 * The same algorithm serves both hooks the patch knows (XDP and TC's sched_cls, read from the
 * program's section): only the verdict sets S and R differ (lab/chain/constants.ts), and ctx is
 * in r1 for both.
 *
 * Passes: check the input → decide the mode's layout → prepare the object → add the chain maps →
 * rewrite the entry (preamble/epilogue; leaves a remap table of the old offsets) → relocations
 * (everything moved through the remap, the new instructions relocated) → BTF/BTF.ext → finalize
 * (sort, encode) → re-parse and verify the output.
 */
import { readObject, listProgramInfo, type ProgramInfo } from '../bpf/object.ts';
import { checkInput, checkOptions, checkVerdictSets } from './patch/check.ts';
import { decideMode } from './patch/layout.ts';
import { prepareObject } from './patch/prepare.ts';
import { addChainMaps } from './patch/maps.ts';
import { rewriteEntry } from './patch/rewrite.ts';
import { relocate } from './patch/relocations.ts';
import { fixDebugInfo } from './patch/btf.ts';
import { finalize } from './patch/finalize.ts';
import { verifyOutput } from './patch/verify.ts';
import type { PatchOptions, PatchResult } from './patch/types.ts';

export function listPrograms(input: Uint8Array, fileName?: string): ProgramInfo[] {
  return listProgramInfo(readObject(input, fileName ?? '<object>'));
}

export function patchObject(input: Uint8Array, options: PatchOptions): PatchResult {
  const o0 = checkOptions(options);
  const obj = readObject(input, o0.file);
  const notes: string[] = [];
  const entry = checkInput(obj, o0, options.program, notes);
  const o = checkVerdictSets(o0, entry, options, notes);
  const plan = decideMode(obj, entry, o.mode);
  prepareObject(obj, entry, notes);
  const maps = addChainMaps(obj, o);
  const rewrite = rewriteEntry(obj, entry, plan, o, notes);
  relocate(obj, rewrite, maps);
  fixDebugInfo(obj, entry, rewrite);
  const out = finalize(obj);
  verifyOutput(out, o.file, entry.prog.name, entry.section.name, o.mode);
  return { object: out, program: entry.prog.name, section: entry.section.name, mode: o.mode, hook: o.hook, success: o.success, redirect: o.redirect, notes };
}
