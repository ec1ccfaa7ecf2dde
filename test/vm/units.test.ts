/**
 * The VM layer's pure parts: console scanning, initramfs module ordering, cpufreq locking
 * (against a fake sysfs tree), pinning policy, guest command line.
 */
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsoleLog, classifyConsoleLine, consoleHint } from '../../lab/vm/console.ts';
import { initramfsModuleOrder } from '../../lab/vm/initramfs.ts';
import { choosePinning, lockCpufreq } from '../../lab/vm/tuning.ts';
import { ICOUNT_SHIFT, clockArgs, guestCmdline, resolveClock } from '../../lab/vm/qemu-args.ts';
import { isLabError } from '../../lab/errors.ts';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xcl-vm-unit-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});

describe('console scanning', () => {
  it('recognises the kernel failure signatures and nothing else', () => {
    expect(classifyConsoleLine('[    2.1] VFS: Unable to mount root fs on unknown-block(0,0)')).toBe('no-root');
    expect(classifyConsoleLine('[    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100')).toBe('panic');
    expect(classifyConsoleLine('[    9.9] Oops: 0000 [#1] PREEMPT SMP NOPTI')).toBe('oops');
    expect(classifyConsoleLine('[    9.9] BUG: kernel NULL pointer dereference, address: 0000000000000008')).toBe('bug');
    expect(classifyConsoleLine('[    0.5] virtio_blk virtio0: [vda] 1642496 512-byte logical blocks')).toBeNull();
    expect(classifyConsoleLine('xcl-guest: sshd started (pid 129)')).toBeNull();
    expect(classifyConsoleLine('DEBUG: nothing wrong')).toBeNull();
    // Starved TCG vCPUs: recorded, not fatal.
    expect(classifyConsoleLine('[   31.2] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [swapper/1:0]')).toBe('stall');
    expect(classifyConsoleLine('[   40.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:')).toBe('stall');
  });

  it('writes everything to the log, keeps a tail, finds problems and markers across chunk boundaries', async () => {
    const d = await tmp();
    const log = new ConsoleLog(join(d, 'console.log'), 3);
    log.push('[ 0.1] Linux version 6.1\r\n[ 0.2] line two\nxcl-initramfs: switch');
    log.push('ing to /sbin/lab-init on /dev/vda\n[ 1.0] Kernel pa');
    expect(log.problems).toHaveLength(0);
    log.push('nic - not syncing: test\n');
    expect(log.markers.initramfsSwitch).toBeTypeOf('number');
    expect(log.markers.sshdStarted).toBeUndefined();
    expect(log.problems.map((p) => p.kind)).toEqual(['panic']);
    log.push('[ 1.1] watchdog: BUG: soft lockup - CPU#0 stuck for 23s!\n');
    expect(log.fatalProblems().map((p) => p.kind)).toEqual(['panic']);
    expect(log.problems.map((p) => p.kind)).toEqual(['panic', 'stall']);
    expect(log.tail(10).split('\n')).toEqual([
      'xcl-initramfs: switching to /sbin/lab-init on /dev/vda',
      '[ 1.0] Kernel panic - not syncing: test',
      '[ 1.1] watchdog: BUG: soft lockup - CPU#0 stuck for 23s!',
    ]);
    await log.close();
    const file = await readFile(join(d, 'console.log'), 'utf8');
    expect(file).toContain('Linux version 6.1\r\n');
    expect(file).toContain('Kernel panic - not syncing: test');
  });

  it('gives a root-mount hint for root failures and an init hint for a dying init', () => {
    expect(consoleHint([{ kind: 'no-root', line: 'VFS: Unable to mount root fs', atMs: 1 }], '', '/x/console.log')).toMatch(/root filesystem.*\/x\/console\.log/s);
    expect(consoleHint([{ kind: 'panic', line: 'Kernel panic', atMs: 1 }], 'xcl-initramfs: root device /dev/vdz did not appear', null)).toMatch(/root filesystem/);
    expect(consoleHint([{ kind: 'panic', line: 'Kernel panic', atMs: 1 }], 'Kernel panic - not syncing: Attempted to kill init!', null)).toMatch(/init exited/);
  });
});

describe('initramfs module order', () => {
  const dep = [
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
    'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/char/hw_random/rng-core.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/char/hw_random/rng-core.ko:',
  ].join('\n');
  const builtin = 'kernel/fs/ext4/ext4.ko\nkernel/fs/jbd2/jbd2.ko\n';

  it('puts every module after its dependencies, once, and skips built-ins', () => {
    const { order, missing } = initramfsModuleOrder(dep, builtin, ['virtio_pci', 'virtio_blk', 'ext4'], ['virtio_rng', 'virtio_net']);
    expect(missing).toEqual([]);
    const names = order.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).not.toContain('ext4');
    expect(names).not.toContain('virtio_net'); // optional and absent
    for (const [before, after] of [
      ['virtio_ring', 'virtio'],
      ['virtio', 'virtio_pci'],
      ['virtio_pci_modern_dev', 'virtio_pci'],
      ['virtio', 'virtio_blk'],
      ['rng_core', 'virtio_rng'],
    ] as const) {
      expect(names.indexOf(before)).toBeGreaterThanOrEqual(0);
      expect(names.indexOf(before)).toBeLessThan(names.indexOf(after));
    }
    expect(order.find((m) => m.name === 'virtio_blk')?.path).toBe('kernel/drivers/block/virtio_blk.ko.xz');
  });

  it('reports required modules the kernel has neither as module nor built in', () => {
    const { missing } = initramfsModuleOrder(dep, builtin, ['virtio_pci', 'nvme'], []);
    expect(missing).toEqual(['nvme']);
  });
});

describe('host tuning', () => {
  it('pins to the highest host CPUs only when one is left over', () => {
    expect(choosePinning(3, 8)).toEqual({ cpus: [5, 6, 7] });
    expect(choosePinning(3, 3)).toHaveProperty('reason');
    expect(choosePinning(3, 2)).toHaveProperty('reason');
    expect(choosePinning(2, 4, [0, 3])).toEqual({ cpus: [0, 3] });
    expect(choosePinning(2, 4, [0, 9])).toHaveProperty('reason');
  });

  async function fakeCpu(root: string, cpu: number, files: Record<string, string>): Promise<string> {
    const d = join(root, `cpu${cpu}`, 'cpufreq');
    await mkdir(d, { recursive: true });
    for (const [k, v] of Object.entries(files)) await writeFile(join(d, k), `${v}\n`);
    return d;
  }

  it('fixes governor and frequency on a cpufreq tree, then restores what was there', async () => {
    const root = await tmp();
    const base = {
      scaling_governor: 'powersave',
      scaling_available_governors: 'performance powersave',
      scaling_min_freq: '800000',
      scaling_max_freq: '3600000',
      cpuinfo_max_freq: '3600000',
    };
    const d1 = await fakeCpu(root, 1, { ...base, base_frequency: '2400000' });
    const d2 = await fakeCpu(root, 2, base);
    const lock = await lockCpufreq([1, 2], root);
    expect(lock.result.applied).toBe(true);
    expect(lock.result.cpus).toEqual([
      { cpu: 1, governor: 'performance', minKHz: 2400000, maxKHz: 2400000 },
      { cpu: 2, governor: 'performance', minKHz: 3600000, maxKHz: 3600000 },
    ]);
    await lock.restore();
    for (const d of [d1, d2]) {
      expect((await readFile(join(d, 'scaling_governor'), 'utf8')).trim()).toBe('powersave');
      expect((await readFile(join(d, 'scaling_min_freq'), 'utf8')).trim()).toBe('800000');
      expect((await readFile(join(d, 'scaling_max_freq'), 'utf8')).trim()).toBe('3600000');
    }
  });

  it('records why it could not tune a host without cpufreq', async () => {
    const root = await tmp();
    const lock = await lockCpufreq([0], root);
    expect(lock.result.applied).toBe(false);
    expect(lock.result.reason).toMatch(/no .*cpu0\/cpufreq/);
    await lock.restore();
  });
});

describe('guest command line', () => {
  it('isolates the benchmark CPUs, panics fast, and lets later parameters override', () => {
    const c = guestCmdline({ isolcpus: '1,2', extra: ['root=/dev/vdz'] });
    expect(c.split(' ')).toContain('isolcpus=1,2');
    expect(c.split(' ')).toContain('panic=-1');
    expect(c.lastIndexOf('root=/dev/vdz')).toBeGreaterThan(c.indexOf('root=/dev/vda'));
    expect(guestCmdline({ isolcpus: null })).not.toContain('isolcpus');
  });
});

describe('console report', () => {
  it('keeps the lab boot-step lines even when a long call trace fills the tail', async () => {
    const log = new ConsoleLog(null);
    log.push('xcl-initramfs: root device /dev/vdz did not appear in 5 s\n');
    log.push('[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n');
    for (let i = 0; i < 100; i++) log.push(`[ 1.1] trace line ${i}\n`);
    const report = log.report(10);
    expect(report.split('\n')[0]).toBe('xcl-initramfs: root device /dev/vdz did not appear in 5 s');
    expect(report).toContain('trace line 99');
    expect(report).not.toContain('trace line 80');
    await log.close();
  });
});

describe('clock arguments', () => {
  it('wall clock: only the accelerator', () => {
    expect(clockArgs('kvm', 'wall')).toEqual(['-accel', 'kvm']);
    expect(clockArgs('tcg', 'wall')).toEqual(['-accel', 'tcg']);
  });
  it('icount: single-threaded TCG, the instruction counter running ahead of real time, the RTC on the virtual clock', () => {
    expect(clockArgs('tcg', 'icount')).toEqual(['-accel', 'tcg,thread=single', '-icount', `shift=${ICOUNT_SHIFT},align=off,sleep=off`, '-rtc', 'clock=vm']);
  });
  it('auto: the instruction counter exactly where the guest is emulated; an explicit choice stands', () => {
    expect(resolveClock('auto', 'tcg')).toBe('icount');
    expect(resolveClock('auto', 'kvm')).toBe('wall');
    expect(resolveClock('wall', 'tcg')).toBe('wall');
    expect(resolveClock('icount', 'tcg')).toBe('icount');
  });
  it('icount under KVM is refused with the fix', () => {
    let err: unknown;
    try {
      clockArgs('kvm', 'icount');
    } catch (e) {
      err = e;
    }
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect((err as Error).message).toMatch(/instruction counter .* needs TCG/);
  });
});
