/**
 * The patch's second pass: decide how the chosen mode lays out the patched program, and refuse
 * what the mode cannot keep, before anything is changed. Inline keeps the body in place, so it
 * needs a body that calls no other function and a stack slot the body provably never touches;
 * subprog adds a frame under the body, so the deepest call chain must still fit the stack.
 */
import { findSection } from '../../bpf/elf.ts';
import { isPseudoCall, isPseudoFuncAddr } from '../../bpf/insn.ts';
import { type BpfObject, calleesOf, functionInsns, isCodeSection, reachableFunctions } from '../../bpf/object.ts';
import { analyseStack, deepestCallChain, STACK_MAX } from '../../bpf/stack.ts';
import type { PatchMode } from '../constants.ts';
import { patchError } from './errors.ts';
import type { Entry, ModePlan } from './types.ts';

/** Stack of the subprog-mode entry: ctx and the map key. */
export const SUBPROG_ENTRY_STACK = 16;

export function decideMode(obj: BpfObject, entry: Entry, mode: PatchMode): ModePlan {
  return mode === 'inline' ? planInline(obj, entry) : planSubprog(obj, entry);
}

function planInline(obj: BpfObject, { prog, section }: Entry): ModePlan {
  const file = obj.elf.fileName;
  const where = `program "${prog.name}" (section "${section.name}")`;
  const body = functionInsns(obj, prog);
  const k = body.insns.findIndex((i) => isPseudoCall(i) || isPseudoFuncAddr(i));
  // A callback (bpf_loop, bpf_for_each_map_elem, timers) is invisible in the opcode of a .o: its
  // address is a plain ld_imm64 relocated against .text. Reachability follows the relocation.
  const callee = reachableFunctions(obj, prog).find((f) => f !== prog);
  if (k >= 0 || callee) {
    const what = k >= 0 ? `insn ${body.slots[k]}: makes a bpf-to-bpf call` : `refers to function "${callee!.name}" (a bpf-to-bpf call or a callback)`;
    throw patchError(file, `${where}: ${what}; inline mode keeps the body in place, so a program that calls other functions cannot be chained`, "Use mode 'subprog' on kernels 5.10+ (x86-64), or rebuild the program with its functions inlined (__always_inline).");
  }
  const use = analyseStack(body.insns);
  if (!use.ok) {
    throw patchError(file, `program "${prog.name}": insn ${use.insn}: ${use.reason}; cannot prove a stack slot is free for ctx`, "Use mode 'subprog' (kernels 5.10+), which needs no free stack slot.");
  }
  const ctxSlot = Math.floor(use.deepest / 8) * 8 - 8;
  if (ctxSlot < -512) {
    throw patchError(file, `program "${prog.name}" uses the whole 512-byte stack (down to r10${use.deepest}); no slot is free for ctx`, "Use mode 'subprog' (kernels 5.10+), or reduce the program's stack use.");
  }
  // The map key gets its own slot below ctx when there is room; otherwise it reuses ctx's slot
  // where ctx is no longer needed (a partial overwrite of a spilled pointer, which the verifier
  // allows for privileged loads only).
  const keyOff = ctxSlot - 8 >= -512 ? ctxSlot - 8 : ctxSlot;
  return { mode: 'inline', deepest: use.deepest, ctxSlot, keyOff };
}

function planSubprog(obj: BpfObject, { prog }: Entry): ModePlan {
  const elf = obj.elf;
  const text = findSection(elf, '.text');
  if (text && !isCodeSection(text)) {
    // The body would land in a section libbpf does not treat as code.
    throw patchError(elf.fileName, `section ".text" is not a code section (type ${text.type}, flags 0x${text.flags.toString(16)}); the body cannot move there`, "Rebuild the object with clang -O2 -g -target bpf -c, or use mode 'inline'.");
  }
  // The entry becomes one more frame under the body and everything it calls: the verifier adds up
  // the deepest chain of frames against 512 bytes.
  const frames = deepestCallChain(
    prog,
    (f) => {
      const u = analyseStack(functionInsns(obj, f).insns);
      return u.ok ? -u.deepest : null;
    },
    (f) => calleesOf(obj, f),
  );
  const lenient = SUBPROG_ENTRY_STACK + frames.lenient;
  const strict = 32 + frames.strict;
  const path = frames.chain.map((f) => `"${f.name}"`).join(' → ');
  if (lenient > STACK_MAX) {
    throw patchError(elf.fileName, `program "${prog.name}": under the chain entry (${SUBPROG_ENTRY_STACK} bytes) its deepest call chain ${path} needs ${lenient} bytes of stack, over the kernel's ${STACK_MAX} for a call chain (each frame rounded up to 16 bytes)`, "Use mode 'inline' if the program calls no other function; otherwise reduce the stack use along that chain (or mark the callees __always_inline).", { frames: frames.chain.map((f) => f.name), combined: lenient });
  }
  const notes: string[] = [];
  if (strict > STACK_MAX) notes.push(`the deepest call chain ${path} under the entry needs ${strict} bytes with 32-byte frames: kernels that round frames to 32 bytes (older ones, and the interpreter) refuse it; current JITed kernels need ${lenient}`);
  if (frames.unknown.length > 0) notes.push(`stack use of ${frames.unknown.map((f) => `"${f.name}"`).join(', ')} could not be bounded: the combined stack check left to the verifier`);
  return { mode: 'subprog', notes };
}
