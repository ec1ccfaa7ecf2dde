/**
 * `npm run matrix` and `npm run kernel -- <version>` (commander). The only printing in lab/bench:
 * progress goes through lab/ui, results are summarised at the end.
 */
import { Command, InvalidArgumentError } from 'commander';
import { APPROACH_NAMES, type ApproachName } from '../approaches/approach.ts';
import { LabError } from '../errors.ts';
import { KERNEL_VERSIONS } from '../kernels/types.ts';
import { interruptible, positiveInt, printError } from '../ui/cli.ts';
import { consoleSink } from '../ui/render.ts';
import { runMatrix, validateKernelName, type MatrixResult } from '../bench/matrix.ts';
import type { KernelSession } from '../bench/kernel-session.ts';

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

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1) throw new InvalidArgumentError(`expected a number of seconds >= 1, got "${value}"`);
  return n;
}

interface CommonOptions {
  approaches?: ApproachName[];
  runs?: number;
  duration?: number;
  quick?: boolean;
  runId?: string;
  out?: string;
  plain?: boolean;
  prefix: string;
  micro: boolean;
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
    .option('--approaches <list>', `comma-separated approaches (default: all: ${APPROACH_NAMES.join(',')})`, parseApproaches)
    .option('--runs <n>', `measured iperf3 runs per cell (default ${DEFAULT_RUNS}; 2 with --quick)`, positiveInt)
    .option('--duration <s>', `seconds per iperf3 run (default ${DEFAULT_DURATION_S}; 2 with --quick)`, positiveNumber)
    .option('--quick', 'a shakedown, not a measurement: 2 runs of 2 s per cell, 1 s warm-up, quick microbenchmarks (about 5 minutes per kernel under TCG)')
    .option('--run-id <id>', 'results/<run-id>; an existing id is resumed (finished cells and runs are skipped)')
    .option('--out <dir>', 'parent directory of the run directory (default results/)')
    .option('--prefix <name>', 'name prefix for namespaces, veths and bpffs pins', 'xlab')
    .option('--no-micro', 'skip the BPF_PROG_TEST_RUN microbenchmarks run on each kernel after its iperf3 cells')
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
      approaches: o.approaches ?? [...APPROACH_NAMES],
      runs: o.runs ?? (o.quick ? 2 : DEFAULT_RUNS),
      durationS: o.duration ?? (o.quick ? 2 : DEFAULT_DURATION_S),
      quick: o.quick ?? false,
      runId: o.runId,
      outDir: o.out,
      progress: sink,
      signal: intr.signal,
      prefix: o.prefix,
      micro: o.micro,
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
        'every kernel x every approach: iperf3 runs through a veth pair with veth_poll probes, then the BPF_PROG_TEST_RUN microbenchmarks on each kernel; raw results in results/<run-id>/, report at the end. Kernels this machine cannot obtain are recorded as skipped with the reason.',
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
