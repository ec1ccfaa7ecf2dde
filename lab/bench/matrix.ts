/**
 * The matrix runner (thesis ch. 4 as a command): every kernel × every approach, N iperf3 runs each,
 * approaches interleaved (run i of every approach before run i+1) so drift favours none of them.
 *
 * Results are appended run by run to results/<run-id>/raw.jsonl (one fsynced line per record) and
 * are the only state: rerunning with the same run id reads them back, skips finished cells and runs,
 * and continues. A kill -9 loses at most the run in flight.
 *
 * This file only composes the jobs: settings and progress total (plan.ts), resume (ledger.ts),
 * what a session supports (support.ts), one cell's warm-up, retries and records (cell.ts), the
 * instruments' overhead (overhead.ts), and whatever the caller runs on each kernel while it is up
 * (KernelStages: the round trips, the CLI's microbenchmarks, which this runner does not know).
 */
import { join } from 'node:path';
import type { ApproachName } from '../results/record.ts';
import { errorMessage, isLabError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import type { CellRecord, RawRecord } from '../results/record.ts';
import { closeCell, measuredRun, warmUp } from './cell.ts';
import { MatrixRun } from './context.ts';
import type { KernelSession, OpenKernel } from './kernel-session.ts';
import { Ledger } from './ledger.ts';
import { measureProbeOverhead, measureStatsOverhead } from './overhead.ts';
import { plannedRuns, resolveSettings, StepPlan, type MatrixSettingsInput } from './plan.ts';
import { writeKernelProvenance } from './provenance.ts';
import { approachSupport, trialInstruments, type Runnable } from './support.ts';

/** What a per-kernel stage is given: the run's files and settings, the matrix's output and abort check. */
export interface KernelStageContext {
  readonly runId: string;
  readonly runDir: string;
  readonly rawFile: string;
  readonly quick: boolean;
  /** The approaches the matrix measures (its --hook's, or those given). */
  readonly approaches: readonly ApproachName[];
  /** The matrix's resource prefix; a stage derives its own names from it. */
  readonly prefix: string;
  readonly progress: ProgressSink;
  readonly signal: AbortSignal | undefined;
  emit(message: string, level?: 'info' | 'warn'): void;
  /** A warning for the matrix's summary, also logged. */
  warn(message: string): void;
  /** Throws INTERRUPTED (the run id can be resumed) once the signal is aborted. */
  checkAbort(): void;
}

/**
 * Work the caller runs on each kernel while its session is up, after the kernel's iperf3 cells and
 * overhead pairs, so a guest boots once per kernel.
 */
export interface KernelStage {
  /**
   * Whether `kernel` still needs the stage, given the record kinds raw.jsonl held for it when the
   * matrix started. A kernel whose cells are all recorded is still opened for a pending stage.
   */
  pending(kernel: string, recorded: ReadonlySet<RawRecord['kind']>): boolean;
  /** Runs on the open session; an INTERRUPTED error stops the matrix, resumably. */
  run(session: KernelSession, ctx: KernelStageContext): Promise<void>;
}

export interface MatrixOptions extends MatrixSettingsInput {
  /** How kernels are obtained (default: lab/bench/open-session.ts — host, or a VM via lab/vm). */
  openKernel?: OpenKernel;
  /** The packet corpus case the statistics' overhead is test-run on without traffic. */
  testRunCase: string;
  /** Run on each kernel after its cells, in this order, while its session is up (see KernelStage). */
  perKernel?: readonly KernelStage[];
}

export interface MatrixResult {
  runId: string;
  runDir: string;
  rawFile: string;
  /** Records appended by this invocation. */
  appended: { runs: number; cells: number };
  /** Final cell records (one per kernel × approach), including those from earlier invocations. */
  cells: CellRecord[];
  /** This invocation's warnings, in order; a caller adding its own appends here. */
  warnings: string[];
}

function stageContext(run: MatrixRun): KernelStageContext {
  const s = run.settings;
  return {
    runId: s.runId,
    runDir: s.runDir,
    rawFile: run.ledger.rawFile,
    quick: s.quick,
    approaches: s.approaches,
    prefix: s.prefix,
    progress: s.progress,
    signal: s.signal,
    emit: (message, level) => run.emit(message, level),
    warn: (message) => run.warn(message),
    checkAbort: () => run.checkAbort(),
  };
}

/** Support checks, provenance, warm-up, the interleaved runs, the closing cells, the overhead pairs. */
async function runSession(run: MatrixRun, s: KernelSession, pending: readonly ApproachName[], testRunCase: string): Promise<void> {
  const { settings, ledger } = run;
  const kernel = s.kernel;
  const provFile = join(settings.runDir, 'provenance', `${kernel}.json`);
  const provRun = { runId: settings.runId, options: { runs: settings.runs, durationS: settings.durationS, warmup: settings.warmup } };

  const runnable: Runnable[] = [];
  for (const name of pending) {
    const support = await approachSupport(s, name);
    if (support.ok) {
      runnable.push(support.runnable);
      continue;
    }
    if (support.status === 'unsupported') run.emit(`${kernel}: ${name} unsupported: ${support.reason}`, 'warn');
    await closeCell(run, kernel, name, support.status, support.reason);
  }
  if (runnable.length === 0) {
    await writeKernelProvenance(s, provFile, provRun, []);
    return;
  }

  const instruments = await trialInstruments(s, settings.statsMode);
  const w = instruments.with;
  await writeKernelProvenance(s, provFile, provRun, instruments.warnings, instruments.tools);
  if (w.probeNullReason) run.emit(`${kernel}: ${w.probeNullReason}; runs proceed with probe: null`, 'warn');
  if (w.statsNullReason) run.emit(`${kernel}: ${w.statsNullReason}; runs proceed with bpfStats: null`, 'warn');

  await warmUp(run, s, runnable, w);
  // Interleaved: run i of every approach before run i+1; a failed cell leaves the rotation.
  for (let i = 0; i < settings.runs; i++) {
    for (const r of [...runnable]) {
      if (ledger.hasRun(kernel, r.name, i)) continue;
      run.checkAbort();
      if (!(await measuredRun(run, s, r, i, w))) runnable.splice(runnable.indexOf(r), 1);
    }
  }
  for (const r of runnable) await ledger.writeCell(kernel, r.name, 'done');

  await measureProbeOverhead(run, s, runnable, w, provFile);
  await measureStatsOverhead(run, s, runnable, w, provFile, testRunCase);
}

/** Opens the kernel (or records its pending cells as skipped with why), runs it, tears it down. */
async function runKernel(run: MatrixRun, open: OpenKernel, kernel: string, pending: readonly ApproachName[], opts: MatrixOptions): Promise<void> {
  const { settings } = run;
  const phaseId = `kernel:${kernel}`;
  settings.progress({ kind: 'phase-start', id: phaseId, label: `kernel ${kernel}: obtaining target` });
  let session: KernelSession;
  try {
    session = await open(kernel, { prefix: settings.prefix, progress: settings.progress, signal: settings.signal, clock: settings.clock });
  } catch (e) {
    const reason = isLabError(e) ? e.describe() : errorMessage(e);
    settings.progress({ kind: 'phase-end', id: phaseId, ok: false, message: reason });
    if (isLabError(e, 'INTERRUPTED')) throw e;
    // A kernel this machine cannot obtain or boot: every pending cell says why, once.
    for (const a of pending) await closeCell(run, kernel, a, 'skipped', `kernel ${kernel} not available: ${reason}`);
    return;
  }
  settings.progress({ kind: 'phase-end', id: phaseId, ok: true, message: `${session.target.name} ${session.target.kernelRelease}` });
  try {
    await runSession(run, session, pending, opts.testRunCase);
    const recorded = run.ledger.recordedKinds(kernel);
    for (const stage of opts.perKernel ?? []) {
      if (stage.pending(kernel, recorded)) await stage.run(session, stageContext(run));
    }
  } finally {
    await session.dispose().catch((e: unknown) => run.emit(`${kernel}: teardown failed: ${errorMessage(e)}`, 'warn'));
  }
}

/** Runs (or resumes) the matrix. See MatrixOptions. */
export async function runBenchMatrix(opts: MatrixOptions): Promise<MatrixResult> {
  const open: OpenKernel = opts.openKernel ?? (await import('./open-session.ts')).openKernelSession;
  const settings = resolveSettings(opts);
  const ledger = new Ledger(settings.runId, settings.runDir, settings.runs);
  const warnings: string[] = [];
  const log = (message: string, level: 'info' | 'warn'): void => settings.progress({ kind: 'log', level, message });
  const held = await ledger.load((message) => {
    warnings.push(message);
    log(message, 'warn');
  });
  // Mixing run lengths in one run id would make its medians meaningless: refuse before booting anything.
  await ledger.refuseOtherRunLengths(settings.kernels, settings.durationS);
  if (held > 0) log(`resuming run ${settings.runId}: ${ledger.runsRecorded} run(s) and ${ledger.cellsRecorded} cell(s) already recorded`, 'info');

  const plan = new StepPlan(settings.progress, plannedRuns(settings, ledger));
  const run = new MatrixRun(settings, ledger, plan, warnings);
  plan.begin(`matrix ${settings.runId}`);
  let ok = false;
  try {
    for (const kernel of settings.kernels) {
      run.checkAbort();
      const pending = settings.approaches.filter((a) => !ledger.hasCell(kernel, a));
      if (pending.length === 0 && !(opts.perKernel ?? []).some((st) => st.pending(kernel, ledger.recordedKinds(kernel)))) {
        run.emit(`${kernel}: every cell already recorded, skipped`);
        continue;
      }
      await runKernel(run, open, kernel, pending, opts);
    }
    ok = true;
  } finally {
    plan.end(ok);
  }
  const cells = settings.kernels.flatMap((k) => settings.approaches.map((a) => ledger.cell(k, a)).filter((c): c is CellRecord => c !== undefined));
  return { runId: settings.runId, runDir: settings.runDir, rawFile: ledger.rawFile, appended: ledger.appended, cells, warnings };
}
