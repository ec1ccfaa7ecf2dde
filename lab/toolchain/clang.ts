/**
 * The one driver of the C compilers the lab runs on its own machine (guests have none): clang for
 * BPF objects, and the host's cc for the userspace helpers through the same calls. It holds the
 * include rule clang needs for -target bpf, reads each compiler's version once, asks the compiler
 * which files a compile reads (its own -M answer, so the cache keys on exactly the headers a source
 * includes), and runs the compile through the build cache; a failed compile is a LabError carrying
 * the argv, the exit code and the compiler's stderr.
 */
import { existsSync } from 'node:fs';
import { arch } from 'node:os';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { LabError } from '../errors.ts';
import { buildCached, inputKey, type CachedBuild, type CacheLayout } from './cache.ts';

/** The flags of every BPF object: optimised (the verifier rejects unoptimised code) and BTF on. */
export const BPF_FLAGS: readonly string[] = ['-O2', '-g', '-target', 'bpf'];

function multiarch(): string {
  const a = arch();
  return a === 'x64' ? 'x86_64-linux-gnu' : a === 'arm64' ? 'aarch64-linux-gnu' : `${a}-linux-gnu`;
}

/** <asm/types.h> lives in Debian's multiarch include directory, which clang -target bpf does not search. */
export function bpfIncludeFlags(): string[] {
  const dir = `/usr/include/${multiarch()}`;
  return existsSync(dir) ? ['-I', dir] : [];
}

/** -D__TARGET_ARCH_<arch>: bpf_tracing.h's register macros (the kprobe programs) need the host's arch. */
export function bpfTargetArchFlag(): string {
  const a = arch();
  return `-D__TARGET_ARCH_${a === 'x64' ? 'x86' : a}`;
}

function installRemedy(compiler: string): string {
  return compiler === 'clang' ? 'Install clang and llvm (npm run setup).' : `Install a C compiler for \`${compiler}\` (gcc or clang; npm run setup).`;
}

const versions = new Map<string, Promise<string>>();

/** `<compiler> --version`, run once per compiler per process (a failure is retried next time). */
export function compilerVersion(compiler: string): Promise<string> {
  let v = versions.get(compiler);
  if (v === undefined) {
    v = execa(compiler, ['--version'], { reject: false }).then((r) => {
      if (r.exitCode === 0) return String(r.stdout).trim();
      const missing = (r as { code?: string }).code === 'ENOENT';
      throw new LabError(missing ? 'MISSING_TOOL' : 'COMPILE', missing ? `${compiler} is not installed` : `${compiler} --version failed: ${r.shortMessage ?? String(r.stderr)}`, {
        remedy: installRemedy(compiler),
        details: { argv: [compiler, '--version'], exitCode: r.exitCode },
      });
    });
    v.catch(() => versions.delete(compiler));
    versions.set(compiler, v);
  }
  return v;
}

export interface CompileJob {
  /** The command: 'clang' for BPF objects, the host's cc for helpers. */
  compiler: string;
  /** Every argument but the source, -c, the output and the libraries: they are part of the key. */
  flags: readonly string[];
  /** The source file (relative paths are taken from cwd). */
  source: string;
  /** An object (-c) or a linked executable. */
  output: 'object' | 'executable';
  /** Libraries placed after the source when linking ('-lbpf'). */
  libs?: readonly string[];
  cwd?: string;
  /** What is built, for messages: "programs/filter.c (filter.o)". */
  what: string;
  /** What to do when the source does not compile. */
  remedy: string;
}

/** Where the output goes in the build cache. */
export interface CompileOutput {
  dir: string;
  name: string;
  ext: string;
  layout: CacheLayout;
  force?: boolean;
}

/** The failure of one compiler run: the argv, exit code and full stderr in details, its tail in the message. */
function compileFailed(job: CompileJob, argv: readonly string[], r: { exitCode?: number; stderr?: unknown; stdout?: unknown; code?: string; shortMessage?: string }): LabError {
  if (r.exitCode === undefined) {
    const missing = r.code === 'ENOENT';
    return new LabError(missing ? 'MISSING_TOOL' : 'COMPILE', `${job.what}: cannot run ${job.compiler}: ${r.shortMessage ?? 'failed to start'}`, {
      remedy: installRemedy(job.compiler),
      details: { argv },
    });
  }
  const stderr = String(r.stderr ?? '');
  const text = (stderr || String(r.stdout ?? '')).trim().split('\n').slice(-30).join('\n');
  return new LabError('COMPILE', `${job.what}: ${job.compiler} failed (exit ${r.exitCode}):\n${text}`, {
    remedy: job.remedy,
    details: { argv, exitCode: r.exitCode, stderr },
  });
}

async function run(job: CompileJob, args: readonly string[]): Promise<string> {
  const r = await execa(job.compiler, args, { reject: false, cwd: job.cwd });
  if (r.exitCode !== 0) throw compileFailed(job, [job.compiler, ...args], r as typeof r & { code?: string });
  return String(r.stdout);
}

/**
 * The files of a make rule as `<compiler> -M` prints it ("x.o: a.c b.h \\\n c.h"), resolved from cwd.
 * Spaces inside a name are escaped with a backslash.
 */
export function parseDependencies(rule: string, cwd: string = process.cwd()): string[] {
  const body = rule.replace(/\\\r?\n/g, ' ');
  const colon = body.search(/:(\s|$)/);
  const list = colon < 0 ? body : body.slice(colon + 1);
  const files = list
    .split(/(?<!\\)\s+/)
    .map((f) => f.replace(/\\ /g, ' '))
    .filter((f) => f !== '');
  return [...new Set(files.map((f) => resolve(cwd, f)))];
}

/** Every file the compile of `job` reads: the source and each header it includes, as the compiler says. */
export async function dependencies(job: CompileJob): Promise<string[]> {
  return parseDependencies(await run(job, [...job.flags, '-M', job.source]), job.cwd);
}

/**
 * Compiles `job` into the build cache, or returns the cached output when nothing it depends on
 * (compiler and version, flags, source, included headers) has changed.
 */
export async function compile(job: CompileJob, out: CompileOutput): Promise<CachedBuild> {
  const version = await compilerVersion(job.compiler);
  const mode = job.output === 'object' ? ['-c'] : [];
  const libs = job.libs ?? [];
  const key = await inputKey({ compiler: job.compiler, version, flags: [...job.flags, ...mode, ...libs], files: await dependencies(job) });
  return buildCached({
    dir: out.dir,
    name: out.name,
    ext: out.ext,
    layout: out.layout,
    key,
    force: out.force,
    build: async (tmp) => {
      await run(job, [...job.flags, ...mode, job.source, '-o', tmp, ...libs]);
    },
  });
}
