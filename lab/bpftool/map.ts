/**
 * Maps through bpftool: create, show, update, delete, lookup, dump and pin, with keys and values
 * as bytes (bpftool's `hex ..` words) and per-CPU values kept per CPU.
 */
import type { Target } from '../target.ts';
import { LabError } from '../errors.ts';
import { bytesFromHex, hexBytes, type Bytes } from '../bytes.ts';
import { BPFTOOL, bpftoolJson, errorText, refArgs, refText, type ObjRef } from './run.ts';
import { checkPinPath } from './bpffs.ts';

export interface MapInfo {
  id: number;
  type: string;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId?: number;
}

/** One map entry. `value` for ordinary maps, `values` (one per CPU) for per-CPU maps. */
export interface MapEntry {
  key: Uint8Array;
  value?: Uint8Array;
  values?: { cpu: number; value: Uint8Array }[];
  /** bpftool's BTF-decoded view of the entry, when the map has BTF. */
  formatted?: unknown;
}

function hexArgs(b: Bytes): string[] {
  return ['hex', ...hexBytes(b)];
}

interface RawEntry {
  key: string[];
  value?: string[];
  values?: { cpu: number; value: string[] }[];
  formatted?: unknown;
}

function entryFromRaw(e: RawEntry): MapEntry {
  return {
    key: bytesFromHex(e.key),
    value: e.value ? bytesFromHex(e.value) : undefined,
    values: e.values?.map((v) => ({ cpu: v.cpu, value: bytesFromHex(v.value) })),
    formatted: e.formatted,
  };
}

export interface MapCreateOptions {
  /** bpftool's map type word: hash, array, percpu_array, prog_array, perf_event_array... */
  type: string;
  keySize: number;
  valueSize: number;
  entries: number;
  name: string;
  flags?: number;
}

/** `bpftool map create PIN type T key K value V entries N name NAME`. */
export async function mapCreate(target: Target, pinPath: string, o: MapCreateOptions): Promise<MapInfo> {
  checkPinPath(pinPath);
  const args = ['map', 'create', pinPath, 'type', o.type, 'key', String(o.keySize), 'value', String(o.valueSize), 'entries', String(o.entries), 'name', o.name];
  if (o.flags !== undefined) args.push('flags', String(o.flags));
  await bpftoolJson(target, args, { what: `creating map ${o.name} at ${pinPath}` });
  return mapShow(target, { pinned: pinPath });
}

interface RawMap {
  id: number;
  type: string;
  name?: string;
  bytes_key: number;
  bytes_value: number;
  max_entries: number;
  flags: number;
  btf_id?: number;
}

function mapFromRaw(m: RawMap): MapInfo {
  return {
    id: m.id,
    type: m.type,
    name: m.name ?? '',
    keySize: m.bytes_key,
    valueSize: m.bytes_value,
    maxEntries: m.max_entries,
    flags: m.flags,
    btfId: m.btf_id,
  };
}

export async function mapShow(target: Target, ref: ObjRef): Promise<MapInfo> {
  const j = await bpftoolJson<RawMap | RawMap[]>(target, ['map', 'show', ...refArgs(ref)], { what: `map show ${refText(ref)}` });
  const m = Array.isArray(j) ? j[0] : j;
  if (!m) throw new LabError('LOAD', `${target.name}: no map matches ${refText(ref)}`);
  return mapFromRaw(m);
}

export type MapValue = Bytes | { prog: ObjRef } | { fd: ObjRef };

/**
 * `bpftool map update <ref> key hex .. value hex ..` (or `value <prog ref>` for a PROG_ARRAY).
 * `flag` any (default) / exist / noexist.
 */
export async function mapUpdate(target: Target, ref: ObjRef, key: Bytes, value: MapValue, flag: 'any' | 'exist' | 'noexist' = 'any'): Promise<void> {
  const v = 'prog' in value ? refArgs(value.prog) : 'fd' in value ? refArgs(value.fd) : hexArgs(value as Bytes);
  await bpftoolJson(target, ['map', 'update', ...refArgs(ref), 'key', ...hexArgs(key), 'value', ...v, flag], {
    what: `updating map ${refText(ref)}`,
  });
}

/** `bpftool map delete <ref> key ..`. */
export async function mapDelete(target: Target, ref: ObjRef, key: Bytes): Promise<void> {
  await bpftoolJson(target, ['map', 'delete', ...refArgs(ref), 'key', ...hexArgs(key)], { what: `deleting from map ${refText(ref)}` });
}

/** `bpftool map lookup`; null when the key is absent. */
export async function mapLookup(target: Target, ref: ObjRef, key: Bytes): Promise<MapEntry | null> {
  const argv = [BPFTOOL, '-j', 'map', 'lookup', ...refArgs(ref), 'key', ...hexArgs(key)];
  const r = await target.run(argv, { allowFailure: true });
  const out = r.stdout.trim();
  // bpftool prints "null" (exit 254) or an error mentioning ENOENT for an absent key.
  if (r.exitCode !== 0 && (out === 'null' || /No such file or directory|not found/i.test(errorText(r))) && !/bpf obj get/.test(out)) {
    return null;
  }
  if (r.exitCode !== 0) {
    throw new LabError('COMMAND', `${target.name}: looking up map ${refText(ref)} failed (exit ${r.exitCode}):\n${errorText(r)}`, {
      details: { argv, stdout: r.stdout, stderr: r.stderr },
    });
  }
  return entryFromRaw(JSON.parse(out) as RawEntry);
}

/** `bpftool map dump <ref>`. */
export async function mapDump(target: Target, ref: ObjRef): Promise<MapEntry[]> {
  const j = await bpftoolJson<RawEntry[] | null>(target, ['map', 'dump', ...refArgs(ref)], { what: `dumping map ${refText(ref)}` });
  return (j ?? []).map(entryFromRaw);
}

/** `bpftool map pin <ref> PATH`. */
export async function mapPin(target: Target, ref: ObjRef, path: string): Promise<void> {
  await bpftoolJson(target, ['map', 'pin', ...refArgs(ref), path], { what: `pinning map ${refText(ref)} at ${path}` });
}
