/**
 * `npm run bench -- native [--kernel host|<version>]`: the native baseline next to the BPF
 * approaches on one kernel. The kernel is booted (a catalog version) or the host is used; the
 * microbench measures fused, manual and patched by BPF_PROG_TEST_RUN and their object load time,
 * then the native module (lab/native) runs the same representative packet the same number of times,
 * and its insertion time is timed. Prints ns per packet and each variant's ratio to native, and
 * insmod next to the BPF object loads; appends the records to results/<run-id>/raw.jsonl. A kernel
 * without module support or headers gets native "not measured" with the reason.
 */
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Command } from 'commander';
import { LabError } from '../errors.ts';
import { HostTarget, type Target } from '../target.ts';
import { newRunId, RawRecord, type LatencyRecord, type MicroRecord } from '../results/record.ts';
import { appendRecord } from '../results/jsonl.ts';
import { resolveKernel } from '../kernels/resolve.ts';
import type { KernelImage } from '../kernels/types.ts';
import { bootVm } from '../vm/boot.ts';
import { runMicrobenchDetailed } from '../microbench/index.ts';
import { REPRESENTATIVE_CASE } from '../microbench/approaches.ts';
import { measureNativeContained, nativeRatios } from '../native/measure.ts';
import { NATIVE_CHAIN_VARIANT, NATIVE_VARIANT } from '../results/variants.ts';
import { SCALING_VARIANTS } from '../microbench/scaling.ts';
import { nonNegativeInt, positiveInt, printError } from '../ui/cli.ts';
import { consoleSink } from '../ui/render.ts';

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** The terminal lines: ns per packet and ratio to native, then insertion against object load. */
export function formatNative(kernel: string, micro: readonly MicroRecord[], latency: readonly LatencyRecord[], native: MicroRecord): string[] {
  const lines = [`${kernel}: ${REPRESENTATIVE_CASE}, ns per packet (median), ratio to native`];
  if (native.nsPerPacket.length === 0) {
    lines.push(`  native: not measured: ${native.reason ?? 'no reason recorded'}`);
  } else {
    lines.push(`  ${NATIVE_VARIANT.padEnd(16)} ${median(native.nsPerPacket).toFixed(1).padStart(9)}      1.00`);
    for (const r of nativeRatios([...micro, native], kernel)) lines.push(`  ${r.variant.padEnd(16)} ${r.ns.toFixed(1).padStart(9)} ${r.ratio.toFixed(2).padStart(9)}`);
  }
  lines.push(`${kernel}: loading, ms (median)`);
  const insertMs = native.insertMs ?? [];
  if (insertMs.length > 0) lines.push(`  ${'native insmod'.padEnd(24)} ${median(insertMs).toFixed(2).padStart(9)}  (insmod's wall time, its exec included)`);
  for (const l of latency.filter((x) => x.operation === 'object-load' && x.ms.length > 0)) lines.push(`  ${`${l.approach} object load`.padEnd(24)} ${median(l.ms).toFixed(2).padStart(9)}`);
  return lines;
}

/** The depth line: N programs joined by constant tail calls against N nested native calls. */
export function formatDepth(micro: readonly MicroRecord[], depth: number): string[] {
  const at = (variant: string): number[] => micro.find((r) => r.variant === variant && r.chainLength === depth)?.nsPerPacket ?? [];
  const tail = at(SCALING_VARIANTS.manualConstant.variant);
  const native = micro.find((r) => r.variant === NATIVE_CHAIN_VARIANT && r.chainLength === depth);
  if (tail.length === 0) return [`depth ${depth}: tail-call chain not measured`];
  if (!native || native.nsPerPacket.length === 0) return [`depth ${depth}: ${median(tail).toFixed(1)} ns through ${depth} programs joined by tail calls; nested native calls not measured: ${native?.reason ?? 'no record'}`];
  const t = median(tail);
  const n = median(native.nsPerPacket);
  return [`depth ${depth} (ns per packet, median): ${depth} programs joined by constant tail calls ${t.toFixed(1)}, ${depth} nested native calls ${n.toFixed(1)}, ratio ${(t / n).toFixed(2)}`];
}

interface NativeCliOptions {
  depth: number;
  kernel: string;
  repeat?: number;
  repetitions?: number;
  cycles?: number;
  out?: string;
}

async function openTarget(kernel: string): Promise<{ target: Target; image: KernelImage | null }> {
  if (kernel === 'host') return { target: await HostTarget.create(join(tmpdir(), 'xdp-chain-lab', 'host')), image: null };
  const image = await resolveKernel(kernel, {});
  // The matrix's clock: instruction-timed under TCG, so the two give the same ns for the same work.
  return { target: await bootVm({ kernel: image, clock: 'auto', name: `xcl-native-${process.pid}` }), image };
}

export function benchNativeCommand(): Command {
  return new Command('native')
    .description('the trio as a kernel module (the native baseline) next to fused, manual and patched by BPF_PROG_TEST_RUN: ns per packet, ratios to native, insmod time next to BPF object load time')
    .option('--kernel <version>', '"host" or a catalog kernel booted in a VM', 'host')
    .option('--repeat <n>', 'packets per measurement (default 100000)', positiveInt)
    .option('--repetitions <n>', 'measurements per variant (default 3)', positiveInt)
    .option('--cycles <n>', 'insmod and BPF object-load cycles (default 2)', positiveInt)
    .option('--out <dir>', 'results directory; its name is the run id (default results/<UTC time>)')
    .option('--depth <n>', 'the seed study\'s depth experiment: a chain of n programs joined by constant tail calls against n nested native calls (0: not run)', nonNegativeInt, 32)
    .action(async (o: NativeCliOptions) => {
      const sink = consoleSink();
      try {
        if (process.getuid?.() !== 0) throw new LabError('NOT_ROOT', 'bench native: inserting a module and loading BPF programs need root', { remedy: 'Run it as root.' });
        const outDir = resolve(o.out ?? join('results', newRunId()));
        const runId = basename(outDir);
        await mkdir(outDir, { recursive: true });
        const rawFile = join(outDir, 'raw.jsonl');
        const repeat = o.repeat ?? 100_000;
        const repetitions = o.repetitions ?? 3;
        const cycles = o.cycles ?? 2;
        // The depth experiment: the constant tail-call chain and the nested native calls at 1 and n.
        const depths = o.depth > 0 ? [...new Set([1, o.depth])] : [];
        const { target, image } = await openTarget(o.kernel);
        try {
          const micro = await runMicrobenchDetailed(target, {
            runId,
            kernel: o.kernel,
            quick: true,
            repeat,
            repetitions,
            latencyCycles: cycles,
            prefix: 'xtn',
            // The scaling part only for the depth experiment's tail-call chain, at its lengths.
            parts: { approaches: true, scaling: depths.length > 0, latency: false, interpreter: false, loadTime: true },
            ...(depths.length > 0 ? { lengths: depths, dispatcherLengths: [1], patchModes: [], liveTc: false as const } : {}),
            progress: sink,
          });
          const native = await measureNativeContained(target, image, { runId, kernel: o.kernel, caseName: REPRESENTATIVE_CASE, repeat, repetitions, insertCycles: cycles, depths });
          const records = [...micro.records, native.record, ...native.chain];
          for (const r of records) await appendRecord(rawFile, r);
          sink.stop();
          const parsed = records.map((r) => RawRecord.parse(r));
          const microRecs = parsed.filter((r): r is MicroRecord => r.kind === 'micro');
          const latency = parsed.filter((r): r is LatencyRecord => r.kind === 'latency');
          for (const l of formatNative(o.kernel, microRecs, latency, native.record)) process.stdout.write(`${l}\n`);
          if (o.depth > 0) for (const l of formatDepth(microRecs, o.depth)) process.stdout.write(`${l}\n`);
          process.stdout.write(`results: ${rawFile} (${records.length} appended)\n`);
        } finally {
          await target[Symbol.asyncDispose]();
        }
      } catch (e) {
        sink.stop();
        printError(e);
      }
    });
}
