/**
 * The matrix runner (thesis ch. 4 as a command): every kernel × every approach, N iperf3 runs each,
 * approaches interleaved (run i of every approach before run i+1) so drift favours none of them.
 *
 * Results are appended run by run to results/<run-id>/raw.jsonl (one fsynced line per record) and
 * are the only state: rerunning with the same run id reads them back, skips finished cells and runs,
 * and continues. A kill -9 loses at most the run in flight.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { APPROACH_NAMES, type Approach, type ApproachContext, type ApproachName } from '../approaches/approach.ts';
import { errorMessage, isLabError, LabError } from '../errors.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { KERNEL_VERSIONS } from '../kernels/types.ts';
import { SCHEMA_VERSION, newRunId, type BpfStats, type CellRecord, type ProbeTotals, type Provenance, type RunRecord } from '../results/record.ts';
import { appendRecord, loadRecords } from '../results/jsonl.ts';
import { ProbeSession, probeUnavailableReason } from './probe.ts';
import {
  BpfStatsSession,
  NONE_STATS_REASON,
  beginStats,
  describeMechanism,
  statsPrograms,
  statsUnavailableReason,
  testRunOverhead,
  type StatsInterval,
  type StatsMechanism,
  type StatsMode,
  type TestRunOverhead,
} from './bpf-stats.ts';
import { buildCorpus } from '../packets/corpus.ts';
import { REPRESENTATIVE_CASE } from '../microbench/approaches.ts';
import {
  hostCpuModel,
  kernelConfigSha256,
  labCommit,
  readProvenance,
  targetFrequency,
  targetIsolcpus,
  toolVersions,
  writeProvenance,
} from './provenance.ts';
import type { IperfOutcome, KernelSession, OpenKernel } from './kernel-session.ts';
import { median } from 'simple-statistics';
import { REPO_ROOT } from '../paths.ts';
import { renderReport } from '../report/index.ts';
import { runMicrobenchToFile } from '../microbench/index.ts';
import { formatMicrobench } from '../microbench/table.ts';

export interface MatrixOptions {
  kernels: string[];
  approaches: ApproachName[];
  runs: number;
  durationS: number;
  /** A few minutes end to end: at most 2 runs of 2 s, a 1 s warm-up, 1 probe-overhead pair. */
  quick: boolean;
  runId?: string;
  /** Parent of results/<run-id> (default: <repo>/results). */
  outDir?: string;
  progress?: ProgressSink;
  /** Stops between runs; the run id can then be resumed. */
  signal?: AbortSignal;
  /** Name prefix for namespaces, veths and pins (default "xlab"). */
  prefix?: string;
  /** How kernels are obtained (default: lab/bench/open-session.ts — host, or a VM via lab/vm). */
  openKernel?: OpenKernel;
  /** One discarded warm-up run per kernel session (default true). */
  warmup?: boolean;
  /** Paired runs with/without probes to measure the probes' overhead (default: 1 quick, else 5; 0 = skip). */
  probeOverheadPairs?: number;
  /** Paired runs with/without BPF run-time statistics to measure their overhead (default as probeOverheadPairs). */
  statsOverheadPairs?: number;
  /** How run-time statistics are turned on: the fd where the kernel has it (auto, default), or forced. */
  statsMode?: StatsMode;
  /** Render the report at the end (default true). */
  renderReport?: boolean;
  /**
   * Also run the BPF_PROG_TEST_RUN microbenchmarks (lab/microbench) on each kernel, after its
   * iperf3 cells; quick settings with `quick` (default false: callers opt in, the CLI does).
   */
  micro?: boolean;
  /**
   * Guests' clock (lab/vm resolveClock): 'icount' under QEMU's instruction counter (reproducible,
   * not wall-clock), 'wall', or 'auto' (icount where the guest runs under TCG). Default 'wall'.
   */
  clock?: 'wall' | 'icount' | 'auto';
}

export interface MatrixResult {
  runId: string;
  runDir: string;
  rawFile: string;
  /** Records appended by this invocation. */
  appended: { runs: number; cells: number };
  /** Final cell records (one per kernel × approach), including those from earlier invocations. */
  cells: CellRecord[];
  warnings: string[];
  /** Path returned by renderReport, when it ran. */
  report: string | null;
}

export function validateKernelName(k: string): string {
  if (k === 'host' || (KERNEL_VERSIONS as readonly string[]).includes(k)) return k;
  throw new LabError('UNKNOWN_KERNEL', `unknown kernel "${k}"`, {
    remedy: `Use one of: host, ${KERNEL_VERSIONS.join(', ')}.`,
  });
}

const cellKey = (kernel: string, approach: ApproachName): string => `${kernel}|${approach}`;
const runKey = (kernel: string, approach: ApproachName, i: number): string => `${kernel}|${approach}|${i}`;

const gbit = (bps: number): string => (bps / 1e9).toFixed(3);

/** Picks the patch mode and why out of a description's notes ("patch mode inline: no body ..."). */
function patchModeFrom(notes: readonly string[]): { mode: string; reason?: string } | undefined {
  for (const n of notes) {
    const m = /\b(?:patch[ -]?)?mode\b\s*[:=]?\s*(subprog|inline)\b(?::\s*(.+))?/i.exec(n);
    if (m?.[1]) return m[2] ? { mode: m[1].toLowerCase(), reason: m[2].trim() } : { mode: m[1].toLowerCase() };
  }
  return undefined;
}

interface Measured {
  iperf: IperfOutcome;
  probe: ProbeTotals | null;
  probeNullReason?: string;
  bpfStats: BpfStats | null;
  bpfStatsNullReason?: string;
  xdpMode: RunRecord['xdpMode'];
  offloads: Record<string, boolean>;
  patchMode?: string;
  patchModeReason?: string;
  startedAt: string;
  endedAt: string;
}

/** What a measured run takes besides the approach: the probes and the run-time statistics, or why not. */
interface MeasureWith {
  probe: ProbeSession | null;
  probeNullReason: string | null;
  stats: BpfStatsSession | null;
  statsNullReason: string | null;
}

class Matrix {
  private readonly o: Required<Omit<MatrixOptions, 'runId' | 'outDir' | 'signal' | 'openKernel'>> & {
    signal: AbortSignal | undefined;
  };
  readonly runId: string;
  readonly runDir: string;
  readonly rawFile: string;
  private readonly openKernel: OpenKernel;
  private readonly doneRuns = new Set<string>();
  /** Kernels whose microbenchmark records are already in raw.jsonl. */
  private readonly doneMicro = new Set<string>();
  private readonly cells = new Map<string, CellRecord>();
  private readonly warnings: string[] = [];
  private appended = { runs: 0, cells: 0 };
  private stepsDone = 0;
  private stepsTotal = 0;

  constructor(opts: MatrixOptions, openKernel: OpenKernel) {
    const quick = opts.quick;
    this.o = {
      kernels: opts.kernels.map(validateKernelName),
      approaches: opts.approaches,
      runs: quick ? Math.min(opts.runs, 2) : opts.runs,
      durationS: quick ? Math.min(opts.durationS, 2) : opts.durationS,
      quick,
      progress: opts.progress ?? silent,
      signal: opts.signal,
      prefix: opts.prefix ?? 'xlab',
      warmup: opts.warmup ?? true,
      probeOverheadPairs: opts.probeOverheadPairs ?? (quick ? 1 : 5),
      statsOverheadPairs: opts.statsOverheadPairs ?? (quick ? 1 : 5),
      statsMode: opts.statsMode ?? 'auto',
      renderReport: opts.renderReport ?? true,
      micro: opts.micro ?? false,
      clock: opts.clock ?? 'wall',
    };
    for (const a of opts.approaches) {
      if (!APPROACH_NAMES.includes(a)) {
        throw new LabError('BAD_INPUT', `unknown approach "${String(a)}"`, { remedy: `Use one of: ${APPROACH_NAMES.join(', ')}.` });
      }
    }
    if (!Number.isInteger(this.o.runs) || this.o.runs < 1) {
      throw new LabError('BAD_INPUT', `--runs must be a positive integer (got ${opts.runs})`, { remedy: 'Pass e.g. --runs 50.' });
    }
    if (!(this.o.durationS >= 1) || !Number.isFinite(this.o.durationS)) {
      throw new LabError('BAD_INPUT', `--duration must be at least 1 second (got ${opts.durationS})`, { remedy: 'Pass e.g. --duration 10.' });
    }
    if (this.o.kernels.length === 0 || this.o.approaches.length === 0) {
      throw new LabError('BAD_INPUT', 'the matrix needs at least one kernel and one approach', {
        remedy: 'Pass --kernels host and --approaches none,fused for example.',
      });
    }
    this.runId = opts.runId ?? newRunId();
    if (!/^[A-Za-z0-9._-]+$/.test(this.runId)) {
      throw new LabError('BAD_INPUT', `run id "${this.runId}" may only contain letters, digits, ".", "_" and "-"`, {
        remedy: 'Pick a run id usable as a directory name.',
      });
    }
    this.runDir = resolve(opts.outDir ?? join(REPO_ROOT, 'results'), this.runId);
    this.rawFile = join(this.runDir, 'raw.jsonl');
    this.openKernel = openKernel;
  }

  private emit = (message: string, level: 'info' | 'warn' = 'info'): void => {
    this.o.progress({ kind: 'log', level, message });
  };

  private checkAbort(): void {
    if (this.o.signal?.aborted) {
      throw new LabError('INTERRUPTED', `matrix ${this.runId} interrupted; ${this.appended.runs} run(s) recorded this time`, {
        remedy: `Rerun with --run-id ${this.runId} to resume where it stopped.`,
      });
    }
  }

  private step(note: string): void {
    this.stepsDone++;
    this.o.progress({ kind: 'phase-progress', id: 'matrix', done: this.stepsDone, total: this.stepsTotal, note });
  }

  /** Removes `n` planned steps (a cell that will not run) so the ETA stays honest. */
  private unplan(n: number): void {
    this.stepsTotal = Math.max(this.stepsDone, this.stepsTotal - n);
    this.o.progress({ kind: 'phase-progress', id: 'matrix', done: this.stepsDone, total: this.stepsTotal });
  }

  private async load(): Promise<void> {
    await mkdir(this.runDir, { recursive: true });
    const loaded = await loadRecords(this.rawFile, { repair: true });
    if (loaded.torn) {
      const msg = `${this.rawFile}: ignored a torn last line (${loaded.torn.bytes} bytes, an interrupted write); saved to ${loaded.torn.savedTo}`;
      this.warnings.push(msg);
      this.emit(msg, 'warn');
    }
    for (const r of loaded.records) {
      if (r.runId !== this.runId) {
        throw new LabError('RESULTS', `${this.rawFile}: holds records of run id "${r.runId}", not "${this.runId}"`, {
          remedy: 'Each run id has its own directory: pick another --run-id or --out.',
        });
      }
      if (r.kind === 'run') this.doneRuns.add(runKey(r.kernel, r.approach, r.iteration));
      if (r.kind === 'cell') this.cells.set(cellKey(r.kernel, r.approach), r);
      if (r.kind === 'micro' || r.kind === 'latency') this.doneMicro.add(r.kernel);
    }
    // Mixing run lengths in one run id would make its medians meaningless: refuse before booting anything.
    for (const k of this.o.kernels) {
      const prev = await readProvenance(join(this.runDir, 'provenance', `${k}.json`));
      if (prev && (prev.options.runs !== this.o.runs || prev.options.durationS !== this.o.durationS)) {
        throw new LabError(
          'BAD_INPUT',
          `run ${this.runId}, kernel ${k}: started with ${prev.options.runs} runs of ${prev.options.durationS} s, resumed with ${this.o.runs} of ${this.o.durationS} s`,
          { remedy: `Resume with --runs ${prev.options.runs} --duration ${prev.options.durationS}, or start a new --run-id.` },
        );
      }
    }
    if (loaded.records.length > 0) {
      this.emit(`resuming run ${this.runId}: ${this.doneRuns.size} run(s) and ${this.cells.size} cell(s) already recorded`);
    }
  }

  private async writeCell(kernel: string, approach: ApproachName, status: CellRecord['status'], runs: number, reason?: string): Promise<void> {
    const rec: CellRecord = { kind: 'cell', schema: SCHEMA_VERSION, runId: this.runId, kernel, approach, status, runs };
    if (reason !== undefined) rec.reason = reason;
    await appendRecord(this.rawFile, rec);
    this.cells.set(cellKey(kernel, approach), rec);
    this.appended.cells++;
  }

  private runsDone(kernel: string, approach: ApproachName): number {
    let n = 0;
    for (let i = 0; i < this.o.runs; i++) if (this.doneRuns.has(runKey(kernel, approach, i))) n++;
    return n;
  }

  async run(): Promise<MatrixResult> {
    await this.load();
    for (const k of this.o.kernels) {
      for (const a of this.o.approaches) {
        if (!this.cells.has(cellKey(k, a))) this.stepsTotal += this.o.runs - this.runsDone(k, a);
      }
    }
    this.o.progress({ kind: 'phase-start', id: 'matrix', label: `matrix ${this.runId}`, total: this.stepsTotal });
    let ok = false;
    try {
      for (const kernel of this.o.kernels) {
        this.checkAbort();
        const pending = this.o.approaches.filter((a) => !this.cells.has(cellKey(kernel, a)));
        if (pending.length === 0 && !this.microPending(kernel)) {
          this.emit(`${kernel}: every cell already recorded, skipped`);
          continue;
        }
        await this.runKernel(kernel, pending);
      }
      ok = true;
    } finally {
      this.o.progress({ kind: 'phase-end', id: 'matrix', ok, message: ok ? undefined : 'matrix stopped' });
    }
    let report: string | null = null;
    if (this.o.renderReport) report = await this.render();
    const cells = this.o.kernels.flatMap((k) =>
      this.o.approaches.map((a) => this.cells.get(cellKey(k, a))).filter((c): c is CellRecord => c !== undefined),
    );
    return { runId: this.runId, runDir: this.runDir, rawFile: this.rawFile, appended: this.appended, cells, warnings: this.warnings, report };
  }

  private async render(): Promise<string | null> {
    try {
      const out = await renderReport(this.runDir, { progress: this.o.progress });
      const path = join(out.reportDir, 'index.html');
      this.emit(`report: ${path}`);
      return path;
    } catch (e) {
      const msg = `report not rendered: ${errorMessage(e)}`;
      this.warnings.push(msg);
      this.emit(msg, 'warn');
      return null;
    }
  }

  private microPending(kernel: string): boolean {
    return this.o.micro && !this.doneMicro.has(kernel);
  }

  /**
   * The microbenchmarks on this kernel, once per run id. Their records are appended together at
   * the end, so a kill part way leaves none and a resume measures them again. A failure is a
   * warning, not the end of the matrix: the iperf3 cells are already recorded.
   */
  private async runMicro(s: KernelSession): Promise<void> {
    if (!this.microPending(s.kernel)) return;
    this.checkAbort();
    this.emit(`${s.kernel}: microbenchmarks (BPF_PROG_TEST_RUN${this.o.quick ? ', quick' : ''})`);
    try {
      const r = await runMicrobenchToFile(s.target, this.rawFile, {
        runId: this.runId,
        kernel: s.kernel,
        quick: this.o.quick,
        prefix: `${this.o.prefix}m`,
        progress: this.o.progress,
        signal: this.o.signal,
      });
      this.doneMicro.add(s.kernel);
      const table = join(this.runDir, 'micro', `${s.kernel}.txt`);
      await mkdir(join(this.runDir, 'micro'), { recursive: true });
      await writeFile(table, `${formatMicrobench(r)}\n`);
      this.emit(`${s.kernel}: ${r.records.length} microbenchmark record(s); tables in ${table}`);
    } catch (e) {
      if (isLabError(e, 'INTERRUPTED')) throw e;
      const msg = `${s.kernel}: microbenchmarks failed: ${errorMessage(e)}`;
      this.warnings.push(msg);
      this.emit(msg, 'warn');
    }
  }

  private async runKernel(kernel: string, pending: ApproachName[]): Promise<void> {
    const phaseId = `kernel:${kernel}`;
    this.o.progress({ kind: 'phase-start', id: phaseId, label: `kernel ${kernel}: obtaining target` });
    let session: KernelSession;
    try {
      session = await this.openKernel(kernel, { prefix: this.o.prefix, progress: this.o.progress, signal: this.o.signal, clock: this.o.clock });
    } catch (e) {
      const reason = isLabError(e) ? e.describe() : errorMessage(e);
      this.o.progress({ kind: 'phase-end', id: phaseId, ok: false, message: reason });
      if (isLabError(e, 'INTERRUPTED')) throw e;
      // A kernel this machine cannot obtain or boot: every pending cell says why, once.
      for (const a of pending) {
        this.unplan(this.o.runs - this.runsDone(kernel, a));
        await this.writeCell(kernel, a, 'skipped', this.runsDone(kernel, a), `kernel ${kernel} not available: ${reason}`);
      }
      return;
    }
    this.o.progress({ kind: 'phase-end', id: phaseId, ok: true, message: `${session.target.name} ${session.target.kernelRelease}` });
    try {
      await this.runSession(session, pending);
      await this.runMicro(session);
    } finally {
      await session.dispose().catch((e: unknown) => this.emit(`${kernel}: teardown failed: ${errorMessage(e)}`, 'warn'));
    }
  }

  private async writeKernelProvenance(s: KernelSession, file: string, extraWarnings: string[], extraTools: Record<string, string> = {}): Promise<Provenance> {
    const { target } = s;
    const cpus = [s.testbed.serverCpu, s.testbed.clientCpu];
    const previous = await readProvenance(file);
    const options = { runs: this.o.runs, durationS: this.o.durationS, warmup: this.o.warmup };
    const freq = s.frequency ?? (await targetFrequency(target, cpus));
    const isolcpus = s.isolcpus !== undefined ? s.isolcpus : await targetIsolcpus(target);
    const warnings = [...(previous?.warnings ?? []), ...s.warnings, ...extraWarnings];
    for (const patch of s.kernelOrigin?.patches ?? []) warnings.push(`kernel under test differs from its source by the fix-up ${patch.file}: ${patch.why}`);
    if (previous) warnings.push(`resumed at ${new Date().toISOString()} (target ${target.name}, ${target.kernelRelease})`);
    if (target.clock === 'icount') warnings.push('QEMU TCG with the instruction counter: instruction-timed, reproducible, not wall-clock performance');
    else if (target.accelerator === 'tcg') warnings.push('QEMU TCG (emulated CPU): numbers show relative behaviour only, never performance');
    if (isolcpus === null && !warnings.some((w) => /isolated CPUs/.test(w))) warnings.push(`no isolated CPUs on ${target.name}: iperf3 pinned to CPUs ${cpus.join(' and ')} shared with the rest of the system`);
    const p: Provenance = {
      schema: SCHEMA_VERSION,
      runId: this.runId,
      kernel: s.kernel,
      kernelRelease: target.kernelRelease,
      kernelConfigSha256: await kernelConfigSha256(target, s.configPath),
      kernelOrigin: s.kernelOrigin ?? null,
      accelerator: target.accelerator,
      clock: target.clock ?? 'wall',
      hostCpuModel: await hostCpuModel(),
      cpuFrequency: freq,
      isolcpus,
      pinning: { iperfServerCpu: s.testbed.serverCpu, iperfClientCpu: s.testbed.clientCpu },
      tools: { ...(await toolVersions(target, s.probe ? s.probe.helper.replace(/^.*veth_probe-/, '') : null)), ...extraTools },
      labCommit: await labCommit(),
      options,
      warnings: [...new Set(warnings)],
      startedAt: previous?.startedAt ?? new Date().toISOString(),
    };
    await writeProvenance(file, p);
    return p;
  }

  private async runSession(s: KernelSession, pending: ApproachName[]): Promise<void> {
    const kernel = s.kernel;
    const provFile = join(this.runDir, 'provenance', `${kernel}.json`);

    // Which approaches this kernel supports, in the tool's own words when not.
    const runnable: { name: ApproachName; impl: Approach; ctx: ApproachContext }[] = [];
    for (const name of pending) {
      const impl = s.approach(name);
      if (!impl) {
        this.unplan(this.o.runs - this.runsDone(kernel, name));
        await this.writeCell(kernel, name, 'skipped', this.runsDone(kernel, name), `approach ${name} is not implemented in this checkout`);
        continue;
      }
      let support;
      try {
        support = await impl.supports(s.target);
      } catch (e) {
        support = { supported: false as const, reason: `support check failed: ${errorMessage(e)}` };
      }
      if (!support.supported) {
        this.emit(`${kernel}: ${name} unsupported: ${support.reason}`, 'warn');
        this.unplan(this.o.runs - this.runsDone(kernel, name));
        await this.writeCell(kernel, name, 'unsupported', this.runsDone(kernel, name), support.reason);
        continue;
      }
      const ctx = s.contextFor(name);
      // Leftovers of a killed earlier invocation would break the load: clear them first.
      await impl.detach(ctx).catch(() => undefined);
      runnable.push({ name, impl, ctx });
    }
    if (runnable.length === 0) {
      await this.writeKernelProvenance(s, provFile, []);
      return;
    }

    // Can the probes attach here? One trial start/stop, so each run knows up front.
    const probe = s.probe ? new ProbeSession(s.target, s.probe) : null;
    let probeNullReason: string | null = null;
    if (!probe) {
      probeNullReason = 'probe helper not available for this target';
    } else {
      const start = await probe.start(60);
      if (start.ok) await probe.stop();
      else probeNullReason = probeUnavailableReason(s.target, start);
    }
    // Can run-time statistics be turned on here, and how? One trial start/stop as for the probes.
    const stats = s.bpfStats ? new BpfStatsSession(s.target, s.bpfStats) : null;
    let statsNullReason: string | null = null;
    let statsMechanism: StatsMechanism | null = null;
    if (!stats) {
      statsNullReason = 'BPF statistics helper not available for this target';
    } else {
      try {
        const start = await stats.start(60, this.o.statsMode);
        if (start.ok) {
          await stats.stop();
          statsMechanism = start.mode;
        } else {
          statsNullReason = statsUnavailableReason(s.target, start);
        }
      } catch (e) {
        await stats.kill();
        statsNullReason = `bpf_stats helper trial failed: ${errorMessage(e)}`;
      }
    }
    const provWarnings: string[] = [];
    if (probeNullReason) provWarnings.push(`veth_poll probes unavailable: ${probeNullReason}`);
    if (statsNullReason) provWarnings.push(`BPF run-time statistics unavailable: ${statsNullReason}`);
    const statsTools: Record<string, string> = {};
    if (s.bpfStats) statsTools['bpf_stats helper'] = s.bpfStats.helper.replace(/^.*bpf_stats-/, '');
    statsTools['BPF run-time statistics'] = statsMechanism ? describeMechanism(statsMechanism) : `none: ${statsNullReason ?? 'unknown'}`;
    await this.writeKernelProvenance(s, provFile, provWarnings, statsTools);
    if (probeNullReason) this.emit(`${kernel}: ${probeNullReason}; runs proceed with probe: null`, 'warn');
    if (statsNullReason) this.emit(`${kernel}: ${statsNullReason}; runs proceed with bpfStats: null`, 'warn');
    const measuredWith = { probe, probeNullReason, stats, statsNullReason };

    // One discarded warm-up per kernel session, with the approach whose run comes first, so the
    // first recorded run is not the cold one (page cache, TCP state, iperf3 binaries). Every run
    // loads its approach afresh, so warming each approach separately would carry nothing over.
    const first = runnable.find((r) => this.runsDone(kernel, r.name) < this.o.runs);
    if (this.o.warmup && first) {
      const warm = this.o.quick ? 1 : this.o.durationS;
      this.checkAbort();
      this.o.progress({ kind: 'phase-progress', id: 'matrix', done: this.stepsDone, total: this.stepsTotal, note: `${kernel} warm-up (${first.name}, discarded)` });
      try {
        await this.measure(s, first.impl, first.ctx, warm, 'warm-up', { ...measuredWith, probe: null });
      } catch (e) {
        // Not the cell's verdict: its measured runs retry and record a failure properly.
        this.emit(`${kernel}: warm-up with ${first.name} failed: ${errorMessage(e)}`, 'warn');
      }
    }

    // Interleaved: run i of every approach before run i+1.
    for (let i = 0; i < this.o.runs; i++) {
      for (const r of [...runnable]) {
        if (this.doneRuns.has(runKey(kernel, r.name, i))) continue;
        this.checkAbort();
        const note = `${kernel} ${r.name} run ${i + 1}/${this.o.runs}`;
        let m: Measured | null = null;
        let lastErr: unknown = null;
        for (let attempt = 0; attempt < 2 && m === null; attempt++) {
          try {
            m = await this.measure(s, r.impl, r.ctx, this.o.durationS, note, { ...measuredWith, probe: r.name === 'none' ? null : probe });
          } catch (e) {
            lastErr = e;
            if (isLabError(e, 'INTERRUPTED')) throw e;
            this.emit(`${note} failed${attempt === 0 ? ', retrying once' : ''}: ${errorMessage(e)}`, 'warn');
          }
        }
        if (m === null) {
          await this.failCell(kernel, r.name, `run ${i} failed twice: ${errorMessage(lastErr)}`);
          runnable.splice(runnable.indexOf(r), 1);
          continue;
        }
        const rec: RunRecord = {
          kind: 'run',
          schema: SCHEMA_VERSION,
          runId: this.runId,
          kernel,
          kernelRelease: s.target.kernelRelease,
          accelerator: s.target.accelerator,
          clock: s.target.clock ?? 'wall',
          approach: r.name,
          iteration: i,
          startedAt: m.startedAt,
          endedAt: m.endedAt,
          iperf: m.iperf,
          probe: m.probe,
          xdpMode: m.xdpMode,
          offloads: m.offloads,
        };
        if (m.probe === null) rec.probeNullReason = m.probeNullReason ?? 'no probe data';
        rec.bpfStats = m.bpfStats;
        if (m.bpfStats === null) rec.bpfStatsNullReason = m.bpfStatsNullReason ?? 'no run-time statistics';
        if (m.patchMode) rec.patchMode = m.patchMode;
        if (m.patchModeReason) rec.patchModeReason = m.patchModeReason;
        await appendRecord(this.rawFile, rec);
        this.doneRuns.add(runKey(kernel, r.name, i));
        this.appended.runs++;
        this.step(note);
      }
    }
    for (const r of runnable) await this.writeCell(kernel, r.name, 'done', this.runsDone(kernel, r.name));

    await this.measureProbeOverhead(s, runnable, probe, probeNullReason, provFile);
    await this.measureStatsOverhead(s, runnable, stats, statsNullReason, provFile);
  }

  private async failCell(kernel: string, name: ApproachName, reason: string): Promise<void> {
    this.emit(`${kernel}: ${name} failed: ${reason}`, 'warn');
    this.unplan(this.o.runs - this.runsDone(kernel, name));
    await this.writeCell(kernel, name, 'failed', this.runsDone(kernel, name), reason);
  }

  /**
   * Load, attach, (probe,) (statistics on, first reading,) iperf3, (second reading, statistics
   * off,) (probe totals,) detach — detach, probe and statistics off on every path.
   */
  private async measure(s: KernelSession, impl: Approach, ctx: ApproachContext, durationS: number, what: string, w: MeasureWith): Promise<Measured> {
    const isNone = impl.name === 'none';
    const { probe, stats } = w;
    let probing = false;
    let interval: StatsInterval | null = null;
    try {
      await impl.load(ctx);
      await impl.attach(ctx);
      const desc = await impl.describe(ctx);
      if (!isNone && !desc.attached) {
        throw new LabError('ATTACH', `${s.target.name}: ${what}: ${impl.name} reports itself not attached on ${ctx.ifname}`, {
          remedy: 'Check `ip link show` in the namespace; another program may hold the interface.',
        });
      }
      const offloads = await s.testbed.offloads();
      let probeNote: string | undefined;
      if (probe && !w.probeNullReason) {
        const start = await probe.start(durationS + 120);
        if (start.ok) probing = true;
        else probeNote = probeUnavailableReason(s.target, start);
      }
      let statsNote: string | undefined;
      if (stats && !w.statsNullReason && !isNone) {
        const begun = await beginStats(stats, ctx, desc.programs, { maxSeconds: durationS + 120, mode: this.o.statsMode });
        if (begun.ok) interval = begun.interval;
        else statsNote = begun.reason;
      }
      const startedAt = new Date().toISOString();
      const iperf = await s.testbed.iperf(durationS);
      const endedAt = new Date().toISOString();
      let bpfStats: BpfStats | null = null;
      if (interval) {
        const ended = await interval.end();
        interval = null;
        if ('stats' in ended) bpfStats = ended.stats;
        else statsNote = ended.reason;
      }
      const totals = probing ? await probe!.stop() : null;
      probing = false;
      const m: Measured = {
        iperf,
        probe: totals,
        bpfStats,
        xdpMode: isNone ? 'none' : desc.xdpMode,
        offloads,
        startedAt,
        endedAt,
      };
      if (totals === null) {
        m.probeNullReason = isNone
          ? 'approach none attaches no XDP program: veth_poll does not run, so there is no probe data'
          : (probeNote ?? w.probeNullReason ?? 'probes not requested for this run');
      }
      if (bpfStats === null) {
        m.bpfStatsNullReason = isNone ? NONE_STATS_REASON : (statsNote ?? w.statsNullReason ?? 'run-time statistics not requested for this run');
      }
      const pm = impl.name === 'patched' ? patchModeFrom(desc.notes) : undefined;
      if (pm) {
        m.patchMode = pm.mode;
        if (pm.reason) m.patchModeReason = pm.reason;
      }
      return m;
    } finally {
      if (interval) await interval.abort();
      if (probing) await probe!.kill();
      await impl.detach(ctx).catch((e: unknown) => this.emit(`${s.kernel}: ${impl.name}: detach failed: ${errorMessage(e)}`, 'warn'));
    }
  }

  /**
   * The probes' own cost: paired runs of one XDP approach with and without the probes attached,
   * alternating which goes first. The result goes into the kernel's provenance warnings and
   * probe-overhead/<kernel>.json.
   */
  private async measureProbeOverhead(
    s: KernelSession,
    runnable: { name: ApproachName; impl: Approach; ctx: ApproachContext }[],
    probe: ProbeSession | null,
    probeNullReason: string | null,
    provFile: string,
  ): Promise<void> {
    const pairs = this.o.probeOverheadPairs;
    if (pairs <= 0) return;
    const file = join(this.runDir, 'probe-overhead', `${s.kernel}.json`);
    if (existsSync(file)) return;
    const chosen = runnable.find((r) => r.name === 'fused') ?? runnable.find((r) => r.name !== 'none');
    let note: string;
    const detail: Record<string, unknown> = { kernel: s.kernel, pairs, durationS: this.o.durationS };
    if (!probe || probeNullReason) {
      note = `probe overhead not measured on ${s.kernel}: ${probeNullReason ?? 'no probe helper'}`;
    } else if (!chosen) {
      note = `probe overhead not measured on ${s.kernel}: no XDP approach ran`;
    } else {
      const withP: number[] = [];
      const without: number[] = [];
      try {
        for (let i = 0; i < pairs; i++) {
          this.checkAbort();
          const order = i % 2 === 0 ? [true, false] : [false, true];
          for (const probed of order) {
            this.o.progress({ kind: 'phase-progress', id: 'matrix', done: this.stepsDone, total: this.stepsTotal, note: `${s.kernel} probe overhead ${i + 1}/${pairs}` });
            const m = await this.measure(s, chosen.impl, chosen.ctx, this.o.durationS, 'probe overhead', { probe: probed ? probe : null, probeNullReason: null, stats: null, statsNullReason: null });
            (probed ? withP : without).push(m.iperf.bitsPerSecond);
          }
        }
        const a = median(withP);
        const b = median(without);
        const pct = ((a - b) / b) * 100;
        Object.assign(detail, { approach: chosen.name, withProbesBps: withP, withoutProbesBps: without, medianDeltaPct: pct });
        note = `probe overhead on ${s.kernel} (${chosen.name}, ${pairs} paired runs of ${this.o.durationS} s): median ${gbit(a)} Gbit/s with probes vs ${gbit(b)} without (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%)`;
      } catch (e) {
        if (isLabError(e, 'INTERRUPTED')) throw e;
        note = `probe overhead on ${s.kernel} not measured: ${errorMessage(e)}`;
      }
    }
    detail.note = note;
    this.emit(note);
    this.warnings.push(note);
    await mkdir(join(this.runDir, 'probe-overhead'), { recursive: true });
    await writeFile(file, `${JSON.stringify(detail, null, 2)}\n`);
    const prov = await readProvenance(provFile);
    if (prov) await writeProvenance(provFile, { ...prov, warnings: [...prov.warnings, note] });
  }

  /** Loads `impl`, test-runs its entry program with and without statistics, detaches. */
  private async statsTestRun(s: KernelSession, impl: Approach, ctx: ApproachContext, stats: BpfStatsSession, pairs: number): Promise<TestRunOverhead> {
    const c = buildCorpus().cases.find((x) => x.name === REPRESENTATIVE_CASE);
    if (!c) throw new LabError('BENCH', `packet corpus has no case "${REPRESENTATIVE_CASE}"`, { remedy: 'lab/packets/corpus.ts changed: pick another case that passes the trio.' });
    const dir = await mkdtemp(join(tmpdir(), 'xcl-stats-'));
    const packet = `${s.target.workDir}/stats-overhead-${c.name}.bin`;
    try {
      await writeFile(join(dir, 'packet.bin'), c.frame);
      await s.target.putFile(join(dir, 'packet.bin'), packet);
      await impl.load(ctx);
      await impl.attach(ctx);
      const programs = await statsPrograms(s.target, ctx.ifname, ctx.netns, (await impl.describe(ctx)).programs);
      return await testRunOverhead(stats, s.target, programs, packet, {
        pairs,
        repeat: this.o.quick ? 50_000 : 200_000,
        mode: this.o.statsMode,
        cpu: s.testbed.clientCpu,
      });
    } finally {
      await impl.detach(ctx).catch((e: unknown) => this.emit(`${s.kernel}: ${impl.name}: detach failed: ${errorMessage(e)}`, 'warn'));
      await rm(dir, { recursive: true, force: true });
      await s.target.run(['rm', '-f', packet], { allowFailure: true }).catch(() => undefined);
    }
  }

  /**
   * The run-time statistics' own cost, measured like the probes': paired runs of one XDP approach
   * with and without statistics (no probes in either), alternating which goes first. The result
   * goes into the kernel's provenance warnings and stats-overhead/<kernel>.json, with the ns per
   * packet the statistics gave in the runs that had them.
   */
  private async measureStatsOverhead(
    s: KernelSession,
    runnable: { name: ApproachName; impl: Approach; ctx: ApproachContext }[],
    stats: BpfStatsSession | null,
    statsNullReason: string | null,
    provFile: string,
  ): Promise<void> {
    const pairs = this.o.statsOverheadPairs;
    if (pairs <= 0) return;
    const file = join(this.runDir, 'stats-overhead', `${s.kernel}.json`);
    if (existsSync(file)) return;
    const chosen = runnable.find((r) => r.name === 'fused') ?? runnable.find((r) => r.name !== 'none');
    let note: string;
    const detail: Record<string, unknown> = { kernel: s.kernel, pairs, durationS: this.o.durationS };
    if (!stats || statsNullReason) {
      note = `BPF statistics overhead not measured on ${s.kernel}: ${statsNullReason ?? 'no bpf_stats helper'}`;
    } else if (!chosen) {
      note = `BPF statistics overhead not measured on ${s.kernel}: no XDP approach ran`;
    } else {
      const withS: number[] = [];
      const without: number[] = [];
      const nsPerPacket: number[] = [];
      try {
        for (let i = 0; i < pairs; i++) {
          this.checkAbort();
          const order = i % 2 === 0 ? [true, false] : [false, true];
          for (const on of order) {
            this.o.progress({ kind: 'phase-progress', id: 'matrix', done: this.stepsDone, total: this.stepsTotal, note: `${s.kernel} BPF statistics overhead ${i + 1}/${pairs}` });
            const m = await this.measure(s, chosen.impl, chosen.ctx, this.o.durationS, 'statistics overhead', {
              probe: null,
              probeNullReason: null,
              stats: on ? stats : null,
              statsNullReason: on ? null : 'statistics off: the other half of an overhead pair',
            });
            if (on && m.bpfStats === null) throw new LabError('BENCH', `no statistics in a run that had them on: ${m.bpfStatsNullReason ?? 'no reason'}`);
            if (m.bpfStats) nsPerPacket.push(m.bpfStats.nsPerPacket);
            (on ? withS : without).push(m.iperf.bitsPerSecond);
          }
        }
        const a = median(withS);
        const b = median(without);
        const pct = ((a - b) / b) * 100;
        Object.assign(detail, { approach: chosen.name, withStatsBps: withS, withoutStatsBps: without, medianDeltaPct: pct, nsPerPacket });
        note = `BPF statistics overhead on ${s.kernel} (${chosen.name}, ${pairs} paired runs of ${this.o.durationS} s): median ${gbit(a)} Gbit/s with statistics vs ${gbit(b)} without (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%); ${median(nsPerPacket).toFixed(1)} ns per packet by the statistics`;
      } catch (e) {
        if (isLabError(e, 'INTERRUPTED')) throw e;
        note = `BPF statistics overhead on ${s.kernel} not measured: ${errorMessage(e)}`;
      }
      // The same cost without traffic, per packet and far less noisy than throughput.
      try {
        this.checkAbort();
        const pairsTr = Math.max(5, pairs);
        const tr = await this.statsTestRun(s, chosen.impl, chosen.ctx, stats, pairsTr);
        const on = median(tr.withStatsNs);
        const off = median(tr.withoutStatsNs);
        detail.testRun = { approach: chosen.name, packet: REPRESENTATIVE_CASE, pairs: pairsTr, ...tr, medianOverheadNs: on - off };
        note += `; BPF_PROG_TEST_RUN of ${chosen.name} on ${REPRESENTATIVE_CASE} (${pairsTr} pairs of ${tr.repeat} repetitions): ${on.toFixed(0)} ns per packet with statistics vs ${off.toFixed(0)} without (${on - off >= 0 ? '+' : ''}${(on - off).toFixed(0)} ns), ${median(tr.statsNsPerPacket).toFixed(1)} ns by the statistics`;
      } catch (e) {
        if (isLabError(e, 'INTERRUPTED')) throw e;
        note += `; test-run overhead not measured: ${errorMessage(e)}`;
      }
    }
    detail.note = note;
    this.emit(note);
    this.warnings.push(note);
    await mkdir(join(this.runDir, 'stats-overhead'), { recursive: true });
    await writeFile(file, `${JSON.stringify(detail, null, 2)}\n`);
    const prov = await readProvenance(provFile);
    if (prov) await writeProvenance(provFile, { ...prov, warnings: [...prov.warnings, note] });
  }
}

/** Runs (or resumes) the matrix. See MatrixOptions. */
export async function runMatrix(opts: MatrixOptions): Promise<MatrixResult> {
  const open: OpenKernel = opts.openKernel ?? (await import('./open-session.ts')).openKernelSession;
  return new Matrix(opts, open).run();
}
