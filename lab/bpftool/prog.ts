/**
 * Programs through bpftool: loading objects (`prog load`, `prog loadall`, maps shared through
 * pins), showing, pinning and test-running them (BPF_PROG_TEST_RUN).
 */
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError } from '../errors.ts';
import { bpftoolJson, refArgs, refText, type ObjRef } from './run.ts';
import { checkPinPath } from './bpffs.ts';

export interface ProgInfo {
  id: number;
  type: string;
  name: string;
  tag: string;
  jited: boolean;
  bytesXlated: number;
  bytesJited: number;
  mapIds: number[];
  btfId?: number;
  loadedAt?: number;
  /**
   * Run-time statistics (kernel.bpf_stats_enabled or BPF_ENABLE_STATS): bpftool prints them only
   * once the program has accumulated some, so undefined means zero or never enabled.
   */
  runTimeNs?: number;
  runCnt?: number;
}

export interface ProgRunResult {
  /** The program's return value (XDP action for XDP programs). */
  retval: number;
  /** Mean duration of one run in ns, as the kernel reports it (coarse; not for benchmarks). */
  durationNs: number;
  /** The packet as the program left it (only when asked). */
  dataOut?: Uint8Array;
}

/** Reuse an existing map (by pinned path or id) for the object's map called `name`. */
export interface MapReuse {
  name: string;
  pinned?: string;
  id?: number;
}

export interface LoadOptions {
  /** Program type when the section name does not say it (we always pass "xdp" for XDP objects). */
  type?: string;
  /** Maps of the object to replace by existing maps, so stages and approaches share them. */
  maps?: MapReuse[];
  /** Directory where the object's maps are pinned (created by bpftool). */
  pinMaps?: string;
}

function loadArgs(opts: LoadOptions): string[] {
  const a: string[] = [];
  if (opts.type) a.push('type', opts.type);
  for (const m of opts.maps ?? []) {
    if (m.pinned !== undefined) a.push('map', 'name', m.name, 'pinned', m.pinned);
    else if (m.id !== undefined) a.push('map', 'name', m.name, 'id', String(m.id));
    else throw new LabError('BAD_INPUT', `map reuse for "${m.name}" names neither a pin nor an id`);
  }
  if (opts.pinMaps) a.push('pinmaps', opts.pinMaps);
  return a;
}

async function checkObject(target: Target, objectPath: string): Promise<void> {
  const r = await target.run(['test', '-f', objectPath], { allowFailure: true });
  if (r.exitCode !== 0) {
    throw new LabError('MISSING_FILE', `${target.name}: BPF object ${objectPath} does not exist`, {
      remedy: 'Build the programs first (npm run build:bpf) and copy them to the target.',
    });
  }
}

const loadRemedy =
  'Read the verifier/libbpf message above; check that the object was built for this kernel (npm run build:bpf) and that reused maps match the object\'s map definitions.';

/**
 * `bpftool prog loadall OBJ DIR ...`: loads every program of the object, pinning each one as
 * DIR/<program name>. Returns the pinned programs' info, keyed by program name.
 */
export async function loadAll(target: Target, objectPath: string, pinDir: string, opts: LoadOptions = {}): Promise<Record<string, ProgInfo>> {
  checkPinPath(pinDir);
  if (opts.pinMaps) checkPinPath(opts.pinMaps);
  await checkObject(target, objectPath);
  const existed = (await target.run(['test', '-e', pinDir], { allowFailure: true })).exitCode === 0;
  // bpftool creates the last path component only.
  await target.run(['mkdir', '-p', pinDir.replace(/\/[^/]+\/?$/, '') || '/']);
  try {
    await bpftoolJson(target, ['prog', 'loadall', objectPath, pinDir, ...loadArgs(opts)], {
      code: 'LOAD',
      what: `loading ${objectPath}`,
      remedy: loadRemedy,
    });
  } catch (e) {
    // bpftool can fail after pinning some programs or maps: leave nothing of ours behind.
    if (!existed) await target.run(['rm', '-rf', '--', pinDir], { allowFailure: true });
    if (opts.pinMaps && !opts.pinMaps.startsWith(`${pinDir}/`)) await target.run(['rm', '-rf', '--', opts.pinMaps], { allowFailure: true });
    throw e;
  }
  const ls = await target.run(['ls', '-1', pinDir]);
  const out: Record<string, ProgInfo> = {};
  for (const entry of ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    const path = `${pinDir}/${entry}`;
    // The pinmaps directory may live inside pinDir; only program pins answer `prog show`.
    const isDir = await target.run(['test', '-d', path], { allowFailure: true });
    if (isDir.exitCode === 0) continue;
    const info = await progShow(target, { pinned: path }).catch(() => null);
    if (info) out[info.name] = info;
  }
  return out;
}

/** `bpftool prog load OBJ PIN ...`: loads the object, pinning its first program at `pinPath`. */
export async function load(target: Target, objectPath: string, pinPath: string, opts: LoadOptions = {}): Promise<ProgInfo> {
  checkPinPath(pinPath);
  await checkObject(target, objectPath);
  await bpftoolJson(target, ['prog', 'load', objectPath, pinPath, ...loadArgs(opts)], {
    code: 'LOAD',
    what: `loading ${objectPath}`,
    remedy: loadRemedy,
  });
  return progShow(target, { pinned: pinPath });
}

/** Names of the maps an object defines (the VARs of its BTF ".maps" DATASEC). */
export async function objectMapNames(target: Target, objectPath: string): Promise<string[]> {
  const j = await bpftoolJson<{ types: { id: number; kind: string; name: string; vars?: { type_id: number }[] }[] }>(
    target,
    ['btf', 'dump', 'file', objectPath],
    { code: 'BTF', what: `reading BTF of ${objectPath}`, remedy: 'Build the object with clang -g (BTF on).' },
  );
  const byId = new Map(j.types.map((t) => [t.id, t]));
  const sec = j.types.find((t) => t.kind === 'DATASEC' && t.name === '.maps');
  return (sec?.vars ?? []).map((v) => byId.get(v.type_id)?.name ?? '').filter((n) => n !== '');
}

/**
 * Loads every program of an object pinned under `progDir`, sharing maps through `mapsDir`: a map
 * of the object whose name is already pinned in `mapsDir` is reused (bpftool `map name X pinned`),
 * the others are created and pinned there. This is how stages and approaches share the deny list,
 * the counters, the logger maps and the chain's PROG_ARRAY. On failure nothing new stays pinned.
 */
export async function loadAllShared(
  target: Target,
  objectPath: string,
  progDir: string,
  mapsDir: string,
  opts: { type?: string } = {},
): Promise<Record<string, ProgInfo>> {
  checkPinPath(mapsDir);
  await checkObject(target, objectPath);
  const names = await objectMapNames(target, objectPath);
  await target.run(['mkdir', '-p', mapsDir]);
  const existing = new Set(
    (await target.run(['ls', '-1', mapsDir])).stdout.split('\n').map((s) => s.trim()).filter(Boolean),
  );
  const reuse = names.filter((n) => existing.has(n)).map((n) => ({ name: n, pinned: `${mapsDir}/${n}` }));
  const tmp = `${mapsDir}_new_${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const progs = await loadAll(target, objectPath, progDir, { type: opts.type ?? 'xdp', maps: reuse, pinMaps: tmp });
    for (const n of names) {
      if (!existing.has(n)) await target.run(['mv', `${tmp}/${n}`, `${mapsDir}/${n}`]);
    }
    return progs;
  } catch (e) {
    await target.run(['rm', '-rf', '--', progDir], { allowFailure: true });
    throw e;
  } finally {
    await target.run(['rm', '-rf', '--', tmp], { allowFailure: true });
  }
}

interface RawProg {
  id: number;
  type: string;
  name?: string;
  tag: string;
  jited?: boolean;
  bytes_xlated?: number;
  bytes_jited?: number;
  map_ids?: number[];
  btf_id?: number;
  loaded_at?: number;
  run_time_ns?: number;
  run_cnt?: number;
}

function progFromRaw(p: RawProg): ProgInfo {
  return {
    id: p.id,
    type: p.type,
    name: p.name ?? '',
    tag: p.tag,
    jited: p.jited ?? false,
    bytesXlated: p.bytes_xlated ?? 0,
    bytesJited: p.bytes_jited ?? 0,
    mapIds: p.map_ids ?? [],
    btfId: p.btf_id,
    loadedAt: p.loaded_at,
    ...(p.run_time_ns !== undefined ? { runTimeNs: p.run_time_ns } : {}),
    ...(p.run_cnt !== undefined ? { runCnt: p.run_cnt } : {}),
  };
}

/** `bpftool prog show <ref>`. A name or tag matching several programs returns the first. */
export async function progShow(target: Target, ref: ObjRef): Promise<ProgInfo> {
  const j = await bpftoolJson<RawProg | RawProg[]>(target, ['prog', 'show', ...refArgs(ref)], { what: `prog show ${refText(ref)}` });
  const p = Array.isArray(j) ? j[0] : j;
  if (!p) throw new LabError('LOAD', `${target.name}: no program matches ${refText(ref)}`);
  return progFromRaw(p);
}

/** `bpftool prog show`: every program loaded in the kernel. */
export async function progList(target: Target): Promise<ProgInfo[]> {
  const j = await bpftoolJson<RawProg[] | null>(target, ['prog', 'show']);
  return (j ?? []).map(progFromRaw);
}

export interface ProgRunOptions {
  /** File on the target holding the packet (bpftool `data_in`). */
  dataIn: string;
  repeat?: number;
  /** Return the packet as the program left it. */
  dataOut?: boolean;
  /**
   * Run bpftool pinned to this CPU (taskset): BPF_PROG_TEST_RUN runs on the caller's CPU, so
   * per-CPU maps and perf events land on this CPU's slot.
   */
  cpu?: number;
}

/** `bpftool prog run <ref> data_in FILE [data_out -] [repeat N]` (BPF_PROG_TEST_RUN). */
export async function progRun(target: Target, ref: ObjRef, opts: ProgRunOptions): Promise<ProgRunResult> {
  const args = ['prog', 'run', ...refArgs(ref), 'data_in', opts.dataIn];
  if (opts.dataOut) args.push('data_out', '-');
  if (opts.repeat !== undefined) args.push('repeat', String(opts.repeat));
  const j = await bpftoolJson<{ retval: number; duration: number; data_out?: number[] }>(target, args, {
    what: `test-running ${refText(ref)} on ${opts.dataIn}`,
    prefix: opts.cpu === undefined ? undefined : ['taskset', '-c', String(opts.cpu)],
  });
  return {
    retval: j.retval,
    durationNs: j.duration,
    dataOut: j.data_out ? Uint8Array.from(j.data_out) : undefined,
  };
}

/**
 * Test-runs one program on many packets with a single shell on the target (one bpftool process
 * per packet, but no round trip per packet): results in the order of `dataIns`. Runs pinned to
 * `cpu` when given. The first packet bpftool refuses makes the whole call fail, naming the file.
 */
export async function progRunMany(target: Target, ref: ObjRef, dataIns: readonly string[], opts: { cpu?: number; repeat?: number } = {}): Promise<ProgRunResult[]> {
  if (dataIns.length === 0) return [];
  const prog = refArgs(ref).map(shellQuote).join(' ');
  const repeat = opts.repeat === undefined ? '' : ` repeat ${opts.repeat}`;
  const script = `for f in "$@"; do bpftool -j prog run ${prog} data_in "$f"${repeat} 2>&1 | tr -d '\\n'; echo; done`;
  const argv = [...(opts.cpu === undefined ? [] : ['taskset', '-c', String(opts.cpu)]), 'bash', '-c', script, 'bash', ...dataIns];
  const r = await target.run(argv, { timeoutMs: 60_000 + dataIns.length * 5_000 });
  const lines = r.stdout.split('\n').slice(0, dataIns.length);
  return lines.map((line, i) => {
    let j: { retval?: number; duration?: number; error?: string } = {};
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      j = { error: line };
    }
    if (j.retval === undefined) {
      throw new LabError('COMMAND', `${target.name}: test-running ${refText(ref)} on ${dataIns[i]} failed: ${j.error ?? line}`, {
        details: { file: dataIns[i], output: line },
      });
    }
    return { retval: j.retval, durationNs: j.duration ?? 0 };
  });
}

/** `bpftool prog pin <ref> PATH`. */
export async function progPin(target: Target, ref: ObjRef, path: string): Promise<void> {
  await bpftoolJson(target, ['prog', 'pin', ...refArgs(ref), path], { what: `pinning program ${refText(ref)} at ${path}` });
}
