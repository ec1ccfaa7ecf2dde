#!/usr/bin/env -S npx tsx
/**
 * The lab's single entry point; `npm run <matrix|kernel|kernels|chain|report|bench|build>` land here.
 * Each command lives with the module it drives; this file only assembles them and turns errors
 * into one clear message (code, what happened, how to fix it) and a non-zero exit.
 */
import { Command } from 'commander';
import { matrixCommand, kernelCommand, parseApproaches } from './commands/matrix.ts';
import { chainCommand } from './commands/chain.ts';
import { benchPatch } from './commands/bench-patch.ts';
import { LabError } from './errors.ts';
import { listKernels } from './commands/kernels.ts';
import { benchChainCommand } from './commands/bench-chain.ts';
import { coverageBenchCommand } from './commands/bench-coverage.ts';
import { buildPrograms } from './programs/build.ts';
import { reportCommand } from './commands/report.ts';
import { interruptible, positiveInt, printError } from './ui/cli.ts';
import { benchDeterministic, formatRepro } from './commands/bench-deterministic.ts';
import type { ApproachName } from './approaches/approach.ts';
import { consoleSink } from './ui/render.ts';
import { benchBoot } from './commands/bench-boot.ts';

function buildCommand(): Command {
  return new Command('build')
    .description('compile programs/*.c into build/bpf/*.o (only what changed)')
    .option('--force', 'rebuild everything')
    .action(async (o: { force?: boolean }) => {
      const built = await buildPrograms({ force: o.force ?? false });
      for (const [name, path] of Object.entries(built)) process.stdout.write(`${name.padEnd(24)} ${path}\n`);
    });
}

function kernelsCommand(): Command {
  return new Command('kernels')
    .description('list the kernel catalog and, for each version, which provider can supply it on this machine')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const rows = await listKernels();
      if (o.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      for (const r of rows) {
        const usable = r.providers.filter((p) => p.available).map((p) => p.name);
        const state = r.cached ? `cached (${r.release ?? '?'})` : usable.length > 0 ? `obtainable via ${usable.join(', ')}` : 'NOT obtainable here';
        process.stdout.write(`${r.version.padEnd(6)} ${state}\n`);
        for (const p of r.providers) {
          process.stdout.write(`         ${p.available ? '+' : '-'} ${p.name}${p.reason ? `: ${p.reason}` : ''}\n`);
        }
      }
    });
}

function benchCommand(): Command {
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
    .option('--runs <n>', 'iperf3 runs per cell', positiveInt, 2)
    .option('--duration <s>', 'seconds per iperf3 run', positiveInt, 2)
    .action(async (versions: string[], o: { approaches: ApproachName[]; runs: number; duration: number }) => {
      const sink = consoleSink();
      const intr = interruptible(sink, 'stopping after the run in flight');
      try {
        const rows = await benchDeterministic({ kernels: versions, approaches: o.approaches, runs: o.runs, durationS: o.duration, progress: sink, signal: intr.signal });
        sink.stop();
        for (const l of formatRepro(rows)) process.stdout.write(`${l}\n`);
      } finally {
        intr.release();
        sink.stop();
      }
    });
  bench.addCommand(benchChainCommand());
  bench.addCommand(coverageBenchCommand());
  return bench;
}

const program = new Command('xdp-chain-lab')
  .description('What does it cost, on each Linux kernel, to chain several independent XDP programs?')
  .showHelpAfterError()
  .addCommand(matrixCommand())
  .addCommand(kernelCommand())
  .addCommand(kernelsCommand())
  .addCommand(chainCommand())
  .addCommand(reportCommand())
  .addCommand(benchCommand())
  .addCommand(buildCommand());

program.parseAsync(process.argv).catch(printError);
