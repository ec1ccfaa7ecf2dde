/**
 * Builds the microbenchmark's own trivial programs (programs/micro/*.c) into build/micro/ with
 * clang. Objects are named by a hash of what produced them (source, flags, clang version), so a
 * rebuild happens only when one of those changes and a stale object is never reused.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { arch } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';

export const MICRO_SOURCE_DIR = join(REPO_ROOT, 'programs', 'micro');
export const MICRO_BUILD_DIR = join(REPO_ROOT, 'build', 'micro');

/** The objects the bench uses, each one source compiled with its own defines. */
export const MICRO_OBJECTS = {
  /** 35 programs, tail call with an immediate index (direct jump). */
  chainConstant: { source: 'chain.c', defines: [] as string[] },
  /** 35 programs, constant index, the patched chain's end-of-chain verdict read where the chain ends. */
  chainEndLookup: { source: 'chain.c', defines: ['END_LOOKUP'] },
  /** 35 programs, tail call with the index read from a map (indirect jump). */
  chainIndirect: { source: 'chain.c', defines: ['INDIRECT'] },
  /** 35 programs, constant index, each counting its run: finds the longest chain. */
  chainCount: { source: 'chain.c', defines: ['COUNT'] },
  /** 35 programs, index from a map, each counting its run (tests only). */
  chainCountIndirect: { source: 'chain.c', defines: ['INDIRECT', 'COUNT'] },
  /** One program returning XDP_PASS: what the patched chain and the dispatcher chain. */
  pass: { source: 'pass.c', defines: [] as string[] },
  /** XDP_PASS and a run counter: the tests' proof that a patched chain of length L runs L programs. */
  count: { source: 'count.c', defines: [] as string[] },
} as const;
export type MicroObjectName = keyof typeof MICRO_OBJECTS;
export type MicroObjects = Record<MicroObjectName, string>;

/** <asm/types.h> lives in Debian's multiarch include directory, which clang -target bpf does not search. */
function includeFlags(): string[] {
  const multiarch = arch() === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  return existsSync(`/usr/include/${multiarch}`) ? ['-I', `/usr/include/${multiarch}`] : [];
}

let clangVersion: Promise<string> | null = null;

async function clangId(): Promise<string> {
  clangVersion ??= execa('clang', ['--version']).then(
    (r) => r.stdout.split('\n')[0] ?? '',
    (e: unknown) => {
      clangVersion = null;
      const missing = (e as { code?: string }).code === 'ENOENT';
      throw new LabError(missing ? 'MISSING_TOOL' : 'COMPILE', `clang --version: ${(e as Error).message}`, {
        remedy: 'Install clang (npm run setup).',
      });
    },
  );
  return clangVersion;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Compiles one micro object (or reuses the cached one) and returns its local path. */
export async function buildMicroObject(name: MicroObjectName, buildDir = MICRO_BUILD_DIR): Promise<string> {
  const spec = MICRO_OBJECTS[name];
  const src = join(MICRO_SOURCE_DIR, spec.source);
  let text: Buffer;
  try {
    text = await readFile(src);
  } catch (e) {
    throw new LabError('MISSING_FILE', `${src}: ${(e as Error).message}`, { remedy: 'Restore programs/micro/ from the repository.' });
  }
  const flags = ['-O2', '-g', '-target', 'bpf', ...spec.defines.map((d) => `-D${d}`), ...includeFlags()];
  const hash = createHash('sha256').update(text).update('\0').update(flags.join(' ')).update('\0').update(await clangId()).digest('hex').slice(0, 16);
  const out = join(buildDir, `${name}-${hash}.o`);
  if (await exists(out)) return out;
  await mkdir(buildDir, { recursive: true });
  // Compile to a temporary name and rename: an interrupted build never leaves a truncated object
  // under the name the cache trusts.
  const tmp = `${out}.tmp-${process.pid}`;
  const r = await execa('clang', [...flags, '-c', src, '-o', tmp], { reject: false });
  if (r.exitCode !== 0) {
    throw new LabError('COMPILE', `compiling ${src} (${flags.join(' ')}) failed:\n${String(r.stderr).trim().split('\n').slice(-15).join('\n')}`, {
      remedy: 'Check that clang and libbpf-dev (bpf/bpf_helpers.h) are installed (npm run setup).',
    });
  }
  await rename(tmp, out);
  // Objects of older sources under the same name are never used again.
  for (const f of await readdir(buildDir)) {
    if (f.startsWith(`${name}-`) && f.endsWith('.o') && join(buildDir, f) !== out && /^[0-9a-f]{16}\.o$/.test(f.slice(name.length + 1))) {
      await unlink(join(buildDir, f)).catch(() => undefined);
    }
  }
  return out;
}

/** Builds every micro object; returns name → local path. */
export async function buildMicroObjects(buildDir = MICRO_BUILD_DIR): Promise<MicroObjects> {
  const out = {} as MicroObjects;
  for (const name of Object.keys(MICRO_OBJECTS) as MicroObjectName[]) out[name] = await buildMicroObject(name, buildDir);
  return out;
}
