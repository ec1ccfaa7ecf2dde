/**
 * A typed thin wrapper over the bpftool CLI. Every call runs `bpftool -j ...` on a Target (host or
 * guest) and parses its JSON, so the lab drives the kernel through the same tool a user would and
 * never issues bpf() syscalls of its own. Failures become LabError with bpftool's own words (its
 * JSON "error" plus the tail of libbpf's/the verifier's stderr).
 *
 * Commands that name an interface take an optional `netns`: they are run through
 * `nsenter --net=/run/netns/<netns>`, never `ip netns exec`, because the latter remounts /sys and
 * hides bpffs pins.
 */
import type { CommandResult, Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError, type LabErrorCode } from '../errors.ts';

/** How bpftool should find a program or map. */
export type ObjRef = { id: number } | { pinned: string } | { name: string } | { tag: string };

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

export type XdpAttachMode = 'xdp' | 'xdpdrv' | 'xdpgeneric' | 'xdpoffload';

export interface XdpAttachment {
  devname: string;
  ifindex: number;
  /** "driver", "generic", "offload" or bpftool's words for multi-attach. */
  mode: string;
  id: number;
}

const BPFTOOL = 'bpftool';

function refArgs(ref: ObjRef): string[] {
  if ('id' in ref) return ['id', String(ref.id)];
  if ('pinned' in ref) return ['pinned', ref.pinned];
  if ('name' in ref) return ['name', ref.name];
  return ['tag', ref.tag];
}

function refText(ref: ObjRef): string {
  return refArgs(ref).join(' ');
}

function nsPrefix(netns: string | undefined): string[] {
  return netns === undefined || netns === '' ? [] : ['nsenter', `--net=/run/netns/${netns}`];
}

/** bpftool's own error sentence (from -j output) followed by the tail of libbpf/verifier stderr. */
function errorText(r: CommandResult): string {
  const parts: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      const j = JSON.parse(t) as { error?: unknown };
      if (typeof j.error === 'string') parts.push(j.error);
    } catch {
      /* not JSON: ignore */
    }
  }
  const err = r.stderr.trim();
  if (err) parts.push(err.split('\n').slice(-20).join('\n'));
  if (parts.length === 0 && r.stdout.trim()) parts.push(r.stdout.trim().split('\n').slice(-10).join('\n'));
  return parts.join('\n');
}

/**
 * EPERM/EACCES mean "not root" only when the caller is not root: the verifier also answers EACCES
 * when it rejects a program, and bpffs answers EPERM to names it refuses.
 */
async function classify(target: Target, text: string, fallback: LabErrorCode): Promise<{ code: LabErrorCode; remedy?: string }> {
  if (/Operation not permitted|Permission denied|EPERM|EACCES/.test(text)) {
    const id = await target.run(['id', '-u'], { allowFailure: true }).catch(() => null);
    if (id && id.stdout.trim() !== '0') {
      return { code: 'NOT_ROOT', remedy: 'Run the lab as root (BPF needs CAP_BPF/CAP_SYS_ADMIN and CAP_NET_ADMIN).' };
    }
  }
  return { code: fallback };
}

export interface BpftoolCall {
  /** Error code when bpftool fails (default COMMAND). */
  code?: LabErrorCode;
  /** What was being done, for the message ("loading filter.o"). */
  what?: string;
  remedy?: string;
  netns?: string;
  timeoutMs?: number;
  /** Command prefix (e.g. taskset) placed before bpftool, after nsenter. */
  prefix?: string[];
}

/**
 * Runs `bpftool -j <args>` and returns its parsed JSON (null when bpftool prints null, as for most
 * commands that only act). Throws LabError with bpftool's message on failure.
 */
export async function bpftoolJson<T = unknown>(target: Target, args: readonly string[], call: BpftoolCall = {}): Promise<T> {
  const argv = [...nsPrefix(call.netns), ...(call.prefix ?? []), BPFTOOL, '-j', ...args];
  let r: CommandResult;
  try {
    r = await target.run(argv, { allowFailure: true, timeoutMs: call.timeoutMs });
  } catch (e) {
    if (e instanceof LabError && e.code === 'MISSING_TOOL') {
      throw new LabError('MISSING_TOOL', `${target.name}: bpftool is not installed`, {
        remedy: 'Install bpftool (Debian: apt-get install bpftool; or run `npm run setup`).',
        cause: e,
      });
    }
    throw e;
  }
  if (r.exitCode !== 0) {
    const text = errorText(r);
    const { code, remedy } = await classify(target, text, call.code ?? 'COMMAND');
    const what = call.what ?? `bpftool ${args.slice(0, 2).join(' ')}`;
    throw new LabError(code, `${target.name}: ${what}: \`${argv.map(shellQuote).join(' ')}\` failed (exit ${r.exitCode}):\n${text}`, {
      remedy: remedy ?? call.remedy,
      details: { argv, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr },
    });
  }
  const out = r.stdout.trim();
  if (out === '') return null as T;
  try {
    return JSON.parse(out) as T;
  } catch (e) {
    throw new LabError('COMMAND', `${target.name}: bpftool ${args.slice(0, 2).join(' ')}: output is not JSON: ${out.slice(0, 200)}`, {
      cause: e,
    });
  }
}

/** bpftool's JSON for one command of a batch. */
export interface BatchEntry {
  command: string[];
  output: unknown;
}

/** Words of one bpftool command in its batch-file syntax (whitespace-separated, "-quoted). */
function batchLine(words: readonly string[]): string {
  return words
    .map((w) => {
      if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
      if (/["\n\\]/.test(w)) throw new LabError('BAD_INPUT', `bpftool batch: argument ${JSON.stringify(w)} cannot be quoted`);
      return `"${w}"`;
    })
    .join(' ');
}

/**
 * Runs many bpftool commands in one process (`bpftool -j batch file -`): one round trip instead of
 * one per command, which matters on a guest reached over SSH. Any failing command aborts the
 * batch; the error names it with bpftool's own message.
 */
export async function bpftoolBatch(target: Target, commands: readonly (readonly string[])[], what: string): Promise<BatchEntry[]> {
  if (commands.length === 0) return [];
  const input = `${commands.map(batchLine).join('\n')}\n`;
  const r = await target.run([BPFTOOL, '-j', 'batch', 'file', '-'], { input, allowFailure: true, timeoutMs: 3_600_000 });
  let entries: BatchEntry[] = [];
  try {
    const out = r.stdout.trim();
    entries = out === '' ? [] : (JSON.parse(out) as BatchEntry[]);
  } catch {
    /* reported below with the raw output */
  }
  const failed = entries.find((e) => e.output !== null && typeof e.output === 'object' && 'error' in e.output);
  if (r.exitCode !== 0 || failed || entries.length !== commands.length) {
    const msg = failed
      ? `\`bpftool ${failed.command.map(shellQuote).join(' ')}\`: ${String((failed.output as { error: unknown }).error)}`
      : `bpftool batch exited with ${r.exitCode} after ${entries.length} of ${commands.length} commands:\n${(r.stderr || r.stdout).trim().split('\n').slice(-10).join('\n')}`;
    throw new LabError('COMMAND', `${target.name}: ${what}: ${msg}`, {
      remedy: 'Check that bpftool supports `batch` (bpftool 5.6 or later) and that the objects named are still pinned.',
      details: { stdout: r.stdout, stderr: r.stderr },
    });
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// bpffs

/** Mounts bpffs at `path` (default /sys/fs/bpf) when it is not a bpf filesystem yet. */
export async function ensureBpffs(target: Target, path = '/sys/fs/bpf'): Promise<void> {
  const fsType = await target.run(['stat', '-f', '-c', '%T', path], { allowFailure: true });
  if (fsType.exitCode === 0 && fsType.stdout.trim() === 'bpf_fs') return;
  const r = await target.sh(`mkdir -p ${shellQuote(path)} && mount -t bpf bpf ${shellQuote(path)}`, { allowFailure: true });
  if (r.exitCode !== 0) {
    const text = (r.stderr || r.stdout).trim();
    const notRoot = /permission denied|must be superuser|not permitted/i.test(text);
    throw new LabError(notRoot ? 'NOT_ROOT' : 'COMMAND', `${target.name}: cannot mount bpffs at ${path}: ${text}`, {
      remedy: notRoot ? 'Run the lab as root.' : 'Check that the kernel has CONFIG_BPF_SYSCALL=y and that the path is a directory.',
    });
  }
}

/**
 * Removes a pin file or a whole pin directory (bpffs allows rm / rm -r). Missing is fine. Refuses
 * any path that is not on a bpf filesystem, so a wrong argument can never delete ordinary files.
 */
export async function unpin(target: Target, path: string): Promise<void> {
  if (!path.startsWith('/') || path.split('/').includes('..')) {
    throw new LabError('BAD_INPUT', `unpin: ${path} is not an absolute bpffs path`);
  }
  const fs = await target.run(['stat', '-f', '-c', '%T', path], { allowFailure: true });
  if (fs.exitCode !== 0) return; // does not exist
  if (fs.stdout.trim() !== 'bpf_fs') {
    throw new LabError('BAD_INPUT', `unpin: refusing to remove ${path}: it is on ${fs.stdout.trim() || 'an unknown filesystem'}, not bpffs`, {
      remedy: 'Pass a path under a bpffs mount (e.g. /sys/fs/bpf/...).',
    });
  }
  await target.run(['rm', '-rf', '--', path], { allowFailure: true });
}

// ---------------------------------------------------------------------------------------------
// programs

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

/** bpffs refuses names containing '.', which libbpf reports as a bare EPERM: say it plainly. */
export function checkPinPath(path: string): void {
  const bad = path.split('/').find((c) => c.includes('.'));
  if (bad !== undefined) {
    throw new LabError('BAD_INPUT', `bpffs path ${path}: component "${bad}" contains '.', which bpffs does not allow`, {
      remedy: "Use pin names without '.' (e.g. filter_manual instead of filter.manual).",
    });
  }
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

// ---------------------------------------------------------------------------------------------
// maps

export type Bytes = Uint8Array | readonly number[];

function hexArgs(b: Bytes): string[] {
  return ['hex', ...Array.from(b, (x) => (x & 0xff).toString(16).padStart(2, '0'))];
}

function bytesFromHex(a: readonly string[]): Uint8Array {
  return Uint8Array.from(a.map((s) => parseInt(s, 16)));
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

/** `bpftool prog pin <ref> PATH`. */
export async function progPin(target: Target, ref: ObjRef, path: string): Promise<void> {
  await bpftoolJson(target, ['prog', 'pin', ...refArgs(ref), path], { what: `pinning program ${refText(ref)} at ${path}` });
}

/** Little-endian helpers for map keys/values. */
export function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

export function u16le(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n & 0xffff, true);
  return b;
}

export function readU64le(b: Uint8Array, offset = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset, true);
}

// ---------------------------------------------------------------------------------------------
// net

async function ifaceExists(target: Target, ifname: string, netns?: string): Promise<boolean> {
  const r = await target.run([...nsPrefix(netns), 'ip', 'link', 'show', 'dev', ifname], { allowFailure: true });
  return r.exitCode === 0;
}

function noInterface(target: Target, ifname: string, netns?: string): LabError {
  return new LabError('NO_INTERFACE', `${target.name}: no interface ${ifname}${netns ? ` in netns ${netns}` : ''}`, {
    remedy: 'Create the test environment first (lab/testenv) or pass an existing interface name.',
  });
}

export interface NetAttachOptions {
  /** Default xdpdrv (native): the lab measures native XDP only. */
  mode?: XdpAttachMode;
  netns?: string;
  /** Replace a program already attached. */
  overwrite?: boolean;
}

/** `bpftool net attach xdpdrv <prog ref> dev IF [overwrite]`. */
export async function netAttachXdp(target: Target, prog: ObjRef, ifname: string, opts: NetAttachOptions = {}): Promise<void> {
  if (!(await ifaceExists(target, ifname, opts.netns))) throw noInterface(target, ifname, opts.netns);
  const args = ['net', 'attach', opts.mode ?? 'xdpdrv', ...refArgs(prog), 'dev', ifname];
  if (opts.overwrite) args.push('overwrite');
  await bpftoolJson(target, args, {
    code: 'ATTACH',
    netns: opts.netns,
    what: `attaching ${refText(prog)} to ${ifname}`,
    remedy: 'Check that the interface supports native XDP and has no other program attached (bpftool net show).',
  });
}

/**
 * `bpftool net detach <mode> dev IF` for every XDP mode, so the interface ends with no XDP program
 * whatever mode it was in. A missing interface is not an error here (nothing can be attached).
 */
export async function netDetachXdp(target: Target, ifname: string, opts: { netns?: string } = {}): Promise<void> {
  if (!(await ifaceExists(target, ifname, opts.netns))) return;
  for (const mode of ['xdpdrv', 'xdpgeneric', 'xdp'] as const) {
    await bpftoolJson(target, ['net', 'detach', mode, 'dev', ifname], {
      code: 'ATTACH',
      netns: opts.netns,
      what: `detaching XDP (${mode}) from ${ifname}`,
    });
  }
}

interface RawNet {
  xdp?: { devname: string; ifindex: number; mode?: string; id?: number; multi_attachments?: { mode: string; id: number }[] }[];
}

/** `bpftool net show [dev IF]`: XDP attachments, one per (interface, mode). */
export async function netShow(target: Target, opts: { netns?: string; dev?: string } = {}): Promise<XdpAttachment[]> {
  if (opts.dev !== undefined && !(await ifaceExists(target, opts.dev, opts.netns))) throw noInterface(target, opts.dev, opts.netns);
  const args = ['net', 'show', ...(opts.dev ? ['dev', opts.dev] : [])];
  const j = await bpftoolJson<RawNet[] | null>(target, args, { netns: opts.netns, what: 'net show' });
  const out: XdpAttachment[] = [];
  for (const block of j ?? []) {
    for (const x of block.xdp ?? []) {
      if (x.multi_attachments) {
        for (const m of x.multi_attachments) out.push({ devname: x.devname, ifindex: x.ifindex, mode: m.mode, id: m.id });
      } else if (x.id !== undefined) {
        out.push({ devname: x.devname, ifindex: x.ifindex, mode: x.mode ?? 'unknown', id: x.id });
      }
    }
  }
  return out;
}

/** The XDP program(s) attached to one interface ([] when none). */
export async function xdpAttached(target: Target, ifname: string, netns?: string): Promise<XdpAttachment[]> {
  return (await netShow(target, { netns, dev: ifname })).filter((x) => x.devname === ifname);
}

// ---------------------------------------------------------------------------------------------
// perf event array

export interface PerfRecord {
  cpu: number;
  index: number;
  /** The raw sample as the program wrote it (the kernel may pad it to 8 bytes). */
  data: Uint8Array;
}

/** Parses the JSON array `bpftool -j map event_pipe` prints (closed on SIGINT). */
export function parseEventPipe(stdout: string): { records: PerfRecord[]; lost: number } {
  const text = stdout.trim();
  type Raw = { type?: number; cpu?: number; index?: number; data?: (number | string)[]; lost?: number | { lost?: number } };
  let items: Raw[];
  if (text === '') return { records: [], lost: 0 };
  try {
    items = JSON.parse(text) as Raw[];
  } catch {
    // Stopped before the array was closed: take the complete records.
    const cut = text.lastIndexOf('}');
    items = cut < 0 ? [] : (JSON.parse(`${text.slice(0, cut + 1)}]`) as Raw[]);
  }
  const records: PerfRecord[] = [];
  let lost = 0;
  for (const j of items) {
    if (j.lost !== undefined) lost += typeof j.lost === 'number' ? j.lost : (j.lost.lost ?? 0);
    else if (j.data) {
      records.push({
        cpu: j.cpu ?? -1,
        index: j.index ?? -1,
        data: Uint8Array.from(j.data.map((x) => (typeof x === 'number' ? x : parseInt(x, 16)))),
      });
    }
  }
  return { records, lost };
}

/**
 * Captures what a PERF_EVENT_ARRAY receives while `work` runs, with `bpftool map event_pipe` in
 * the background on the target. A small shell wrapper reports when bpftool has its perf buffers
 * open (so no record of `work` is missed) and stops it with SIGINT (so bpftool closes its JSON)
 * when a stop file appears. Works the same on the host and in a guest.
 */
export async function captureEvents<T>(
  target: Target,
  map: ObjRef,
  work: () => Promise<T>,
  opts: { readyTimeoutMs?: number; drainMs?: number } = {},
): Promise<{ result: T; records: PerfRecord[]; lost: number }> {
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const base = `/tmp/xcl-events-${tag}`;
  const ref = refArgs(map).map(shellQuote).join(' ');
  const script = [
    `bpftool -j map event_pipe ${ref} > ${base}.out 2> ${base}.err & pid=$!`,
    // Ready once bpftool holds perf event fds (one per CPU), or when it has died.
    `for i in $(seq 1 200); do if ls -l /proc/$pid/fd 2>/dev/null | grep -q perf_event; then touch ${base}.ready; break; fi; kill -0 $pid 2>/dev/null || break; sleep 0.05; done`,
    `touch ${base}.started`,
    `while [ ! -e ${base}.stop ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done`,
    `kill -INT $pid 2>/dev/null; wait $pid; echo $? > ${base}.rc`,
  ].join('\n');
  const bg = target.sh(script, { allowFailure: true, timeoutMs: 3_600_000 });
  const cleanup = async (): Promise<void> => {
    await target.run(['touch', `${base}.stop`], { allowFailure: true });
    await bg.catch(() => undefined);
    await target.sh(`rm -f ${base}.*`, { allowFailure: true });
  };
  try {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
    for (;;) {
      const st = await target.sh(`test -e ${base}.ready && echo ready || (test -e ${base}.started && echo started) || echo wait`, { allowFailure: true });
      const s = st.stdout.trim();
      if (s === 'ready') break;
      if (s === 'started' || Date.now() > deadline) {
        const err = await target.run(['cat', `${base}.err`, `${base}.out`], { allowFailure: true });
        throw new LabError('COMMAND', `${target.name}: bpftool map event_pipe ${refText(map)} did not start:\n${err.stdout.trim()}`, {
          remedy: 'Check that the map is a PERF_EVENT_ARRAY and that perf events are available (root).',
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = await work();
    // perf buffers are read by bpftool's poll loop; give it a moment to drain before stopping.
    await new Promise((r) => setTimeout(r, opts.drainMs ?? 300));
    await target.run(['touch', `${base}.stop`]);
    await bg;
    const out = await target.run(['cat', `${base}.out`], { allowFailure: true });
    return { result, ...parseEventPipe(out.stdout) };
  } finally {
    await cleanup();
  }
}
