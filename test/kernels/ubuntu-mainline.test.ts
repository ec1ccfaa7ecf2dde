/**
 * The Ubuntu mainline provider against a loopback HTTP server serving a fake version directory:
 * tiny .debs built here with dpkg-deb and a CHECKSUMS file.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { resolveKernel } from '../../lab/kernels/resolve.ts';
import { ubuntuMainlineProvider } from '../../lab/kernels/providers/ubuntu-mainline.ts';
import { providerContext } from '../../lab/kernels/resolve.ts';
import { buildDeb, deadPort, fakeBzImage, fakeModules, LAB_CONFIG_LINES, serveDir, sha256, type FakeServer } from './support.ts';

const RELEASE = '6.1.137-0601137-generic';
const IMAGE_DEB = `linux-image-unsigned-${RELEASE}_6.1.137-0601137.202505021233_amd64.deb`;
const MODULES_DEB = `linux-modules-${RELEASE}_6.1.137-0601137.202505021233_amd64.deb`;
const HEADERS_DEB = `linux-headers-${RELEASE}_6.1.137-0601137.202505021233_amd64.deb`;

let work = '';
let server: FakeServer;
let versionDir = '';
const savedEnv = { ...process.env };

async function writeChecksums(sums: Record<string, string>): Promise<void> {
  const sha256Lines = Object.entries(sums).map(([f, s]) => `${s}  amd64/${f}`);
  const text = [
    '# Checksums, check with the command below:',
    '#     shasum -c CHECKSUMS',
    '#',
    '# Checksums-Sha1:',
    ...Object.keys(sums).map((f) => `${'a'.repeat(40)}  amd64/${f}`),
    '#',
    '# Checksums-Sha256:',
    ...sha256Lines,
    '',
  ].join('\n');
  await writeFile(join(versionDir, 'CHECKSUMS'), text);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'xcl-mainline-'));
  versionDir = join(work, 'www', 'mainline', 'v6.1.137', 'amd64');
  await mkdir(versionDir, { recursive: true });
  await buildDeb(
    work,
    'image',
    { [`boot/vmlinuz-${RELEASE}`]: fakeBzImage(RELEASE), [`boot/config-${RELEASE}`]: LAB_CONFIG_LINES },
    join(versionDir, IMAGE_DEB),
  );
  await buildDeb(work, 'modules', fakeModules(RELEASE), join(versionDir, MODULES_DEB));
  await writeFile(join(versionDir, HEADERS_DEB), 'not needed');
  server = await serveDir(join(work, 'www'));
  process.env.XCL_UBUNTU_MAINLINE_URL = `${server.url}/mainline`;
});

afterAll(async () => {
  process.env = savedEnv;
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function freshCache(): Promise<string> {
  return mkdtemp(join(work, 'cache-'));
}

async function sumsOfServedDebs(): Promise<Record<string, string>> {
  return {
    [IMAGE_DEB]: sha256(await readFile(join(versionDir, IMAGE_DEB))),
    [MODULES_DEB]: sha256(await readFile(join(versionDir, MODULES_DEB))),
    [HEADERS_DEB]: sha256(await readFile(join(versionDir, HEADERS_DEB))),
  };
}

describe('ubuntu-mainline provider (loopback fixture)', () => {
  afterEach(() => {
    server.requests.length = 0;
  });

  it('downloads the image and modules debs, verifies them, and resolves a cached image', async () => {
    await writeChecksums(await sumsOfServedDebs());
    const cacheDir = await freshCache();
    const image = await resolveKernel('6.1', { cacheDir, providers: [ubuntuMainlineProvider] });
    expect(image.provider).toBe('ubuntu-mainline');
    expect(image.release).toBe(RELEASE);
    expect(image.sha256).toBe(sha256(fakeBzImage(RELEASE)));
    expect(await readFile(image.vmlinuz)).toEqual(fakeBzImage(RELEASE));
    expect(image.modulesRoot).not.toBeNull();
    expect(image.configPath).toMatch(new RegExp(`config-${RELEASE}$`));
    // Built-ins (virtio_pci, ext4) are not loaded; each module comes after its dependencies.
    expect(image.bootModules).not.toContain('virtio_pci');
    expect(image.bootModules).not.toContain('ext4');
    expect(image.bootModules).not.toContain('veth');
    const at = (m: string): number => image.bootModules.indexOf(m);
    for (const m of ['virtio', 'virtio_ring', 'virtio_blk', 'failover', 'net_failover', 'virtio_net']) expect(at(m), m).toBeGreaterThanOrEqual(0);
    expect(at('virtio')).toBeLessThan(at('virtio_ring'));
    expect(at('virtio_ring')).toBeLessThan(at('virtio_blk'));
    expect(at('failover')).toBeLessThan(at('net_failover'));
    expect(at('net_failover')).toBeLessThan(at('virtio_net'));
    // The headers package is never fetched.
    expect(server.requests.some((r) => r.includes('linux-headers'))).toBe(false);

    // Second resolve: from the cache, even with the server gone from the provider list.
    server.requests.length = 0;
    const again = await resolveKernel('6.1', { cacheDir, providers: [] });
    expect(again).toEqual(image);
    expect(server.requests).toEqual([]);
  });

  it('rejects a .deb whose sha256 differs from CHECKSUMS and deletes it', async () => {
    const sums = await sumsOfServedDebs();
    sums[MODULES_DEB] = sha256('something else');
    await writeChecksums(sums);
    const cacheDir = await freshCache();
    const ctx = providerContext('6.1', { cacheDir });
    const err = await ubuntuMainlineProvider.obtain(ctx).catch((e: unknown) => e);
    expect(isLabError(err, 'CHECKSUM')).toBe(true);
    expect((err as Error).message).toContain(MODULES_DEB);
    expect((err as Error).message).toContain(sha256('something else'));
    const resolved = await resolveKernel('6.1', { cacheDir, providers: [ubuntuMainlineProvider] }).catch((e: unknown) => e);
    expect(isLabError(resolved, 'NO_PROVIDER')).toBe(true);
    expect((resolved as Error).message).toMatch(/ubuntu-mainline: .*does not match/);
    const kept = await readdir(join(cacheDir, 'downloads', 'ubuntu-mainline', 'v6.1.137'));
    expect(kept).not.toContain(MODULES_DEB);
  });

  it('refuses a .deb that CHECKSUMS does not list', async () => {
    const sums = await sumsOfServedDebs();
    delete sums[IMAGE_DEB];
    await writeChecksums(sums);
    const err = await ubuntuMainlineProvider.obtain(providerContext('6.1', { cacheDir: await freshCache() })).catch((e: unknown) => e);
    expect(isLabError(err, 'CHECKSUM')).toBe(true);
    expect((err as Error).message).toContain(`${IMAGE_DEB} is not listed`);
  });

  it('reports a version directory the server does not have (404)', async () => {
    await writeChecksums(await sumsOfServedDebs());
    // 5.4's catalog directory (v5.4.x) is not served.
    const err = await ubuntuMainlineProvider.obtain(providerContext('5.4', { cacheDir: await freshCache() })).catch((e: unknown) => e);
    expect(isLabError(err, 'DOWNLOAD')).toBe(true);
    expect((err as Error).message).toMatch(/HTTP 404/);
    expect((err as Error).message).toContain('/mainline/v5.4.');
  });

  it('fails fast with the host and error code when nothing listens', async () => {
    const port = await deadPort();
    process.env.XCL_UBUNTU_MAINLINE_URL = `http://127.0.0.1:${port}/mainline`;
    try {
      const err = await ubuntuMainlineProvider.obtain(providerContext('6.1', { cacheDir: await freshCache() })).catch((e: unknown) => e);
      expect(isLabError(err, 'DOWNLOAD')).toBe(true);
      expect((err as Error).message).toBe(`cannot reach 127.0.0.1:${port}: ECONNREFUSED`);
    } finally {
      process.env.XCL_UBUNTU_MAINLINE_URL = `${server.url}/mainline`;
    }
  });

  it('handles the older layout: one CHECKSUMS at the top listing amd64/ paths, no directory index', async () => {
    const release = '6.12.26-061226-generic';
    const image = `linux-image-unsigned-${release}_6.12.26-061226.202504301237_amd64.deb`;
    const modules = `linux-modules-${release}_6.12.26-061226.202504301237_amd64.deb`;
    const top = join(work, 'www-old', 'mainline', 'v6.12.26');
    await buildDeb(work, 'old-image', { [`boot/vmlinuz-${release}`]: fakeBzImage(release), [`boot/config-${release}`]: LAB_CONFIG_LINES }, join(top, 'amd64', image));
    await buildDeb(work, 'old-modules', fakeModules(release), join(top, 'amd64', modules));
    const lines = [image, modules].map(async (f) => `${sha256(await readFile(join(top, 'amd64', f)))}  amd64/${f}`);
    await writeFile(join(top, 'CHECKSUMS'), `# Checksums-Sha256:\n${(await Promise.all(lines)).join('\n')}\n`);
    const old = await serveDir(join(work, 'www-old'), { index: false });
    process.env.XCL_UBUNTU_MAINLINE_URL = `${old.url}/mainline`;
    try {
      const got = await resolveKernel('6.12', { cacheDir: await freshCache(), providers: [ubuntuMainlineProvider] });
      expect(got.release).toBe(release);
      expect(got.sha256).toBe(sha256(fakeBzImage(release)));
      expect(old.requests).toContain(`/mainline/v6.12.26/amd64/${image}`);
      expect(old.requests).toContain(`/mainline/v6.12.26/amd64/${modules}`);
    } finally {
      process.env.XCL_UBUNTU_MAINLINE_URL = `${server.url}/mainline`;
      await old.close();
    }
  });
});
