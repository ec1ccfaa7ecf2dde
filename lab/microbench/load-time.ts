/**
 * Where an approach's load time goes: its objects loaded by libbpf (programs/user/load_stats_user.c)
 * with the verifier printing its own statistics (log level 4: "verification time N usec",
 * "processed N insns"), and the whole object load timed around it (maps, BTF, verification, JIT).
 * The objects are each approach's own, on either hook: the fused program; the manual chain's three;
 * the patched chain's three as the patch writes them (inline, the default mode, at their chain
 * positions, with the hook's verdict sets); the continuing three that cls_bpf priorities and tcx
 * run. The dispatcher is left out: xdp-loader builds and loads its dispatcher itself, which this
 * helper cannot time.
 * Where ftrace's function_graph tracer exists, bpf_check and bpf_int_jit_compile are timed too (the
 * verifier's entry point and the JIT, as the kernel-module comparison this follows measured them).
 * A kernel whose verifier does not print statistics, or without the tracer, gives what it has and
 * the reason for the rest.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import type { ApproachName, LatencyRecord } from '../results/record.ts';
import { putBytes, type Target } from '../target.ts';
import { latencyRecord, type RecordStamp } from './records.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../programs/build.ts';
import { helperOnTarget, parseHelperLines } from '../programs/user.ts';
import { OBJECTS, STAGES, TC_OBJECTS } from '../programs/trio.ts';
import { HOOK_VERDICTS, type Hook } from '../chain/constants.ts';
import { patchObject } from '../chain/patch.ts';
import type { Sandbox } from './sandbox.ts';
import { ftraceAvailable, traceDurations } from './ftrace.ts';

/** The kernel functions ftrace times: the verifier's entry, and the JIT (each program and subprogram). */
export const TRACED = ['bpf_check', 'bpf_int_jit_compile'] as const;

export interface ProgramLoad {
  object: string;
  program: string;
  /** The verifier's own time, null where it does not print it. */
  verificationUs: number | null;
  insnsProcessed: number | null;
  xlatedBytes: number;
  jitedBytes: number;
}

export interface ObjectLoad {
  object: string;
  loadNs: number;
  logStats: boolean;
  programs: ProgramLoad[];
}

export interface LoadTimeRow {
  approach: ApproachName;
  /** Per cycle: the approach's objects' load time summed, in ms. */
  loadMs: number[];
  /** Per cycle: the verifier's time for the approach's programs summed, in ms; empty when not printed. */
  verifyMs: number[];
  /** Instructions the verifier processed over the approach's programs (the same every cycle). */
  insnsProcessed: number | null;
  /** Per cycle, by ftrace where the kernel allows: bpf_check's and bpf_int_jit_compile's time summed, in ms. */
  bpfCheckMs: number[];
  jitMs: number[];
}

export interface LoadTimeResult {
  rows: LoadTimeRow[];
  notes: string[];
}

/** Reads the helper's JSON lines into one entry per object, its programs with it. */
export function parseLoadStats(stdout: string): ObjectLoad[] {
  const out: ObjectLoad[] = [];
  let programs: ProgramLoad[] = [];
  for (const l of parseHelperLines(stdout)) {
    if (l.event === 'error') throw new LabError('LOAD', `load_stats: ${String(l.stage)}: ${String(l.message)}`, { remedy: 'Load the object with `bpftool prog loadall` to see the verifier\'s log.' });
    if (l.event === 'program') {
      programs.push({
        object: String(l.object),
        program: String(l.program),
        verificationUs: typeof l.verificationUs === 'number' ? l.verificationUs : null,
        insnsProcessed: typeof l.insnsProcessed === 'number' ? l.insnsProcessed : null,
        xlatedBytes: Number(l.xlatedBytes),
        jitedBytes: Number(l.jitedBytes),
      });
    } else if (l.event === 'object') {
      out.push({ object: String(l.object), loadNs: Number(l.loadNs), logStats: l.logStats === true, programs });
      programs = [];
    }
  }
  return out;
}

/** Each approach's objects, as build-output names; patched ones are patched here first. */
const OBJECT_SETS: Partial<Record<ApproachName, { objects: readonly string[]; patch?: Hook }>> = {
  fused: { objects: [OBJECTS.fused] },
  manual: { objects: STAGES.map((s) => OBJECTS.manual[s]) },
  patched: { objects: STAGES.map((s) => OBJECTS.standalone[s]), patch: 'xdp' },
  'tc-fused': { objects: [TC_OBJECTS.fused] },
  'tc-manual': { objects: STAGES.map((s) => TC_OBJECTS.manual[s]) },
  'tc-patched': { objects: STAGES.map((s) => TC_OBJECTS.standalone[s]), patch: 'sched_cls' },
  'tc-filters': { objects: STAGES.map((s) => TC_OBJECTS.continuing[s]) },
  tcx: { objects: STAGES.map((s) => TC_OBJECTS.continuing[s]) },
};

/** The approaches whose load this part times (the dispatcher's is xdp-loader's own). */
export function loadTimed(approaches: readonly ApproachName[]): ApproachName[] {
  return approaches.filter((a) => OBJECT_SETS[a] !== undefined);
}

/** Each approach's objects on the target: the build output, and the patched chains written here. */
async function approachObjects(sb: Sandbox, approaches: readonly ApproachName[]): Promise<{ approach: ApproachName; files: string[] }[]> {
  await buildPrograms();
  const out: { approach: ApproachName; files: string[] }[] = [];
  for (const approach of loadTimed(approaches)) {
    const set = OBJECT_SETS[approach]!;
    const files: string[] = [];
    for (const [index, name] of set.objects.entries()) {
      const from = join(DEFAULT_OUT_DIR, `${name}.o`);
      const remote = `${sb.workDir}/loadtime/${approach}_${name}.o`;
      if (set.patch) {
        const v = HOOK_VERDICTS[set.patch];
        await putBytes(sb.target, patchObject(await readFile(from), { index, success: [...v.success], redirect: [...v.redirect], hook: set.patch, mode: 'inline', fileName: from }).object, remote);
      } else {
        await sb.target.putFile(from, remote);
      }
      files.push(remote);
    }
    out.push({ approach, files });
  }
  return out;
}

/** `cycles` loads of every approach's objects, interleaved by cycle. */
export async function measureLoadTimes(sb: Sandbox, approaches: readonly ApproachName[], cycles: number, checkpoint?: () => void): Promise<LoadTimeResult> {
  const helper = await helperOnTarget(sb.target, 'load_stats');
  const sets = await approachObjects(sb, approaches);
  const rows: LoadTimeRow[] = sets.map((s) => ({ approach: s.approach, loadMs: [], verifyMs: [], insnsProcessed: null, bpfCheckMs: [], jitMs: [] }));
  const notes: string[] = [];
  const ftrace = await ftraceAvailable(sb.target, TRACED);
  if (!ftrace.ok) notes.push(`bpf_check and JIT time not measured: ${ftrace.reason}`);
  for (let c = 0; c < cycles; c++) {
    for (const [i, s] of sets.entries()) {
      checkpoint?.();
      const load = () => sb.target.run([helper, ...s.files], { allowFailure: true, timeoutMs: 300_000 });
      let r;
      const row = rows[i]!;
      if (ftrace.ok) {
        const traced = await traceDurations(sb.target, TRACED, load);
        r = traced.result;
        const sum = (f: string): number => (traced.durations.get(f) ?? []).reduce((a, b) => a + b, 0) / 1e3;
        row.bpfCheckMs.push(sum('bpf_check'));
        row.jitMs.push(sum('bpf_int_jit_compile'));
      } else {
        r = await load();
      }
      const objects = parseLoadStats(r.stdout);
      if (r.exitCode !== 0 || objects.length !== s.files.length) {
        throw new LabError('BENCH', `${sb.target.name}: load_stats on ${s.approach}'s objects exited ${r.exitCode} after ${objects.length} of ${s.files.length}: ${(r.stderr || r.stdout).trim().slice(-300)}`);
      }
      row.loadMs.push(objects.reduce((a, o) => a + o.loadNs, 0) / 1e6);
      const progs = objects.flatMap((o) => o.programs);
      if (progs.every((p) => p.verificationUs !== null)) row.verifyMs.push(progs.reduce((a, p) => a + p.verificationUs!, 0) / 1e3);
      else if (c === 0 && i === 0) notes.push(`verification time not measured: kernel ${sb.target.kernelRelease}'s verifier prints no statistics at log level 4 (BPF_LOG_STATS)`);
      if (progs.every((p) => p.insnsProcessed !== null)) row.insnsProcessed = progs.reduce((a, p) => a + p.insnsProcessed!, 0);
    }
  }
  return { rows, notes };
}

/** The rows as latency records (object-load, verify, bpf_check, jit) and what the notes say. */
export function loadTimeRecords(target: Target, stamp: RecordStamp, lt: LoadTimeResult): { records: LatencyRecord[]; notes: string[] } {
  const records: LatencyRecord[] = [];
  const notes = [...lt.notes];
  for (const row of lt.rows) {
    records.push(latencyRecord(target, stamp, row.approach, 'object-load', row.loadMs));
    if (row.verifyMs.length > 0) records.push(latencyRecord(target, stamp, row.approach, 'verify', row.verifyMs));
    if (row.bpfCheckMs.length > 0) records.push(latencyRecord(target, stamp, row.approach, 'bpf_check', row.bpfCheckMs));
    if (row.jitMs.length > 0) records.push(latencyRecord(target, stamp, row.approach, 'jit', row.jitMs));
    if (row.insnsProcessed !== null) notes.push(`${row.approach}: the verifier processed ${row.insnsProcessed} instructions over its programs`);
  }
  return { records, notes };
}
