/** Boot module plans from modules.dep / modules.builtin / modules.softdep / modules.alias. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { bootModulePlan, moduleName } from '../../lab/kernels/modules.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xcl-modules-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function tree(name: string, files: Record<string, string>): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  for (const [f, c] of Object.entries(files)) await writeFile(join(d, f), c);
  return d;
}

describe('boot modules', () => {
  it('names modules from paths, compressed or not, dashes as underscores', () => {
    expect(moduleName('kernel/drivers/block/virtio_blk.ko.xz')).toBe('virtio_blk');
    expect(moduleName('kernel/drivers/char/hw_random/virtio-rng.ko')).toBe('virtio_rng');
    expect(moduleName('kernel/fs/ext4/ext4.ko.zst')).toBe('ext4');
  });

  it('orders dependencies first, follows soft pre-dependencies through aliases, lists built-ins', async () => {
    const d = await tree('mixed', {
      'modules.dep': [
        'kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz',
        'kernel/fs/jbd2/jbd2.ko.xz:',
        'kernel/fs/mbcache.ko.xz:',
        'kernel/lib/crc16.ko.xz:',
        'kernel/crypto/crc32c_generic.ko.xz:',
        'kernel/drivers/block/virtio_blk.ko.xz:',
        'kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz',
        'kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz',
        'kernel/net/core/failover.ko.xz:',
        '',
      ].join('\n'),
      'modules.builtin': 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n',
      'modules.softdep': '# comment\nsoftdep ext4 pre: crc32c\n',
      'modules.alias': 'alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n',
    });
    const plan = await bootModulePlan(d);
    // Wanted order is virtio_pci (built in), virtio_blk, ext4, virtio_net; each preceded by what it needs.
    expect(plan.load.map((m) => m.name)).toEqual([
      'virtio_blk', 'crc32c_generic', 'crc16', 'mbcache', 'jbd2', 'ext4', 'failover', 'net_failover', 'virtio_net',
    ]);
    expect(plan.load.find((m) => m.name === 'ext4')?.path).toBe('kernel/fs/ext4/ext4.ko.xz');
    expect(plan.builtin).toEqual(['virtio_pci']);
    expect(plan.missing).toEqual([]);
  });

  it('reports wanted modules that are neither modules nor built in', async () => {
    const d = await tree('lacking', { 'modules.dep': 'kernel/drivers/block/virtio_blk.ko:\n', 'modules.builtin': 'kernel/fs/ext4/ext4.ko\n' });
    const plan = await bootModulePlan(d);
    expect(plan.missing).toEqual(['virtio_pci', 'virtio_net']);
  });

  it('asks for depmod when modules.dep is absent', async () => {
    const d = await tree('nodep', { 'modules.builtin': '' });
    const err = await bootModulePlan(d).catch((e: unknown) => e);
    expect(isLabError(err, 'IMAGE')).toBe(true);
    expect((err as { remedy?: string }).remedy).toContain('depmod');
  });
});
