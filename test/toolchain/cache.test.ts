/**
 * The toolchain's build cache: the same inputs reuse the object (counted builds, an object left
 * untouched); a changed source, included header, flag or compiler version string each rebuild; a
 * clang failure is a COMPILE LabError carrying the argv, the exit code and clang's stderr, and
 * leaves no temporary file.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { isLabError, type LabError } from '../../lab/errors.ts';
import { buildCached, inputKey, type KeyInputs } from '../../lab/toolchain/cache.ts';
import { BPF_FLAGS, bpfIncludeFlags, compile, parseDependencies, type CompileJob } from '../../lab/toolchain/clang.ts';
import { BPF_SOURCE_CACHE, compileBpfSource } from '../../lab/toolchain/bpf-source.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xt-toolchain-'));
  dirs.push(d);
  return d;
}

const HEADER = '#define VERDICT 2\n';
const SOURCE = [
  '#include <linux/bpf.h>',
  '#include <bpf/bpf_helpers.h>',
  '#include "verdict.h"',
  'SEC("xdp") int xt_pass(struct xdp_md *ctx) { return VERDICT; }',
  'char LICENSE[] SEC("license") = "GPL";',
  '',
].join('\n');

/** A scratch source tree: prog.c including verdict.h. */
async function tree(): Promise<{ src: string; out: string; job: (extra?: string[]) => CompileJob }> {
  const src = await tempDir();
  const out = join(src, 'out');
  await writeFile(join(src, 'verdict.h'), HEADER);
  await writeFile(join(src, 'prog.c'), SOURCE);
  const job = (extra: string[] = []): CompileJob => ({
    compiler: 'clang',
    flags: [...BPF_FLAGS, ...bpfIncludeFlags(), '-I', src, ...extra],
    source: join(src, 'prog.c'),
    output: 'object',
    cwd: src,
    what: 'prog.c (prog.o)',
    remedy: 'Fix prog.c.',
  });
  return { src, out, job };
}

describe('the cache alone', () => {
  it('builds once per key, again when forced, and again for another key', async () => {
    const dir = await tempDir();
    let builds = 0;
    const build = async (tmp: string): Promise<void> => {
      builds += 1;
      await writeFile(tmp, `build ${builds}`);
    };
    const a = await buildCached({ dir, name: 'x', ext: '.o', layout: 'stamp', key: 'a'.repeat(64), build });
    const b = await buildCached({ dir, name: 'x', ext: '.o', layout: 'stamp', key: 'a'.repeat(64), build });
    expect(builds).toBe(1);
    expect(a.built).toBe(true);
    expect(b).toEqual({ ...a, built: false });
    await buildCached({ dir, name: 'x', ext: '.o', layout: 'stamp', key: 'a'.repeat(64), force: true, build });
    expect(builds).toBe(2);
    await buildCached({ dir, name: 'x', ext: '.o', layout: 'stamp', key: 'b'.repeat(64), build });
    expect(builds).toBe(3);
    expect((await readdir(dir)).sort()).toEqual(['x.o', 'x.o.hash']);
  });

  it('a changed compiler version string changes the key and rebuilds', async () => {
    const dir = await tempDir();
    const file = join(dir, 'in.c');
    await writeFile(file, 'int x;\n');
    const inputs: KeyInputs = { compiler: 'clang', version: 'Debian clang version 14.0.6', flags: ['-O2'], files: [file] };
    const k14 = await inputKey(inputs);
    expect(await inputKey({ ...inputs })).toBe(k14);
    const k15 = await inputKey({ ...inputs, version: 'Debian clang version 15.0.7' });
    expect(k15).not.toBe(k14);
    let builds = 0;
    const build = async (tmp: string): Promise<void> => {
      builds += 1;
      await writeFile(tmp, 'o');
    };
    const a = await buildCached({ dir, name: 'in', ext: '.o', layout: 'hashed-latest', key: k14, build });
    await buildCached({ dir, name: 'in', ext: '.o', layout: 'hashed-latest', key: k14, build });
    expect(builds).toBe(1);
    const b = await buildCached({ dir, name: 'in', ext: '.o', layout: 'hashed-latest', key: k15, build });
    expect(builds).toBe(2);
    expect(b.path).not.toBe(a.path);
    expect(await readdir(dir)).not.toContain(`in-${a.hash}.o`);
  });

  it('a failed build leaves neither the output nor a temporary file', async () => {
    const dir = await tempDir();
    const err = await buildCached({
      dir, name: 'x', ext: '.o', layout: 'stamp', key: 'c'.repeat(64),
      build: async (tmp) => {
        await writeFile(tmp, 'half');
        throw new Error('disk full');
      },
    }).catch((e: unknown) => e);
    expect(isLabError(err, 'COMPILE')).toBe(true);
    expect(await readdir(dir)).toEqual([]);
  });

  it('reads make rules as compilers print them', () => {
    expect(parseDependencies('p.o: /a/p.c /a/my\\ h.h \\\n  /usr/include/linux/bpf.h\n', '/a')).toEqual(['/a/p.c', '/a/my h.h', '/usr/include/linux/bpf.h']);
    expect(parseDependencies('p.o: p.c inc/x.h\n', '/src')).toEqual(['/src/p.c', '/src/inc/x.h']);
  });
});

describe.skipIf(requirements('clang').skip)('compiling through the cache', () => {
  it('reuses the object for the same inputs: not rebuilt, not rewritten', async () => {
    const { out, job } = await tree();
    const first = await compile(job(), { dir: out, name: 'prog', ext: '.o', layout: 'hashed-latest' });
    expect(first.built).toBe(true);
    const old = new Date(2000, 0, 1);
    await utimes(first.path, old, old);
    const again = await compile(job(), { dir: out, name: 'prog', ext: '.o', layout: 'hashed-latest' });
    expect(again).toEqual({ ...first, built: false });
    expect((await stat(again.path)).mtime.getFullYear()).toBe(2000);
  });

  it('rebuilds on a changed source, a changed included header and a changed flag', async () => {
    const { src, out, job } = await tree();
    const to = { dir: out, name: 'prog', ext: '.o', layout: 'stamp' } as const;
    const base = await compile(job(), to);
    expect(base.built).toBe(true);
    expect((await compile(job(), to)).built).toBe(false);

    await writeFile(join(src, 'prog.c'), `${SOURCE}/* edited */\n`);
    const source = await compile(job(), to);
    expect(source.built).toBe(true);
    expect(source.hash).not.toBe(base.hash);

    await writeFile(join(src, 'verdict.h'), '#define VERDICT 1\n');
    const header = await compile(job(), to);
    expect(header.built).toBe(true);
    expect(header.hash).not.toBe(source.hash);

    const flag = await compile(job(['-mcpu=v3']), to);
    expect(flag.built).toBe(true);
    expect(flag.hash).not.toBe(header.hash);
    expect((await compile(job(['-mcpu=v3']), to)).built).toBe(false);
  });

  it('a header the source does not include changes nothing', async () => {
    const { src, out, job } = await tree();
    const to = { dir: out, name: 'prog', ext: '.o', layout: 'stamp' } as const;
    const a = await compile(job(), to);
    await writeFile(join(src, 'unrelated.h'), '#define NOTHING 1\n');
    expect(await compile(job(), to)).toEqual({ ...a, built: false });
  });

  it('a clang failure is a COMPILE LabError with argv, exit code and stderr, and leaves nothing behind', async () => {
    const { src, out, job } = await tree();
    await writeFile(join(src, 'prog.c'), SOURCE.replace('return VERDICT;', 'return VERDICT +;'));
    const err = await compile(job(), { dir: out, name: 'prog', ext: '.o', layout: 'stamp' }).catch((e: unknown) => e);
    expect(isLabError(err, 'COMPILE')).toBe(true);
    const e = err as LabError;
    expect(e.message).toMatch(/^prog\.c \(prog\.o\): clang failed \(exit 1\):/);
    expect(e.message).toMatch(/error: expected expression/);
    expect(e.remedy).toBe('Fix prog.c.');
    const argv = e.details.argv as string[];
    expect(argv[0]).toBe('clang');
    expect(argv).toContain(join(src, 'prog.c'));
    expect(argv).toContain('-c');
    expect(e.details.exitCode).toBe(1);
    expect(String(e.details.stderr)).toMatch(/expected expression/);
    expect(await readdir(out)).toEqual([]);
  });

  it('a missing header fails while listing the inputs, with the same kind of error', async () => {
    const { src, out, job } = await tree();
    await rm(join(src, 'verdict.h'));
    const err = await compile(job(), { dir: out, name: 'prog', ext: '.o', layout: 'stamp' }).catch((e: unknown) => e);
    expect(isLabError(err, 'COMPILE')).toBe(true);
    const e = err as LabError;
    expect(e.message).toMatch(/verdict\.h/);
    expect(e.details.argv as string[]).toContain('-M');
  });

  it('a missing compiler is MISSING_TOOL', async () => {
    const { out, job } = await tree();
    const err = await compile({ ...job(), compiler: 'xt-no-such-clang' }, { dir: out, name: 'prog', ext: '.o', layout: 'stamp' }).catch((e: unknown) => e);
    expect(isLabError(err, 'MISSING_TOOL')).toBe(true);
  });

  it('a source held in a string is cached too, one object per flag set, none removed while in use', async () => {
    const name = `xt-toolchain-${process.pid}`;
    const source = SOURCE.replace('#include "verdict.h"', '#define VERDICT 2');
    const a = await compileBpfSource(source, name);
    const old = new Date(2000, 0, 1);
    await utimes(a, old, old);
    expect(await compileBpfSource(source, name)).toBe(a);
    expect((await stat(a)).mtime.getFullYear()).toBe(2000);
    const v3 = await compileBpfSource(source, name, ['-mcpu=v3']);
    expect(v3).not.toBe(a);
    expect(existsSync(a)).toBe(true);
    for (const f of await readdir(BPF_SOURCE_CACHE)) if (f.startsWith(`${name}-`)) await rm(join(BPF_SOURCE_CACHE, f), { force: true });
  });
});
