/**
 * The native trio on a target: module support found by trying (/proc/modules exists only with
 * CONFIG_MODULES), insmod timed, scripts written to /proc/xcl_trio (programs/native/xcl_trio.c
 * says the language) and its answers parsed, rmmod. A script goes to the module in one write()
 * (dd with one block as large as the script), since the module refuses half lines.
 */
import { LabError } from '../errors.ts';
import { commandFailed, putBytes, type Target } from '../target.ts';
import { PACKET_CLASSES } from '../packets/classes.ts';
import type { CorpusCase } from '../packets/corpus.ts';
import { emptyMetrics, type LogRecord, type MetricsSnapshot, type TrioConfig } from '../programs/trio.ts';
import { MODULE_NAME } from './build.ts';

export const PROC_FILE = `/proc/${MODULE_NAME}`;
/** The ingress ifindex BPF_PROG_TEST_RUN gives an XDP frame: the loopback's. */
export const TEST_RUN_IFINDEX = 1;
/** The module's largest script (XCL_MAX_SCRIPT). */
const MAX_SCRIPT = 1 << 20;

export type ModuleSupport = { ok: true } | { ok: false; reason: string };

export async function moduleSupport(target: Target): Promise<ModuleSupport> {
  const r = await target.run(['test', '-e', '/proc/modules'], { allowFailure: true });
  if (r.exitCode === 0) return { ok: true };
  return { ok: false, reason: `kernel ${target.kernelRelease} on ${target.name} has no module support (no /proc/modules: CONFIG_MODULES is not set)` };
}

export type NativeRecord = Omit<LogRecord, 'tsNs'>;

export interface RunLine {
  verdict: number;
  repeat: number;
  totalNs: number;
  records: number;
  last: NativeRecord | null;
}

function fields(line: string): Map<string, string> {
  const words = line.trim().split(/\s+/).slice(1);
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < words.length; i += 2) m.set(words[i]!, words[i + 1]!);
  return m;
}

/** A reader of the integer fields of one answer line, refusing a field that is missing or not a number. */
function numbersOf(line: string, f: Map<string, string>): (k: string) => number {
  return (k) => {
    const v = f.get(k);
    if (v === undefined || !/^-?\d+$/.test(v)) throw new LabError('BENCH', `${MODULE_NAME}: "${line}" has no number "${k}"`);
    return Number(v);
  };
}

/** One "run …" answer of the module. */
export function parseRunLine(line: string): RunLine {
  const num = numbersOf(line, fields(line));
  if (!line.startsWith('run ')) throw new LabError('BENCH', `${MODULE_NAME}: expected a "run" line, got "${line}"`);
  const records = num('records');
  let last: NativeRecord | null = null;
  if (records > 0) {
    const k = num('klass');
    last = { seq: num('seq'), ifindex: num('ifindex'), len: num('len'), ethertype: num('ethertype'), sport: num('sport'), dport: num('dport'), l4proto: num('l4proto'), klass: PACKET_CLASSES[k] ?? `unknown(${k})` };
  }
  return { verdict: num('verdict'), repeat: num('repeat'), totalNs: num('ns'), records, last };
}

/** The "metrics" answer: packets and bytes per class, in enum pkt_class order. */
export function parseMetricsLine(line: string): MetricsSnapshot {
  const n = line.trim().split(/\s+/);
  if (n[0] !== 'metrics' || n.length !== 1 + 2 * PACKET_CLASSES.length) throw new LabError('BENCH', `${MODULE_NAME}: expected "metrics" and ${2 * PACKET_CLASSES.length} numbers, got "${line}"`);
  const m = emptyMetrics();
  PACKET_CLASSES.forEach((c, i) => {
    m[c] = { packets: Number(n[1 + 2 * i]), bytes: Number(n[2 + 2 * i]) };
  });
  return m;
}

export function configLine(cfg: TrioConfig, ifindex = TEST_RUN_IFINDEX): string {
  return `config ${cfg.logSampleN} ${ifindex}${cfg.denyPorts.map((p) => ` ${p}`).join('')}`;
}

export function runLine(frame: Uint8Array, repeat: number): string {
  return `run ${repeat} ${Buffer.from(frame).toString('hex')}`;
}

/** Writes a script to the module in one write() and returns its output lines. */
export async function runScript(target: Target, lines: readonly string[]): Promise<string[]> {
  const text = `${lines.join('\n')}\n`;
  if (text.length > MAX_SCRIPT) throw new LabError('BAD_INPUT', `${MODULE_NAME}: a script of ${text.length} bytes is over the module's ${MAX_SCRIPT}`);
  const remote = `${target.workDir}/native/script-${process.pid}`;
  await putBytes(target, text, remote);
  const argv = ['sh', '-c', 'dd if="$1" of="$2" bs="$3" count=1 status=none && cat "$2"', 'sh', remote, PROC_FILE, String(MAX_SCRIPT)];
  const r = await target.run(argv, { allowFailure: true, timeoutMs: 1_800_000 });
  await target.run(['rm', '-f', remote], { allowFailure: true });
  if (r.exitCode !== 0) throw commandFailed(`${target.name}: ${MODULE_NAME} script`, argv, r);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

export interface InsertedModule {
  remote: string;
  /** insmod's wall time, ms (the insmod process included). */
  insertMs: number;
}

/** insmod the module (removing a copy left by an earlier run first), timed in the guest. */
export async function insertModule(target: Target, ko: string): Promise<InsertedModule> {
  const remote = `${target.workDir}/native/${MODULE_NAME}.ko`;
  await target.run(['mkdir', '-p', `${target.workDir}/native`]);
  await target.putFile(ko, remote);
  await removeModule(target);
  const script = 's=$(date +%s%N); insmod "$1" || exit $?; e=$(date +%s%N); echo $((e - s))';
  const r = await target.run(['sh', '-c', script, 'sh', remote], { allowFailure: true, timeoutMs: 120_000 });
  if (r.exitCode !== 0) {
    throw new LabError('LOAD', `${target.name}: insmod ${MODULE_NAME}.ko failed: ${(r.stderr || r.stdout).trim()}`, {
      remedy: `The module must be built against this kernel's headers (${target.kernelRelease}); see dmesg in the guest for the loader's reason.`,
    });
  }
  return { remote, insertMs: Number(r.stdout.trim()) / 1e6 };
}

export async function removeModule(target: Target): Promise<void> {
  const loaded = await target.run(['sh', '-c', `grep -q '^${MODULE_NAME} ' /proc/modules`], { allowFailure: true });
  if (loaded.exitCode === 0) await target.run(['rmmod', MODULE_NAME]);
}

export interface NativeCorpusRun {
  /** XDP action per case, by name: every case, the short frames BPF_PROG_TEST_RUN refuses too. */
  verdicts: Record<string, number>;
  /** The record the logger output for a case, null when it output none. */
  records: Record<string, NativeRecord | null>;
  metrics: MetricsSnapshot;
}

/** Each case once, in order, from fresh counters (as a freshly loaded BPF program's maps). */
export async function runCorpusNative(target: Target, cases: readonly CorpusCase[], cfg: TrioConfig): Promise<NativeCorpusRun> {
  const out = await runScript(target, ['reset', configLine(cfg), ...cases.map((c) => runLine(c.frame, 1)), 'metrics']);
  if (out.length !== cases.length + 1) throw new LabError('BENCH', `${MODULE_NAME}: ${cases.length} runs gave ${out.length - 1} answers: ${out.slice(-2).join(' | ')}`);
  const verdicts: Record<string, number> = {};
  const records: Record<string, NativeRecord | null> = {};
  cases.forEach((c, i) => {
    const r = parseRunLine(out[i]!);
    verdicts[c.name] = r.verdict;
    records[c.name] = r.last;
  });
  return { verdicts, records, metrics: parseMetricsLine(out[cases.length]!) };
}

/** ns per packet of `repetitions` runs of `repeat` packets each (total ns / repeat, as the test run's duration). */
export async function nativeNsPerPacket(target: Target, frame: Uint8Array, cfg: TrioConfig, repeat: number, repetitions: number): Promise<number[]> {
  const lines = ['reset', configLine(cfg), ...Array.from({ length: repetitions }, () => runLine(frame, repeat))];
  return (await runScript(target, lines)).map((l) => {
    const r = parseRunLine(l);
    return r.totalNs / r.repeat;
  });
}

/** The module's deepest native chain (XCL_MAX_DEPTH). */
export const MAX_NATIVE_DEPTH = 64;

/** One "depth …" answer: a chain of `depth` nested native calls run `repeat` times in `totalNs`. */
export function parseDepthLine(line: string): { depth: number; repeat: number; totalNs: number; verdict: number } {
  // "depth D repeat R ...": the depth is the verb's argument, the rest are name-value pairs.
  const num = numbersOf(line, fields(line.replace(/^depth \d+/, 'depth')));
  if (!line.startsWith('depth ')) throw new LabError('BENCH', `${MODULE_NAME}: expected a "depth" line, got "${line}"`);
  return { depth: Number(line.trim().split(/\s+/)[1]), repeat: num('repeat'), totalNs: num('ns'), verdict: num('verdict') };
}

/**
 * ns per packet of a chain of each depth, `repetitions` values per depth, measured interleaved
 * (every depth once, then again) as the microbench measures its chains, so a drift of the
 * machine moves all depths alike.
 */
export async function nativeDepthNs(target: Target, depths: readonly number[], repeat: number, repetitions: number): Promise<Map<number, number[]>> {
  const bad = depths.filter((d) => !Number.isInteger(d) || d < 1 || d > MAX_NATIVE_DEPTH);
  if (bad.length > 0) throw new LabError('BAD_INPUT', `${MODULE_NAME}: native chain depth ${bad.join(', ')} is outside 1..${MAX_NATIVE_DEPTH}`);
  const lines = Array.from({ length: repetitions }, () => depths.map((d) => `depth ${d} ${repeat}`)).flat();
  const out = await runScript(target, lines);
  if (out.length !== lines.length) throw new LabError('BENCH', `${MODULE_NAME}: ${lines.length} depth runs gave ${out.length} answers`);
  const byDepth = new Map<number, number[]>(depths.map((d) => [d, []]));
  for (const l of out) {
    const r = parseDepthLine(l);
    byDepth.get(r.depth)?.push(r.totalNs / r.repeat);
  }
  return byDepth;
}
