/**
 * The kernel.org provider against a loopback server serving a fake source tarball whose Makefile
 * simulates the kernel build: download, sha256sums check, defconfig + fragment + olddefconfig,
 * verification of every requested option, bzImage, cache.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { missingBuildTools } from '../../lab/kernels/build.ts';
import { checkFeature } from '../support/requirements.ts';
import { LAB_CONFIG_FRAGMENT } from '../../lab/kernels/catalog.ts';
import { parseFragment, readKconfig } from '../../lab/kernels/kconfig.ts';
import { kernelOrgProvider } from '../../lab/kernels/providers/kernel-org.ts';
import { providerContext, resolveKernel } from '../../lab/kernels/resolve.ts';
import { fakeBzImage, fakeSourceTarball, serveDir, sha256, type FakeServer } from './support.ts';

const TARBALL = 'linux-6.1.137.tar.xz'; // the catalog's kernelOrg.tarball for 6.1
const missingTools = await missingBuildTools();
const needBuild = checkFeature('kernel-build-tools', missingTools.length > 0 ? `kernel.org build path: needs ${missingTools.join(', ')}` : null);

let work = '';
let server: FakeServer;
let www = '';
const savedEnv = { ...process.env };
const fragment = parseFragment(await readFile(LAB_CONFIG_FRAGMENT, 'utf8'));

/** Publishes a tarball as v6.x/linux-6.1.137.tar.xz with a sha256sums.asc listing `sum` (default: its own). */
async function publish(tarball: string, sum?: string, listed = true): Promise<void> {
  await mkdir(join(www, 'v6.x'), { recursive: true });
  const data = await readFile(tarball);
  await writeFile(join(www, 'v6.x', TARBALL), data);
  const lines = ['-----BEGIN PGP SIGNED MESSAGE-----', 'Hash: SHA256', '', `${'0'.repeat(64)}  linux-6.0.tar.xz`];
  if (listed) lines.push(`${sum ?? sha256(data)}  ${TARBALL}`);
  lines.push('-----BEGIN PGP SIGNATURE-----', 'fake', '-----END PGP SIGNATURE-----', '');
  await writeFile(join(www, 'v6.x', 'sha256sums.asc'), lines.join('\n'));
}

async function freshCache(): Promise<string> {
  return mkdtemp(join(work, 'cache-'));
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'xcl-kernelorg-'));
  www = join(work, 'www');
  await mkdir(www, { recursive: true });
  server = await serveDir(www);
  process.env.XCL_KERNEL_ORG_URL = server.url;
});

afterAll(async () => {
  process.env = savedEnv;
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(needBuild.skip)('kernel.org provider (loopback fixture, fake source tree)', () => {
  it('downloads, verifies, configures with the lab fragment, builds and caches', async () => {
    // A 6.1-like tree: every fragment symbol exists except KCSAN (optional: must be skipped).
    const symbols = [...fragment.options.keys()].filter((o) => o !== 'CONFIG_KCSAN');
    const tarball = await fakeSourceTarball(join(work, 'ok'), { name: TARBALL, symbols });
    await publish(tarball);
    const cacheDir = await freshCache();
    const image = await resolveKernel('6.1', { cacheDir, providers: [kernelOrgProvider] });
    expect(image.provider).toBe('kernel.org');
    expect(image.release).toBe('6.1.137-xcl-fake');
    expect(image.sha256).toBe(sha256(fakeBzImage('6.1.137-xcl-fake')));
    expect(image.modulesRoot).toBeNull();
    expect(image.bootModules).toEqual([]);
    // The final config has the fragment's values over defconfig's (VETH=m → y, PROVE_LOCKING off).
    const cfg = await readKconfig(image.configPath ?? '');
    expect(cfg.get('CONFIG_VETH')).toBe('y');
    expect(cfg.get('CONFIG_BPF_JIT_ALWAYS_ON')).toBe('y');
    expect(cfg.get('CONFIG_PROVE_LOCKING')).toBe('n');
    expect(cfg.get('CONFIG_X86_64')).toBe('y');
    expect(cfg.has('CONFIG_KCSAN')).toBe(false);
    const manifest = JSON.parse(await readFile(join(cacheDir, '6.1', 'image.json'), 'utf8')) as { origin: { skippedOptions: string[] } };
    expect(manifest.origin.skippedOptions).toEqual(['CONFIG_KCSAN']);
    // Second resolve comes from the cache: no provider needed.
    expect(await resolveKernel('6.1', { cacheDir, providers: [] })).toEqual(image);
  });

  it('names every option olddefconfig dropped', async () => {
    const tarball = await fakeSourceTarball(join(work, 'drop'), {
      name: TARBALL,
      symbols: fragment.options.keys(),
      drop: ['CONFIG_DEBUG_INFO_BTF=', 'CONFIG_XDP_SOCKETS='],
    });
    await publish(tarball);
    const err = await kernelOrgProvider.obtain(providerContext('6.1', { cacheDir: await freshCache() })).catch((e: unknown) => e);
    expect(isLabError(err, 'KERNEL_BUILD')).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toContain('olddefconfig did not keep');
    expect(msg).toContain('CONFIG_DEBUG_INFO_BTF (wanted y, got not set)');
    expect(msg).toContain('CONFIG_XDP_SOCKETS (wanted y, got not set)');
    expect(msg).not.toContain('CONFIG_BPF_SYSCALL');
    expect((err as { remedy?: string }).remedy).toContain('pahole');
  });

  it('refuses a version that lacks a non-optional option', async () => {
    const symbols = [...fragment.options.keys()].filter((o) => o !== 'CONFIG_XDP_SOCKETS');
    const tarball = await fakeSourceTarball(join(work, 'absent'), { name: TARBALL, symbols });
    await publish(tarball);
    const err = await kernelOrgProvider.obtain(providerContext('6.1', { cacheDir: await freshCache() })).catch((e: unknown) => e);
    expect(isLabError(err, 'KERNEL_BUILD')).toBe(true);
    expect((err as Error).message).toContain('has no option CONFIG_XDP_SOCKETS');
  });

  it('rejects a tarball whose sha256 differs from sha256sums.asc', async () => {
    const tarball = await fakeSourceTarball(join(work, 'bad'), { name: TARBALL, symbols: fragment.options.keys() });
    await publish(tarball, sha256('another tarball'));
    const cacheDir = await freshCache();
    const err = await kernelOrgProvider.obtain(providerContext('6.1', { cacheDir })).catch((e: unknown) => e);
    expect(isLabError(err, 'CHECKSUM')).toBe(true);
    expect((err as Error).message).toContain(TARBALL);
  });

  it('refuses a tarball sha256sums.asc does not list', async () => {
    const tarball = await fakeSourceTarball(join(work, 'unlisted'), { name: TARBALL, symbols: fragment.options.keys() });
    await publish(tarball, undefined, false);
    const err = await kernelOrgProvider.obtain(providerContext('6.1', { cacheDir: await freshCache() })).catch((e: unknown) => e);
    expect(isLabError(err, 'CHECKSUM')).toBe(true);
    expect((err as Error).message).toContain(`${TARBALL} is not listed`);
  });

  it('reports 404 for a series directory the server lacks', async () => {
    const err = await kernelOrgProvider.obtain(providerContext('4.19', { cacheDir: await freshCache() })).catch((e: unknown) => e);
    expect(isLabError(err, 'DOWNLOAD')).toBe(true);
    expect((err as Error).message).toMatch(/v4\.x\/sha256sums\.asc: HTTP 404/);
  });
});
