/**
 * The chain patch (thesis §3.2, Algorithm 3.4), as a pass over a BpfObject.
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
 * emitChainTail for each path).
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
 */
import { errorMessage, LabError } from '../errors.ts';
import {
  type ElfSymbol,
  type Relocation,
  type Section,
  R_BPF_64_32,
  R_BPF_64_64,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_INFO_LINK,
  SHF_WRITE,
  SHT_LLVM_ADDRSIG,
  SHT_PROGBITS,
  SHT_REL,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_OBJECT,
  findSection,
  newSection,
  relSectionFor,
} from '../bpf/elf.ts';
import {
  BTF_FUNC_STATIC,
  BTF_KIND_ARRAY,
  BTF_KIND_DATASEC,
  BTF_KIND_FUNC,
  BTF_KIND_INT,
  BTF_KIND_PTR,
  BTF_KIND_STRUCT,
  BTF_KIND_VAR,
  BTF_VAR_GLOBAL_ALLOCATED,
  type Btf,
  addType,
  findType,
  typeById,
} from '../bpf/btf.ts';
import { type ExtInfoSec, infoFor } from '../bpf/btf-ext.ts';
import {
  Asm,
  BPF_DW,
  BPF_W,
  HELPER_MAP_LOOKUP_ELEM,
  HELPER_TAIL_CALL,
  type Insn,
  add64Imm,
  callHelper,
  callPseudo,
  encodeInsns,
  exit,
  isExit,
  isHelperCall,
  isPseudoCall,
  isPseudoFuncAddr,
  ja,
  jeqImm,
  jneImm,
  ldMap,
  ldxMem,
  mov32Reg,
  mov64Imm,
  mov64Reg,
  slotCount,
  stImm,
  stxMem,
} from '../bpf/insn.ts';
import {
  type BpfObject,
  checkObject,
  functionInsns,
  isCodeSection,
  listProgramInfo,
  programSymbols,
  calleesOf,
  reachableFunctions,
  readObject,
  writeObject,
} from '../bpf/object.ts';
import { keepOnlyProgram } from './isolate.ts';
import { CHAIN_MAP, CHAIN_SLOTS, DEFAULT_REDIRECT, DEFAULT_SUCCESS, MAX_INDEX, VERDICT_MAP, type PatchMode } from './constants.ts';
import { analyseStack, deepestCallChain, STACK_MAX } from '../bpf/stack.ts';

/** Stack of the subprog-mode entry: ctx and the map key. */
const SUBPROG_ENTRY_STACK = 16;

export interface PatchOptions {
  /** position in the chain, 0-based */
  index: number;
  /** verdicts that continue the chain (default [2] = XDP_PASS) */
  success: number[];
  /** verdicts remembered and continued (default [3,4] = XDP_TX, XDP_REDIRECT) */
  redirect: number[];
  mode: PatchMode;
  /** program (function symbol) to patch when the object has several */
  program?: string;
  /** name of the PROG_ARRAY map added (default CHAIN_MAP, CHAIN_SLOTS entries) */
  chainMap?: string;
  /** name of the PERCPU_ARRAY map added (default VERDICT_MAP, 1 entry, u32 value) */
  verdictMap?: string;
  /** for error messages */
  fileName?: string;
}

export interface PatchResult {
  object: Uint8Array;
  program: string;
  section: string;
  mode: PatchMode;
  notes: string[];
}


const BPF_MAP_TYPE_PROG_ARRAY = 3;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;

export function listPrograms(
  input: Uint8Array,
  fileName?: string,
): { name: string; section: string; insns: number; hasSubprogCalls: boolean; hasTailCalls: boolean }[] {
  return listProgramInfo(readObject(input, fileName ?? '<object>'));
}

function badInput(file: string, what: string, remedy: string): LabError {
  return new LabError('BAD_INPUT', `${file}: ${what}`, { remedy });
}

function patchError(file: string, what: string, remedy: string, details: Record<string, unknown> = {}): LabError {
  return new LabError('PATCH', `${file}: ${what}`, { remedy, details });
}

function checkVerdicts(file: string, list: unknown, what: string): number[] {
  if (!Array.isArray(list)) throw badInput(file, `${what} verdicts must be an array of numbers`, 'Pass e.g. [2].');
  for (const v of list) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw badInput(file, `${what} verdict ${String(v)} is not an integer in 0..2^31-1`, 'XDP verdicts are 0..4 (ABORTED, DROP, PASS, TX, REDIRECT).');
    }
  }
  return [...new Set(list as number[])];
}

const MAP_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,14}$/;

export function patchObject(input: Uint8Array, options: PatchOptions): PatchResult {
  const file = options.fileName ?? '<object>';
  const { index, mode } = options;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > MAX_INDEX) {
    throw badInput(file, `chain index ${String(index)} out of range 0..${MAX_INDEX}`, `A chain holds at most ${MAX_INDEX + 1} programs (the kernel allows 33 tail calls per packet); use an index in 0..${MAX_INDEX}.`);
  }
  if (mode !== 'subprog' && mode !== 'inline') {
    throw badInput(file, `unknown patch mode ${String(mode)}`, "Use 'subprog' (kernels 5.10+) or 'inline' (any kernel).");
  }
  const success = checkVerdicts(file, options.success ?? DEFAULT_SUCCESS, 'success');
  const redirect = checkVerdicts(file, options.redirect ?? DEFAULT_REDIRECT, 'redirect');
  if (success.length === 0 && redirect.length === 0) {
    throw badInput(file, 'no verdict continues the chain (success and redirect sets are both empty): every packet would leave at this program', 'Give at least one verdict that continues, e.g. --success 2 (XDP_PASS); a program that should always end the chain is better attached last with its own verdicts.');
  }
  if (redirect.includes(0)) {
    throw badInput(file, 'redirect verdicts cannot include 0 (XDP_ABORTED)', 'The remembered verdict uses 0 for "none"; remove 0 from the redirect set.');
  }
  const chainName = options.chainMap ?? CHAIN_MAP;
  const verdictName = options.verdictMap ?? VERDICT_MAP;
  for (const n of [chainName, verdictName]) {
    if (!MAP_NAME.test(n)) throw badInput(file, `map name "${n}" is not a C identifier of at most 15 characters`, 'Choose a short identifier such as xcl_chain.');
  }
  if (chainName === verdictName) throw badInput(file, 'chain and verdict maps need different names', 'Pick two names.');

  const obj = readObject(input, file);
  const notes: string[] = [];

  // --- choose the program ---
  const progs = programSymbols(obj);
  if (progs.length === 0) {
    throw patchError(file, 'no BPF program found (no function symbol in a program section)', 'Compile a program with SEC("xdp") and keep its symbol (do not strip).');
  }
  let prog: ElfSymbol | undefined;
  if (options.program !== undefined) {
    prog = progs.find((p) => p.name === options.program);
    if (!prog) {
      throw patchError(file, `no program "${options.program}"; the object has: ${progs.map((p) => `${p.name} (${p.section!.name})`).join(', ')}`, 'Pass one of the listed program names.');
    }
  } else if (progs.length > 1) {
    throw patchError(file, `several programs: ${progs.map((p) => `${p.name} (${p.section!.name})`).join(', ')}; say which one to patch`, 'Pass the program name (option program / --program).');
  } else prog = progs[0]!;
  const sec = prog.section!;
  const where = `program "${prog.name}" (section "${sec.name}")`;
  if (!sec.name.startsWith('xdp')) notes.push(`section "${sec.name}" is not an XDP section; the verdict semantics assume XDP`);

  // --- refuse what cannot be chained ---
  const btfMaps = findSection(obj.elf, '.maps');
  if (btfMaps && !obj.btf && obj.elf.symbols.some((x) => x.section === btfMaps && x.type === STT_OBJECT)) {
    throw patchError(file, 'maps are defined in SEC(".maps") but the object has no BTF (built without -g): libbpf cannot load it, patched or not ("BTF is required, but is missing or corrupted")', 'Rebuild with clang -g: BTF-defined maps are described by BTF.');
  }
  const legacy = findSection(obj.elf, 'maps');
  if (legacy) {
    const names = obj.elf.symbols.filter((x) => x.section === legacy && x.type === STT_OBJECT).map((x) => x.name);
    throw patchError(file, `legacy map definitions in SEC("maps")${names.length ? ` (${names.join(', ')})` : ''}: libbpf v1.0+, which loads the chain, no longer supports them ("legacy map definitions in 'maps' section are not supported by libbpf v1.0+")`, 'Define the maps the BTF way: struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, N); __type(key, K); __type(value, V); } name SEC(".maps"); and rebuild with clang -g.');
  }
  for (const n of [chainName, verdictName, `${prog.name}__body`]) {
    if (obj.elf.symbols.some((s) => s.name === n) || (obj.btf && obj.btf.types.some((t) => t.name === n && (t.kind === BTF_KIND_VAR || t.kind === BTF_KIND_FUNC)))) {
      throw patchError(file, `the object already defines "${n}"; was it patched already?`, 'Patch the original object, not a patched one, or choose other map names.');
    }
  }

  const reach = reachableFunctions(obj, prog);
  for (const fn of reach) {
    const { insns, slots } = functionInsns(obj, fn);
    const k = insns.findIndex((i) => isHelperCall(i, HELPER_TAIL_CALL));
    if (k >= 0) {
      throw patchError(file, `${where}: ${fn === prog ? '' : `function "${fn.name}" called by it: `}insn ${slots[k]}: calls bpf_tail_call already; it chains by itself and cannot be put in a chain`, 'Chain programs that end with a verdict, not ones that tail-call.');
    }
  }
  const body = functionInsns(obj, prog);
  if (body.insns.length === 0) {
    throw patchError(file, `${where}: the function symbol has size 0 (no instructions)`, 'Rebuild the object; its symbol table is corrupt or the program was stripped.');
  }
  if (mode === 'inline') {
    const k = body.insns.findIndex((i) => isPseudoCall(i) || isPseudoFuncAddr(i));
    // A callback (bpf_loop, bpf_for_each_map_elem, timers) is invisible in the opcode of a .o: its
    // address is a plain ld_imm64 relocated against .text. Reachability follows the relocation.
    const callee = reachableFunctions(obj, prog).find((f) => f !== prog);
    if (k >= 0 || callee) {
      const what = k >= 0 ? `insn ${body.slots[k]}: makes a bpf-to-bpf call` : `refers to function "${callee!.name}" (a bpf-to-bpf call or a callback)`;
      throw patchError(file, `${where}: ${what}; inline mode keeps the body in place, so a program that calls other functions cannot be chained`, "Use mode 'subprog' on kernels 5.10+ (x86-64), or rebuild the program with its functions inlined (__always_inline).");
    }
  }
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
  const chainSym = addBtfMap(obj, chainName, [
    ['type', BPF_MAP_TYPE_PROG_ARRAY],
    ['max_entries', CHAIN_SLOTS],
    ['key_size', 4],
    ['value_size', 4],
  ]);
  const verdictSym = addBtfMap(obj, verdictName, [
    ['type', BPF_MAP_TYPE_PERCPU_ARRAY],
    ['max_entries', 1],
    ['key_size', 4],
    ['value_size', 4],
  ]);

  const tailOpts: TailOptions = { index, success, redirect };
  if (mode === 'subprog') patchSubprog(obj, prog, tailOpts, chainSym, verdictSym, notes);
  else patchInline(obj, prog, body.insns, tailOpts, chainSym, verdictSym, notes);

  const out = writeObject(obj);
  verifyOutput(out, file, prog.name, sec.name, mode);
  return { object: out, program: prog.name, section: sec.name, mode, notes };
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

interface TailOptions {
  index: number;
  success: number[];
  redirect: number[];
}

/**
 * Emits the chain epilogue. On entry r0 holds the body's verdict and the stack slot ctxSlot holds
 * ctx; keyOff names 4 bytes for the map key. Only reachable blocks are emitted: the verifier
 * rejects unreachable instructions.
 *
 * The saved verdict C is zero whenever no packet is inside the chain on this CPU (XDP runs one
 * packet at a time per CPU): every way out of the chain leaves it zero. So the head needs no reset,
 * and the common path (every program returns an S verdict) touches the map once, at the end of
 * the chain, which must read C anyway:
 * - c ∉ S ∪ R: the packet leaves early; a non-head clears C (an earlier program may have set it);
 *   the head returns at once (C is zero at the head by the invariant).
 * - c ∈ R: C ← c, then the tail call.
 * - no next program (the tail call returned): return C ≠ 0 ? C : c and clear C.
 * When the last program itself returns an R verdict, its own verdict wins over an earlier
 * remembered one (it stores before the tail call tells it that it is last).
 *
 * Each verdict of S and R gets its own block, in which c is a constant: then nothing needs a
 * callee-saved register (r6-r9), which the x86-64 JIT (5.10+) pushes in the prologue and pops at
 * every tail call only when the program uses it. Where the stack has a slot for the key apart from
 * ctx's, the early exit keeps c in ctx's slot (ctx is no longer needed there); otherwise c, and
 * ctx on the remembering path, stay in r6.
 */
export function emitChainTail(a: Asm, o: TailOptions & { keyOff: number; ctxSlot: number }): void {
  const head = o.index === 0;
  const R = o.redirect;
  const S = o.success.filter((v) => !R.includes(v));
  const lookup = (mark: VerdictMark): void => {
    a.emit(stImm(BPF_W, 10, o.keyOff, 0));
    a.emit(mov64Reg(2, 10));
    a.emit(add64Imm(2, o.keyOff));
    a.emit(ldMap(1), mark);
    a.emit(callHelper(HELPER_MAP_LOOKUP_ELEM));
  };
  // Without a slot of its own, the key overwrites ctx's slot: a path that looks up before its tail
  // call keeps ctx in r6 first.
  const roomy = o.keyOff !== o.ctxSlot;
  const tailCall = (ctxInR6 = false): void => {
    a.emit(ctxInR6 ? mov64Reg(1, 6) : ldxMem(BPF_DW, 1, 10, o.ctxSlot));
    a.emit(ldMap(2), 'chain');
    a.emit(mov64Imm(3, o.index + 1)); // immediate: lets the JIT emit a direct jump
    a.emit(callHelper(HELPER_TAIL_CALL));
  };
  // Only reached when there is no next program: return C if set (and clear it), else v.
  const endOfChain = (v: number, ret: string): void => {
    lookup('verdict:end');
    a.jump(jeqImm(0, 0, 0), ret);
    a.emit(ldxMem(BPF_W, 1, 0, 0));
    a.jump(jeqImm(1, 0, 0), ret);
    a.emit(stImm(BPF_W, 0, 0, 0)); // C ← 0
    a.emit(mov64Reg(0, 1));
    a.emit(exit());
    a.label(ret);
    a.emit(mov64Imm(0, v));
    a.emit(exit());
  };

  a.emit(mov32Reg(0, 0)); // c, as the kernel sees it (u32)
  // Success verdicts first: the common path takes the first branch. (S and R are disjoint here.)
  S.forEach((v, k) => a.jump(jeqImm(0, v, 0), `success:${k}`));
  R.forEach((v, k) => a.jump(jeqImm(0, v, 0), `redirect:${k}`));
  // c ∉ S ∪ R: the packet leaves the chain here.
  if (!head) {
    a.emit(roomy ? stxMem(BPF_DW, 10, 0, o.ctxSlot) : mov64Reg(6, 0));
    lookup('verdict:clear');
    a.jump(jeqImm(0, 0, 0), 'leave');
    a.emit(stImm(BPF_W, 0, 0, 0)); // C ← 0
    a.label('leave');
    a.emit(roomy ? ldxMem(BPF_DW, 0, 10, o.ctxSlot) : mov64Reg(0, 6));
  }
  a.emit(exit());
  S.forEach((v, k) => {
    a.label(`success:${k}`);
    tailCall();
    if (head) {
      // C is zero at the head and nothing stored it: no lookup.
      a.emit(mov64Imm(0, v));
      a.emit(exit());
    } else endOfChain(v, `return:success:${k}`);
  });
  R.forEach((v, k) => {
    a.label(`redirect:${k}`);
    if (!roomy) a.emit(ldxMem(BPF_DW, 6, 10, o.ctxSlot));
    lookup('verdict:store');
    a.jump(jeqImm(0, 0, 0), `tail:${k}`);
    a.emit(stImm(BPF_W, 0, 0, v)); // C ← c
    a.label(`tail:${k}`);
    tailCall(!roomy);
    endOfChain(v, `return:redirect:${k}`);
  });
}

/** Which use of the verdict map an ld_imm64 is for (all relocate against the same map). */
export type VerdictMark = 'verdict:store' | 'verdict:end' | 'verdict:clear';

function relFor(obj: BpfObject, target: Section): Section {
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

/** Relocations for the marks the epilogue left (map loads, the body call). */
function markRelocs(a: Asm, base: number, chainSym: ElfSymbol, verdictSym: ElfSymbol, bodySym: ElfSymbol | null): Relocation[] {
  const out: Relocation[] = [];
  for (const { mark, slot } of a.marks) {
    const offset = base + slot * 8;
    if (mark === 'chain') out.push({ offset, type: R_BPF_64_64, symbol: chainSym });
    else if (mark.startsWith('verdict:')) out.push({ offset, type: R_BPF_64_64, symbol: verdictSym });
    else if (mark === 'body' && bodySym) out.push({ offset, type: R_BPF_64_32, symbol: bodySym });
    else throw new LabError('PATCH', `internal: unknown mark ${mark}`);
  }
  return out;
}

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

type Place = { section: Section; off: number };

/**
 * Moves everything that names an offset in `sec` (relocations, symbols, BTF.ext records)
 * through `map`. `keep` decides records that must stay put (the program's own func_info).
 */
function remapSection(obj: BpfObject, sec: Section, map: (off: number) => Place, skipSymbols: Set<ElfSymbol>): void {
  const elf = obj.elf;
  const rel = relSectionFor(elf, sec);
  if (rel) {
    const stay: Relocation[] = [];
    for (const r of rel.relocs) {
      const p = map(r.offset);
      if (p.section === sec) stay.push({ ...r, offset: p.off });
      else relFor(obj, p.section).relocs.push({ ...r, offset: p.off });
    }
    rel.relocs = stay;
  }
  for (const s of elf.symbols) {
    if (s.section !== sec || skipSymbols.has(s) || s.type === 3 /* STT_SECTION */) continue;
    const p = map(s.value);
    s.section = p.section;
    s.value = p.off;
  }
  const ext = obj.ext;
  if (!ext) return;
  const move = <T extends { insn_off: number }>(secs: ExtInfoSec<T>[]): void => {
    // Every block naming the section: the format allows several, and a record left in a second
    // one would keep its old offset.
    for (const block of secs.filter((b) => b.sec_name === sec.name)) {
      const stay: T[] = [];
      for (const r of block.records) {
        const p = map(r.insn_off);
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

function sortAll(obj: BpfObject): void {
  for (const s of obj.elf.sections) s.relocs.sort((a, b) => a.offset - b.offset);
  if (!obj.ext) return;
  for (const list of [obj.ext.func_info, obj.ext.line_info, obj.ext.core_relo] as ExtInfoSec<{ insn_off: number }>[][]) {
    for (const b of list) b.records.sort((a, b2) => a.insn_off - b2.insn_off);
  }
}

function patchSubprog(obj: BpfObject, prog: ElfSymbol, o: TailOptions, chainSym: ElfSymbol, verdictSym: ElfSymbol, notes: string[]): void {
  const elf = obj.elf;
  const sec = prog.section!;
  const X = prog.value;
  const E = prog.value + prog.size;
  let text = findSection(elf, '.text');
  if (!text) {
    text = newSection('.text', SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 8);
    elf.sections.splice(elf.sections.indexOf(sec), 0, text);
  } else if (!isCodeSection(text)) {
    // The body would land in a section libbpf does not treat as code.
    throw patchError(elf.fileName, `section ".text" is not a code section (type ${text.type}, flags 0x${text.flags.toString(16)}); the body cannot move there`, "Rebuild the object with clang -O2 -g -target bpf -c, or use mode 'inline'.");
  }
  text.addralign = Math.max(text.addralign, 8);
  const T = text.data.length;

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
  if (strict > STACK_MAX) notes.push(`the deepest call chain ${path} under the entry needs ${strict} bytes with 32-byte frames: kernels that round frames to 32 bytes (older ones, and the interpreter) refuse it; current JITed kernels need ${lenient}`);
  if (frames.unknown.length > 0) notes.push(`stack use of ${frames.unknown.map((f) => `"${f.name}"`).join(', ')} could not be bounded: the combined stack check left to the verifier`);

  const a = new Asm();
  // ctx survives the call in the entry's own frame, not in a callee-saved register (see emitChainTail).
  a.emit(stxMem(BPF_DW, 10, 1, -8));
  a.emit(callPseudo(), 'body');
  emitChainTail(a, { ...o, ctxSlot: -8, keyOff: -SUBPROG_ENTRY_STACK });
  const entry = encodeInsns(a.finish());
  const delta = entry.length - (E - X);

  const bodySym: ElfSymbol = { name: `${prog.name}__body`, bind: STB_LOCAL, type: STT_FUNC, other: 0, section: text, special: 0, value: T, size: prog.size };
  const progFuncInfo = obj.ext?.func_info.find((b) => b.sec_name === sec.name)?.records.find((r) => r.insn_off === X);
  const firstLine = obj.ext?.line_info.find((b) => b.sec_name === sec.name)?.records.filter((r) => r.insn_off >= X && r.insn_off < E).sort((p, q) => p.insn_off - q.insn_off)[0];

  remapSection(obj, sec, (off) => {
    if (off < X) return { section: sec, off };
    if (off < E) return { section: text, off: T + (off - X) };
    return { section: sec, off: off + delta };
  }, new Set([prog]));
  text.data = concat(text.data, sec.data.subarray(X, E));
  sec.data = concat(sec.data.subarray(0, X), entry, sec.data.subarray(E));
  prog.size = entry.length;
  elf.symbols.push(bodySym);
  relFor(obj, sec).relocs.push(...markRelocs(a, X, chainSym, verdictSym, bodySym));

  // BTF: the entry keeps the program's FUNC; the body gets a static FUNC with the same prototype.
  const btf = obj.btf!;
  let funcId = progFuncInfo?.type_id ?? 0;
  if (!funcId) funcId = btf.types.findIndex((t) => t.kind === BTF_KIND_FUNC && t.name === prog.name) + 1;
  if (funcId > 0 && obj.ext) {
    const proto = typeById(btf, funcId)!.size_type;
    const bodyFunc = addType(btf, { kind: BTF_KIND_FUNC, name: bodySym.name, vlen: BTF_FUNC_STATIC, kind_flag: false, size_type: proto });
    const moved = infoFor(obj.ext.func_info, '.text').records.find((r) => r.insn_off === T);
    const extra = new Uint8Array(Math.max(0, obj.ext.func_info_rec_size - 8));
    if (moved) moved.type_id = bodyFunc;
    else if (obj.ext.func_info.some((b) => b.records.length > 0)) infoFor(obj.ext.func_info, '.text').records.push({ insn_off: T, type_id: bodyFunc, extra });
    if (obj.ext.func_info.some((b) => b.records.length > 0)) {
      infoFor(obj.ext.func_info, sec.name).records.push({ insn_off: X, type_id: funcId, extra: progFuncInfo?.extra ?? extra });
    }
    if (firstLine) infoFor(obj.ext.line_info, sec.name).records.push({ ...firstLine, insn_off: X });
  } else if (obj.ext && obj.ext.func_info.some((b) => b.records.length > 0)) {
    throw patchError(elf.fileName, `program "${prog.name}": no BTF FUNC describes it, but the object has func_info`, 'Rebuild the object with clang -g.');
  }
  sortAll(obj);
  notes.push(`mode subprog: body moved to .text as static function "${bodySym.name}" (${E - X} bytes at .text+${T}); entry is ${slotCount(a.insns)} instructions`);
}

function patchInline(obj: BpfObject, prog: ElfSymbol, body: Insn[], o: TailOptions, chainSym: ElfSymbol, verdictSym: ElfSymbol, notes: string[]): void {
  const elf = obj.elf;
  const file = elf.fileName;
  const sec = prog.section!;
  const X = prog.value;
  const E = prog.value + prog.size;
  const use = analyseStack(body);
  if (!use.ok) {
    throw patchError(file, `program "${prog.name}": insn ${use.insn}: ${use.reason}; cannot prove a stack slot is free for ctx`, "Use mode 'subprog' (kernels 5.10+), which needs no free stack slot.");
  }
  const slot = Math.floor(use.deepest / 8) * 8 - 8;
  if (slot < -512) {
    throw patchError(file, `program "${prog.name}" uses the whole 512-byte stack (down to r10${use.deepest}); no slot is free for ctx`, "Use mode 'subprog' (kernels 5.10+), or reduce the program's stack use.");
  }
  const bodySlots = slotCount(body);
  let s = 0;
  const rewritten = body.map((insn) => {
    const at = s;
    s += insn.code === 0x18 ? 2 : 1;
    if (!isExit(insn)) return insn;
    const off = bodySlots - at - 1;
    if (off > 32767) throw patchError(file, `program "${prog.name}": exit at insn ${at} is too far from the epilogue for a 16-bit jump`, "Use mode 'subprog'.");
    return ja(off);
  });
  const a = new Asm();
  a.emit(stxMem(BPF_DW, 10, 1, slot));
  const pre = a.slot();
  for (const insn of rewritten) a.emit(insn);
  const epi = a.slot();
  const tail = new Asm();
  // The map key gets its own slot below ctx when there is room; otherwise it reuses ctx's slot
  // where ctx is no longer needed (a partial overwrite of a spilled pointer, which the verifier
  // allows for privileged loads only).
  const keyOff = slot - 8 >= -512 ? slot - 8 : slot;
  emitChainTail(tail, { ...o, keyOff, ctxSlot: slot });
  const tailInsns = tail.finish();
  const code = concat(encodeInsns(a.finish()), encodeInsns(tailInsns));
  const delta = code.length - (E - X);

  const progFuncInfo = obj.ext?.func_info.find((b) => b.sec_name === sec.name)?.records.find((r) => r.insn_off === X);
  remapSection(obj, sec, (off) => {
    if (off < X) return { section: sec, off };
    if (off < E) return { section: sec, off: off + pre * 8 };
    return { section: sec, off: off + delta };
  }, new Set([prog]));
  if (progFuncInfo && obj.ext) {
    // The function still starts at X (its preamble is part of it).
    const moved = infoFor(obj.ext.func_info, sec.name).records.find((r) => r.insn_off === X + pre * 8 && r.type_id === progFuncInfo.type_id);
    if (moved) moved.insn_off = X;
  }
  const firstLine = obj.ext?.line_info.find((b) => b.sec_name === sec.name)?.records.filter((r) => r.insn_off >= X + pre * 8 && r.insn_off < E + pre * 8).sort((p, q) => p.insn_off - q.insn_off)[0];
  if (firstLine && obj.ext) infoFor(obj.ext.line_info, sec.name).records.push({ ...firstLine, insn_off: X });
  sec.data = concat(sec.data.subarray(0, X), code, sec.data.subarray(E));
  prog.size = code.length;
  relFor(obj, sec).relocs.push(...markRelocs(tail, X + epi * 8, chainSym, verdictSym, null));
  sortAll(obj);
  notes.push(`mode inline: body stack reaches r10${use.deepest}; ctx kept at r10${slot}, map key at r10${keyOff}; ${rewritten.filter((_, k) => isExit(body[k]!)).length} exits jump to a ${slotCount(tailInsns)}-instruction epilogue`);
}

/** Like libbpf's linker: parse our own output again and check the program is where it should be. */
function verifyOutput(out: Uint8Array, file: string, name: string, section: string, mode: PatchMode): void {
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
