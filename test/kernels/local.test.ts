/** The local-image provider: a bzImage file or a directory, from the option or XCL_KERNEL_<ver>. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { bzImageRelease, localEnvName, localProvider } from '../../lab/kernels/providers/local.ts';
import { resolveKernel, type Provider } from '../../lab/kernels/resolve.ts';
import { fakeBzImage, fakeModules, sha256 } from './support.ts';

let work = '';
let cacheDir = '';
const savedEnv = { ...process.env };
const failing: Provider = {
  name: 'failing',
  available: async () => ({ ok: false, reason: 'test' }),
  obtain: async () => Promise.reject(new Error('should not be reached')),
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'xcl-local-'));
  cacheDir = join(work, 'cache');
});
afterEach(() => {
  process.env = { ...savedEnv };
});
afterAll(async () => {
  process.env = savedEnv;
  if (work) await rm(work, { recursive: true, force: true });
});

describe('local provider', () => {
  it('names the environment variable per version', () => {
    expect(localEnvName('5.4')).toBe('XCL_KERNEL_5_4');
    expect(localEnvName('6.12')).toBe('XCL_KERNEL_6_12');
  });

  it('reads the release from a bzImage boot header and rejects other files', async () => {
    const img = join(work, 'bz');
    await writeFile(img, fakeBzImage('5.4.293-lab'));
    expect(await bzImageRelease(img)).toBe('5.4.293-lab');
    const elf = join(work, 'vmlinux');
    await writeFile(elf, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(0x400)]));
    expect(await bzImageRelease(elf)).toBeNull();
  });

  it('uses a bzImage given through XCL_KERNEL_<ver>, ahead of every other provider and without caching', async () => {
    const img = join(work, 'bzImage-5.4');
    await writeFile(img, fakeBzImage('5.4.293-lab'));
    process.env.XCL_KERNEL_5_4 = img;
    const image = await resolveKernel('5.4', { cacheDir, providers: [localProvider, failing] });
    expect(image).toEqual({
      version: '5.4',
      release: '5.4.293-lab',
      vmlinuz: img,
      modulesRoot: null,
      configPath: null,
      sha256: sha256(fakeBzImage('5.4.293-lab')),
      provider: 'local',
      bootModules: [],
      origin: { provider: 'local', from: `image ${img} (XCL_KERNEL_5_4)`, source: null, toolchain: null, patches: [], headers: null },
    });
  });

  it('uses a directory with vmlinuz, config and lib/modules given as an option', async () => {
    const dir = join(work, 'tree');
    const release = '4.19.325-lab';
    await mkdir(join(dir, 'boot'), { recursive: true });
    await writeFile(join(dir, 'boot', `vmlinuz-${release}`), fakeBzImage(release));
    await writeFile(join(dir, 'boot', `config-${release}`), 'CONFIG_BPF=y\n');
    for (const [p, content] of Object.entries(fakeModules(release))) {
      await mkdir(join(dir, p, '..'), { recursive: true });
      await writeFile(join(dir, p), content);
    }
    const image = await resolveKernel('4.19', { cacheDir, localImage: dir, providers: [localProvider, failing] });
    expect(image.vmlinuz).toBe(join(dir, 'boot', `vmlinuz-${release}`));
    expect(image.configPath).toBe(join(dir, 'boot', `config-${release}`));
    expect(image.modulesRoot).toBe(dir);
    expect(image.bootModules).toEqual(['virtio', 'virtio_ring', 'virtio_blk', 'failover', 'net_failover', 'virtio_net']);
  });

  it('refuses an image of another series, naming both', async () => {
    const img = join(work, 'bzImage-6.1');
    await writeFile(img, fakeBzImage('6.1.137'));
    process.env.XCL_KERNEL_5_10 = img;
    const err = await resolveKernel('5.10', { cacheDir, providers: [localProvider, failing] }).catch((e: unknown) => e);
    expect(isLabError(err, 'IMAGE')).toBe(true);
    expect((err as Error).message).toContain('6.1.137 is not in the 5.10 series');
    expect((err as Error).message).toContain('XCL_KERNEL_5_10');
  });

  it('reports a path that does not exist', async () => {
    const err = await resolveKernel('5.15', { cacheDir, localImage: join(work, 'nope'), providers: [localProvider] }).catch((e: unknown) => e);
    expect(isLabError(err, 'MISSING_FILE')).toBe(true);
    expect((err as Error).message).toContain(join(work, 'nope'));
  });

  it('reports a directory without a kernel image', async () => {
    const dir = join(work, 'empty');
    await mkdir(dir, { recursive: true });
    const err = await resolveKernel('5.15', { cacheDir, localImage: dir, providers: [localProvider] }).catch((e: unknown) => e);
    expect(isLabError(err, 'MISSING_FILE')).toBe(true);
    expect((err as Error).message).toContain('no kernel image');
  });
});
