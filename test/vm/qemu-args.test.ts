/**
 * QEMU's argument builders (lab/vm/qemu-args.ts), pure and tested alone: each builder's exact
 * output, then the whole guest argv for an instruction-timed TCG guest, a multi-vCPU TCG guest and
 * a KVM guest, and the KVM probe's argv. Any change to an argument fails here.
 */
import { describe, expect, it } from 'vitest';
import {
  cpuArgs,
  defaultIsolcpus,
  driveArgs,
  guestArgs,
  guestCmdline,
  headlessArgs,
  kernelArgs,
  kvmProbeArgs,
  machineArgs,
  memoryArgs,
  nameArgs,
  networkArgs,
  qmpArgs,
  rngArgs,
  serialConsoleArgs,
  smpArgs,
  type GuestSpec,
} from '../../lab/vm/qemu-args.ts';

const CMDLINE_BASE = 'console=ttyS0,115200 root=/dev/vda rw panic=-1 random.trust_cpu=on i8042.noaux i8042.nomux i8042.nopnp';

const base: Omit<GuestSpec, 'accel' | 'clock' | 'cpus' | 'append' | 'initrd'> = {
  name: 'xcl-vm-7-1',
  memoryMb: 1024,
  qmpPath: '/tmp/xcl-vm-7-1-abc/qmp.sock',
  vmlinuz: '/cache/6.1/vmlinuz',
  rootImage: '/cache/images/6.1.0-x/root.ext4',
  sshPort: 40123,
};

/** The tail every lab guest shares: disk, network, entropy. */
const DEVICES = [
  '-drive', 'file=/cache/images/6.1.0-x/root.ext4,format=raw,if=none,id=root,snapshot=on',
  '-device', 'virtio-blk-pci,drive=root',
  '-netdev', 'user,id=net0,hostfwd=tcp:127.0.0.1:40123-:22',
  '-device', 'virtio-net-pci,netdev=net0',
  '-device', 'virtio-rng-pci',
];

describe('QEMU argument builders, each alone', () => {
  it('machine and accelerator, with the clock', () => {
    expect(machineArgs('kvm', 'wall')).toEqual(['-machine', 'pc', '-accel', 'kvm']);
    expect(machineArgs('tcg', 'icount')).toEqual(['-machine', 'pc', '-accel', 'tcg,thread=single', '-icount', 'shift=3,align=off,sleep=off', '-rtc', 'clock=vm']);
  });
  it('CPU model, vCPU count, memory', () => {
    expect(cpuArgs('kvm')).toEqual(['-cpu', 'host']);
    expect(cpuArgs('tcg')).toEqual(['-cpu', 'max']);
    expect(smpArgs(3)).toEqual(['-smp', '3']);
    expect(memoryArgs(2048)).toEqual(['-m', '2048']);
  });
  it('name, with or without named vCPU threads', () => {
    expect(nameArgs('g', true)).toEqual(['-name', 'g,debug-threads=on']);
    expect(nameArgs('g', false)).toEqual(['-name', 'g']);
  });
  it('headless, serial console on stdout, QMP socket', () => {
    expect(headlessArgs()).toEqual(['-nodefaults', '-display', 'none', '-no-reboot']);
    expect(serialConsoleArgs()).toEqual(['-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con']);
    expect(qmpArgs('/run/q.sock')).toEqual(['-qmp', 'unix:/run/q.sock,server=on,wait=off']);
  });
  it('kernel, initramfs only when there is one, command line', () => {
    expect(kernelArgs({ vmlinuz: '/k', initrd: '/i', append: 'a b' })).toEqual(['-kernel', '/k', '-initrd', '/i', '-append', 'a b']);
    expect(kernelArgs({ vmlinuz: '/k', initrd: null, append: 'a b' })).toEqual(['-kernel', '/k', '-append', 'a b']);
  });
  it('snapshot disk, loopback-only SSH forwarding, entropy', () => {
    expect(driveArgs('/d.ext4')).toEqual(['-drive', 'file=/d.ext4,format=raw,if=none,id=root,snapshot=on', '-device', 'virtio-blk-pci,drive=root']);
    expect(networkArgs(2222)).toEqual(['-netdev', 'user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22', '-device', 'virtio-net-pci,netdev=net0']);
    expect(rngArgs()).toEqual(['-device', 'virtio-rng-pci']);
  });
  it('guest command line and default isolcpus', () => {
    expect(guestCmdline({ isolcpus: null })).toBe(CMDLINE_BASE);
    expect(guestCmdline({ isolcpus: '1-2', extra: ['root=/dev/vdz'] })).toBe(`${CMDLINE_BASE} isolcpus=1-2 root=/dev/vdz`);
    expect(defaultIsolcpus(1)).toBeNull();
    expect(defaultIsolcpus(2)).toBe('1');
    expect(defaultIsolcpus(3)).toBe('1-2');
    expect(defaultIsolcpus(8)).toBe('1-7');
  });
});

describe('whole guest argv', () => {
  it('TCG, instruction-timed, one vCPU', () => {
    const argv = guestArgs({ ...base, accel: 'tcg', clock: 'icount', cpus: 1, initrd: '/cache/images/6.1.0-x/initrd.cpio', append: guestCmdline({ isolcpus: defaultIsolcpus(1) }) });
    expect(argv).toEqual([
      '-name', 'xcl-vm-7-1,debug-threads=on',
      '-machine', 'pc',
      '-accel', 'tcg,thread=single', '-icount', 'shift=3,align=off,sleep=off', '-rtc', 'clock=vm',
      '-cpu', 'max',
      '-smp', '1',
      '-m', '1024',
      '-nodefaults', '-display', 'none', '-no-reboot',
      '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
      '-qmp', 'unix:/tmp/xcl-vm-7-1-abc/qmp.sock,server=on,wait=off',
      '-kernel', '/cache/6.1/vmlinuz',
      '-initrd', '/cache/images/6.1.0-x/initrd.cpio',
      '-append', CMDLINE_BASE,
      ...DEVICES,
    ]);
  });

  it('TCG, wall clock, three vCPUs with two isolated', () => {
    const argv = guestArgs({ ...base, accel: 'tcg', clock: 'wall', cpus: 3, initrd: '/cache/images/6.1.0-x/initrd.cpio', append: guestCmdline({ isolcpus: defaultIsolcpus(3) }) });
    expect(argv).toEqual([
      '-name', 'xcl-vm-7-1,debug-threads=on',
      '-machine', 'pc',
      '-accel', 'tcg',
      '-cpu', 'max',
      '-smp', '3',
      '-m', '1024',
      '-nodefaults', '-display', 'none', '-no-reboot',
      '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
      '-qmp', 'unix:/tmp/xcl-vm-7-1-abc/qmp.sock,server=on,wait=off',
      '-kernel', '/cache/6.1/vmlinuz',
      '-initrd', '/cache/images/6.1.0-x/initrd.cpio',
      '-append', `${CMDLINE_BASE} isolcpus=1-2`,
      ...DEVICES,
    ]);
    expect(argv).not.toContain('-icount');
  });

  it('KVM, host CPU model, no initramfs, 2 GiB', () => {
    const argv = guestArgs({ ...base, memoryMb: 2048, accel: 'kvm', clock: 'wall', cpus: 2, initrd: null, append: guestCmdline({ isolcpus: defaultIsolcpus(2) }) });
    expect(argv).toEqual([
      '-name', 'xcl-vm-7-1,debug-threads=on',
      '-machine', 'pc',
      '-accel', 'kvm',
      '-cpu', 'host',
      '-smp', '2',
      '-m', '2048',
      '-nodefaults', '-display', 'none', '-no-reboot',
      '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
      '-qmp', 'unix:/tmp/xcl-vm-7-1-abc/qmp.sock,server=on,wait=off',
      '-kernel', '/cache/6.1/vmlinuz',
      '-append', `${CMDLINE_BASE} isolcpus=1`,
      ...DEVICES,
    ]);
    expect(argv).not.toContain('-initrd');
  });

  it('an instruction-timed KVM guest is refused before any argv exists', () => {
    expect(() => guestArgs({ ...base, accel: 'kvm', clock: 'icount', cpus: 1, initrd: null, append: CMDLINE_BASE })).toThrow(/needs TCG/);
  });

  it('the KVM probe: the kernel alone, to its banner on the serial console', () => {
    expect(kvmProbeArgs('/k/vmlinuz', 'xcl-kvm-probe-42')).toEqual([
      '-accel', 'kvm', '-cpu', 'host', '-m', '256', '-smp', '1',
      '-nodefaults', '-display', 'none', '-no-reboot',
      '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
      '-kernel', '/k/vmlinuz',
      '-append', 'console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 loglevel=7 panic=-1',
      '-name', 'xcl-kvm-probe-42',
    ]);
  });
});
