/**
 * The Debian provider for real: 6.1 (bookworm) and 5.10 (bullseye) through the lab-private apt
 * configuration into a fresh cache, then the cache hit (no provider consulted), then a corrupted
 * cache that is detected. Needs deb.debian.org (this machine has it).
 */
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { readKconfig } from '../../lab/kernels/kconfig.ts';
import { probe } from '../../lab/kernels/http.ts';
import { bzImageRelease } from '../../lab/kernels/providers/local.ts';
import { debSha256FromShow, debianProvider, imagePackageFromShow } from '../../lab/kernels/providers/debian.ts';
import { bootModuleFiles, cacheRoot, resolveKernel, type Provider } from '../../lab/kernels/resolve.ts';
import { sha256 } from './support.ts';
import { checkFeature } from '../support/requirements.ts';

const unreachable = await probe('http://deb.debian.org/debian');
const needMirror = checkFeature('debian-mirror', unreachable ? `Debian provider: ${unreachable}` : null);

/** A provider that fails the test if consulted: proves a result came from the cache. */
const mustNotRun: Provider = {
  name: 'must-not-run',
  available: async () => ({ ok: false, reason: 'test' }),
  obtain: async () => {
    throw new Error('provider consulted although the image is cached');
  },
};

// A fresh image cache, so the provider really runs; but the verified .debs are shared with the
// lab's default cache, so the suite downloads each kernel package once (the VM tests use the same).
let cacheDir = '';
const savedDownloads = process.env.XCL_KERNEL_DOWNLOADS;
beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'xcl-debian-'));
  process.env.XCL_KERNEL_DOWNLOADS = join(cacheRoot(), 'downloads');
});
afterAll(async () => {
  if (savedDownloads === undefined) delete process.env.XCL_KERNEL_DOWNLOADS;
  else process.env.XCL_KERNEL_DOWNLOADS = savedDownloads;
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
});

describe('imagePackageFromShow', () => {
  it('takes the linux-image dependency of a meta-package', () => {
    const show = 'Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n';
    expect(imagePackageFromShow(show)).toEqual({ pkg: 'linux-image-6.1.0-56-cloud-amd64', version: '6.1.192-2' });
    expect(imagePackageFromShow('Package: x\nDepends: kmod, linux-base\n')).toBeNull();
  });
});

describe('debSha256FromShow', () => {
  it('takes the SHA256 field of the stanza, nothing else', () => {
    const sha = 'a'.repeat(64);
    expect(debSha256FromShow(`Package: linux-image-x\nVersion: 1\nMD5sum: ${'b'.repeat(32)}\nSHA256: ${sha}\n`)).toBe(sha);
    expect(debSha256FromShow('Package: x\nSHA256: short\n')).toBeNull();
  });
});

describe.skipIf(needMirror.skip)('Debian provider (real packages)', () => {
  for (const [version, suite] of [
    ['6.1', 'bookworm'],
    ['5.10', 'bullseye'],
  ] as const) {
    it(`resolves ${version} from ${suite} (cloud flavour), then from the cache`, async () => {
      const image = await resolveKernel(version, { cacheDir, providers: [debianProvider] });
      expect(image.provider).toBe('debian');
      expect(image.version).toBe(version);
      expect(image.release).toMatch(new RegExp(`^${version.replace('.', '\\.')}\\.\\d+-\\d+-cloud-amd64$`));
      // The image is what it claims to be: its boot header names the same release, its hash is recorded.
      expect(await bzImageRelease(image.vmlinuz)).toBe(image.release);
      expect(sha256(await readFile(image.vmlinuz))).toBe(image.sha256);
      // The package's own config has what the lab needs.
      const cfg = await readKconfig(image.configPath ?? '');
      for (const o of ['CONFIG_BPF_SYSCALL', 'CONFIG_BPF_JIT', 'CONFIG_XDP_SOCKETS', 'CONFIG_DEBUG_INFO_BTF', 'CONFIG_KPROBE_EVENTS']) {
        expect(cfg.get(o), o).toBe('y');
      }
      // Root disk and network drivers: each is either built in or a boot module, and every boot
      // module file exists, dependencies before dependents.
      const modulesDir = join(image.modulesRoot ?? '', 'lib', 'modules', image.release);
      const builtin = await readFile(join(modulesDir, 'modules.builtin'), 'utf8');
      for (const m of ['virtio_pci', 'virtio_blk', 'virtio_net', 'ext4']) {
        const isBuiltin = new RegExp(`/${m}\\.ko$`, 'm').test(builtin);
        expect(isBuiltin !== image.bootModules.includes(m), `${m}: built in xor boot module`).toBe(true);
      }
      const files = await bootModuleFiles(image);
      expect(files.map((f) => f.name)).toEqual(image.bootModules);
      const dep = await readFile(join(modulesDir, 'modules.dep'), 'utf8');
      for (const [i, f] of files.entries()) {
        expect((await readdir(join(f.path, '..'))).includes(f.path.split('/').pop() ?? '')).toBe(true);
        const line = dep.split('\n').find((l) => f.path.endsWith(`/${l.split(':')[0]}`)) ?? '';
        const deps = (line.split(':')[1] ?? '').trim().split(/\s+/).filter(Boolean);
        for (const d of deps) {
          const j = files.findIndex((g) => g.path.endsWith(`/${d}`));
          expect(j, `${f.name} needs ${d} loaded first`).toBeGreaterThanOrEqual(0);
          expect(j).toBeLessThan(i);
        }
      }
      // The system's apt configuration was not used: our private lists name only our suite.
      const lists = await readdir(join(cacheDir, 'apt', suite, 'lists'));
      expect(lists.some((l) => l.includes(`_${suite}_`))).toBe(true);
      expect(lists.some((l) => !l.includes(suite) && l.endsWith('Packages'))).toBe(false);

      const again = await resolveKernel(version, { cacheDir, providers: [mustNotRun] });
      expect(again).toEqual(image);
    });
  }

  it('discards a cached image whose vmlinuz no longer matches its checksum', async () => {
    const image = await resolveKernel('6.1', { cacheDir, providers: [mustNotRun] });
    await writeFile(image.vmlinuz, 'corrupted');
    const err = await resolveKernel('6.1', {
      cacheDir,
      providers: [{ ...mustNotRun, obtain: async () => Promise.reject(new Error('offline')) }],
    }).catch((e: unknown) => e);
    expect(isLabError(err, 'NO_PROVIDER')).toBe(true);
    expect((err as Error).message).toContain('must-not-run: offline');
    await expect(readdir(join(cacheDir, '6.1'))).rejects.toThrow();
  });
});
