/**
 * What one matrix invocation will do: its settings checked before anything is touched (kernels,
 * approaches, runs, durations, run id), and its progress total. The total is fixed when the run
 * starts from what the ledger still lacks; it never grows under the user, and only shrinks by the
 * runs of a cell that will not run (unsupported, skipped, failed) so the ETA stays honest.
 */
import { join, resolve } from 'node:path';
import { APPROACH_NAMES, approachesOfHook, hookOfApproach, type ApproachHook, type ApproachName } from '../results/record.ts';
import { LabError } from '../errors.ts';
import { KERNEL_VERSIONS } from '../kernels/types.ts';
import { REPO_ROOT } from '../paths.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { newRunId } from '../results/record.ts';
import type { StatsMode } from './bpf-stats.ts';

/** The measurement settings of a matrix run, as callers give them. */
export interface MatrixSettingsInput {
  kernels: string[];
  /** The approaches to measure; absent: every approach of `hook`. */
  approaches?: ApproachName[];
  /** The hook(s) measured: XDP on the receiving veth, its TC ingress, or both (default). */
  hook?: HookChoice;
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
  /** One discarded warm-up run per kernel session (default true). */
  warmup?: boolean;
  /** Paired runs with/without probes to measure the probes' overhead (default: 1 quick, else 5; 0 = skip). */
  probeOverheadPairs?: number;
  /** Paired runs with/without BPF run-time statistics to measure their overhead (default as probeOverheadPairs). */
  statsOverheadPairs?: number;
  /** How run-time statistics are turned on: the fd where the kernel has it (auto, default), or forced. */
  statsMode?: StatsMode;
  /**
   * Guests' clock (lab/vm resolveClock): 'icount' under QEMU's instruction counter (reproducible,
   * not wall-clock), 'wall', or 'auto' (icount where the guest runs under TCG). Default 'wall'.
   */
  clock?: 'wall' | 'icount' | 'auto';
}

/** What `--hook` takes. */
export type HookChoice = ApproachHook | 'both';
export const HOOK_CHOICES: readonly HookChoice[] = ['xdp', 'tc', 'both'];

/** The settings with every default applied and every value checked. */
export interface MatrixSettings {
  readonly kernels: readonly string[];
  readonly hook: HookChoice;
  readonly approaches: readonly ApproachName[];
  readonly runs: number;
  readonly durationS: number;
  readonly quick: boolean;
  readonly runId: string;
  readonly runDir: string;
  readonly progress: ProgressSink;
  readonly signal: AbortSignal | undefined;
  readonly prefix: string;
  readonly warmup: boolean;
  readonly probeOverheadPairs: number;
  readonly statsOverheadPairs: number;
  readonly statsMode: StatsMode;
  readonly clock: 'wall' | 'icount' | 'auto';
}

export function validateKernelName(k: string): string {
  if (k === 'host' || (KERNEL_VERSIONS as readonly string[]).includes(k)) return k;
  throw new LabError('UNKNOWN_KERNEL', `unknown kernel "${k}"`, {
    remedy: `Use one of: host, ${KERNEL_VERSIONS.join(', ')}.`,
  });
}

/**
 * The approaches a run measures: those given, each checked against the hook, or every approach of
 * the hook (registry order, so an approach joins the bench the moment it is named in record.ts).
 * Whether a kernel runs each one is asked later, per kernel (supports()), and closes it as
 * unsupported with the reason: the selection never depends on the kernel.
 */
export function selectApproaches(hook: HookChoice, given?: readonly ApproachName[]): ApproachName[] {
  if (!HOOK_CHOICES.includes(hook)) {
    throw new LabError('BAD_INPUT', `unknown hook "${String(hook)}"`, { remedy: `Use one of: ${HOOK_CHOICES.join(', ')}.` });
  }
  const ofHook = hook === 'both' ? [...APPROACH_NAMES] : approachesOfHook(hook);
  if (given === undefined) return ofHook;
  for (const a of given) {
    if (!APPROACH_NAMES.includes(a)) {
      throw new LabError('BAD_INPUT', `unknown approach "${String(a)}"`, { remedy: `Use one of: ${APPROACH_NAMES.join(', ')}.` });
    }
    if (!ofHook.includes(a)) {
      throw new LabError('BAD_INPUT', `approach ${a} runs on the ${hookOfApproach(a).toUpperCase()} hook, not on --hook ${hook}`, {
        remedy: `Drop ${a} from --approaches, or pass --hook ${hookOfApproach(a)} or --hook both (the ${hook} approaches: ${ofHook.join(', ')}).`,
      });
    }
  }
  return [...new Set(given)];
}

/** Applies the defaults (and the quick caps) and refuses bad input before anything is created. */
export function resolveSettings(opts: MatrixSettingsInput): MatrixSettings {
  const quick = opts.quick;
  const kernels = opts.kernels.map(validateKernelName);
  const runs = quick ? Math.min(opts.runs, 2) : opts.runs;
  const durationS = quick ? Math.min(opts.durationS, 2) : opts.durationS;
  const hook = opts.hook ?? 'both';
  const approaches = selectApproaches(hook, opts.approaches);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new LabError('BAD_INPUT', `--runs must be a positive integer (got ${opts.runs})`, { remedy: 'Pass e.g. --runs 50.' });
  }
  if (!(durationS >= 1) || !Number.isFinite(durationS)) {
    throw new LabError('BAD_INPUT', `--duration must be at least 1 second (got ${opts.durationS})`, { remedy: 'Pass e.g. --duration 10.' });
  }
  if (kernels.length === 0 || approaches.length === 0) {
    throw new LabError('BAD_INPUT', 'the matrix needs at least one kernel and one approach', {
      remedy: 'Pass --kernels host and --approaches none,fused for example.',
    });
  }
  const runId = opts.runId ?? newRunId();
  if (!/^[A-Za-z0-9._-]+$/.test(runId)) {
    throw new LabError('BAD_INPUT', `run id "${runId}" may only contain letters, digits, ".", "_" and "-"`, {
      remedy: 'Pick a run id usable as a directory name.',
    });
  }
  return {
    kernels,
    hook,
    approaches,
    runs,
    durationS,
    quick,
    runId,
    runDir: resolve(opts.outDir ?? join(REPO_ROOT, 'results'), runId),
    progress: opts.progress ?? silent,
    signal: opts.signal,
    prefix: opts.prefix ?? 'xlab',
    warmup: opts.warmup ?? true,
    probeOverheadPairs: opts.probeOverheadPairs ?? (quick ? 1 : 5),
    statsOverheadPairs: opts.statsOverheadPairs ?? (quick ? 1 : 5),
    statsMode: opts.statsMode ?? 'auto',
    clock: opts.clock ?? 'wall',
  };
}

/** What the plan needs to know of the ledger: which cells are closed and how many runs a cell has. */
export interface PlannedFrom {
  hasCell(kernel: string, approach: ApproachName): boolean;
  runsDone(kernel: string, approach: ApproachName): number;
}

/** Measured runs still to do: every run of every cell without a cell record, minus those recorded. */
export function plannedRuns(s: Pick<MatrixSettings, 'kernels' | 'approaches' | 'runs'>, ledger: PlannedFrom): number {
  let n = 0;
  for (const k of s.kernels) {
    for (const a of s.approaches) if (!ledger.hasCell(k, a)) n += s.runs - ledger.runsDone(k, a);
  }
  return n;
}

/** The matrix phase's progress: `done` of a total fixed at the start (see the file header). */
export class StepPlan {
  private stepsDone = 0;
  private stepsTotal: number;

  constructor(
    private readonly progress: ProgressSink,
    total: number,
    private readonly id = 'matrix',
  ) {
    this.stepsTotal = total;
  }

  get total(): number {
    return this.stepsTotal;
  }

  begin(label: string): void {
    this.progress({ kind: 'phase-start', id: this.id, label, total: this.stepsTotal });
  }

  /** One measured run recorded. */
  step(note: string): void {
    this.stepsDone++;
    this.progress({ kind: 'phase-progress', id: this.id, done: this.stepsDone, total: this.stepsTotal, note });
  }

  /** What is running now, outside the counted runs (warm-up, overhead pairs): no step. */
  note(note: string): void {
    this.progress({ kind: 'phase-progress', id: this.id, done: this.stepsDone, total: this.stepsTotal, note });
  }

  /** Removes `n` planned steps (a cell that will not run) so the ETA stays honest. */
  unplan(n: number): void {
    this.stepsTotal = Math.max(this.stepsDone, this.stepsTotal - n);
    this.progress({ kind: 'phase-progress', id: this.id, done: this.stepsDone, total: this.stepsTotal });
  }

  end(ok: boolean): void {
    this.progress({ kind: 'phase-end', id: this.id, ok, message: ok ? undefined : 'matrix stopped' });
  }
}
