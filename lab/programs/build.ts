/**
 * Builds programs/*.c (the trio, the fused program, the veth_poll probe) into build/bpf/*.o with
 * clang through the toolchain (lab/toolchain: -O2 -g -target bpf, BTF on). Variants of one source
 * (the manual chain's stages, which differ only by -DMANUAL_NEXT; the TC hook's builds, which differ
 * only by -DXCL_HOOK_TC, programs/hook.h) are listed in VARIANTS; every programs/*.c is also built
 * plain (XDP) under its own name, so new programs need no registration. Objects keep
 * fixed names (other code finds build/bpf/<name>.o) and are rebuilt only when the toolchain's
 * content hash changes.
 */
import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';
import { BPF_FLAGS, bpfIncludeFlags, bpfTargetArchFlag, compile, type CompileJob } from '../toolchain/clang.ts';

export const PROGRAMS_DIR = join(REPO_ROOT, 'programs');
export const DEFAULT_OUT_DIR = join(REPO_ROOT, 'build', 'bpf');

export interface Variant {
  /** Object name: build/bpf/<name>.o. No '.' so it can double as a bpffs pin name. */
  name: string;
  /** Source file in programs/. */
  source: string;
  defines?: Record<string, string | number>;
}

const TC = { XCL_HOOK_TC: 1 } as const;

/**
 * Objects built from a source with extra defines. The manual chain is filter → metrics → logger
 * through PROG_ARRAY chain_jmp slots 1 and 2; logger is last and runs as the plain logger.o. The
 * TC hook has the same set under tc_ names, plus the continuing stages (-DXCL_TC_CONTINUE: a pass
 * is TC_ACT_UNSPEC, so the kernel runs the next cls_bpf filter or tcx program); chains the kernel
 * runs that way end with the plain tc_logger.
 */
export const VARIANTS: readonly Variant[] = [
  { name: 'filter_manual', source: 'filter.c', defines: { MANUAL_NEXT: 1 } },
  { name: 'metrics_manual', source: 'metrics.c', defines: { MANUAL_NEXT: 2 } },
  { name: 'tc_filter', source: 'filter.c', defines: { ...TC } },
  { name: 'tc_metrics', source: 'metrics.c', defines: { ...TC } },
  { name: 'tc_logger', source: 'logger.c', defines: { ...TC } },
  { name: 'tc_fused', source: 'fused.c', defines: { ...TC } },
  { name: 'tc_filter_manual', source: 'filter.c', defines: { ...TC, MANUAL_NEXT: 1 } },
  { name: 'tc_metrics_manual', source: 'metrics.c', defines: { ...TC, MANUAL_NEXT: 2 } },
  { name: 'tc_filter_next', source: 'filter.c', defines: { ...TC, XCL_TC_CONTINUE: 1 } },
  { name: 'tc_metrics_next', source: 'metrics.c', defines: { ...TC, XCL_TC_CONTINUE: 1 } },
];

export const BASE_CFLAGS: readonly string[] = [...BPF_FLAGS, '-Wall', '-Werror', '-Wno-unused-function'];

export interface BuildOptions {
  outDir?: string;
  /** Rebuild even when the hash matches. */
  force?: boolean;
  /** Source directory (tests point it at a scratch copy). */
  programsDir?: string;
}

interface Job {
  name: string;
  source: string;
  compile: CompileJob;
}

/** Compiles every program; returns object name → absolute path of the .o. */
export async function buildPrograms(opts: BuildOptions = {}): Promise<Record<string, string>> {
  const srcDir = resolve(opts.programsDir ?? PROGRAMS_DIR);
  const outDir = resolve(opts.outDir ?? DEFAULT_OUT_DIR);
  let entries: string[];
  try {
    entries = await readdir(srcDir);
  } catch (e) {
    throw new LabError('MISSING_FILE', `programs directory ${srcDir} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  const sources = entries.filter((f) => f.endsWith('.c')).sort();

  const variants: Variant[] = sources.map((s) => ({ name: basename(s, '.c'), source: s }));
  for (const v of VARIANTS) if (sources.includes(v.source)) variants.push(v);

  const jobs: Job[] = variants.map((v) => ({
    name: v.name,
    source: v.source,
    compile: {
      compiler: 'clang',
      flags: [...BASE_CFLAGS, bpfTargetArchFlag(), ...bpfIncludeFlags(), '-I', srcDir, ...Object.entries(v.defines ?? {}).map(([k, val]) => `-D${k}=${val}`)],
      source: join(srcDir, v.source),
      output: 'object',
      cwd: srcDir,
      what: `programs/${v.source} (${v.name}.o)`,
      remedy: `Fix the error above in programs/${v.source}, then rebuild (npm run build:bpf).`,
    },
  }));

  const result: Record<string, string> = {};
  const errors: LabError[] = [];
  // Two at a time: the machine has 2 cores and clang is CPU-bound.
  const queue = [...jobs];
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      try {
        const built = await compile(job.compile, { dir: outDir, name: job.name, ext: '.o', layout: 'stamp', force: opts.force ?? false });
        result[job.name] = built.path;
      } catch (e) {
        errors.push(e instanceof LabError ? e : new LabError('COMPILE', `${job.source}: ${(e as Error).message}`, { cause: e }));
      }
    }
  };
  await Promise.all([worker(), worker()]);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new LabError('COMPILE', errors.map((e) => e.message).join('\n\n'), { remedy: errors[0]?.remedy, details: { count: errors.length } });
  }
  return result;
}
