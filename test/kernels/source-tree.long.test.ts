/**
 * Opt-in (XCL_LONG_TESTS=1 and XCL_KERNEL_SRC_<ver>=PATH): builds a real kernel source tree or
 * tarball through the source provider (toolchain choice, fix-ups, lab fragment), boots it in the
 * lab's VM and checks the guest runs the release the provenance records. 15-60 minutes per kernel
 * on 2 cores. XCL_LONG_SOURCE_VERSION picks the catalog version (default: the first with a source set).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readManifest } from '../../lab/kernels/cache.ts';
import { readKconfig } from '../../lab/kernels/kconfig.ts';
import { bzImageRelease } from '../../lab/kernels/providers/local.ts';
import { sourceEnvName, sourceProvider } from '../../lab/kernels/providers/source.ts';
import { resolveKernel } from '../../lab/kernels/resolve.ts';
import { KERNEL_VERSIONS } from '../../lab/kernels/types.ts';
import { bootVm } from '../../lab/vm/boot.ts';
import type { ProgressEvent } from '../../lab/progress.ts';

const version = process.env.XCL_LONG_SOURCE_VERSION ?? KERNEL_VERSIONS.find((v) => process.env[sourceEnvName(v)]);
const enabled = process.env.XCL_LONG_TESTS === '1' && version !== undefined && Boolean(process.env[sourceEnvName(version)]);
if (!enabled) console.warn('[skip] long source build test: set XCL_LONG_TESTS=1 and XCL_KERNEL_SRC_<ver>=PATH (a kernel tree or tarball)');

describe.skipIf(!enabled)('building a kernel source with the source provider', () => {
  let cacheDir = '';
  afterAll(async () => {
    if (cacheDir && process.env.XCL_KEEP_LONG_BUILD !== '1') await rm(cacheDir, { recursive: true, force: true });
  });

  it('builds with a working toolchain, records it, and boots the lab image', { timeout: 4 * 3600_000 }, async () => {
    if (!version) throw new Error('no version');
    cacheDir = await mkdtemp(join(tmpdir(), 'xcl-long-src-'));
    const log = (e: ProgressEvent): void => {
      if (e.kind === 'phase-start' || e.kind === 'phase-end' || e.kind === 'log') console.log(new Date().toISOString(), JSON.stringify(e));
    };
    const image = await resolveKernel(version, { cacheDir, providers: [sourceProvider], progress: log });
    expect(image.provider).toBe('source');
    expect(await bzImageRelease(image.vmlinuz)).toBe(image.release);
    const origin = (await readManifest(join(cacheDir, version)))?.origin as { release: string; toolchain: { cc: string; ccVersion: string; binutils: string } };
    expect(origin.release).toBe(image.release);
    expect(origin.toolchain.ccVersion).toMatch(/^\d+\./);
    const cfg = await readKconfig(image.configPath ?? '');
    for (const o of ['CONFIG_BPF_JIT_ALWAYS_ON', 'CONFIG_VETH', 'CONFIG_KPROBE_EVENTS', 'CONFIG_VIRTIO_BLK']) expect(cfg.get(o), o).toBe('y');
    // A second resolve of the same source is a cache hit.
    expect(await resolveKernel(version, { cacheDir, providers: [sourceProvider] })).toEqual(image);
    await using vm = await bootVm({ kernel: image, accel: 'tcg', cpus: 2, name: `xcl-long-src-${process.pid}`, progress: log });
    expect((await vm.run(['uname', '-r'])).stdout.trim()).toBe(image.release);
  });
});
