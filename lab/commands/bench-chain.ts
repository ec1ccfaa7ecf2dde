/**
 * `npm run bench -- chain [--quick] [--repeat N] [--out results/<run-id>]`: the BPF_PROG_TEST_RUN
 * microbenchmarks on the host's kernel. Prints the tables and appends the records to
 * results/<run-id>/raw.jsonl. The matrix runs the same bench in each guest through
 * runMicrobenchToFile (lab/microbench/index.ts).
 */
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Command } from 'commander';
import { newRunId } from '../results/record.ts';
import { LabError } from '../errors.ts';
import { HostTarget } from '../target.ts';
import { interruptible, positiveInt, printError } from '../ui/cli.ts';
import { consoleSink } from '../ui/render.ts';
import { runMicrobenchToFile } from '../microbench/index.ts';
import { countRecords, formatMicrobench } from '../microbench/table.ts';

interface ChainOptions {
  quick?: boolean;
  repeat?: number;
  repetitions?: number;
  maxLength?: number;
  out?: string;
  kernel: string;
  prefix: string;
  plain?: boolean;
  approaches: boolean;
  scaling: boolean;
  latency: boolean;
}

export function benchChainCommand(): Command {
  return new Command('chain')
    .description(
      'microbenchmarks with BPF_PROG_TEST_RUN on the host kernel: ns per packet of each approach, ns per packet vs chain length for constant- and indirect-index tail calls, the patched chain and the dispatcher, fitted cost per hop, load/replace latency, where load time goes (verifier, JIT), and each approach in the BPF interpreter where the kernel lets the JIT be switched off; XDP and TC approaches',
    )
    .option('--quick', 'repeat 1e5, 3 repetitions, lengths 1,2,4,8,16,33 (seconds instead of minutes)')
    .option('--repeat <n>', 'packets per BPF_PROG_TEST_RUN (default 1000000; quick 100000)', positiveInt)
    .option('--repetitions <n>', 'measurements per point (default 5; quick 3)', positiveInt)
    .option('--max-length <n>', 'longest chain measured (default 33)', positiveInt)
    .option('--out <dir>', 'results directory; its name is the run id (default results/<UTC time>)')
    .option('--kernel <label>', 'kernel label in the results', 'host')
    .option('--prefix <p>', 'name prefix of the pins, namespace and veth the bench creates', 'xt8')
    .option('--no-approaches', 'skip the per-approach trio measurement (with the JIT, and in the interpreter where the JIT can be switched off)')
    .option('--no-scaling', 'skip the chain-length scaling')
    .option('--no-latency', 'skip load/replace/detach latency and the load-time split (object load, verifier, bpf_check and JIT by ftrace)')
    .option('--plain', 'plain progress lines even on a terminal')
    .action(async (o: ChainOptions) => {
      const sink = consoleSink({ plain: o.plain ?? false });
      const intr = interruptible(sink, 'stopping after the measurement in flight and cleaning up');
      try {
        if (process.getuid?.() !== 0) {
          throw new LabError('NOT_ROOT', 'bench chain: loading BPF programs needs root', { remedy: 'Run it as root (sudo npm run bench -- chain).' });
        }
        const outDir = resolve(o.out ?? join('results', newRunId()));
        const runId = basename(outDir);
        await mkdir(outDir, { recursive: true });
        const rawFile = join(outDir, 'raw.jsonl');
        const target = await HostTarget.create(join(tmpdir(), 'xdp-chain-lab', 'host'));
        const result = await runMicrobenchToFile(target, rawFile, {
          runId,
          kernel: o.kernel,
          quick: o.quick ?? false,
          repeat: o.repeat,
          repetitions: o.repetitions,
          maxLength: o.maxLength,
          prefix: o.prefix,
          parts: { approaches: o.approaches, scaling: o.scaling, latency: o.latency },
          progress: sink,
          signal: intr.signal,
        });
        sink.stop();
        process.stdout.write(`${formatMicrobench(result)}\n\nresults: ${rawFile} (${countRecords(result.records)} appended)\n`);
      } catch (e) {
        sink.stop();
        printError(e);
      } finally {
        intr.release();
      }
    });
}
