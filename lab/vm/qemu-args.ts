/**
 * QEMU's argument list, built by small pure functions (one per concern: machine and accelerator,
 * clock, CPUs, memory, kernel and its command line, disk, network, console, QMP), each tested
 * alone. Nothing here spawns, reads files or looks at the host: the same inputs give the same argv.
 */
import { LabError } from '../errors.ts';

export type GuestClock = 'wall' | 'icount';
export type ClockChoice = GuestClock | 'auto';
export type Accel = 'kvm' | 'tcg';

/**
 * The clock a guest runs with. Under TCG a wall-clock timing measures the emulator and moves with
 * the host's load, so 'auto' takes the instruction counter there; under KVM the wall clock is real.
 */
export function resolveClock(choice: ClockChoice, accel: Accel): GuestClock {
  if (choice !== 'auto') return choice;
  return accel === 'tcg' ? 'icount' : 'wall';
}

/**
 * QEMU's instruction counter: each instruction advances guest time by 2^shift ns. Shift 3 (8 ns,
 * 125 M instructions per guest second) is about what TCG executes per host second on this 2-core
 * machine, so a guest-timed run lasts about as long as a wall-clock one; with shift 0 a 1 s iperf3
 * run took 60 to 100 s. align=off and sleep=off let the guest run ahead of real time instead of
 * being held to it (what makes it reproducible); the RTC follows the virtual clock.
 */
export const ICOUNT_SHIFT = 3;

/** The accelerator and clock arguments of a guest. */
export function clockArgs(accel: Accel, clock: GuestClock): string[] {
  if (clock === 'wall') return ['-accel', accel];
  if (accel !== 'tcg') throw new LabError('BAD_INPUT', 'bootVm: the instruction counter (clock icount) needs TCG, not KVM', { remedy: 'Use --accel tcg with --deterministic, or drop --deterministic.' });
  // icount runs every vCPU in one host thread, round-robin: thread=single says so explicitly.
  return ['-accel', 'tcg,thread=single', '-icount', `shift=${ICOUNT_SHIFT},align=off,sleep=off`, '-rtc', 'clock=vm'];
}

/** The machine type, then the accelerator and clock. */
export function machineArgs(accel: Accel, clock: GuestClock): string[] {
  return ['-machine', 'pc', ...clockArgs(accel, clock)];
}

/** QEMU -name; debug-threads names the vCPU threads so they can be found and pinned. */
export function nameArgs(name: string, debugThreads: boolean): string[] {
  return ['-name', debugThreads ? `${name},debug-threads=on` : name];
}

/** The CPU model: the host's own under KVM, everything TCG can emulate otherwise. */
export function cpuArgs(accel: Accel): string[] {
  return ['-cpu', accel === 'kvm' ? 'host' : 'max'];
}

export function smpArgs(cpus: number): string[] {
  return ['-smp', String(cpus)];
}

export function memoryArgs(memoryMb: number): string[] {
  return ['-m', String(memoryMb)];
}

/** No default devices, no display, and exit instead of rebooting (a panic=-1 guest then ends QEMU). */
export function headlessArgs(): string[] {
  return ['-nodefaults', '-display', 'none', '-no-reboot'];
}

/** The serial console on QEMU's stdout; signal=off so a Ctrl-C reaches the lab, not the guest. */
export function serialConsoleArgs(): string[] {
  return ['-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con'];
}

/** The QMP control socket; wait=off so QEMU boots without waiting for a client. */
export function qmpArgs(socketPath: string): string[] {
  return ['-qmp', `unix:${socketPath},server=on,wait=off`];
}

/** Direct kernel boot: the kernel, its initramfs if any, its command line. */
export function kernelArgs(k: { vmlinuz: string; initrd: string | null; append: string }): string[] {
  return ['-kernel', k.vmlinuz, ...(k.initrd === null ? [] : ['-initrd', k.initrd]), '-append', k.append];
}

/**
 * The root disk on virtio-blk. snapshot=on: writes go to a throw-away file, so the cached image
 * stays pristine and several VMs may share it.
 */
export function driveArgs(rootImage: string): string[] {
  return ['-drive', `file=${rootImage},format=raw,if=none,id=root,snapshot=on`, '-device', 'virtio-blk-pci,drive=root'];
}

/** User-mode networking on virtio-net with the guest's SSH forwarded from loopback only. */
export function networkArgs(sshPort: number): string[] {
  return ['-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`, '-device', 'virtio-net-pci,netdev=net0'];
}

/** A virtio entropy source, so nothing in the guest blocks on its RNG. */
export function rngArgs(): string[] {
  return ['-device', 'virtio-rng-pci'];
}

/** The guest isolcpus= list when none is given: every vCPU but the first (housekeeping) one. */
export function defaultIsolcpus(cpus: number): string | null {
  if (cpus <= 1) return null;
  return cpus === 2 ? '1' : `1-${cpus - 1}`;
}

/** The guest kernel's command line for a lab boot (later `extra` parameters override earlier ones). */
export function guestCmdline(opts: { isolcpus: string | null; extra?: readonly string[] }): string {
  const parts = [
    'console=ttyS0,115200',
    'root=/dev/vda',
    'rw',
    // Reboot at once on panic; with -no-reboot QEMU then exits, so a panic ends the boot fast.
    'panic=-1',
    // The guest has no hardware RNG worth waiting for; the CPU's RDRAND (TCG -cpu max has it) is fine for a lab VM.
    'random.trust_cpu=on',
    'i8042.noaux',
    'i8042.nomux',
    'i8042.nopnp',
  ];
  if (opts.isolcpus) parts.push(`isolcpus=${opts.isolcpus}`);
  parts.push(...(opts.extra ?? []));
  return parts.join(' ');
}

/** Everything a lab guest's argv depends on. */
export interface GuestSpec {
  name: string;
  accel: Accel;
  clock: GuestClock;
  cpus: number;
  memoryMb: number;
  qmpPath: string;
  vmlinuz: string;
  /** null: boot without an initramfs. */
  initrd: string | null;
  /** The kernel command line (see guestCmdline). */
  append: string;
  rootImage: string;
  sshPort: number;
}

/** The whole argv of a lab guest. */
export function guestArgs(g: GuestSpec): string[] {
  return [
    ...nameArgs(g.name, true),
    ...machineArgs(g.accel, g.clock),
    ...cpuArgs(g.accel),
    ...smpArgs(g.cpus),
    ...memoryArgs(g.memoryMb),
    ...headlessArgs(),
    ...serialConsoleArgs(),
    ...qmpArgs(g.qmpPath),
    ...kernelArgs({ vmlinuz: g.vmlinuz, initrd: g.initrd, append: g.append }),
    ...driveArgs(g.rootImage),
    ...networkArgs(g.sshPort),
    ...rngArgs(),
  ];
}

/** The KVM probe's command line: enough for the kernel to print its banner on the serial console. */
export const KVM_PROBE_CMDLINE = 'console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 loglevel=7 panic=-1';

/** The argv of the KVM probe: one vCPU, no disk, no network, the kernel alone. */
export function kvmProbeArgs(vmlinuz: string, name: string): string[] {
  return [
    ...clockArgs('kvm', 'wall'),
    ...cpuArgs('kvm'),
    ...memoryArgs(256),
    ...smpArgs(1),
    ...headlessArgs(),
    ...serialConsoleArgs(),
    ...kernelArgs({ vmlinuz, initrd: null, append: KVM_PROBE_CMDLINE }),
    ...nameArgs(name, false),
  ];
}
