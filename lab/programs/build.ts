/**
 * Builds programs/*.c into build/bpf/*.o with clang (-O2 -g -target bpf: BTF on). Variants of one
 * source (the manual chain's stages, which differ only by -DMANUAL_NEXT) are listed in VARIANTS;
 * every other programs/*.c is built plain under its own name, so new programs need no registration.
 * An object is rebuilt only when its content hash (source, every header in programs/, flags, clang
 * version) changes; the hash is kept next to the object.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';

export const PROGRAMS_DIR = join(REPO_ROOT, 'programs');
export const DEFAULT_OUT_DIR = join(REPO_ROOT, 'build', 'bpf');

export interface Variant {
  /** Object name: build/bpf/<name>.o. No '.' so it can double as a bpffs pin name. */
  name: string;
  /** Source file in programs/. */
  source: string;
  defines?: Record<string, string | number>;
}

/**
 * Objects built from a source with extra defines. The manual chain is filter → metrics → logger
 * through PROG_ARRAY chain_jmp slots 1 and 2; logger is last and runs as the plain logger.o.
 */
export const VARIANTS: readonly Variant[] = [
  { name: 'filter_manual', source: 'filter.c', defines: { MANUAL_NEXT: 1 } },
  { name: 'metrics_manual', source: 'metrics.c', defines: { MANUAL_NEXT: 2 } },
];

export const BASE_CFLAGS: readonly string[] = ['-O2', '-g', '-target', 'bpf', '-Wall', '-Werror', '-Wno-unused-function'];

function archFlags(): string[] {
  const a = arch();
  const multiarch = a === 'x64' ? 'x86_64-linux-gnu' : a === 'arm64' ? 'aarch64-linux-gnu' : `${a}-linux-gnu`;
  const targetArch = a === 'x64' ? 'x86' : a === 'arm64' ? 'arm64' : a;
  const flags = [`-D__TARGET_ARCH_${targetArch}`];
  // <asm/types.h> lives in the multiarch include directory on Debian.
  if (existsSync(`/usr/include/${multiarch}`)) flags.push('-I', `/usr/include/${multiarch}`);
  return flags;
}

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
  argv: string[];
  hash: string;
  out: string;
}

let clangVersion: string | undefined;

async function clangIdentity(): Promise<string> {
  if (clangVersion !== undefined) return clangVersion;
  try {
    const r = await execa('clang', ['--version']);
    clangVersion = r.stdout;
    return clangVersion;
  } catch (e) {
    const missing = (e as { code?: string }).code === 'ENOENT';
    throw new LabError(missing ? 'MISSING_TOOL' : 'COMPILE', missing ? 'clang is not installed' : `clang --version failed: ${(e as Error).message}`, {
      remedy: 'Install clang and llvm (npm run setup).',
      cause: e,
    });
  }
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
  const headers = entries.filter((f) => f.endsWith('.h')).sort();
  const clang = await clangIdentity();
  const headerHash = createHash('sha256');
  for (const h of headers) headerHash.update(h).update('\0').update(await readFile(join(srcDir, h))).update('\0');
  const headerDigest = headerHash.digest('hex');

  const variants: Variant[] = sources.map((s) => ({ name: basename(s, '.c'), source: s }));
  for (const v of VARIANTS) if (sources.includes(v.source)) variants.push(v);

  const jobs: Job[] = [];
  for (const v of variants) {
    const defines = Object.entries(v.defines ?? {}).map(([k, val]) => `-D${k}=${val}`);
    const out = join(outDir, `${v.name}.o`);
    const argv = [...BASE_CFLAGS, ...archFlags(), '-I', srcDir, ...defines, '-c', join(srcDir, v.source), '-o', out];
    const h = createHash('sha256')
      .update(clang)
      .update('\0')
      .update(argv.join(' '))
      .update('\0')
      .update(await readFile(join(srcDir, v.source)))
      .update('\0')
      .update(headerDigest);
    jobs.push({ name: v.name, source: v.source, argv, hash: h.digest('hex'), out });
  }

  await mkdir(outDir, { recursive: true });
  const result: Record<string, string> = {};
  const errors: LabError[] = [];
  // Two at a time: the machine has 2 cores and clang is CPU-bound.
  const queue = [...jobs];
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      try {
        await compile(job, srcDir, opts.force ?? false);
        result[job.name] = job.out;
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

async function compile(job: Job, srcDir: string, force: boolean): Promise<void> {
  const stamp = `${job.out}.hash`;
  if (!force && existsSync(job.out) && existsSync(stamp) && (await readFile(stamp, 'utf8')).trim() === job.hash) return;
  // Compile to a temporary name and rename: an interrupted build never leaves a half object.
  const tmp = `${job.out}.tmp-${process.pid}`;
  const argv = job.argv.map((a) => (a === job.out ? tmp : a));
  const r = await execa('clang', argv, { reject: false, cwd: srcDir });
  if (r.exitCode !== 0) {
    await rm(tmp, { force: true });
    const text = String(r.stderr || r.stdout).trim().split('\n').slice(-30).join('\n');
    throw new LabError('COMPILE', `programs/${job.source} (${job.name}.o): clang failed:\n${text}`, {
      remedy: `Fix the error above in programs/${job.source}, then rebuild (npm run build:bpf).`,
      details: { argv: ['clang', ...argv], exitCode: r.exitCode },
    });
  }
  await rename(tmp, job.out);
  await writeFile(stamp, `${job.hash}\n`);
}
