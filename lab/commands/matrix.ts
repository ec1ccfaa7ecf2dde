/**
 * `npm run matrix` and `npm run kernel -- <version>` (commander), and runMatrix, what they run: the
 * bench's matrix, on each kernel while it is up the microbenchmarks, then the report. The bench
 * knows neither: they are composed here. The only printing of a matrix run: progress goes
 * through lab/ui, results are summarised at the end.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { APPROACH_NAMES, hookOfApproach, type ApproachName } from '../results/record.ts';
import { errorMessage, isLabError, LabError } from '../errors.ts';
import { KERNEL_VERSIONS } from '../kernels/types.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { interruptible, positiveInt, printError } from '../ui/cli.ts';
import { consoleSink } from '../ui/render.ts';
import { runBenchMatrix, type KernelStage, type MatrixOptions as BenchMatrixOptions, type MatrixResult as BenchMatrixResult } from '../bench/matrix.ts';
import { HOOK_CHOICES, validateKernelName, type HookChoice } from '../bench/plan.ts';
import type { KernelSession } from '../bench/kernel-session.ts';
import { rttStage } from '../bench/rtt-stage.ts';
import { REPRESENTATIVE_CASE } from '../microbench/approaches.ts';
import { runMicrobenchDetailed } from '../microbench/index.ts';
import { SCALING_VARIANTS } from '../microbench/scaling.ts';
import { measureNativeContained } from '../native/measure.ts';
import { MAX_NATIVE_DEPTH } from '../native/run.ts';
import { appendRecord } from '../results/jsonl.ts';
import { formatMicrobench } from '../microbench/table.ts';
import { renderReport } from '../report/index.ts';

export interface MatrixOptions extends Omit<BenchMatrixOptions, 'testRunCase' | 'perKernel'> {
  /** Render the report at the end (default true). */
  renderReport?: boolean;
  /**
   * Also run the BPF_PROG_TEST_RUN microbenchmarks (lab/microbench) on each kernel, after its
   * iperf3 cells; quick settings with `quick` (default false: callers opt in, the CLI does).
   */
  micro?: boolean;
  /**
   * Also measure round trips (pings across the veth pair) through each approach on each kernel,
   * before the microbenchmarks (lab/bench/rtt-stage.ts; default false: callers opt in, the CLI does).
   */
  latency?: boolean;
}

export interface MatrixResult extends BenchMatrixResult {
  /** Path of the rendered report, when it ran. */
  report: string | null;
}

/**
 * The microbenchmarks on each kernel, once per run id. Their records are appended together at
 * the end, so a kill part way leaves none and a resume measures them again. A failure is a
 * warning, not the end of the matrix: the iperf3 cells are already recorded.
 */
function microbenchStage(): KernelStage {
  const done = new Set<string>();
  return {
    pending: (kernel, recorded) => !done.has(kernel) && !recorded.has('micro') && !recorded.has('latency'),
    async run(s, ctx) {
      ctx.checkAbort();
      const tc = ctx.approaches.some((a) => hookOfApproach(a) === 'tc');
      ctx.emit(`${s.kernel}: microbenchmarks (BPF_PROG_TEST_RUN${tc ? ', and the TC chains the kernel walks under live traffic' : ''}${ctx.quick ? ', quick' : ''})`);
      try {
        const common = { runId: ctx.runId, kernel: s.kernel, quick: ctx.quick, approaches: ctx.approaches, prefix: `${ctx.prefix}m`, progress: ctx.progress, signal: ctx.signal };
        const r = await runMicrobenchDetailed(s.target, {
          ...common,
          // The interpreter comes after the native module: it is the kernel's least exercised path
          // (Debian's 6.12 oopses in bpf_test_run there and takes the guest, and native, with it).
          parts: { interpreter: false },
          // The TC chains under live traffic: iperf3 on the CPUs the kernel's cells used.
          liveTc: { cpus: { server: s.testbed.serverCpu, client: s.testbed.clientCpu } },
        });
        // The native baseline beside them: same packet, same repeat; appended with them, so a
        // resume measures both again or neither.
        ctx.checkAbort();
        // Its chain of nested calls at the lengths the tail-call chain was measured at.
        const depths = [...(r.scaling.find((x) => x.variant === SCALING_VARIANTS.manualConstant.variant)?.medians.keys() ?? [])].filter((d) => d <= MAX_NATIVE_DEPTH);
        const native = await measureNativeContained(s.target, s.image ?? null, { runId: ctx.runId, kernel: s.kernel, caseName: REPRESENTATIVE_CASE, repeat: r.repeat, repetitions: r.repetitions, insertCycles: ctx.quick ? 2 : 5, depths });
        if (native.record.reason) ctx.emit(`${s.kernel}: native baseline not measured: ${native.record.reason}`);
        ctx.checkAbort();
        const interp = await runMicrobenchDetailed(s.target, { ...common, parts: { approaches: false, scaling: false, latency: false, loadTime: false, interpreter: true } });
        r.records.push(...interp.records);
        r.interpreted.push(...interp.interpreted);
        r.notes.push(...interp.notes);
        for (const rec of [...r.records, native.record, ...native.chain]) await appendRecord(ctx.rawFile, rec);
        done.add(s.kernel);
        const table = join(ctx.runDir, 'micro', `${s.kernel}.txt`);
        await mkdir(join(ctx.runDir, 'micro'), { recursive: true });
        await writeFile(table, `${formatMicrobench(r)}\n`);
        ctx.emit(`${s.kernel}: ${r.records.length} microbenchmark record(s); tables in ${table}`);
      } catch (e) {
        if (isLabError(e, 'INTERRUPTED')) throw e;
        ctx.warn(`${s.kernel}: microbenchmarks failed: ${errorMessage(e)}`);
      }
    },
  };
}

/** The report of the run directory; a failure is a warning of the run, not its end. */
async function renderRunReport(r: BenchMatrixResult, progress: ProgressSink): Promise<string | null> {
  try {
    const out = await renderReport(r.runDir, { progress });
    const path = join(out.reportDir, 'index.html');
    progress({ kind: 'log', level: 'info', message: `report: ${path}` });
    return path;
  } catch (e) {
    const msg = `report not rendered: ${errorMessage(e)}`;
    r.warnings.push(msg);
    progress({ kind: 'log', level: 'warn', message: msg });
    return null;
  }
}

/** Runs (or resumes) the matrix, the microbenchmarks with it, then the report. See MatrixOptions. */
export async function runMatrix(opts: MatrixOptions): Promise<MatrixResult> {
  const { micro = false, latency = false, renderReport: render = true, ...bench } = opts;
  const r = await runBenchMatrix({
    ...bench,
    // The statistics' test-run overhead uses the microbenchmarks' packet, so the two compare.
    testRunCase: REPRESENTATIVE_CASE,
    perKernel: [...(latency ? [rttStage()] : []), ...(micro ? [microbenchStage()] : [])],
  });
  const report = render ? await renderRunReport(r, opts.progress ?? silent) : null;
  return { ...r, report };
}

export const DEFAULT_RUNS = 50;
export const DEFAULT_DURATION_S = 10;
/** The matrix's kernels when none are given: the running kernel, then the thesis's LTS set and today's. */
export const DEFAULT_KERNELS: readonly string[] = ['host', ...KERNEL_VERSIONS];

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function parseKernels(value: string): string[] {
  try {
    return list(value).map(validateKernelName);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof LabError ? `${e.message}. ${e.remedy ?? ''}` : String(e));
  }
}

export function parseApproaches(value: string): ApproachName[] {
  const names = list(value);
  for (const n of names) {
    if (!(APPROACH_NAMES as readonly string[]).includes(n)) {
      throw new InvalidArgumentError(`unknown approach "${n}" (one of: ${APPROACH_NAMES.join(', ')})`);
    }
  }
  return names as ApproachName[];
}

export function parseHook(value: string): HookChoice {
  if (!(HOOK_CHOICES as readonly string[]).includes(value)) throw new InvalidArgumentError(`unknown hook "${value}" (one of: ${HOOK_CHOICES.join(', ')})`);
  return value as HookChoice;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1) throw new InvalidArgumentError(`expected a number of seconds >= 1, got "${value}"`);
  return n;
}

interface CommonOptions {
  approaches?: ApproachName[];
  hook: HookChoice;
  runs?: number;
  duration?: number;
  quick?: boolean;
  runId?: string;
  out?: string;
  plain?: boolean;
  prefix: string;
  micro: boolean;
  latency: boolean;
  deterministic?: boolean;
  wallClock?: boolean;
}

/** --deterministic / --wall-clock, else auto: instruction-timed exactly where a guest is emulated. */
function clockOption(o: CommonOptions): 'wall' | 'icount' | 'auto' {
  if (o.deterministic && o.wallClock) {
    throw new LabError('BAD_INPUT', '--deterministic and --wall-clock contradict each other', { remedy: 'Give one, or neither (then guests under TCG are instruction-timed and guests under KVM wall-clock).' });
  }
  return o.deterministic ? 'icount' : o.wallClock ? 'wall' : 'auto';
}

function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--hook <hook>', 'xdp (the receiving veth\'s XDP hook), tc (its TC ingress) or both; selects the approaches when --approaches is not given, and every approach given must be of it. A kernel that cannot run an approach records it as unsupported with the reason', parseHook, 'both')
    .option('--approaches <list>', `comma-separated approaches (default: every approach of --hook: ${APPROACH_NAMES.join(',')})`, parseApproaches)
    .option('--runs <n>', `measured iperf3 runs per cell (default ${DEFAULT_RUNS}; 2 with --quick)`, positiveInt)
    .option('--duration <s>', `seconds per iperf3 run (default ${DEFAULT_DURATION_S}; 2 with --quick)`, positiveNumber)
    .option('--quick', 'a shakedown, not a measurement: 2 runs of 2 s per cell, 1 s warm-up, 200 pings per approach, quick microbenchmarks (with both hooks about 6 minutes on the host and 30 to 40 per kernel under TCG)')
    .option('--run-id <id>', 'results/<run-id>; an existing id is resumed (finished cells and runs are skipped)')
    .option('--out <dir>', 'parent directory of the run directory (default results/)')
    .option('--prefix <name>', 'name prefix for namespaces, veths and bpffs pins', 'xlab')
    .option('--no-latency', 'skip the round trips (pings across the veth pair, p50/p99/p99.9) through each approach on each kernel after its iperf3 cells')
    .option('--no-micro', 'skip the BPF_PROG_TEST_RUN microbenchmarks run on each kernel after its iperf3 cells and round trips')
    .option('--deterministic', 'every guest under QEMU\'s instruction counter (TCG icount, one vCPU): in-guest timings reproducible whatever the host does, instruction-timed, not wall-clock performance; boots take about twice as long. Default: so for guests under TCG, wall-clock under KVM')
    .option('--wall-clock', 'guests under TCG on the wall clock instead (three vCPUs; timings move with the host\'s load and measure the emulator)')
    .option('--plain', 'plain progress lines even on a terminal');
}

function summary(r: MatrixResult): string {
  const lines = [`results: ${r.rawFile} (${r.appended.runs} run(s), ${r.appended.cells} cell(s) recorded now)`];
  for (const c of r.cells) {
    lines.push(`  ${c.kernel.padEnd(6)} ${c.approach.padEnd(10)} ${c.status.padEnd(11)} ${c.runs} run(s)${c.reason ? `  ${c.reason.split('\n')[0]}` : ''}`);
  }
  for (const w of r.warnings) lines.push(`  note: ${w}`);
  if (r.report) lines.push(`report: ${r.report}`);
  return lines.join('\n');
}

async function matrixAction(kernels: string[], o: CommonOptions, session?: KernelSession): Promise<void> {
  const sink = consoleSink({ plain: o.plain ?? false });
  // Once: finish the run in flight, record it, stop (resumable).
  const intr = interruptible(sink, 'finishing the run in flight, then stopping');
  try {
    const result = await runMatrix({
      kernels,
      hook: o.hook,
      approaches: o.approaches,
      runs: o.runs ?? (o.quick ? 2 : DEFAULT_RUNS),
      durationS: o.duration ?? (o.quick ? 2 : DEFAULT_DURATION_S),
      quick: o.quick ?? false,
      runId: o.runId,
      outDir: o.out,
      progress: sink,
      signal: intr.signal,
      prefix: o.prefix,
      micro: o.micro,
      latency: o.latency,
      clock: clockOption(o),
      openKernel: session ? async () => session : undefined,
    });
    sink.stop();
    process.stdout.write(`${summary(result)}\n`);
  } catch (e) {
    sink.stop();
    await session?.dispose().catch(() => undefined);
    printError(e);
  } finally {
    intr.release();
  }
}

export function matrixCommand(): Command {
  return addCommonOptions(
    new Command('matrix')
      .description(
        'every kernel x every approach: iperf3 runs through a veth pair with veth_poll probes and BPF run-time statistics, then round trips (pings) through each approach and the BPF_PROG_TEST_RUN microbenchmarks on each kernel; raw results in results/<run-id>/, report at the end. Kernels this machine cannot obtain are recorded as skipped with the reason.',
      )
      .option('--kernels <list>', `comma-separated kernels (default: ${DEFAULT_KERNELS.join(',')})`, parseKernels),
  ).action(async (o: CommonOptions & { kernels?: string[] }) => {
    await matrixAction(o.kernels ?? [...DEFAULT_KERNELS], o);
  });
}

export function kernelCommand(): Command {
  return addCommonOptions(
    new Command('kernel')
      .description('boot one kernel (or use the running one: "host"), print its uname and BPF features, then run the matrix there')
      .argument('<version>', `host or one of ${KERNEL_VERSIONS.join(', ')}`)
      .option('--no-matrix', 'only boot and print uname and features')
      .option('--kernel-image <path>', 'boot this bzImage (or a directory with boot/vmlinuz-* and lib/modules/<release>) instead of the providers\' image')
      .option('--kernel-source <path>', 'build this kernel source tree or tarball (.tar.gz, .tar.xz) with the lab config, cache it, and boot it (same as XCL_KERNEL_SRC_<ver>)'),
  ).action(async (version: string, o: CommonOptions & { matrix: boolean; kernelImage?: string; kernelSource?: string }) => {
    const sink = consoleSink({ plain: o.plain ?? false });
    let opened: KernelSession | undefined;
    try {
      const kernel = validateKernelName(version);
      const { openKernelSession } = await import('../bench/open-session.ts');
      if (o.kernelImage && kernel === 'host') {
        throw new LabError('BAD_INPUT', '--kernel-image boots a VM; "host" is the running kernel', { remedy: 'Name the version the image is, e.g. `npm run kernel -- 5.4 --kernel-image ./bzImage`.' });
      }
      if (o.kernelSource) {
        if (kernel === 'host') throw new LabError('BAD_INPUT', '--kernel-source builds a kernel to boot in a VM; "host" is the running kernel', { remedy: 'Name the version the source is, e.g. `npm run kernel -- 4.19 --kernel-source ./linux-4.19.108`.' });
        // Through the provider's environment variable, so every resolver in this process (the session's too) builds or reuses this source.
        const { sourceEnvName } = await import('../kernels/providers/source.ts');
        process.env[sourceEnvName(kernel)] = o.kernelSource;
      }
      const session = await openKernelSession(kernel, { prefix: o.prefix, progress: sink, localImage: o.kernelImage, clock: clockOption(o) });
      opened = session;
      const uname = await session.target.run(['uname', '-a']);
      sink.stop();
      process.stdout.write(`${session.target.name} (${session.target.accelerator}): ${uname.stdout.trim()}\n`);
      const { probeFeatures, formatFeatures } = await import('../features.ts');
      process.stdout.write(`${formatFeatures(await probeFeatures(session.target, { prefix: o.prefix }))}\n`);
    } catch (e) {
      sink.stop();
      await opened?.dispose().catch(() => undefined);
      printError(e);
    }
    if (!opened) return;
    if (!o.matrix) {
      await opened.dispose();
      return;
    }
    await matrixAction([version], o, opened);
  });
}
