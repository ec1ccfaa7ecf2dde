/**
 * `npm run bench -- <patch|boot|deterministic|chain|coverage|latency|native>`: the benchmarks. Timings are reported,
 * never asserted; ratios are taken within one run.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import type { ApproachName } from '../results/record.ts';
import { LabError } from '../errors.ts';
import { buildPrograms } from '../programs/build.ts';
import { interruptible, positiveInt } from '../ui/cli.ts';
import { consoleSink } from '../ui/render.ts';
import { benchBoot } from './bench-boot.ts';
import { benchChainCommand } from './bench-chain.ts';
import { benchLatencyCommand } from './bench-latency.ts';
import { benchNativeCommand } from './bench-native.ts';
import { coverageBenchCommand } from './bench-coverage.ts';
import { benchDeterministic, formatRepro } from './bench-deterministic.ts';
import { benchPatch } from './bench-patch.ts';
import { parseApproaches } from './matrix.ts';

export function benchCommand(): Command {
  const bench = new Command('bench').description('benchmarks (timings are reported, never asserted)');
  bench
    .command('patch')
    .description('time to patch each BPF object (both modes)')
    .argument('[objects...]', 'objects to patch (default: build/bpf/{filter,metrics,logger}.o)')
    .action(async (objects: string[]) => {
      if (objects.length === 0) {
        const built = await buildPrograms();
        objects = ['filter', 'metrics', 'logger'].map((n) => {
          const p = built[n];
          if (!p) throw new LabError('MISSING_FILE', `build produced no ${n}.o`);
          return p;
        });
      }
      const rows = await benchPatch(objects);
      for (const r of rows) process.stdout.write(`${r.file.padEnd(40)} ${r.mode.padEnd(8)} ${r.ms.toFixed(2)} ms\n`);
      // Ratios within this one run: comparable across machines where absolute times are not.
      for (const file of new Set(rows.map((r) => r.file))) {
        const sub = rows.find((r) => r.file === file && r.mode === 'subprog');
        const inl = rows.find((r) => r.file === file && r.mode === 'inline');
        if (sub && inl && sub.ms > 0) process.stdout.write(`${file.padEnd(40)} inline/subprog = ${(inl.ms / sub.ms).toFixed(2)}\n`);
      }
    });
  bench
    .command('boot')
    .description('seconds from QEMU start to SSH ready, per kernel and accelerator')
    .argument('[versions...]', 'kernel versions', ['6.1', '5.10'])
    .option('--runs <n>', 'boots per kernel', '3')
    .action(async (versions: string[], o: { runs: string }) => {
      const sink = consoleSink();
      const rows = await benchBoot(versions, { runs: Number(o.runs), progress: sink });
      sink.stop();
      for (const r of rows) {
        const took = r.medianSeconds === null ? `failed: ${r.error ?? '?'}` : `median ${r.medianSeconds.toFixed(1)} s (min ${r.minSeconds?.toFixed(1)} s)`;
        process.stdout.write(`${r.version.padEnd(6)} ${(r.accelerator ?? '-').padEnd(4)} ${took}${r.targetSeconds !== null ? `, target ≤ ${r.targetSeconds} s: ${r.metTarget ? 'met' : 'missed'}` : ''}\n`);
      }
    });
  bench
    .command('deterministic')
    .description('reproducibility of instruction-timed guests: the same quick cells twice per kernel, each in a fresh boot under TCG icount; ns per packet of both runs and their difference')
    .argument('[versions...]', 'guest kernels', ['6.1', '5.10', '6.12'])
    .option('--approaches <list>', 'comma-separated approaches', parseApproaches, ['fused', 'manual', 'patched'] as ApproachName[])
    .option('--runs <n>', 'iperf3 runs per cell (more than 2, or --duration over 2, runs the cells outside quick mode, with a warm-up as long as a run)', positiveInt, 2)
    .option('--duration <s>', 'seconds per iperf3 run', positiveInt, 2)
    .option('--keep <dir>', 'keep both repeats\' raw results under this directory (runs repeat-1 and repeat-2); default: a temporary directory, removed')
    .action(async (versions: string[], o: { approaches: ApproachName[]; runs: number; duration: number; keep?: string }) => {
      const sink = consoleSink();
      const intr = interruptible(sink, 'stopping after the run in flight');
      try {
        const rows = await benchDeterministic({ kernels: versions, approaches: o.approaches, runs: o.runs, durationS: o.duration, progress: sink, signal: intr.signal, ...(o.keep ? { keepDir: resolve(o.keep) } : {}) });
        sink.stop();
        for (const l of formatRepro(rows)) process.stdout.write(`${l}\n`);
      } finally {
        intr.release();
        sink.stop();
      }
    });
  bench.addCommand(benchChainCommand());
  bench.addCommand(coverageBenchCommand());
  bench.addCommand(benchLatencyCommand());
  bench.addCommand(benchNativeCommand());
  return bench;
}
