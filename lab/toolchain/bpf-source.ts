/**
 * Compiles a BPF C source held in a string (the chain's head trampoline, the feature probes, test
 * programs) with clang on the machine running the lab, not the target: guests have no compiler.
 * The source is written under a name carrying its own hash and the object lands in the build cache
 * in the system temp directory.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_FLAGS, bpfIncludeFlags, compile } from './clang.ts';

/** Where the sources and their objects are kept. */
export const BPF_SOURCE_CACHE = join(tmpdir(), 'xdp-chain-lab-cc');

/** Compiles `source` as `<name>` with `extraFlags` after the lab's BPF flags; returns the object's local path. */
export async function compileBpfSource(source: string, name: string, extraFlags: readonly string[] = []): Promise<string> {
  const dir = BPF_SOURCE_CACHE;
  await mkdir(dir, { recursive: true });
  const src = join(dir, `${name}-${createHash('sha256').update(source).digest('hex').slice(0, 16)}.c`);
  if (!existsSync(src)) {
    // Written under a temporary name first: a concurrent build never reads half a source.
    const tmp = `${src}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(tmp, source);
    await rename(tmp, src);
  }
  const built = await compile(
    {
      compiler: 'clang',
      flags: [...BPF_FLAGS, ...bpfIncludeFlags(), ...extraFlags],
      source: src,
      output: 'object',
      what: `${name} (${src})`,
      remedy: 'Install libbpf-dev and linux-libc-dev (npm run setup); if they are there, the source itself does not compile.',
    },
    // Every version kept: a caller may still be copying an object of the same name built with other flags.
    { dir, name, ext: '.o', layout: 'hashed' },
  );
  return built.path;
}
