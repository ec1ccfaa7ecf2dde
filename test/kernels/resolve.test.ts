/**
 * The resolver's errors: an unknown version, "host", and a version no provider can obtain
 * (network providers pointed at a loopback port nothing listens on, so the result does not
 * depend on this machine's network).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabError, isLabError } from '../../lab/errors.ts';
import { catalogEntry, catalogNames, loadCatalog } from '../../lab/kernels/catalog.ts';
import { imageFromRoot } from '../../lab/kernels/image.ts';
import { resolveKernel, type Provider } from '../../lab/kernels/resolve.ts';
import { KERNEL_VERSIONS } from '../../lab/kernels/types.ts';
import { deadPort, fakeBzImage } from './support.ts';

let cacheDir = '';
let port = 0;
const savedEnv = { ...process.env };

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'xcl-resolve-'));
  port = await deadPort();
  process.env.XCL_UBUNTU_MAINLINE_URL = `http://127.0.0.1:${port}/mainline`;
  process.env.XCL_KERNEL_ORG_URL = `http://127.0.0.1:${port}/pub`;
  delete process.env.XCL_KERNEL_4_19;
});
afterAll(async () => {
  process.env = savedEnv;
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
});

describe('catalog', () => {
  it('lists every LTS version of the contract plus host, with a provider for each', () => {
    const catalog = loadCatalog();
    expect(catalog.kernels.map((k) => k.version)).toEqual([...KERNEL_VERSIONS]);
    expect(catalogNames()).toContain('host');
    for (const k of catalog.kernels) {
      expect(k.series).toBe(k.version);
      expect(k.kernelOrg?.pointRelease.startsWith(`${k.series}.`)).toBe(true);
      expect(k.kernelOrg?.tarball).toBe(`linux-${k.kernelOrg?.pointRelease}.tar.xz`);
      expect(k.ubuntuMainline?.dir.startsWith(`v${k.series}.`)).toBe(true);
    }
    expect(catalogEntry('5.10').debian?.suite).toBe('bullseye');
    expect(catalogEntry('6.1').debian?.suite).toBe('bookworm');
    expect(catalogEntry('6.12').debian?.suite).toBe('bookworm');
    expect(catalogEntry('4.19').debian).toBeNull();
  });
});

describe('resolveKernel errors', () => {
  it('an unknown version lists the catalog', async () => {
    const err = await resolveKernel('5.11', { cacheDir }).catch((e: unknown) => e);
    expect(isLabError(err, 'UNKNOWN_KERNEL')).toBe(true);
    expect((err as Error).message).toBe('kernel "5.11" is not in the catalog (known: 4.19, 5.4, 5.10, 5.15, 6.1, 6.6, 6.12, host)');
    expect((err as LabError).remedy).toContain('kernels/catalog.json');
  });

  it('"host" is not an image', async () => {
    const err = await resolveKernel('host', { cacheDir }).catch((e: unknown) => e);
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect((err as Error).message).toContain('running kernel');
  });

  it('an unobtainable version names the kernel, every provider and why, and how to supply one', async () => {
    const err = await resolveKernel('4.19', { cacheDir }).catch((e: unknown) => e);
    expect(isLabError(err, 'NO_PROVIDER')).toBe(true);
    const e = err as LabError;
    expect(e.message.split('\n')).toEqual([
      'no provider could obtain kernel 4.19:',
      '  - local: no image given (set XCL_KERNEL_4_19=/path/to/bzImage, or `npm run kernel -- 4.19 --kernel-image PATH`)',
      '  - debian: Debian has no package for 4.19 (5.10: bullseye; 6.1, 6.12: bookworm)',
      `  - ubuntu-mainline: cannot reach 127.0.0.1:${port}: ECONNREFUSED`,
      `  - kernel.org: cannot reach 127.0.0.1:${port}: ECONNREFUSED`,
    ]);
    expect(e.remedy).toContain('XCL_KERNEL_4_19=/path/to/bzImage');
    expect(e.remedy).toContain('--kernel-image');
  });

  it('an unresolvable host name fails with ENOTFOUND, not a hang', async () => {
    process.env.XCL_UBUNTU_MAINLINE_URL = 'http://mainline.xcl-test.invalid/mainline';
    process.env.XCL_KERNEL_ORG_URL = 'http://cdn.xcl-test.invalid/pub';
    try {
      const err = await resolveKernel('5.15', { cacheDir }).catch((e: unknown) => e);
      expect(isLabError(err, 'NO_PROVIDER')).toBe(true);
      expect((err as Error).message).toContain('ubuntu-mainline: cannot reach mainline.xcl-test.invalid: ENOTFOUND');
      expect((err as Error).message).toContain('kernel.org: cannot reach cdn.xcl-test.invalid: ENOTFOUND');
    } finally {
      process.env.XCL_UBUNTU_MAINLINE_URL = `http://127.0.0.1:${port}/mainline`;
      process.env.XCL_KERNEL_ORG_URL = `http://127.0.0.1:${port}/pub`;
    }
  });
});

/** A provider that writes a fake image after a delay and counts its calls. */
function slowProvider(release: string): Provider & { calls: number } {
  const p = {
    name: 'slow',
    calls: 0,
    available: async () => ({ ok: true as const }),
    obtain: async (ctx: Parameters<Provider['obtain']>[0]) => {
      p.calls++;
      await new Promise((r) => setTimeout(r, 300));
      const boot = join(ctx.versionDir, 'root', 'boot');
      await mkdir(boot, { recursive: true });
      await writeFile(join(boot, `vmlinuz-${release}`), fakeBzImage(release));
      const { image } = await imageFromRoot(join(ctx.versionDir, 'root'), ctx.entry.version, ctx.entry.series, 'slow');
      return { image, cacheable: true, origin: {} };
    },
  };
  return p;
}

describe('resolveKernel between concurrent callers', () => {
  it('obtains once when two callers resolve the same version at the same time', async () => {
    const dir = await mkdtemp(join(cacheDir, 'concurrent-'));
    const slow = slowProvider('6.6.89-test');
    const [a, b] = await Promise.all([
      resolveKernel('6.6', { cacheDir: dir, providers: [slow] }),
      resolveKernel('6.6', { cacheDir: dir, providers: [slow] }),
    ]);
    expect(a).toEqual(b);
    expect(slow.calls).toBe(1);
    expect(await readdir(dir)).not.toContain('.resolve.lock');
  });

  it('takes over a lock left by a dead process', async () => {
    const dir = await mkdtemp(join(cacheDir, 'stale-'));
    const dead = spawnSync('true').pid;
    await writeFile(join(dir, '.resolve.lock'), String(dead));
    const slow = slowProvider('6.6.89-test');
    const image = await resolveKernel('6.6', { cacheDir: dir, providers: [slow] });
    expect(image.release).toBe('6.6.89-test');
    expect(await readdir(dir)).not.toContain('.resolve.lock');
  });
});
