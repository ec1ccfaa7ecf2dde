/**
 * BTF.ext (.BTF.ext section) codec: func_info, line_info and CO-RE relocation records grouped
 * by code section. Offsets in an object file are byte offsets into the section (libbpf turns
 * them into instruction indices at load). Records are kept with the record size the file
 * declares: bytes beyond the fields we know ride along untouched (as libbpf's linker does).
 * Strings (section names, file names, source lines, CO-RE access strings) live in .BTF's string
 * section; they are resolved on read and re-interned on write.
 */
import { LabError } from '../errors.ts';
import type { StringTableBuilder } from './strtab.ts';
import { readBtfString } from './btf.ts';

export interface BpfFuncInfo {
  insn_off: number;
  type_id: number;
  extra: Uint8Array;
}
export interface BpfLineInfo {
  insn_off: number;
  file_name: string;
  line: string;
  line_col: number;
  extra: Uint8Array;
}
export interface BpfCoreRelo {
  insn_off: number;
  type_id: number;
  access_str: string;
  kind: number;
  extra: Uint8Array;
}

export interface ExtInfoSec<T> {
  sec_name: string;
  records: T[];
}

export interface BtfExt {
  version: number;
  flags: number;
  /** Declared header length (24 without CO-RE relocations, 32 with). */
  hdr_len: number;
  func_info_rec_size: number;
  line_info_rec_size: number;
  core_relo_rec_size: number;
  func_info: ExtInfoSec<BpfFuncInfo>[];
  line_info: ExtInfoSec<BpfLineInfo>[];
  core_relo: ExtInfoSec<BpfCoreRelo>[];
}

const MIN_FUNC = 8;
const MIN_LINE = 16;
const MIN_CORE = 16;

function extError(file: string, what: string): LabError {
  return new LabError('BTF', `${file}: section ".BTF.ext": ${what}`, {
    remedy: 'Rebuild the object with clang -g -target bpf; its .BTF.ext is truncated or corrupt.',
  });
}

export function parseBtfExt(bytes: Uint8Array, strings: Uint8Array, file = '<object>'): BtfExt {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) throw extError(file, `header truncated (${bytes.length} bytes)`);
  const magic = v.getUint16(0, true);
  if (magic !== 0xeb9f) throw extError(file, `bad magic 0x${magic.toString(16)}`);
  const version = v.getUint8(2);
  if (version !== 1) throw extError(file, `unsupported version ${version}`);
  const flags = v.getUint8(3);
  const hdrLen = v.getUint32(4, true);
  if (hdrLen < 24 || hdrLen > bytes.length || hdrLen % 4 !== 0) throw extError(file, `bad header length ${hdrLen}`);
  const str = (off: number, what: string): string => readBtfString(strings, off, file, what, '.BTF.ext');

  function section<T>(
    off: number,
    len: number,
    what: string,
    min: number,
    rec: (p: number, size: number, k: number, sec: string) => T,
  ): { size: number; secs: ExtInfoSec<T>[] } {
    if (len === 0) return { size: min, secs: [] };
    const start = hdrLen + off;
    if (start + len > bytes.length || len < 4) throw extError(file, `${what}: ${off}+${len} out of bounds`);
    const size = v.getUint32(start, true);
    if (size < min || size % 4 !== 0 || size > 1024) throw extError(file, `${what}: record size ${size} invalid (min ${min})`);
    const end = start + len;
    let p = start + 4;
    const secs: ExtInfoSec<T>[] = [];
    while (p < end) {
      if (p + 8 > end) throw extError(file, `${what}: section header truncated`);
      const secName = str(v.getUint32(p, true), `${what} section name`);
      const num = v.getUint32(p + 4, true);
      p += 8;
      if (num === 0) throw extError(file, `${what} for "${secName}": zero records`);
      if (num > (end - p) / size) throw extError(file, `${what} for "${secName}": ${num} records overrun the section`);
      const records: T[] = [];
      for (let k = 0; k < num; k++) {
        records.push(rec(p, size, k, secName));
        p += size;
      }
      secs.push({ sec_name: secName, records });
    }
    return { size, secs };
  }
  const tail = (p: number, size: number, known: number): Uint8Array => bytes.slice(p + known, p + size);

  const fi = section(v.getUint32(8, true), v.getUint32(12, true), 'func_info', MIN_FUNC, (p, size) => ({
    insn_off: v.getUint32(p, true),
    type_id: v.getUint32(p + 4, true),
    extra: tail(p, size, MIN_FUNC),
  }));
  const li = section(v.getUint32(16, true), v.getUint32(20, true), 'line_info', MIN_LINE, (p, size, k, sec) => ({
    insn_off: v.getUint32(p, true),
    file_name: str(v.getUint32(p + 4, true), `line_info[${sec}][${k}] file name`),
    line: str(v.getUint32(p + 8, true), `line_info[${sec}][${k}] line`),
    line_col: v.getUint32(p + 12, true),
    extra: tail(p, size, MIN_LINE),
  }));
  let cr: { size: number; secs: ExtInfoSec<BpfCoreRelo>[] } = { size: MIN_CORE, secs: [] };
  if (hdrLen >= 32) {
    cr = section(v.getUint32(24, true), v.getUint32(28, true), 'core_relo', MIN_CORE, (p, size, k, sec) => ({
      insn_off: v.getUint32(p, true),
      type_id: v.getUint32(p + 4, true),
      access_str: str(v.getUint32(p + 8, true), `core_relo[${sec}][${k}] access string`),
      kind: v.getUint32(p + 12, true),
      extra: tail(p, size, MIN_CORE),
    }));
  }
  return {
    version,
    flags,
    hdr_len: hdrLen,
    func_info_rec_size: fi.size,
    line_info_rec_size: li.size,
    core_relo_rec_size: cr.size,
    func_info: fi.secs,
    line_info: li.secs,
    core_relo: cr.secs,
  };
}

/** Encodes BTF.ext, interning its strings into the shared .BTF string table builder. */
export function encodeBtfExt(ext: BtfExt, strings: StringTableBuilder, file = '<object>'): Uint8Array {
  const hdrLen = ext.core_relo.length > 0 ? Math.max(32, ext.hdr_len) : Math.max(24, Math.min(ext.hdr_len, 32));
  const part = <T>(secs: ExtInfoSec<T>[], size: number, min: number, what: string, put: (v: DataView, p: number, r: T) => void): Uint8Array => {
    const live = secs.filter((s) => s.records.length > 0);
    if (live.length === 0) return new Uint8Array(0);
    // The reader's rule, checked before writing: a record smaller than its fixed fields would
    // make each record overwrite the next and the last one run past the buffer.
    if (!Number.isInteger(size) || size < min || size % 4 !== 0 || size > 1024) {
      throw extError(file, `writer: ${what}: record size ${size} invalid (min ${min})`);
    }
    let n = 4;
    for (const s of live) n += 8 + s.records.length * size;
    const out = new Uint8Array(n);
    const v = new DataView(out.buffer);
    v.setUint32(0, size, true);
    let p = 4;
    for (const s of live) {
      v.setUint32(p, strings.add(s.sec_name), true);
      v.setUint32(p + 4, s.records.length, true);
      p += 8;
      for (const r of s.records) {
        put(v, p, r);
        p += size;
      }
    }
    return out;
  };
  const fi = part(ext.func_info, ext.func_info_rec_size, MIN_FUNC, 'func_info', (v, p, r) => {
    v.setUint32(p, r.insn_off, true);
    v.setUint32(p + 4, r.type_id, true);
    new Uint8Array(v.buffer).set(r.extra.subarray(0, ext.func_info_rec_size - MIN_FUNC), p + MIN_FUNC);
  });
  const li = part(ext.line_info, ext.line_info_rec_size, MIN_LINE, 'line_info', (v, p, r) => {
    v.setUint32(p, r.insn_off, true);
    v.setUint32(p + 4, strings.add(r.file_name), true);
    v.setUint32(p + 8, strings.add(r.line), true);
    v.setUint32(p + 12, r.line_col, true);
    new Uint8Array(v.buffer).set(r.extra.subarray(0, ext.line_info_rec_size - MIN_LINE), p + MIN_LINE);
  });
  const cr = part(ext.core_relo, ext.core_relo_rec_size, MIN_CORE, 'core_relo', (v, p, r) => {
    v.setUint32(p, r.insn_off, true);
    v.setUint32(p + 4, r.type_id, true);
    v.setUint32(p + 8, strings.add(r.access_str), true);
    v.setUint32(p + 12, r.kind, true);
    new Uint8Array(v.buffer).set(r.extra.subarray(0, ext.core_relo_rec_size - MIN_CORE), p + MIN_CORE);
  });
  const out = new Uint8Array(hdrLen + fi.length + li.length + cr.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 0xeb9f, true);
  v.setUint8(2, ext.version);
  v.setUint8(3, ext.flags);
  v.setUint32(4, hdrLen, true);
  v.setUint32(8, 0, true);
  v.setUint32(12, fi.length, true);
  v.setUint32(16, fi.length, true);
  v.setUint32(20, li.length, true);
  if (hdrLen >= 32) {
    v.setUint32(24, fi.length + li.length, true);
    v.setUint32(28, cr.length, true);
  }
  out.set(fi, hdrLen);
  out.set(li, hdrLen + fi.length);
  out.set(cr, hdrLen + fi.length + li.length);
  return out;
}

/** The info block for a section, created when missing. */
export function infoFor<T>(secs: ExtInfoSec<T>[], name: string): ExtInfoSec<T> {
  let s = secs.find((x) => x.sec_name === name);
  if (!s) {
    s = { sec_name: name, records: [] };
    secs.push(s);
  }
  return s;
}
