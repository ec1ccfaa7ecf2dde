/**
 * Opt-in (XCL_LONG_TESTS=1): builds Debian's linux-source-6.1 with the lab's config fragment
 * through the same code path as a kernel.org tarball (buildFromTarball), boots it, and builds an
 * out-of-tree module against the files the build kept. 30+ minutes on 2 cores.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFromTarball } from '../../lab/kernels/build.ts';
import { catalogEntry } from '../../lab/kernels/catalog.ts';
import { readKconfig } from '../../lab/kernels/kconfig.ts';
import { bzImageRelease } from '../../lab/kernels/providers/local.ts';
import { fetchDebianSource } from '../../lab/kernels/providers/debian.ts';
import { bootVm } from '../../lab/vm/boot.ts';
import type { ProgressEvent } from '../../lab/progress.ts';

const enabled = process.env.XCL_LONG_TESTS === '1';
if (!enabled) console.warn('[skip] long kernel build test: set XCL_LONG_TESTS=1');

describe.skipIf(!enabled)('building linux-source-6.1 with the lab fragment', () => {
  let cacheDir = '';
  afterAll(async () => {
    if (cacheDir && process.env.XCL_KEEP_LONG_BUILD !== '1') await rm(cacheDir, { recursive: true, force: true });
  });

  it('produces a bzImage whose config has every lab option, and it boots the lab image', { timeout: 4 * 3600_000 }, async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'xcl-long-'));
    const entry = catalogEntry('6.1');
    if (!entry.debian) throw new Error('catalog has no Debian entry for 6.1');
    const log = (e: ProgressEvent): void => {
      if (e.kind === 'phase-start' || e.kind === 'phase-end' || e.kind === 'log') console.log(new Date().toISOString(), JSON.stringify(e));
    };
    const t0 = Date.now();
    const src = await fetchDebianSource(cacheDir, entry.debian, log);
    console.log(`source fetched in ${(Date.now() - t0) / 1000} s: ${src.tarball}`);
    const t1 = Date.now();
    const built = await buildFromTarball(src.tarball, {
      version: '6.1',
      series: '6.1',
      provider: 'debian-source',
      cacheDir,
      versionDir: join(cacheDir, '6.1'),
      progress: log,
    });
    console.log(`built in ${(Date.now() - t1) / 1000} s: ${JSON.stringify(built.image)}`);
    expect(built.image.release).toMatch(/^6\.1\./);
    expect(await bzImageRelease(built.image.vmlinuz)).toBe(built.image.release);
    const cfg = await readKconfig(built.image.configPath ?? '');
    for (const o of ['CONFIG_BPF_JIT_ALWAYS_ON', 'CONFIG_DEBUG_INFO_BTF', 'CONFIG_VIRTIO_BLK', 'CONFIG_VETH', 'CONFIG_KPROBE_EVENTS']) {
      expect(cfg.get(o), o).toBe('y');
    }
    expect(cfg.get('CONFIG_PROVE_LOCKING') ?? 'n').toBe('n');
    expect(cfg.get('CONFIG_KASAN') ?? 'n').toBe('n');
    // Everything the guest needs is built in: no module to load before the root disk.
    expect(built.image.bootModules).toEqual([]);
    // And it boots the lab's image: the guest answers over SSH with the release we built.
    await using vm = await bootVm({ kernel: built.image, accel: 'tcg', cpus: 1, name: `xcl-long-${process.pid}`, progress: log });
    expect((await vm.run(['uname', '-r'])).stdout.trim()).toBe(built.image.release);
    expect((await vm.run(['cat', '/proc/sys/net/core/bpf_jit_enable'])).stdout.trim()).toBe('1');
    // The tree is gone, but its module build files stayed: an out-of-tree module builds against them.
    expect(built.headers).not.toBeNull();
    const modDir = await mkdtemp(join(cacheDir, 'hello-'));
    await writeFile(join(modDir, 'hello.c'), '#include <linux/module.h>\nstatic int __init hello_init(void) { return 0; }\nmodule_init(hello_init);\nMODULE_LICENSE("GPL");\n');
    await writeFile(join(modDir, 'Kbuild'), 'obj-m := hello.o\n');
    const kbuild = join(built.image.modulesRoot ?? '', 'lib', 'modules', built.image.release, 'build');
    await execa('make', ['-C', kbuild, `M=${modDir}`, 'modules'], { stdio: 'inherit' });
    const info = await execa('modinfo', ['-F', 'vermagic', join(modDir, 'hello.ko')]);
    expect(String(info.stdout).split(' ')[0]).toBe(built.image.release);
  });
});
