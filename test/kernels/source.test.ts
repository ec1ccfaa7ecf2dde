/**
 * The source provider on a fake kernel tree whose make targets are stubs (as in the kernel.org
 * test): a tree or tarball given by the caller or XCL_KERNEL_SRC_<ver>, built in a copy with the
 * lab fragment, the compiler fallback decided from a failing first attempt, fix-ups applied
 * visibly, refusals (not a kernel tree, wrong series), the cache keyed by the source.
 */
import { execFileSync } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLabError, type LabError } from '../../lab/errors.ts';
import { missingBuildTools } from '../../lab/kernels/build.ts';
import { LAB_CONFIG_FRAGMENT } from '../../lab/kernels/catalog.ts';
import { parseFragment, readKconfig } from '../../lab/kernels/kconfig.ts';
import { readManifest } from '../../lab/kernels/cache.ts';
import { sourceEnvName, sourceProvider } from '../../lab/kernels/providers/source.ts';
import { resolveKernel } from '../../lab/kernels/resolve.ts';
import type { ToolchainRules } from '../../lab/kernels/toolchain.ts';
import type { ProgressEvent } from '../../lab/progress.ts';
import { checkFeature } from '../support/requirements.ts';
import { FIXTURES, fakeBzImage, sha256 } from './support.ts';

const missingTools = await missingBuildTools();
const needBuild = checkFeature('kernel-build-tools', missingTools.length > 0 ? `source build path: needs ${missingTools.join(', ')}` : null);
const fragment = parseFragment(await readFile(LAB_CONFIG_FRAGMENT, 'utf8'));

let work = '';
let bin = '';
let buildLog = '';
const savedEnv = { ...process.env };

/** Fake compilers: `-dumpfullversion` is all the lab asks of them. */
async function fakeCompiler(name: string, version: string): Promise<void> {
  const path = join(bin, name);
  await writeFile(path, `#!/bin/sh\ncase "$1" in -dumpfullversion|-dumpversion) echo ${version};; *) exit 1;; esac\n`);
  await chmod(path, 0o755);
}

const rules: ToolchainRules = { default: { cc: 'xcl-gcc-12', flags: [] }, fallbackCompilers: ['xcl-gcc-11'], series: {} };

type Failure = 'none' | 'gcc12' | 'fno-common' | 'objtool' | 'until-fixed';

/**
 * The stub Makefile: the fixture's targets, a version header, and a bzImage that fails the way
 * an old tree fails under a new toolchain: `gcc12` fails with GCC 12's use-after-free error unless
 * CC is an older compiler; `fno-common` fails to link unless -fcommon is in CC; `objtool` always
 * fails in a tool; `until-fixed` fails while $XCL_FAKE_FAIL exists and leaves an object behind
 * (logging "resumed" when it finds one from an earlier run). Each bzImage run appends CC to
 * $XCL_FAKE_BUILD_LOG.
 */
function stubMakefile(base: string, v: { version: number; patchlevel: number; sublevel: number }, failure: Failure): string {
  const fail: Record<Failure, string> = {
    none: '',
    gcc12: [
      "\t@if $(CC) -dumpfullversion | grep -q '^12'; then \\",
      '\t  echo "  HOSTCC  tools/lib/subcmd/exec-cmd.o"; \\',
      "\t  echo \"tools/lib/subcmd/help.c: In function 'exclude_cmds':\" >&2; \\",
      "\t  echo \"tools/lib/subcmd/help.c:75:25: error: pointer 'cmds' used after 'free' [-Werror=use-after-free]\" >&2; \\",
      '\t  echo "make[4]: *** [Makefile:43: tools/lib/subcmd/help.o] Error 1" >&2; \\',
      '\t  echo "make[1]: *** [Makefile:1706: tools/objtool] Error 2" >&2; \\',
      '\t  echo "drivers/foo.c:12:3: warning: unused variable x [-Wunused-variable]" >&2; \\',
      '\t  echo "make: *** [Makefile:1090: bzImage] Error 2" >&2; exit 2; fi',
    ].join('\n'),
    'fno-common': [
      '\t@case "$(CC)" in *-fcommon*) ;; *) \\',
      "\t  echo \"ld: arch/x86/boot/compressed/pgtable_64.o:(.bss+0x0): multiple definition of \\`__force_order'; arch/x86/boot/compressed/kaslr_64.o:(.bss+0x0): first defined here\" >&2; \\",
      '\t  echo "make[2]: *** [arch/x86/boot/compressed/Makefile:118: arch/x86/boot/compressed/vmlinux] Error 1" >&2; exit 2;; esac',
    ].join('\n'),
    objtool: [
      '\t@echo "arch/x86/lib/thunk_64.o: warning: objtool: missing symbol table" >&2; \\',
      '\t echo "make[2]: *** [scripts/Makefile.build:403: arch/x86/lib/thunk_64.o] Error 1" >&2; \\',
      '\t echo "make[2]: *** Deleting file \'arch/x86/lib/thunk_64.o\'" >&2; \\',
      '\t echo "drivers/bar.c:1:1: warning: last words" >&2; exit 2',
    ].join('\n'),
    'until-fixed': [
      '\t@if [ -e kernel-foo.o ]; then echo resumed >> "$(XCL_FAKE_BUILD_LOG)"; fi; touch kernel-foo.o',
      '\t@if [ -e "$(XCL_FAKE_FAIL)" ]; then echo "kernel/foo.o: warning: objtool: boom" >&2; \\',
      '\t echo "make[2]: *** [scripts/Makefile.build:403: kernel/foo.o] Error 1" >&2; exit 2; fi',
    ].join('\n'),
  };
  const header = `VERSION = ${v.version}\nPATCHLEVEL = ${v.patchlevel}\nSUBLEVEL = ${v.sublevel}\nEXTRAVERSION =\nNAME = Fake\n\nCC = xcl-gcc-12\n\n`;
  const bz = ['bzImage:', '\t@echo "$(CC)" >> "$(XCL_FAKE_BUILD_LOG)"', ...(fail[failure] ? [fail[failure]] : []), '\tmkdir -p arch/x86/boot', '\tcp fake-bzImage arch/x86/boot/bzImage', ''].join('\n');
  return header + base.replace(/^bzImage:\n(?:\t.*\n)+/m, bz);
}

/** A fake tree for catalog series `v`, named like an unpacked kernel. */
async function fakeTree(name: string, v: { version: number; patchlevel: number; sublevel: number }, failure: Failure = 'none'): Promise<string> {
  const tree = join(work, 'trees', name);
  await cp(join(FIXTURES, 'fake-linux'), tree, { recursive: true });
  await writeFile(join(tree, 'Makefile'), stubMakefile(await readFile(join(FIXTURES, 'fake-linux', 'Makefile'), 'utf8'), v, failure));
  const kconfig = [...fragment.options.keys()].map((s) => `config ${s.replace(/^CONFIG_/, '')}\n\tbool "${s}"\n`).join('\n');
  await writeFile(join(tree, 'Kconfig'), kconfig);
  await writeFile(join(tree, 'drop.txt'), '');
  const release = `${v.version}.${v.patchlevel}.${v.sublevel}-xcl-src`;
  await writeFile(join(tree, 'release.txt'), `${release}\n`);
  await writeFile(join(tree, 'fake-bzImage'), fakeBzImage(release));
  await mkdir(join(tree, 'arch', 'x86', 'kernel'), { recursive: true });
  await writeFile(join(tree, 'arch', 'x86', 'kernel', 'smpboot.c'), 'void start_secondary(void)\n{\n\tcpu_startup_entry(0);\n}\n');
  return tree;
}

const V419 = { version: 4, patchlevel: 19, sublevel: 108 };

async function builds(): Promise<string[]> {
  return (await readFile(buildLog, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
}

function collect(): { sink: (e: ProgressEvent) => void; messages: string[] } {
  const messages: string[] = [];
  return { messages, sink: (e) => (e.kind === 'log' ? void messages.push(e.message) : undefined) };
}

let emptyPatches = '';

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'xcl-source-'));
  bin = join(work, 'bin');
  await mkdir(bin, { recursive: true });
  await fakeCompiler('xcl-gcc-12', '12.2.0');
  await fakeCompiler('xcl-gcc-11', '11.3.0');
  buildLog = join(work, 'builds.log');
  emptyPatches = join(work, 'no-patches');
  await mkdir(emptyPatches, { recursive: true });
  await writeFile(join(emptyPatches, 'patches.json'), '{"patches": []}\n');
});

afterAll(async () => {
  process.env = savedEnv;
  if (work) await rm(work, { recursive: true, force: true });
});

function buildSettings(patchesDir = emptyPatches) {
  return { env: { PATH: `${bin}:${process.env.PATH ?? ''}`, XCL_FAKE_BUILD_LOG: buildLog, XCL_FAKE_FAIL: join(work, 'fail-now') }, toolchains: rules, patchesDir, jobs: 1 };
}

describe.skipIf(needBuild.skip)('source provider (fake tree with stub make targets)', () => {
  it('builds a tree with the lab fragment in a copy, records the source and release, and caches it by source', async () => {
    const tree = await fakeTree('linux-4.19.108', V419);
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    const before = (await builds()).length;
    const image = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings() });
    expect(image.provider).toBe('source');
    expect(image.version).toBe('4.19');
    expect(image.release).toBe('4.19.108-xcl-src');
    expect(image.sha256).toBe(sha256(fakeBzImage('4.19.108-xcl-src')));
    const cfg = await readKconfig(image.configPath ?? '');
    expect(cfg.get('CONFIG_VETH')).toBe('y');
    expect(cfg.get('CONFIG_PROVE_LOCKING')).toBe('n');
    // The user's tree is untouched: configured and built in the cache's copy.
    await expect(readFile(join(tree, '.config'))).rejects.toThrow();
    const manifest = await readManifest(join(cacheDir, '4.19'));
    const origin = manifest?.origin as { source: { kind: string; path: string; sourceVersion: string; fingerprint: string }; release: string; toolchain: { cc: string; ccVersion: string } };
    expect(origin.source.kind).toBe('tree');
    expect(origin.source.path).toBe(tree);
    expect(origin.source.sourceVersion).toBe('4.19.108');
    expect(origin.source.fingerprint).toMatch(/^tree:[0-9a-f]{64}$/);
    expect(origin.release).toBe('4.19.108-xcl-src');
    expect(origin.toolchain).toMatchObject({ cc: 'xcl-gcc-12', ccVersion: '12.2.0' });
    expect((await builds()).length).toBe(before + 1);
    // The summary provenance records: source, real version, toolchain, no fix-up.
    expect(image.origin).toMatchObject({
      provider: 'source',
      source: { kind: 'tree', path: tree, sourceVersion: '4.19.108', fingerprint: origin.source.fingerprint },
      toolchain: { cc: 'xcl-gcc-12', ccVersion: '12.2.0', flags: [] },
      patches: [],
    });
    expect(image.origin?.from).toBe(`source tree ${tree} (4.19.108), built with xcl-gcc-12 12.2.0, binutils ${image.origin?.toolchain?.binutils ?? ''}`);

    // Same source again: from the cache, no build.
    expect(await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings() })).toEqual(image);
    // No source named (a matrix run): the cache serves it too.
    expect(await resolveKernel('4.19', { cacheDir, providers: [] })).toEqual(image);
    expect((await builds()).length).toBe(before + 1);

    // An edited tree is another source: rebuilt.
    await writeFile(join(tree, 'extra.c'), 'int x;\n');
    await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings() });
    expect((await builds()).length).toBe(before + 2);
  });

  it('a cached image built with an older fragment: served as it is with a warning naming the option, rebuilt when its source is given', async () => {
    const tree = await fakeTree('linux-4.19.108-drift', V419);
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    const older = join(work, 'older.config');
    await writeFile(older, (await readFile(LAB_CONFIG_FRAGMENT, 'utf8')).replace(/^CONFIG_NET_SCH_INGRESS=y\n/m, ''));
    const built = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: { ...buildSettings(), fragmentPath: older } });
    expect((await readKconfig(built.configPath ?? '')).get('CONFIG_NET_SCH_INGRESS') ?? 'n').toBe('n');
    const before = (await builds()).length;

    const plain = collect();
    expect(await resolveKernel('4.19', { cacheDir, providers: [], progress: plain.sink })).toEqual(built);
    expect(plain.messages.join('\n')).toMatch(/the cached 4\.19\.108-xcl-src was built with an older lab config \(CONFIG_NET_SCH_INGRESS \(wanted y, got not set\)\); using it as it is; .*--kernel-source/);
    expect((await builds()).length).toBe(before);

    const withSource = collect();
    const again = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings(), progress: withSource.sink });
    expect(withSource.messages.join('\n')).toMatch(/older lab config \(CONFIG_NET_SCH_INGRESS .*building it again from/);
    expect((await builds()).length).toBe(before + 1);
    expect((await readKconfig(again.configPath ?? '')).get('CONFIG_NET_SCH_INGRESS')).toBe('y');
    // Now it matches: served from the cache without a word about the config.
    const quiet = collect();
    await resolveKernel('4.19', { cacheDir, providers: [], progress: quiet.sink });
    expect(quiet.messages.join('\n')).not.toMatch(/older lab config/);
  });

  it('builds a tarball named by XCL_KERNEL_SRC_<ver>', async () => {
    await fakeTree('linux-5.4.286', { version: 5, patchlevel: 4, sublevel: 286 });
    const tarball = join(work, 'linux-5.4.286.tar.xz');
    execFileSync('tar', ['-cJf', tarball, '-C', join(work, 'trees'), 'linux-5.4.286']);
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    expect(sourceEnvName('5.4')).toBe('XCL_KERNEL_SRC_5_4');
    process.env.XCL_KERNEL_SRC_5_4 = tarball;
    try {
      const image = await resolveKernel('5.4', { cacheDir, providers: [sourceProvider], build: buildSettings() });
      expect(image.release).toBe('5.4.286-xcl-src');
      const origin = (await readManifest(join(cacheDir, '5.4')))?.origin as { source: { kind: string; fingerprint: string; from: string } };
      expect(origin.source).toMatchObject({ kind: 'tarball', from: 'XCL_KERNEL_SRC_5_4', fingerprint: `sha256:${sha256(await readFile(tarball))}` });
    } finally {
      delete process.env.XCL_KERNEL_SRC_5_4;
    }
  });

  it('retries with an older compiler when the first attempt fails with a compile error, and records both', async () => {
    const tree = await fakeTree('gcc12', V419, 'gcc12');
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    const { sink, messages } = collect();
    const image = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings(), progress: sink });
    expect(image.release).toBe('4.19.108-xcl-src');
    expect((await builds()).slice(-2)).toEqual(['xcl-gcc-12', 'xcl-gcc-11']);
    const origin = (await readManifest(join(cacheDir, '4.19')))?.origin as {
      toolchain: { cc: string; ccVersion: string; binutils: string; flags: string[]; makeVars: string[] };
      attempts: { cc: string; ok: boolean; firstError?: string }[];
    };
    expect(origin.toolchain).toMatchObject({ cc: 'xcl-gcc-11', ccVersion: '11.3.0', flags: [], makeVars: ['CC=xcl-gcc-11', 'HOSTCC=xcl-gcc-11'] });
    expect(origin.toolchain.binutils).toMatch(/^\d+\.\d+/);
    expect(origin.attempts.map((a) => [a.cc, a.ok])).toEqual([
      ['xcl-gcc-12', false],
      ['xcl-gcc-11', true],
    ]);
    expect(origin.attempts[0]?.firstError).toBe("tools/lib/subcmd/help.c:75: error: pointer 'cmds' used after 'free' [-Werror=use-after-free]");
    expect(messages.some((m) => m.includes('retrying with xcl-gcc-11'))).toBe(true);
  });

  it('adds -fcommon to CC and HOSTCC when the link fails on a multiple definition', async () => {
    const tree = await fakeTree('fno-common', V419, 'fno-common');
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings() });
    const origin = (await readManifest(join(cacheDir, '4.19')))?.origin as { toolchain: { flags: string[]; makeVars: string[] } };
    expect(origin.toolchain.flags).toEqual(['-fcommon']);
    expect(origin.toolchain.makeVars).toEqual(['CC=xcl-gcc-12 -fcommon', 'HOSTCC=xcl-gcc-12 -fcommon']);
  });

  it('fails naming the first error, the compiler and what to try next, when no fallback applies', async () => {
    const tree = await fakeTree('objtool', V419, 'objtool');
    const err = (await resolveKernel('4.19', { cacheDir: await mkdtemp(join(work, 'cache-')), kernelSource: tree, providers: [sourceProvider], build: buildSettings() }).catch(
      (e: unknown) => e,
    )) as LabError;
    expect(isLabError(err, 'KERNEL_BUILD')).toBe(true);
    expect(err.message).toContain('4.19.108 failed to build with xcl-gcc-12 12.2.0');
    expect(err.message).toContain('arch/x86/lib/thunk_64.o: objtool: missing symbol table');
    expect(err.message).not.toContain('last words');
    expect(err.remedy).toContain('kernels/patches/patches.json');
  });

  it('resumes a failed build of the same source in its kept tree', async () => {
    const tree = await fakeTree('resume', V419, 'until-fixed');
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    await writeFile(join(work, 'fail-now'), '');
    const err = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings() }).catch((e: unknown) => e);
    expect(isLabError(err, 'KERNEL_BUILD')).toBe(true);
    expect((err as Error).message).toContain('kernel/foo.o: objtool: boom');
    await rm(join(work, 'fail-now'));
    const { sink, messages } = collect();
    const image = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: buildSettings(), progress: sink });
    expect(image.release).toBe('4.19.108-xcl-src');
    expect(messages.some((m) => m.includes('resuming the build'))).toBe(true);
    expect((await builds()).slice(-2)).toEqual(['xcl-gcc-12', 'resumed']);
  });

  it('applies a listed fix-up visibly and records it, never touching the user tree', async () => {
    const tree = await fakeTree('patched', V419);
    const patches = join(work, 'patches');
    await mkdir(join(patches, '4.19'), { recursive: true });
    await writeFile(
      join(patches, '4.19', 'fake-fix.patch'),
      ['--- a/arch/x86/kernel/smpboot.c', '+++ b/arch/x86/kernel/smpboot.c', '@@ -1,4 +1,5 @@', ' void start_secondary(void)', ' {', ' \tcpu_startup_entry(0);', '+\tmb();', ' }', ''].join('\n'),
    );
    await writeFile(
      join(patches, 'patches.json'),
      JSON.stringify({
        patches: [
          { file: '4.19/fake-fix.patch', series: '4.19', when: { gcc: '>=10' }, why: 'test fix-up' },
          { file: '4.19/fake-fix.patch', series: '5.4', why: 'another series' },
        ],
      }),
    );
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    const { sink, messages } = collect();
    const image = await resolveKernel('4.19', { cacheDir, kernelSource: tree, providers: [sourceProvider], build: { ...buildSettings(patches), jobs: 1 }, progress: sink });
    const origin = (await readManifest(join(cacheDir, '4.19')))?.origin as { patches: { file: string; status: string; sha256: string }[] };
    const patchSum = sha256(await readFile(join(patches, '4.19', 'fake-fix.patch')));
    expect(origin.patches).toEqual([{ file: '4.19/fake-fix.patch', status: 'applied', why: 'test fix-up', sha256: patchSum }]);
    // What provenance gets: the change to the kernel under test, from the build and from the cache alike.
    expect(image.origin?.patches).toEqual([{ file: '4.19/fake-fix.patch', why: 'test fix-up', sha256: patchSum }]);
    expect((await resolveKernel('4.19', { cacheDir, providers: [] })).origin?.patches).toEqual(image.origin?.patches);
    expect(messages.some((m) => m.includes('applied fix-up kernels/patches/4.19/fake-fix.patch') && m.includes('patched'))).toBe(true);
    expect(await readFile(join(tree, 'arch', 'x86', 'kernel', 'smpboot.c'), 'utf8')).not.toContain('mb()');
  });

  it('refuses a directory that is not a kernel tree, and a file that is no tarball', async () => {
    const notTree = join(work, 'not-a-tree');
    await mkdir(notTree, { recursive: true });
    await writeFile(join(notTree, 'Makefile'), 'all:\n\techo hi\n');
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    const err = (await resolveKernel('4.19', { cacheDir, kernelSource: notTree, providers: [sourceProvider] }).catch((e: unknown) => e)) as LabError;
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect(err.message).toContain(`${notTree}: not a Linux kernel source tree`);
    expect(err.remedy).toContain('top directory of a kernel source tree');

    const fakeTarball = join(work, 'linux-4.19.tar.gz');
    await writeFile(fakeTarball, 'not gzip');
    const err2 = (await resolveKernel('4.19', { cacheDir, kernelSource: fakeTarball, providers: [sourceProvider] }).catch((e: unknown) => e)) as LabError;
    expect(isLabError(err2, 'BAD_INPUT')).toBe(true);
    expect(err2.message).toContain('not a Linux kernel source tree');

    const text = join(work, 'notes.txt');
    await writeFile(text, 'hello');
    const err3 = (await resolveKernel('4.19', { cacheDir, kernelSource: text, providers: [sourceProvider] }).catch((e: unknown) => e)) as LabError;
    expect(isLabError(err3, 'BAD_INPUT')).toBe(true);
    expect(err3.message).toContain('neither a directory nor a tarball');

    const err4 = (await resolveKernel('4.19', { cacheDir, kernelSource: join(work, 'nowhere'), providers: [sourceProvider] }).catch((e: unknown) => e)) as LabError;
    expect(isLabError(err4, 'MISSING_FILE')).toBe(true);
  });

  it('refuses a tree of another series, naming both versions', async () => {
    const tree = await fakeTree('linux-5.4.286-as-4.19', { version: 5, patchlevel: 4, sublevel: 286 });
    const before = (await builds()).length;
    const err = (await resolveKernel('4.19', { cacheDir: await mkdtemp(join(work, 'cache-')), kernelSource: tree, providers: [sourceProvider], build: buildSettings() }).catch(
      (e: unknown) => e,
    )) as LabError;
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect(err.message).toContain('is a 5.4.286 tree (series 5.4), not catalog version 4.19');
    expect(err.remedy).toContain('npm run kernel -- 5.4 --kernel-source');
    expect((await builds()).length).toBe(before);
  });

  it('refuses an image and a source given together', async () => {
    const tree = await fakeTree('both', V419);
    const err = (await resolveKernel('4.19', { cacheDir: await mkdtemp(join(work, 'cache-')), kernelSource: tree, localImage: '/nonexistent/bzImage' }).catch((e: unknown) => e)) as LabError;
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect(err.message).toContain('both an image');
  });
});
