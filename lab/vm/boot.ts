/**
 * Boots a kernel with the lab's image and hands back a VmTarget once SSH answers: checks the
 * options, chooses the accelerator (falling back from a KVM that fails a real boot to TCG),
 * starts QEMU, waits (bounded, stopping early when QEMU dies or the console shows a panic),
 * then pins the vCPUs. Every failure path kills and reaps QEMU before it throws.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { errorMessage, LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { markKvmBroken, probeKvm, type AccelChoice } from './accel.ts';
import { waitForSsh, type Setback, type WaitOptions } from './boot-wait.ts';
import { ConsoleLog } from './console.ts';
import { buildVmImage } from './image.ts';
import type { VmImage } from './image-cache.ts';
import { clockArgs, defaultIsolcpus, guestArgs, guestCmdline, ICOUNT_SHIFT, resolveClock, type Accel, type ClockChoice, type GuestClock } from './qemu-args.ts';
import { QemuProcess } from './qemu.ts';
import { trackDir, untrackDir } from './reaper.ts';
import type { ImageOptions } from './recipe.ts';
import { SshSession } from './ssh.ts';
import { VmTarget, type BootTimes } from './target.ts';
import { tuneHost } from './tuning.ts';

export const DEFAULT_TIMEOUTS = { kvmMs: 30_000, tcgMs: 150_000 } as const;

/** How often a taken loopback port is replaced by another before giving up. */
const PORT_TRIES = 4;
const KVM_REMEDY = 'Use --accel tcg (emulation; timings are not performance numbers) or run on a host with working KVM.';

export interface BootOptions {
  kernel: KernelImage;
  /** Disk + initramfs; built (or taken from the cache) for `kernel` when absent. */
  image?: VmImage;
  imageOptions?: ImageOptions;
  /** vCPUs (default 3: one for housekeeping, two for the benchmark). */
  cpus?: number;
  memoryMb?: number;
  /** Guest isolcpus= list; default "1-<cpus-1>" when cpus > 1; null for none. */
  isolcpus?: string | null;
  /** Host CPUs for the vCPU threads, in vCPU order; default: the highest-numbered host CPUs. */
  hostCpus?: number[];
  /** Pin vCPUs and fix host cpufreq (default true). What was achieved is in `tuning`. */
  tuneHost?: boolean;
  accel?: AccelChoice;
  /** Boot timeout; default 30 s under KVM, 150 s under TCG. */
  timeoutMs?: number;
  /** Where the serial console is written (default: a file in the VM's runtime directory). */
  consoleLog?: string;
  progress?: ProgressSink;
  /** QEMU -name; also the marker to find this VM's process (default xcl-vm-<pid>-<n>). */
  name?: string;
  /** Extra guest kernel parameters (later ones override earlier ones, e.g. root=). */
  extraCmdline?: string[];
  /** Boot with the initramfs (default true). Without it a Debian cloud kernel cannot find its disk. */
  initramfs?: boolean;
  /**
   * 'icount': guest time advances per executed instruction (TCG only), so in-guest timings are a
   * reproducible function of the work done, whatever the host is doing. 'auto': icount when the
   * guest ends up under TCG, wall-clock under KVM. Default 'wall'.
   */
  clock?: ClockChoice;
}

/** Everything decided before QEMU starts; the same for each attempt. */
interface BootPlan {
  kernel: KernelImage;
  image: VmImage;
  privateKey: Buffer;
  name: string;
  clock: GuestClock;
  cpus: number;
  memoryMb: number;
  isolcpus: string | null;
  runDir: string;
  consolePath: string;
  phaseId: string;
  sink: ProgressSink;
  accelNote: string;
  opts: BootOptions;
}

let vmCounter = 0;

/** The QMP socket of the VM whose runtime directory is `runDir`. */
function qmpSocket(runDir: string): string {
  return join(runDir, 'qmp.sock');
}

/** Boots `kernel` and returns when SSH works; throws VM_PANIC / VM_TIMEOUT / VM_BOOT otherwise. */
export async function bootVm(opts: BootOptions): Promise<VmTarget> {
  const sink = opts.progress ?? silent;
  const kernel = opts.kernel;
  const { memoryMb, name } = checkOptions(opts);

  const image = opts.image ?? (await buildVmImage(kernel, { ...opts.imageOptions, progress: opts.imageOptions?.progress ?? sink }));
  if (image.kernelRelease !== kernel.release) {
    throw new LabError('IMAGE', `image ${image.dir} is for ${image.kernelRelease}, not ${kernel.release}`, {
      remedy: 'Pass the image built for this kernel, or omit `image` to build it.',
    });
  }
  const privateKey = await readFile(image.clientKey);

  // Accelerator, then the clock (which may follow it), then the vCPUs (which follow the clock).
  const clockChoice: ClockChoice = opts.clock ?? 'wall';
  const choice = opts.accel ?? (clockChoice === 'icount' ? 'tcg' : 'auto');
  if (clockChoice === 'icount' && choice === 'kvm') clockArgs('kvm', 'icount'); // throws the clear error
  const { accel, accelNote } = await chooseAccelerator(kernel, choice, opts.imageOptions?.cacheDir, sink);
  // A KVM boot that falls back to TCG below keeps this clock: the fallback is an accident, said loudly.
  const clock = resolveClock(clockChoice, accel);
  // Under the instruction counter an SMP guest hangs here bringing up its secondary CPUs
  // ("smp: Bringing up secondary CPUs ..." and nothing after, 6.1 and 5.10): one vCPU, as measured.
  const cpus = opts.cpus ?? (clock === 'icount' ? 1 : 3);
  const isolcpus = opts.isolcpus === undefined ? defaultIsolcpus(cpus) : opts.isolcpus;

  const runDir = await mkdtemp(join(tmpdir(), `${name}-`));
  trackDir(runDir);
  const consolePath = opts.consoleLog ?? join(runDir, 'console.log');
  if (opts.consoleLog) await mkdir(dirname(opts.consoleLog), { recursive: true });
  const phaseId = `boot-${name}`;
  sink({ kind: 'phase-start', id: phaseId, label: `boot ${kernel.release} (${accel}${clock === 'icount' ? ', instruction-timed' : ''})` });
  const plan: BootPlan = { kernel, image, privateKey, name, clock, cpus, memoryMb, isolcpus, runDir, consolePath, phaseId, sink, accelNote, opts };
  try {
    return await bootWithFallback(plan, accel, choice);
  } catch (e) {
    sink({ kind: 'phase-end', id: phaseId, ok: false, message: errorMessage(e) });
    // Keep the runtime directory only when it holds the console log the error points to.
    untrackDir(runDir);
    if (opts.consoleLog) await rm(runDir, { recursive: true, force: true });
    else await rm(qmpSocket(runDir), { force: true });
    throw e;
  }
}

/** Validates what the caller passed before anything starts; returns the defaults it implies. */
function checkOptions(opts: BootOptions): { memoryMb: number; name: string } {
  const kernel = opts.kernel;
  if (!existsSync(kernel.vmlinuz)) {
    throw new LabError('MISSING_FILE', `kernel ${kernel.version}: ${kernel.vmlinuz} does not exist`, {
      remedy: `Resolve the kernel again (npm run kernel -- ${kernel.version}).`,
    });
  }
  const memoryMb = opts.memoryMb ?? 1024;
  if (opts.cpus !== undefined && (!Number.isInteger(opts.cpus) || opts.cpus < 1 || opts.cpus > 64)) throw new LabError('BAD_INPUT', `bootVm: cpus must be 1..64, got ${opts.cpus}`);
  if (!Number.isInteger(memoryMb) || memoryMb < 128) throw new LabError('BAD_INPUT', `bootVm: memoryMb must be >= 128, got ${memoryMb}`);
  if (opts.isolcpus !== undefined && opts.isolcpus !== null && !/^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/.test(opts.isolcpus)) {
    throw new LabError('BAD_INPUT', `bootVm: isolcpus "${opts.isolcpus}" is not a CPU list like 1,2 or 1-2`);
  }
  const name = opts.name ?? `xcl-vm-${process.pid}-${++vmCounter}`;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new LabError('BAD_INPUT', `bootVm: name "${name}" must be [A-Za-z0-9_.-]+`);
  return { memoryMb, name };
}

/** KVM when asked for or when 'auto' and the probe boots; TCG otherwise, said loudly. */
async function chooseAccelerator(kernel: KernelImage, choice: AccelChoice, cacheDir: string | undefined, sink: ProgressSink): Promise<{ accel: Accel; accelNote: string }> {
  if (choice === 'tcg') return { accel: 'tcg', accelNote: 'TCG requested' };
  const v = await probeKvm(kernel, { cacheDir });
  if (v.ok) return { accel: 'kvm', accelNote: v.reason };
  if (choice === 'kvm') {
    throw new LabError('VM_BOOT', `KVM was requested but does not work here: ${v.reason}`, { remedy: KVM_REMEDY });
  }
  sink({
    kind: 'log',
    level: 'warn',
    message: `KVM is not usable here (${v.reason}); falling back to TCG emulation. TCG timings are NOT performance numbers.`,
  });
  return { accel: 'tcg', accelNote: `KVM unusable: ${v.reason}` };
}

/** Boots under `accel`; a KVM that fails the real boot is dropped for TCG unless KVM was required. */
async function bootWithFallback(plan: BootPlan, accel: Accel, choice: AccelChoice): Promise<VmTarget> {
  let tcgPlan = plan;
  if (accel === 'kvm') {
    const kvm = await bootUnder(plan, 'kvm');
    if (kvm instanceof VmTarget) return kvm;
    if (choice === 'kvm') throw new LabError('VM_BOOT', kvm.reason, { remedy: KVM_REMEDY });
    markKvmBroken(kvm.reason);
    tcgPlan = { ...plan, accelNote: `KVM failed during boot: ${kvm.reason}` };
    plan.sink({ kind: 'log', level: 'warn', message: `KVM failed during boot (${kvm.reason}); retrying with TCG emulation. TCG timings are NOT performance numbers.` });
  }
  const tcg = await bootUnder(tcgPlan, 'tcg');
  if (tcg instanceof VmTarget) return tcg;
  // Only a KVM boot reports a broken KVM; should that change, this is still a LabError.
  throw new LabError('VM_BOOT', tcg.reason, { remedy: 'Run the QEMU command by hand under TCG to see why it stops.' });
}

/** Boots under `acc`, on a fresh loopback port each time another process took the last one. */
async function bootUnder(plan: BootPlan, acc: Accel): Promise<VmTarget | Setback> {
  let taken = '';
  for (let portTry = 1; portTry <= PORT_TRIES; portTry++) {
    const got = await bootOnce(plan, acc, await freeLoopbackPort());
    if (got instanceof VmTarget || got.setback !== 'port-taken') return got;
    taken = got.reason;
  }
  throw new LabError('VM_BOOT', `QEMU could not forward SSH from a free loopback port in ${PORT_TRIES} tries: ${taken.trim().split('\n')[0] ?? ''}`, {
    remedy: 'Another process keeps binding the loopback ports QEMU is given; retry, or stop what binds them.',
    details: { stderr: taken },
  });
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (e) => reject(new LabError('VM_BOOT', `no free loopback port for SSH forwarding: ${e.message}`, { cause: e, remedy: 'Check that 127.0.0.1 is configured (ip addr show lo).' })));
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new LabError('VM_BOOT', 'the kernel gave no loopback port for SSH forwarding', { remedy: 'Check that 127.0.0.1 is configured (ip addr show lo).' }))));
    });
  });
}

/** One QEMU: started, waited on, adopted by a VmTarget, or killed and reaped before returning or throwing. */
async function bootOnce(plan: BootPlan, acc: Accel, port: number): Promise<VmTarget | Setback> {
  const qmpPath = qmpSocket(plan.runDir);
  await rm(qmpPath, { force: true });
  const args = guestArgs({
    name: plan.name,
    accel: acc,
    clock: plan.clock,
    cpus: plan.cpus,
    memoryMb: plan.memoryMb,
    qmpPath,
    vmlinuz: plan.kernel.vmlinuz,
    initrd: plan.opts.initramfs === false ? null : plan.image.initrd,
    append: guestCmdline({ isolcpus: plan.isolcpus, extra: plan.opts.extraCmdline }),
    rootImage: plan.image.rootImage,
    sshPort: port,
  });
  // Markers are timed from console open, which is QEMU spawn to within a millisecond.
  const con = new ConsoleLog(plan.consolePath);
  const qemu = QemuProcess.start(args, { onStdout: (d) => con.push(d), qmpPath });
  const wait: WaitOptions = {
    timeoutMs: plan.opts.timeoutMs ?? (acc === 'kvm' ? DEFAULT_TIMEOUTS.kvmMs : DEFAULT_TIMEOUTS.tcgMs),
    accel: acc,
    endpoint: { host: '127.0.0.1', port, username: 'root', privateKey: plan.privateKey, hostPublicKey: plan.image.hostPublicKey },
    kernel: plan.kernel,
    sink: plan.sink,
    phaseId: plan.phaseId,
  };
  let ssh: SshSession | null = null;
  let adopted = false;
  try {
    const ready = await waitForSsh(qemu, con, wait);
    if (!(ready instanceof SshSession)) return ready;
    ssh = ready;
    const vm = await adoptGuest(plan, acc, qemu, con, ssh, port);
    adopted = true;
    return vm;
  } finally {
    if (!adopted) {
      ssh?.close();
      await qemu.kill();
      await con.close();
    }
  }
}

/** Checks the guest runs our kernel, times the boot, tunes the host, and wraps it all in a VmTarget. */
async function adoptGuest(plan: BootPlan, acc: Accel, qemu: QemuProcess, con: ConsoleLog, ssh: SshSession, port: number): Promise<VmTarget> {
  const first = await ssh.exec('uname -r; uname -a; cat /sys/devices/system/cpu/isolated', { timeoutMs: 30_000 });
  const sshReadyMs = Date.now() - qemu.startedAt;
  const [release = '', uname = '', isolated = ''] = first.stdout.split('\n');
  if (release.trim() !== plan.kernel.release) {
    throw new LabError('VM_BOOT', `guest runs ${release.trim() || '(nothing)'}, expected ${plan.kernel.release}`, {
      remedy: 'The image and kernel disagree; delete vm-images/cache/images/ and retry.',
    });
  }
  const times: BootTimes = {
    sshReadyMs,
    switchRootMs: con.markers.initramfsSwitch ?? null,
    sshdStartedMs: con.markers.sshdStarted ?? null,
  };
  const tuned = await tuneHost({ pid: qemu.child.pid, qmpPath: qmpSocket(plan.runDir) }, {
    cpus: plan.cpus,
    isolcpus: plan.isolcpus,
    guestIsolated: isolated.trim(),
    hostCpus: plan.opts.hostCpus,
    tuneHost: plan.opts.tuneHost ?? true,
  });
  plan.sink({ kind: 'phase-end', id: plan.phaseId, ok: true, message: `${(sshReadyMs / 1000).toFixed(1)} s to SSH (${acc})` });
  return new VmTarget({
    kernel: plan.kernel,
    accelerator: acc,
    clock: plan.clock,
    accelNote: plan.clock === 'icount' ? `${plan.accelNote}; instruction-timed (TCG icount shift=${ICOUNT_SHIFT}): reproducible, not wall-clock performance` : plan.accelNote,
    qemu,
    console: con,
    sshPort: port,
    ssh,
    uname: uname.trim(),
    times,
    tuning: tuned.tuning,
    cpufreq: tuned.lock,
    runDir: plan.runDir,
    name: plan.name,
  });
}
