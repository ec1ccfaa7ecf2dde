/**
 * The native baseline's build side: where a kernel's module headers come from and every refusal
 * with its reason (pure, on made-up images), the module's answers parsed, the host's module support
 * found by trying, and the real build: Debian 6.1's headers fetched through the lab's apt state and
 * xcl_trio.ko built by kbuild for that release.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isLabError, type LabError } from '../../lab/errors.ts';
import { HostTarget } from '../../lab/target.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import type { KernelImage } from '../../lab/kernels/types.ts';
import { debianHeaderPackages, headerSource, imageFacts, moduleHeaders, type ImageFacts } from '../../lab/native/headers.ts';
import { buildNativeModule, kbuildArgv } from '../../lab/native/build.ts';
import { configLine, moduleSupport, parseMetricsLine, parseRunLine, runLine } from '../../lab/native/run.ts';
import { requirements } from '../support/requirements.ts';
import { testKernel } from '../vm/kernels.ts';

const image = (over: Partial<KernelImage> = {}): KernelImage => ({
  version: '6.1',
  release: '6.1.0-57-cloud-amd64',
  vmlinuz: '/x/vmlinuz',
  modulesRoot: '/x/root',
  configPath: '/x/config',
  sha256: '0'.repeat(64),
  provider: 'debian',
  bootModules: [],
  ...over,
});
const facts = (over: Partial<ImageFacts> = {}): ImageFacts => ({
  image: image(),
  modules: true,
  origin: { provider: 'debian', suite: 'bookworm', flavour: 'cloud-amd64', packageVersion: '6.1.192-3' },
  versionDir: '/cache/6.1',
  ...over,
});

describe('where module headers come from', () => {
  it('Debian: the flavour\'s headers, the common headers and kbuild, at the image package\'s exact version', () => {
    expect(headerSource(facts())).toEqual({
      kind: 'debian',
      release: '6.1.0-57-cloud-amd64',
      suite: 'bookworm',
      version: '6.1.192-3',
      packages: ['linux-headers-6.1.0-57-cloud-amd64=6.1.192-3', 'linux-headers-6.1.0-57-common=6.1.192-3', 'linux-kbuild-6.1=6.1.192-3'],
    });
    expect(() => debianHeaderPackages('6.1.0-57-amd64', 'cloud-amd64', '6.1', '1')).toThrow(/does not end with its flavour/);
  });

  it('a kernel the lab built: the build files it kept, with its compiler', () => {
    const f = facts({ image: image({ provider: 'kernel.org', release: '4.19.108' }), origin: { headers: { dir: 'root/usr/src/linux-headers-4.19.108' }, toolchain: { cc: 'gcc-11', makeVars: ['CC=gcc-11 -fcommon', 'HOSTCC=gcc-11 -fcommon'] } } });
    expect(headerSource(f)).toEqual({ kind: 'kept', release: '4.19.108', dir: '/cache/6.1/root/usr/src/linux-headers-4.19.108', makeVars: ['CC=gcc-11 -fcommon', 'HOSTCC=gcc-11 -fcommon'] });
    // Built before the build files were kept: refused with the way out.
    const old = facts({ image: image({ provider: 'source', release: '6.6.87' }), origin: { toolchain: { cc: 'gcc', makeVars: [] } } });
    expect(headerSource(old)).toMatchObject({ kind: 'none', reason: expect.stringMatching(/without keeping its module build files .*rebuild it/) });
  });

  it('refuses, with the reason, a kernel without module support or without known headers', async () => {
    const off = facts({ modules: false, image: image({ modulesRoot: null }) });
    expect(headerSource(off)).toEqual({ kind: 'none', release: '6.1.0-57-cloud-amd64', reason: 'kernel 6.1.0-57-cloud-amd64 is built without module support (CONFIG_MODULES is not set)' });
    const err = await moduleHeaders(off, '/nonexistent').catch((e: unknown) => e);
    expect(isLabError(err, 'UNSUPPORTED')).toBe(true);
    expect((err as Error).message).toMatch(/CONFIG_MODULES is not set/);
    expect(headerSource(facts({ image: image({ provider: 'local' }), origin: {} }))).toMatchObject({ kind: 'none', reason: expect.stringMatching(/no module build headers known/) });
    expect(headerSource(facts({ origin: { suite: 'bookworm' } }))).toMatchObject({ kind: 'none', reason: expect.stringMatching(/names no package version/) });
    expect(headerSource(facts({ modules: null, image: image({ modulesRoot: null }) }))).toMatchObject({ kind: 'none', reason: expect.stringMatching(/no modules and no \.config/) });
  });

  it('refuses headers whose compiler is missing, saying how to get it when apt has no candidate for it', async () => {
    // No Debian release this machine's apt knows has a gcc-3: the remedy cannot be "apt-get install" alone.
    const err = await buildNativeModule({ release: 'r', dir: '/nonexistent', makeVars: ['CC=gcc-3'] }).catch((e: unknown) => e);
    expect(isLabError(err, 'MISSING_TOOL')).toBe(true);
    expect((err as Error).message).toBe("kernel r's modules are built with gcc-3, which is not installed and has no installation candidate here");
    expect((err as LabError).remedy).toMatch(/apt sources have no gcc-3.*add a release that has it.*apt-get install gcc-3/);
  });

  it('kbuild is driven as make -C <headers> M=<dir>, with the kernel\'s compiler when it has its own', () => {
    expect(kbuildArgv({ release: 'r', dir: '/h', makeVars: [] }, '/b')).toEqual(['make', '-C', '/h', 'M=/b', `XCL_PROGRAMS=${join(REPO_ROOT, 'programs')}`, 'modules']);
    expect(kbuildArgv({ release: 'r', dir: '/h', makeVars: ['CC=gcc-11 -fcommon'] }, '/b')).toEqual(['make', '-C', '/h', 'M=/b', `XCL_PROGRAMS=${join(REPO_ROOT, 'programs')}`, 'CC=gcc-11 -fcommon', 'modules']);
  });
});

describe('the module\'s language', () => {
  it('writes config and run lines, reads run and metrics answers', () => {
    expect(configLine({ denyPorts: [23, 80], logSampleN: 3 })).toBe('config 3 1 23 80');
    expect(runLine(Uint8Array.from([0, 0xab, 0x10]), 7)).toBe('run 7 00ab10');
    expect(parseRunLine('run verdict 2 repeat 10 ns 1234 records 0')).toEqual({ verdict: 2, repeat: 10, totalNs: 1234, records: 0, last: null });
    expect(parseRunLine('run verdict 2 repeat 1 ns 9 records 1 seq 4 ifindex 1 len 74 ethertype 34525 sport 40001 dport 80 l4proto 6 klass 5').last).toEqual({ seq: 4, ifindex: 1, len: 74, ethertype: 34525, sport: 40001, dport: 80, l4proto: 6, klass: 'ipv6_tcp' });
    expect(() => parseRunLine('run verdict x repeat 1 ns 1 records 0')).toThrow(/no number "verdict"/);
    const m = parseMetricsLine(`metrics ${Array.from({ length: 20 }, (_, i) => i).join(' ')}`);
    expect(m.non_ip).toEqual({ packets: 0, bytes: 1 });
    expect(m.malformed).toEqual({ packets: 18, bytes: 19 });
    expect(() => parseMetricsLine('metrics 1 2')).toThrow(/20 numbers/);
  });
});

describe('module support on the host', () => {
  it('is what /proc/modules says, with the reason when there is none', async () => {
    const host = await HostTarget.create(join(REPO_ROOT, 'build', 'target-xtnb'));
    const s = await moduleSupport(host);
    if (existsSync('/proc/modules')) expect(s).toEqual({ ok: true });
    else expect(s).toEqual({ ok: false, reason: `kernel ${host.kernelRelease} on host has no module support (no /proc/modules: CONFIG_MODULES is not set)` });
  });
});

const need = requirements('root');
describe.skipIf(need.skip)('building xcl_trio.ko for Debian 6.1', () => {
  it('fetches the headers through the lab\'s apt state and builds the module for that release', { timeout: 900_000 }, async () => {
    const f = await imageFacts(await testKernel('6.1'));
    const headers = await moduleHeaders(f);
    expect(headers.dir).toMatch(new RegExp(`/linux-headers-${f.image.release}$`));
    const ko = await buildNativeModule(headers);
    const info = execFileSync('modinfo', ['-F', 'vermagic', ko], { encoding: 'utf8' });
    expect(info.split(' ')[0]).toBe(f.image.release);
  });
});

const need510 = requirements('root', 'gcc-10');
describe.skipIf(need510.skip)('building xcl_trio.ko for Debian 5.10', () => {
  it('builds with gcc-10, the compiler Debian 11 built 5.10 with, named by its headers', { timeout: 900_000 }, async () => {
    const f = await imageFacts(await testKernel('5.10'));
    const headers = await moduleHeaders(f);
    const ko = await buildNativeModule(headers);
    expect(execFileSync('modinfo', ['-F', 'vermagic', ko], { encoding: 'utf8' }).split(' ')[0]).toBe(f.image.release);
    // The compiler that built it, as the object's .comment says.
    expect(execFileSync('readelf', ['-p', '.comment', ko], { encoding: 'utf8' })).toMatch(/GCC: \(Debian 10\./);
  });
});
