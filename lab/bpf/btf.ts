/**
 * BTF (.BTF section) codec. The wire records keep the kernel's field names (include/uapi/linux/btf.h);
 * the one friendlier step is that every name_off is resolved to its string when reading and
 * re-interned through a StringTableBuilder when writing, so a pass can add types and strings
 * without tracking offsets. BTF.ext (btf-ext.ts) shares the same string table.
 */
import { LabError } from '../errors.ts';
import { StringTableBuilder } from './strtab.ts';

export const BTF_MAGIC = 0xeb9f;

export const BTF_KIND_INT = 1;
export const BTF_KIND_PTR = 2;
export const BTF_KIND_ARRAY = 3;
export const BTF_KIND_STRUCT = 4;
export const BTF_KIND_UNION = 5;
export const BTF_KIND_ENUM = 6;
export const BTF_KIND_FWD = 7;
export const BTF_KIND_TYPEDEF = 8;
export const BTF_KIND_VOLATILE = 9;
export const BTF_KIND_CONST = 10;
export const BTF_KIND_RESTRICT = 11;
export const BTF_KIND_FUNC = 12;
export const BTF_KIND_FUNC_PROTO = 13;
export const BTF_KIND_VAR = 14;
export const BTF_KIND_DATASEC = 15;
export const BTF_KIND_FLOAT = 16;
export const BTF_KIND_DECL_TAG = 17;
export const BTF_KIND_TYPE_TAG = 18;
export const BTF_KIND_ENUM64 = 19;
const MAX_KIND = BTF_KIND_ENUM64;

export const BTF_FUNC_STATIC = 0;
export const BTF_FUNC_GLOBAL = 1;
export const BTF_VAR_GLOBAL_ALLOCATED = 1;

export interface BtfMember {
  name: string;
  type: number;
  /** bit offset (or bitfield size << 24 | offset when the struct's kind_flag is set) */
  offset: number;
}
export interface BtfEnumVal {
  name: string;
  val: number;
}
export interface BtfEnum64Val {
  name: string;
  val_lo32: number;
  val_hi32: number;
}
export interface BtfParam {
  name: string;
  type: number;
}
export interface BtfVarSecinfo {
  type: number;
  offset: number;
  size: number;
}
export interface BtfArray {
  type: number;
  index_type: number;
  nelems: number;
}

/** One btf_type record plus its kind-specific trailer. */
export interface BtfType {
  kind: number;
  name: string;
  /** vlen; for FUNC it holds the linkage */
  vlen: number;
  kind_flag: boolean;
  /** the size/type union */
  size_type: number;
  int_encoding?: number;
  array?: BtfArray;
  members?: BtfMember[];
  enum_vals?: BtfEnumVal[];
  enum64_vals?: BtfEnum64Val[];
  params?: BtfParam[];
  var_linkage?: number;
  secinfo?: BtfVarSecinfo[];
  component_idx?: number;
}

export interface Btf {
  version: number;
  flags: number;
  /** types[k] has type id k + 1 (id 0 is void). */
  types: BtfType[];
}

export function btfError(file: string, what: string): LabError {
  return new LabError('BTF', `${file}: section ".BTF": ${what}`, {
    remedy: 'Rebuild the object with clang -g -target bpf (a recent clang); its BTF is truncated or corrupt.',
  });
}

export function readBtfString(strs: Uint8Array, off: number, file: string, what: string, sec = '.BTF'): string {
  if (!Number.isInteger(off) || off < 0 || off >= strs.length) {
    throw new LabError('BTF', `${file}: section "${sec}": ${what}: string offset ${off} outside string section (${strs.length} bytes)`, {
      remedy: 'Rebuild the object with clang -g -target bpf; its BTF is corrupt.',
    });
  }
  const end = strs.indexOf(0, off);
  if (end < 0) throw btfError(file, `${what}: string at ${off} not NUL-terminated`);
  return new TextDecoder().decode(strs.subarray(off, end));
}

export interface ParsedBtf {
  btf: Btf;
  /** The raw string section, which BTF.ext string offsets index. */
  strings: Uint8Array;
}

export function parseBtf(bytes: Uint8Array, file = '<object>'): ParsedBtf {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) throw btfError(file, `header truncated (${bytes.length} bytes)`);
  const magic = v.getUint16(0, true);
  if (magic !== BTF_MAGIC) throw btfError(file, `bad magic 0x${magic.toString(16)}`);
  const version = v.getUint8(2);
  if (version !== 1) throw btfError(file, `unsupported version ${version}`);
  const flags = v.getUint8(3);
  const hdrLen = v.getUint32(4, true);
  if (hdrLen < 24 || hdrLen > bytes.length) throw btfError(file, `bad header length ${hdrLen}`);
  const typeOff = v.getUint32(8, true);
  const typeLen = v.getUint32(12, true);
  const strOff = v.getUint32(16, true);
  const strLen = v.getUint32(20, true);
  const tStart = hdrLen + typeOff;
  const sStart = hdrLen + strOff;
  if (tStart + typeLen > bytes.length || typeLen % 4 !== 0) throw btfError(file, `type section ${typeOff}+${typeLen} out of bounds`);
  if (sStart + strLen > bytes.length) throw btfError(file, `string section ${strOff}+${strLen} out of bounds`);
  if (strLen === 0 || bytes[sStart] !== 0 || bytes[sStart + strLen - 1] !== 0) {
    throw btfError(file, 'string section must start and end with NUL');
  }
  if (tStart < sStart + strLen && sStart < tStart + typeLen) throw btfError(file, 'type and string sections overlap');
  const strs = bytes.slice(sStart, sStart + strLen);
  const str = (off: number, what: string): string => readBtfString(strs, off, file, what);

  const types: BtfType[] = [];
  let p = tStart;
  const end = tStart + typeLen;
  const need = (n: number, what: string): void => {
    if (p + n > end) throw btfError(file, `type ${types.length + 1}: ${what} truncated`);
  };
  while (p < end) {
    const id = types.length + 1;
    need(12, 'btf_type');
    const nameOff = v.getUint32(p, true);
    const info = v.getUint32(p + 4, true);
    const sizeType = v.getUint32(p + 8, true);
    p += 12;
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const kindFlag = (info >>> 31) === 1;
    if (kind === 0 || kind > MAX_KIND) throw btfError(file, `type ${id}: unknown kind ${kind}`);
    const t: BtfType = { kind, name: str(nameOff, `type ${id} name`), vlen, kind_flag: kindFlag, size_type: sizeType };
    const u32 = (): number => {
      const x = v.getUint32(p, true);
      p += 4;
      return x;
    };
    switch (kind) {
      case BTF_KIND_INT:
        need(4, 'int encoding');
        t.int_encoding = u32();
        break;
      case BTF_KIND_ARRAY:
        need(12, 'btf_array');
        t.array = { type: u32(), index_type: u32(), nelems: u32() };
        break;
      case BTF_KIND_STRUCT:
      case BTF_KIND_UNION:
        need(12 * vlen, 'members');
        t.members = [];
        for (let k = 0; k < vlen; k++) t.members.push({ name: str(u32(), `type ${id} member ${k}`), type: u32(), offset: u32() });
        break;
      case BTF_KIND_ENUM:
        need(8 * vlen, 'enum values');
        t.enum_vals = [];
        for (let k = 0; k < vlen; k++) t.enum_vals.push({ name: str(u32(), `type ${id} enumerator ${k}`), val: u32() });
        break;
      case BTF_KIND_ENUM64:
        need(12 * vlen, 'enum64 values');
        t.enum64_vals = [];
        for (let k = 0; k < vlen; k++) {
          t.enum64_vals.push({ name: str(u32(), `type ${id} enumerator ${k}`), val_lo32: u32(), val_hi32: u32() });
        }
        break;
      case BTF_KIND_FUNC_PROTO:
        need(8 * vlen, 'params');
        t.params = [];
        for (let k = 0; k < vlen; k++) t.params.push({ name: str(u32(), `type ${id} param ${k}`), type: u32() });
        break;
      case BTF_KIND_VAR:
        need(4, 'var linkage');
        t.var_linkage = u32();
        break;
      case BTF_KIND_DATASEC:
        need(12 * vlen, 'var_secinfo');
        t.secinfo = [];
        for (let k = 0; k < vlen; k++) t.secinfo.push({ type: u32(), offset: u32(), size: u32() });
        break;
      case BTF_KIND_DECL_TAG:
        need(4, 'decl tag');
        t.component_idx = u32();
        break;
      default:
        break;
    }
    types.push(t);
  }
  const btf: Btf = { version, flags, types };
  checkTypeRefs(btf, file);
  return { btf, strings: strs };
}

/** Every type id a record refers to must exist (sanity, as the kernel's btf_check_all_metas does). */
function checkTypeRefs(btf: Btf, file: string): void {
  const n = btf.types.length;
  const ok = (id: number, id0: number, what: string): void => {
    if (id > n) throw btfError(file, `type ${id0}: ${what} refers to type ${id} beyond ${n} types`);
  };
  btf.types.forEach((t, k) => {
    const id = k + 1;
    switch (t.kind) {
      case BTF_KIND_PTR:
      case BTF_KIND_TYPEDEF:
      case BTF_KIND_VOLATILE:
      case BTF_KIND_CONST:
      case BTF_KIND_RESTRICT:
      case BTF_KIND_FUNC:
      case BTF_KIND_VAR:
      case BTF_KIND_TYPE_TAG:
      case BTF_KIND_DECL_TAG:
        ok(t.size_type, id, 'type');
        break;
      case BTF_KIND_FUNC_PROTO:
        ok(t.size_type, id, 'return type');
        t.params?.forEach((p) => ok(p.type, id, 'param'));
        break;
      case BTF_KIND_ARRAY:
        ok(t.array!.type, id, 'element');
        ok(t.array!.index_type, id, 'index');
        break;
      case BTF_KIND_STRUCT:
      case BTF_KIND_UNION:
        t.members?.forEach((m) => ok(m.type, id, `member ${m.name}`));
        break;
      case BTF_KIND_DATASEC:
        t.secinfo?.forEach((s) => ok(s.type, id, 'var'));
        break;
      default:
        break;
    }
  });
}

/** Encodes the types, interning every name through `strings`; returns the type section bytes. */
export function encodeBtfTypes(btf: Btf, strings: StringTableBuilder): Uint8Array {
  const words: number[] = [];
  for (const t of btf.types) {
    const vlen = vlenOf(t);
    words.push(strings.add(t.name), ((t.kind_flag ? 1 : 0) << 31) | ((t.kind & 0x1f) << 24) | (vlen & 0xffff), t.size_type);
    switch (t.kind) {
      case BTF_KIND_INT:
        words.push(t.int_encoding ?? 0);
        break;
      case BTF_KIND_ARRAY: {
        // A missing trailer encodes as zeros, like every other kind's (a pass may retag a type).
        const arr = t.array ?? { type: 0, index_type: 0, nelems: 0 };
        words.push(arr.type, arr.index_type, arr.nelems);
        break;
      }
      case BTF_KIND_STRUCT:
      case BTF_KIND_UNION:
        for (const m of t.members ?? []) words.push(strings.add(m.name), m.type, m.offset);
        break;
      case BTF_KIND_ENUM:
        for (const e of t.enum_vals ?? []) words.push(strings.add(e.name), e.val);
        break;
      case BTF_KIND_ENUM64:
        for (const e of t.enum64_vals ?? []) words.push(strings.add(e.name), e.val_lo32, e.val_hi32);
        break;
      case BTF_KIND_FUNC_PROTO:
        for (const p of t.params ?? []) words.push(strings.add(p.name), p.type);
        break;
      case BTF_KIND_VAR:
        words.push(t.var_linkage ?? 0);
        break;
      case BTF_KIND_DATASEC:
        for (const s of t.secinfo ?? []) words.push(s.type, s.offset, s.size);
        break;
      case BTF_KIND_DECL_TAG:
        words.push(t.component_idx ?? 0);
        break;
      default:
        break;
    }
  }
  const out = new Uint8Array(words.length * 4);
  const v = new DataView(out.buffer);
  words.forEach((w, k) => v.setUint32(k * 4, w >>> 0, true));
  return out;
}

/** vlen follows the trailer for kinds that have one, so a pass cannot leave them inconsistent. */
function vlenOf(t: BtfType): number {
  switch (t.kind) {
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
      return t.members?.length ?? 0;
    case BTF_KIND_ENUM:
      return t.enum_vals?.length ?? 0;
    case BTF_KIND_ENUM64:
      return t.enum64_vals?.length ?? 0;
    case BTF_KIND_FUNC_PROTO:
      return t.params?.length ?? 0;
    case BTF_KIND_DATASEC:
      return t.secinfo?.length ?? 0;
    default:
      return t.vlen;
  }
}

/** Assembles a .BTF section from encoded types and the final string table. */
export function assembleBtf(btf: Btf, typeBytes: Uint8Array, strBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(24 + typeBytes.length + strBytes.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, BTF_MAGIC, true);
  v.setUint8(2, btf.version);
  v.setUint8(3, btf.flags);
  v.setUint32(4, 24, true);
  v.setUint32(8, 0, true);
  v.setUint32(12, typeBytes.length, true);
  v.setUint32(16, typeBytes.length, true);
  v.setUint32(20, strBytes.length, true);
  out.set(typeBytes, 24);
  out.set(strBytes, 24 + typeBytes.length);
  return out;
}

// --- small helpers for passes ---

export function typeById(btf: Btf, id: number): BtfType | undefined {
  return id >= 1 ? btf.types[id - 1] : undefined;
}

export function addType(btf: Btf, t: BtfType): number {
  btf.types.push(t);
  return btf.types.length;
}

export function findType(btf: Btf, kind: number, name: string): number {
  const k = btf.types.findIndex((t) => t.kind === kind && t.name === name);
  return k < 0 ? 0 : k + 1;
}
