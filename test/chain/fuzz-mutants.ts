/**
 * What one fuzz mutant is and what it must satisfy. Pure functions, shared by the worker that runs
 * the mutants and the tests that replay them.
 *
 * Every mutant is named by (seed, object, index) alone: its random stream is derived from those
 * three, never from the mutants before it, so a failure replays without rerunning its batch, and
 * the batching across workers cannot change what a seed tests.
 *
 * Two kinds:
 * - bytes: the object's bytes mutated (aimed at headers, symbol table, relocations, code, .BTF,
 *   .BTF.ext). Must read, round-trip through the writer, list and patch, or fail with a LabError.
 * - model: the object read, its model mutated (instruction fields, instructions inserted or removed,
 *   BTF types reordered or renamed, relocation targets, symbols, BTF.ext records, sections), then
 *   written and read again: the writer must either refuse with a LabError or produce an object
 *   that reads back as the mutated model.
 */
import { isLabError } from '../../lab/errors.ts';
import { mulberry32 } from '../../lab/random.ts';
import {
  type ElfSymbol,
  type Section,
  SHT_LLVM_ADDRSIG,
  SHT_NOBITS,
  SHT_NOTE,
  SHT_PROGBITS,
  SHT_REL,
  SHT_SYMTAB,
  STB_LOCAL,
  STT_SECTION,
  findSection,
  relSectionFor,
} from '../../lab/bpf/elf.ts';
import {
  BTF_KIND_ARRAY,
  BTF_KIND_DATASEC,
  BTF_KIND_DECL_TAG,
  BTF_KIND_ENUM,
  BTF_KIND_ENUM64,
  BTF_KIND_FLOAT,
  BTF_KIND_FUNC_PROTO,
  BTF_KIND_FWD,
  BTF_KIND_INT,
  BTF_KIND_STRUCT,
  BTF_KIND_UNION,
  BTF_KIND_VAR,
  type Btf,
  type BtfType,
} from '../../lab/bpf/btf.ts';
import type { BtfExt, ExtInfoSec } from '../../lab/bpf/btf-ext.ts';
import { type Insn, decodeInsns, encodeInsns, width } from '../../lab/bpf/insn.ts';
import { type BpfObject, isCodeSection, readObject, writeObject } from '../../lab/bpf/object.ts';
import { listPrograms, patchObject } from '../../lab/chain/patch.ts';
import type { PatchMode } from '../../lab/chain/constants.ts';

export type Rng = () => number;
export type Reader = (bytes: Uint8Array, fileName: string) => BpfObject;
export type MutantKind = 'bytes' | 'model';

export interface FuzzBase {
  /** Short name (the file's basename): part of every failure message and of XCL_FUZZ_ONLY. */
  name: string;
  bytes: Uint8Array;
}

export interface PreparedBase extends FuzzBase {
  regions: [number, number][];
}

export interface Failure {
  seed: number;
  object: string;
  index: number;
  kind: MutantKind;
  ops: string[];
  stage: string;
  message: string;
}

export interface Sample {
  seed: number;
  object: string;
  index: number;
  kind: MutantKind;
  mode: PatchMode;
  program: string;
  section: string;
  /** The mutant as it went into the patch, and what the patch made of it. */
  input: Uint8Array;
  output: Uint8Array;
}

export interface MutantResult {
  kind: MutantKind;
  ops: string[];
  /** The mutant read (bytes) or the mutated model was written and read back (model). */
  parsed: boolean;
  roundTrips: number;
  patched: number;
  /** LabErrors met, as "stage:CODE". */
  codes: string[];
  /** PATCH errors that say the patcher's own output was inconsistent. */
  internal: string[];
  failure?: Omit<Failure, 'seed' | 'object' | 'index'>;
  sample?: Omit<Sample, 'seed' | 'object' | 'index'>;
}

// --- seeding ---

/** FNV-1a over the text: a stable 32-bit seed for one mutant. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function mutantRng(seed: number, object: string, index: number): Rng {
  return mulberry32(hash32(`${seed >>> 0}/${object}/${index}`));
}

export const replayHint = (seed: number, object: string, index: number): string =>
  `XCL_FUZZ_SEED=${seed} XCL_FUZZ_ONLY=${object}:${index} npx vitest run test/chain/fuzz.test.ts`;

/** Every third mutant fuzzes the writer; the rest fuzz the readers and the patch. */
export const kindOf = (index: number): MutantKind => (index % 3 === 2 ? 'model' : 'bytes');

const pick = (r: Rng, n: number): number => Math.floor(r() * n);
const choose = <T>(r: Rng, xs: readonly T[]): T => xs[pick(r, xs.length)]!;

// --- bytes mutants ---

/**
 * Byte ranges worth aiming at, weighted by repetition: ELF header, section headers, symbol table,
 * relocations, code, .BTF and .BTF.ext; DWARF (which nothing here parses) only once.
 */
export function regionsOf(bytes: Uint8Array): [number, number][] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = Number(v.getBigUint64(40, true));
  const shnum = v.getUint16(60, true);
  const shstrndx = v.getUint16(62, true);
  const head: [number, number] = [0, 64];
  const shdrs: [number, number] = [shoff, shoff + shnum * 64];
  const out: [number, number][] = [head, head, shdrs, shdrs, shdrs];
  const sh = (i: number): { name: number; type: number; flags: number; off: number; size: number } => {
    const b = shoff + i * 64;
    return {
      name: v.getUint32(b, true),
      type: v.getUint32(b + 4, true),
      flags: Number(v.getBigUint64(b + 8, true)),
      off: Number(v.getBigUint64(b + 24, true)),
      size: Number(v.getBigUint64(b + 32, true)),
    };
  };
  const names = sh(shstrndx);
  const nameOf = (off: number): string => {
    const start = names.off + off;
    const end = bytes.indexOf(0, start);
    return new TextDecoder().decode(bytes.subarray(start, end < 0 ? start : end));
  };
  for (let i = 1; i < shnum; i++) {
    const s = sh(i);
    if (s.type === SHT_NOBITS || s.size === 0) continue;
    const r: [number, number] = [s.off, s.off + s.size];
    const name = nameOf(s.name);
    const weight = name.startsWith('.debug_') || name.startsWith('.rel.debug_') ? 1 : name === '.BTF' || name === '.BTF.ext' ? 4 : s.type === SHT_SYMTAB || s.type === SHT_REL || (s.flags & 4) !== 0 ? 3 : 2;
    for (let k = 0; k < weight; k++) out.push(r);
  }
  return out;
}

export function mutateBytes(base: Uint8Array, regions: [number, number][], r: Rng, ops: string[]): Uint8Array {
  let b = base.slice();
  const rounds = 1 + pick(r, 4);
  for (let k = 0; k < rounds && b.length > 0; k++) {
    const [lo, hi] = choose(r, regions);
    const at = Math.min(b.length - 1, lo + pick(r, Math.max(1, hi - lo)));
    // Fields sit on 4-byte boundaries in every structure aimed at; half the word writes are aligned.
    const aligned = Math.max(0, Math.min(b.length - 1, lo + Math.floor((at - lo) / 4) * 4));
    const view = (): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const op = pick(r, 9);
    switch (op) {
      case 0:
        b[at]! ^= 1 << pick(r, 8);
        ops.push(`flip@${at}`);
        break;
      case 1:
        b[at] = pick(r, 256);
        ops.push(`byte@${at}`);
        break;
      case 2:
      case 3: {
        const interesting = [0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 32, 64, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, b.length, b.length - 8, b.length + 8];
        const p = op === 2 ? at : aligned;
        if (p + 4 <= b.length) view().setUint32(p, choose(r, interesting) >>> 0, true);
        ops.push(`u32@${p}`);
        break;
      }
      case 4: {
        const p = aligned;
        if (p + 2 <= b.length) view().setUint16(p, choose(r, [0, 1, 0x7fff, 0x8000, 0xffff, pick(r, 0x10000)]), true);
        ops.push(`u16@${p}`);
        break;
      }
      case 5: {
        const cut = pick(r, b.length);
        b = b.slice(0, cut);
        ops.push(`truncate@${cut}`);
        break;
      }
      case 6: {
        const len = 1 + pick(r, 32);
        const src = pick(r, b.length);
        b.copyWithin(at, src, Math.min(b.length, src + len));
        ops.push(`copy${len}@${at}`);
        break;
      }
      case 7: {
        // Insert or delete a few bytes: everything after moves, so every later offset is stale.
        const len = 1 + pick(r, 16);
        if (r() < 0.5) {
          const out = new Uint8Array(b.length + len);
          out.set(b.subarray(0, at));
          out.set(b.subarray(at), at + len);
          b = out;
          ops.push(`insert${len}@${at}`);
        } else {
          const end = Math.min(b.length, at + len);
          const out = new Uint8Array(b.length - (end - at));
          out.set(b.subarray(0, at));
          out.set(b.subarray(end), at);
          b = out;
          ops.push(`delete${len}@${at}`);
        }
        break;
      }
      default:
        if (aligned + 8 <= b.length) view().setBigUint64(aligned, BigInt(pick(r, 2 ** 31)) * BigInt(pick(r, 2 ** 31)), true);
        ops.push(`u64@${aligned}`);
    }
  }
  return b;
}

// --- model mutants ---

const NAME_POOL = ['nul\0inside', 'lone\ud800surrogate', '', 'x', 'xdp', '.text', '.maps', 'license', 'xcl_chain', 'a_rather_long_identifier_of_sixty_four_characters_to_stretch_tables', 'ünïcödé', '名前', 'with space', 'dup'];

function pickName(r: Rng, existing: readonly string[]): string {
  // Existing names make duplicates, which the string tables must share without mixing them up.
  if (existing.length > 0 && r() < 0.3) return choose(r, existing);
  return choose(r, NAME_POOL);
}

const U32_POOL = [0, 1, 2, 7, 8, 16, 64, 0x7fffffff, 0x80000000, 0xffffffff];

function codeSections(obj: BpfObject): Section[] {
  return obj.elf.sections.filter((s) => isCodeSection(s) && s.data.length > 0);
}

/** The instructions of a code section, or null when it no longer decodes (an earlier op broke it). */
function decodeOrNull(s: Section): Insn[] | null {
  try {
    return decodeInsns(s.data).insns;
  } catch (e) {
    if (isLabError(e)) return null;
    throw e;
  }
}

function randomInsn(r: Rng): Insn {
  const code = choose(r, [0xb7, 0xbf, 0x07, 0x05, 0x15, 0x85, 0x95, 0x18, 0x61, 0x63, 0x7b, 0xdb, pick(r, 256)]);
  const insn: Insn = { code, dst: pick(r, 16), src: pick(r, 16), off: pick(r, 65536) - 32768, imm: (pick(r, 2 ** 32) | 0) };
  if (code === 0x18) insn.imm2 = pick(r, 2 ** 32) | 0;
  return insn;
}

/** Moves every offset into `sec` at or after `at` by `delta` (as a pass inserting code would). */
function shiftOffsets(obj: BpfObject, sec: Section, at: number, delta: number, removedEnd: number): void {
  const rel = relSectionFor(obj.elf, sec);
  if (rel) {
    rel.relocs = rel.relocs
      .filter((x) => delta >= 0 || x.offset < at || x.offset >= removedEnd)
      .map((x) => (x.offset >= at ? { ...x, offset: x.offset + delta } : x));
  }
  for (const s of obj.elf.symbols) {
    if (s.section !== sec || s.type === STT_SECTION) continue;
    if (s.value >= at && !(delta < 0 && s.value < removedEnd)) s.value += delta;
    else if (s.value < at && s.value + s.size > at) s.size = Math.max(0, s.size + delta);
  }
  if (!obj.ext) return;
  const move = <T extends { insn_off: number }>(secs: ExtInfoSec<T>[]): void => {
    for (const b of secs) {
      if (b.sec_name !== sec.name) continue;
      b.records = b.records
        .filter((x) => delta >= 0 || x.insn_off < at || x.insn_off >= removedEnd)
        .map((x) => (x.insn_off >= at ? { ...x, insn_off: x.insn_off + delta } : x));
    }
  };
  move(obj.ext.func_info);
  move(obj.ext.line_info);
  move(obj.ext.core_relo);
}

/** Type ids held in a type record (the fields checkTypeRefs follows), as get/set pairs. */
function typeRefs(t: BtfType): { get: () => number; set: (id: number) => void }[] {
  const out: { get: () => number; set: (id: number) => void }[] = [];
  switch (t.kind) {
    case BTF_KIND_INT:
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
    case BTF_KIND_DATASEC:
    case BTF_KIND_FLOAT:
    case BTF_KIND_FWD:
      break;
    default:
      out.push({ get: () => t.size_type, set: (id) => (t.size_type = id) });
  }
  if (t.array) {
    const a = t.array;
    out.push({ get: () => a.type, set: (id) => (a.type = id) }, { get: () => a.index_type, set: (id) => (a.index_type = id) });
  }
  for (const m of t.members ?? []) out.push({ get: () => m.type, set: (id) => (m.type = id) });
  for (const p of t.params ?? []) out.push({ get: () => p.type, set: (id) => (p.type = id) });
  for (const s of t.secinfo ?? []) out.push({ get: () => s.type, set: (id) => (s.type = id) });
  return out;
}

/** Swaps two types and renumbers every reference to them (types and BTF.ext), or only swaps. */
function swapTypes(obj: BpfObject, btf: Btf, a: number, b: number, renumber: boolean): void {
  const ta = btf.types[a - 1]!;
  btf.types[a - 1] = btf.types[b - 1]!;
  btf.types[b - 1] = ta;
  if (!renumber) return;
  const map = (id: number): number => (id === a ? b : id === b ? a : id);
  for (const t of btf.types) for (const ref of typeRefs(t)) ref.set(map(ref.get()));
  for (const s of obj.ext?.func_info ?? []) for (const x of s.records) x.type_id = map(x.type_id);
  for (const s of obj.ext?.core_relo ?? []) for (const x of s.records) x.type_id = map(x.type_id);
}

type ModelOp = (obj: BpfObject, r: Rng) => string | null;

const MODEL_OPS: Record<string, ModelOp> = {
  insnField(obj, r) {
    const s = choose(r, codeSections(obj));
    const insns = s && decodeOrNull(s);
    if (!s || !insns || insns.length === 0) return null;
    const k = pick(r, insns.length);
    const i = { ...insns[k]! };
    const field = pick(r, 6);
    if (field === 0) i.code = choose(r, [0x18, 0x85, 0x95, 0x05, 0xb7, 0x00, pick(r, 256)]);
    else if (field === 1) i.dst = pick(r, 16);
    else if (field === 2) i.src = pick(r, 16);
    else if (field === 3) i.off = choose(r, [0, 1, -1, 32767, -32768, pick(r, 65536) - 32768]);
    else if (field === 4) i.imm = choose(r, [0, 1, -1, 0x7fffffff, -0x80000000, pick(r, 2 ** 32) | 0]);
    else i.imm2 = pick(r, 2 ** 32) | 0;
    if (i.code === 0x18 && i.imm2 === undefined) i.imm2 = 0;
    insns[k] = i;
    // A new ld_imm64 swallows the next instruction; an old one's second half becomes an insn.
    s.data = encodeInsns(insns);
    return `insn ${s.name}[${k}].${['code', 'dst', 'src', 'off', 'imm', 'imm2'][field]}`;
  },
  insertInsn(obj, r) {
    const s = choose(r, codeSections(obj));
    const insns = s && decodeOrNull(s);
    if (!s || !insns) return null;
    const k = pick(r, insns.length + 1);
    const at = insns.slice(0, k).reduce((n, i) => n + width(i) * 8, 0);
    const insn = randomInsn(r);
    insns.splice(k, 0, insn);
    const delta = width(insn) * 8;
    shiftOffsets(obj, s, at, delta, at);
    s.data = encodeInsns(insns);
    return `insert ${s.name}@${at}`;
  },
  removeInsn(obj, r) {
    const s = choose(r, codeSections(obj));
    const insns = s && decodeOrNull(s);
    if (!s || !insns || insns.length === 0) return null;
    const k = pick(r, insns.length);
    const at = insns.slice(0, k).reduce((n, i) => n + width(i) * 8, 0);
    const w = width(insns[k]!) * 8;
    insns.splice(k, 1);
    shiftOffsets(obj, s, at, -w, at + w);
    s.data = encodeInsns(insns);
    return `remove ${s.name}@${at}`;
  },
  reorderTypes(obj, r) {
    const btf = obj.btf;
    if (!btf || btf.types.length < 2) return null;
    const a = 1 + pick(r, btf.types.length);
    const b = 1 + pick(r, btf.types.length);
    const renumber = r() < 0.8;
    swapTypes(obj, btf, a, b, renumber);
    return `swap types ${a}<->${b}${renumber ? '' : ' (no renumbering)'}`;
  },
  renameBtf(obj, r) {
    const btf = obj.btf;
    if (!btf || btf.types.length === 0) return null;
    const t = choose(r, btf.types);
    const names = btf.types.map((x) => x.name);
    const named = [...(t.members ?? []), ...(t.params ?? []), ...(t.enum_vals ?? []), ...(t.enum64_vals ?? [])];
    if (named.length > 0 && r() < 0.5) {
      const m = choose(r, named);
      m.name = pickName(r, names);
      return `rename member of type ${btf.types.indexOf(t) + 1}`;
    }
    t.name = pickName(r, names);
    return `rename type ${btf.types.indexOf(t) + 1}`;
  },
  btfField(obj, r) {
    const btf = obj.btf;
    if (!btf || btf.types.length === 0) return null;
    const id = 1 + pick(r, btf.types.length);
    const t = btf.types[id - 1]!;
    const n = btf.types.length;
    const typeId = (): number => choose(r, [0, 1, n, n + 1, pick(r, n + 1)]);
    switch (pick(r, 8)) {
      case 0:
        t.kind = pick(r, 32);
        return `type ${id}: kind ${t.kind}`;
      case 1:
        t.size_type = r() < 0.5 ? typeId() : choose(r, U32_POOL);
        return `type ${id}: size_type`;
      case 2:
        t.kind_flag = !t.kind_flag;
        return `type ${id}: kind_flag`;
      case 3:
        t.vlen = pick(r, 0x10000);
        return `type ${id}: vlen`;
      case 4: {
        const refs = typeRefs(t);
        if (refs.length === 0) return null;
        choose(r, refs).set(typeId());
        return `type ${id}: reference`;
      }
      case 5:
        if (t.members && t.members.length > 0) {
          if (r() < 0.5) t.members.splice(pick(r, t.members.length), 1);
          else choose(r, t.members).offset = choose(r, U32_POOL);
          return `type ${id}: members`;
        }
        if (t.secinfo && t.secinfo.length > 0) {
          const s = choose(r, t.secinfo);
          s.offset = choose(r, U32_POOL);
          s.size = choose(r, U32_POOL);
          return `type ${id}: secinfo`;
        }
        return null;
      case 6:
        if (t.array) t.array.nelems = choose(r, U32_POOL);
        else if (t.int_encoding !== undefined) t.int_encoding = choose(r, U32_POOL);
        else if (t.var_linkage !== undefined) t.var_linkage = choose(r, [0, 1, 2, 0xffffffff]);
        else if (t.enum_vals && t.enum_vals.length > 0) choose(r, t.enum_vals).val = choose(r, U32_POOL);
        else return null;
        return `type ${id}: value`;
      default:
        if (r() < 0.5) btf.flags = pick(r, 256);
        else btf.types.splice(id - 1, 1); // later ids shift down; references go stale
        return `btf: flags or drop type ${id}`;
    }
  },
  renameExtString(obj, r) {
    const ext = obj.ext;
    if (!ext) return null;
    const li = ext.line_info.flatMap((s) => s.records);
    const cr = ext.core_relo.flatMap((s) => s.records);
    if (cr.length > 0 && r() < 0.3) {
      choose(r, cr).access_str = choose(r, ['0', '0:1', '0:0:0', '', 'x']);
      return 'core_relo access string';
    }
    if (li.length === 0) return null;
    const rec = choose(r, li);
    if (r() < 0.5) rec.file_name = pickName(r, []);
    else rec.line = pickName(r, [rec.file_name]);
    return 'line_info string';
  },
  extRecord(obj, r) {
    const ext = obj.ext;
    if (!ext) return null;
    const lists: [string, ExtInfoSec<{ insn_off: number; type_id?: number }>[]][] = [
      ['func_info', ext.func_info],
      ['line_info', ext.line_info],
      ['core_relo', ext.core_relo],
    ];
    const live = lists.filter(([, l]) => l.some((b) => b.records.length > 0));
    if (live.length === 0) return null;
    const [what, secs] = choose(r, live);
    const block = choose(r, secs.filter((b) => b.records.length > 0));
    const k = pick(r, block.records.length);
    const rec = block.records[k]!;
    const sec = findSection(obj.elf, block.sec_name);
    switch (pick(r, 5)) {
      case 0:
        rec.insn_off = sec && r() < 0.7 ? pick(r, Math.max(1, sec.data.length / 8)) * 8 : choose(r, U32_POOL);
        return `${what}[${block.sec_name}][${k}].insn_off`;
      case 1:
        if (rec.type_id === undefined) return null;
        rec.type_id = choose(r, [0, 1, obj.btf?.types.length ?? 0, pick(r, 1 + (obj.btf?.types.length ?? 0))]);
        return `${what}[${block.sec_name}][${k}].type_id`;
      case 2:
        block.records.splice(k, 1);
        return `${what}[${block.sec_name}] drop ${k}`;
      case 3:
        block.records.splice(k, 0, { ...rec });
        return `${what}[${block.sec_name}] duplicate ${k}`;
      default:
        block.sec_name = r() < 0.5 ? choose(r, obj.elf.sections).name : pickName(r, []);
        return `${what} block renamed`;
    }
  },
  extHeader(obj, r) {
    const ext = obj.ext;
    if (!ext) return null;
    switch (pick(r, 4)) {
      case 0:
        ext.func_info_rec_size = choose(r, [4, 8, 12, 16, 10]);
        return `func_info_rec_size ${ext.func_info_rec_size}`;
      case 1:
        ext.line_info_rec_size = choose(r, [12, 16, 20, 24, 18]);
        return `line_info_rec_size ${ext.line_info_rec_size}`;
      case 2:
        ext.hdr_len = choose(r, [20, 24, 28, 32, 36, 26]);
        return `hdr_len ${ext.hdr_len}`;
      default:
        ext.flags = pick(r, 256);
        return 'ext flags';
    }
  },
  relocTarget(obj, r) {
    const rels = obj.elf.sections.filter((s) => s.type === SHT_REL && s.relocs.length > 0);
    if (rels.length === 0) return null;
    const rel = choose(r, rels);
    const k = pick(r, rel.relocs.length);
    const x = { ...rel.relocs[k]! };
    const field = pick(r, 3);
    if (field === 0) x.symbol = choose(r, obj.elf.symbols);
    else if (field === 1) x.offset = pick(r, Math.max(1, (rel.target?.data.length ?? 8) / 8)) * 8 + (r() < 0.1 ? 4 : 0);
    else x.type = choose(r, [0, 1, 2, 3, 4, 10, 0xffffffff]);
    rel.relocs[k] = x;
    return `${rel.name}[${k}].${['symbol', 'offset', 'type'][field]}`;
  },
  symbol(obj, r) {
    const syms = obj.elf.symbols;
    if (syms.length < 2) return null;
    const k = 1 + pick(r, syms.length - 1);
    const s = syms[k]!;
    switch (pick(r, 6)) {
      case 0:
        s.name = pickName(r, syms.map((x) => x.name));
        return `symbol ${k} name`;
      case 1:
        s.bind = s.bind === STB_LOCAL ? 1 : STB_LOCAL;
        return `symbol ${k} bind`;
      case 2:
        s.type = pick(r, 16);
        return `symbol ${k} type`;
      case 3:
        s.value = s.section && r() < 0.7 ? pick(r, Math.max(1, s.section.data.length / 8)) * 8 : choose(r, [0, 1, 4096, 0xffffffff]);
        s.size = choose(r, [0, 8, s.size, s.size + 8, 0x100000]);
        return `symbol ${k} value/size`;
      case 4: {
        const removed: ElfSymbol[] = syms.splice(k, 1);
        return `remove symbol ${k} "${removed[0]!.name}"`;
      }
      default: {
        const sec = choose(r, obj.elf.sections);
        syms.push({ ...s, name: pickName(r, []), section: sec, value: 0, size: 0 });
        return `add symbol in ${sec.name}`;
      }
    }
  },
  section(obj, r) {
    const secs = obj.elf.sections;
    const k = pick(r, secs.length);
    const s = secs[k]!;
    switch (pick(r, 6)) {
      case 0: {
        // Names starting with .BTF would make raw bytes BTF (or BTF not found): a different object
        // on purpose, not a round trip; leave those alone.
        if (s.name.startsWith('.BTF')) return null;
        const name = r() < 0.5 ? choose(r, secs).name : pickName(r, []);
        if (name.startsWith('.BTF')) return null;
        s.name = name;
        return `section ${k} renamed "${name}"`;
      }
      case 1: {
        const j = pick(r, secs.length);
        secs[k] = secs[j]!;
        secs[j] = s;
        return `sections ${k}<->${j}`;
      }
      case 2:
        s.flags ^= choose(r, [1, 2, 4, 0x40]);
        return `section ${k} flags`;
      case 3:
        s.addralign = choose(r, [0, 1, 2, 3, 4, 8, 16, 4096, 8192]);
        return `section ${k} addralign ${s.addralign}`;
      case 4:
        if (s.type !== SHT_PROGBITS && s.type !== SHT_NOTE) return null;
        s.type = choose(r, [SHT_PROGBITS, SHT_NOTE, SHT_LLVM_ADDRSIG, 0x70000000]);
        return `section ${k} type 0x${s.type.toString(16)}`;
      default:
        if (s === obj.elf.symtab || s === obj.elf.strtab || s === obj.elf.shstrtab) return null;
        secs.splice(k, 1);
        return `remove section ${k} "${s.name}"`;
    }
  },
  sectionData(obj, r) {
    const s = choose(r, obj.elf.sections.filter((x) => (x.type === SHT_PROGBITS || x.type === SHT_NOTE) && !x.name.startsWith('.BTF')));
    if (!s) return null;
    const d = new Uint8Array(s.data.length + (r() < 0.5 ? 8 : -Math.min(s.data.length, 8)));
    d.set(s.data.subarray(0, d.length));
    s.data = d;
    return `section "${s.name}" resized to ${d.length}`;
  },
};
const MODEL_OP_NAMES = Object.keys(MODEL_OPS);

export function mutateModel(obj: BpfObject, r: Rng, ops: string[]): void {
  const rounds = 1 + pick(r, 3);
  for (let k = 0, tries = 0; k < rounds && tries < 20; tries++) {
    const name = choose(r, MODEL_OP_NAMES);
    const done = MODEL_OPS[name]!(obj, r);
    if (done !== null) {
      ops.push(done);
      k++;
    }
  }
}

// --- canonical form: what the writer promises to preserve ---

const b64 = (d: Uint8Array): string => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');

function vlenOf(t: BtfType): number {
  if (t.kind === BTF_KIND_STRUCT || t.kind === BTF_KIND_UNION) return t.members?.length ?? 0;
  if (t.kind === BTF_KIND_ENUM) return t.enum_vals?.length ?? 0;
  if (t.kind === BTF_KIND_ENUM64) return t.enum64_vals?.length ?? 0;
  if (t.kind === BTF_KIND_FUNC_PROTO) return t.params?.length ?? 0;
  if (t.kind === BTF_KIND_DATASEC) return t.secinfo?.length ?? 0;
  return t.vlen & 0xffff;
}

/** A type as the writer encodes it: only its kind's trailer, vlen following the trailer. */
function canonicalType(t: BtfType): unknown[] {
  const head = [t.kind & 0x1f, t.name, vlenOf(t), t.kind_flag, t.size_type >>> 0];
  switch (t.kind) {
    case BTF_KIND_INT:
      return [...head, (t.int_encoding ?? 0) >>> 0];
    case BTF_KIND_ARRAY:
      return [...head, (t.array?.type ?? 0) >>> 0, (t.array?.index_type ?? 0) >>> 0, (t.array?.nelems ?? 0) >>> 0];
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
      return [...head, (t.members ?? []).map((m) => [m.name, m.type >>> 0, m.offset >>> 0])];
    case BTF_KIND_ENUM:
      return [...head, (t.enum_vals ?? []).map((e) => [e.name, e.val >>> 0])];
    case BTF_KIND_ENUM64:
      return [...head, (t.enum64_vals ?? []).map((e) => [e.name, e.val_lo32 >>> 0, e.val_hi32 >>> 0])];
    case BTF_KIND_FUNC_PROTO:
      return [...head, (t.params ?? []).map((p) => [p.name, p.type >>> 0])];
    case BTF_KIND_VAR:
      return [...head, (t.var_linkage ?? 0) >>> 0];
    case BTF_KIND_DATASEC:
      return [...head, (t.secinfo ?? []).map((s) => [s.type >>> 0, s.offset >>> 0, s.size >>> 0])];
    case BTF_KIND_DECL_TAG:
      return [...head, (t.component_idx ?? 0) >>> 0];
    default:
      return head;
  }
}

/**
 * BTF.ext as the writer encodes it: blocks without records are not written, a part without
 * records has the minimum record size, and each record's unknown tail is cut or zero-padded to
 * the record size. The header length is left out: it is layout the writer chooses (at least 32
 * when CO-RE relocations exist), and a wrong one shows as lost or shifted records anyway.
 */
function canonicalExt(ext: BtfExt): unknown {
  const part = <T extends { insn_off: number; extra: Uint8Array }>(secs: ExtInfoSec<T>[], size: number, min: number, fields: (x: T) => unknown[]): unknown => {
    const live = secs.filter((s) => s.records.length > 0);
    const recSize = live.length > 0 ? size : min;
    return [
      recSize,
      live.map((s) => [
        s.sec_name,
        s.records.map((x) => {
          const extra = new Uint8Array(Math.max(0, recSize - min));
          extra.set(x.extra.subarray(0, extra.length));
          return [x.insn_off >>> 0, ...fields(x), b64(extra)];
        }),
      ]),
    ];
  };
  return {
    version: ext.version,
    flags: ext.flags,
    fi: part(ext.func_info, ext.func_info_rec_size, 8, (x) => [x.type_id >>> 0]),
    li: part(ext.line_info, ext.line_info_rec_size, 16, (x) => [x.file_name, x.line, x.line_col >>> 0]),
    cr: part(ext.core_relo, ext.core_relo_rec_size, 16, (x) => [x.type_id >>> 0, x.access_str, x.kind >>> 0]),
  };
}

/**
 * The model in the form the writer promises to preserve, as one string. Indices replace object
 * links; symbols are in the writer's order (null symbol, locals, globals); fields the writer
 * regenerates (symbol table and REL links, their entry sizes, .BTF/.BTF.ext bytes when the model
 * carries BTF) are left out.
 */
export function canonical(obj: BpfObject): string {
  const elf = obj.elf;
  const secIndex = new Map<Section, number>();
  elf.sections.forEach((s, i) => secIndex.set(s, i + 1));
  const rest = elf.symbols.slice(1);
  const ordered = [elf.symbols[0], ...rest.filter((s) => s.bind === STB_LOCAL), ...rest.filter((s) => s.bind !== STB_LOCAL)];
  const symIndex = new Map<ElfSymbol, number>();
  ordered.forEach((s, i) => s && symIndex.set(s, i));
  const regenerated = (s: Section): boolean =>
    s === elf.symtab || s === elf.strtab || s === elf.shstrtab || s.type === SHT_REL || s.type === SHT_NOBITS || (obj.btf !== null && s.name === '.BTF') || (obj.ext !== null && s.name === '.BTF.ext');
  const sections = elf.sections.map((s) => {
    const linked = s === elf.symtab || s.type === SHT_REL;
    return [
      s.name,
      s.type,
      s.flags,
      s.addr,
      s.addralign,
      linked ? null : s.entsize,
      linked || s.type === SHT_LLVM_ADDRSIG ? null : s.rawLink,
      linked ? null : s.rawInfo,
      regenerated(s) ? null : b64(s.data),
      s.nobitsSize,
      s.type === SHT_REL ? (s.target ? secIndex.get(s.target) ?? -1 : null) : null,
      s.type === SHT_REL ? s.relocs.map((x) => [x.offset, x.type >>> 0, symIndex.get(x.symbol) ?? -1]) : [],
    ];
  });
  const symbols = ordered.map((s) =>
    s ? [s.name, s.bind & 0xf, s.type & 0xf, s.other & 0xff, s.section ? secIndex.get(s.section) ?? -1 : `special ${s.special}`, s.value, s.size] : null,
  );
  return JSON.stringify({
    osabi: elf.osabi,
    eflags: elf.eflags,
    sections,
    symbols,
    symtab: secIndex.get(elf.symtab),
    strtab: secIndex.get(elf.strtab),
    shstrtab: secIndex.get(elf.shstrtab),
    btf: obj.btf ? { version: obj.btf.version, flags: obj.btf.flags, types: obj.btf.types.map(canonicalType) } : null,
    ext: obj.ext ? canonicalExt(obj.ext) : null,
  });
}

/** Where two canonical strings first differ, with a little context, for a failure message. */
export function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 60);
  return `at ${i}: expected …${a.slice(from, i + 60)}… got …${b.slice(from, i + 60)}…`;
}

// --- one mutant ---

const MODES: readonly PatchMode[] = ['subprog', 'inline'];
const INDICES = [0, 1, 1, 5, 33];

function pickProgram(bytes: Uint8Array, fileName: string): string | undefined {
  const progs = listPrograms(bytes, fileName);
  return (progs.find((p) => p.section.startsWith('xdp')) ?? progs[0])?.name;
}

/**
 * Runs one mutant. Never throws for a failure of the code under test: a non-LabError exception
 * (or a broken promise such as a failed round trip) comes back as `failure`.
 */
export function runMutant(base: PreparedBase, seed: number, index: number, read: Reader = readObject): MutantResult {
  const r = mutantRng(seed, base.name, index);
  const kind = kindOf(index);
  const res: MutantResult = { kind, ops: [], parsed: false, roundTrips: 0, patched: 0, codes: [], internal: [] };
  const file = `${base.name}#${index}`;
  /** Runs f; a LabError is an allowed outcome (recorded), anything else is the failure. */
  const guard = <T>(stage: string, f: () => T): T | undefined => {
    if (res.failure) return undefined;
    try {
      return f();
    } catch (e) {
      if (isLabError(e)) {
        res.codes.push(`${stage}:${e.code}`);
        if (e.code === 'PATCH' && e.message.includes('internal error')) res.internal.push(`${stage}: ${e.message}`);
        return undefined;
      }
      res.failure = { kind, ops: res.ops, stage, message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
      return undefined;
    }
  };
  const fail = (stage: string, message: string): void => {
    res.failure ??= { kind, ops: res.ops, stage, message };
  };
  const roundTrip = (obj: BpfObject, stage: string): Uint8Array | undefined => {
    const expected = canonical(obj);
    const out = guard(`${stage} write`, () => writeObject(obj));
    if (!out) return undefined;
    const again = guard(`${stage} reread`, () => readObject(out, file));
    if (!again) return undefined;
    const got = canonical(again);
    if (got !== expected) {
      fail(`${stage} compare`, `the writer's output reads back as a different model: ${firstDifference(expected, got)}`);
      return undefined;
    }
    res.roundTrips++;
    return out;
  };
  const patch = (input: Uint8Array, mode: PatchMode): void => {
    const program = guard('list', () => pickProgram(input, file));
    if (res.failure) return;
    const opts = { index: choose(r, INDICES), success: [2], redirect: [3, 4], mode, program, fileName: file };
    const out = guard(`patch ${mode}`, () => patchObject(input, opts));
    if (!out) return;
    res.patched++;
    // The output must carry the chain maps, so patching it again has to be refused.
    const again = guard(`repatch ${mode}`, () => patchObject(out.object, opts));
    if (again) fail(`repatch ${mode}`, 'a patched object was accepted for patching again');
    res.sample ??= { kind, mode, program: out.program, section: out.section, input, output: out.object };
  };

  if (kind === 'bytes') {
    const m = guard('mutate', () => mutateBytes(base.bytes, base.regions, r, res.ops));
    if (!m) return res;
    const obj = guard('read', () => read(m, file));
    if (!obj) return res;
    res.parsed = true;
    roundTrip(obj, 'roundtrip');
    for (const mode of MODES) patch(m, mode);
    return res;
  }
  const obj = guard('read base', () => read(base.bytes, file));
  if (!obj) {
    fail('read base', 'the unmutated object no longer reads');
    return res;
  }
  guard('mutate', () => mutateModel(obj, r, res.ops));
  const out = roundTrip(obj, 'model');
  if (!out) return res;
  res.parsed = true;
  patch(out, choose(r, MODES));
  return res;
}
