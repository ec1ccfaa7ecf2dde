/**
 * The QEMU runner: boots a kernel with the lab's image, waits (bounded) until SSH answers, and
 * hands back a Target. Accelerator choice, console scanning, vCPU pinning and teardown live here.
 *
 * Teardown rules: every QEMU we start is registered with the reaper (killed on exit/signals) and
 * runs under `setpriv --pdeathsig KILL`; every failure path kills and reaps it before throwing;
 * disposing a VmTarget powers the guest off, then escalates to QMP quit and SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { errorMessage, isLabError, LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { commandFailed, shellQuote, type Accelerator, type CommandResult, type RunOptions, type Target } from '../target.ts';
import { ConsoleLog, consoleHint, type ConsoleProblem } from './console.ts';
import { buildVmImage } from './image.ts';
import type { VmImage } from './image-cache.ts';
import { DEFAULT_IMAGE_CACHE, type ImageOptions } from './recipe.ts';
import { Qmp } from './qmp.ts';
import { interruption, track, trackDir, untrack, untrackDir } from './reaper.ts';
import { SshSession } from './ssh.ts';
import { choosePinning, hostCpuCount, lockCpufreq, pinVcpus, type CpufreqLock, type VmTuning } from './tuning.ts';

export type AccelChoice = 'auto' | 'kvm' | 'tcg';

export const DEFAULT_TIMEOUTS = { kvmMs: 30_000, tcgMs: 150_000 } as const;
const QEMU = 'qemu-system-x86_64';
const GUEST_WORKDIR = '/root/lab';

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

export type GuestClock = 'wall' | 'icount';
export type ClockChoice = GuestClock | 'auto';

/**
 * The clock a guest runs with. Under TCG a wall-clock timing measures the emulator and moves with
 * the host's load, so 'auto' takes the instruction counter there; under KVM the wall clock is real.
 */
export function resolveClock(choice: ClockChoice, accel: 'kvm' | 'tcg'): GuestClock {
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

/** The accelerator and clock arguments of a guest (pure: tested alone). */
export function clockArgs(accel: 'kvm' | 'tcg', clock: GuestClock): string[] {
  if (clock === 'wall') return ['-accel', accel];
  if (accel !== 'tcg') throw new LabError('BAD_INPUT', 'bootVm: the instruction counter (clock icount) needs TCG, not KVM', { remedy: 'Use --accel tcg with --deterministic, or drop --deterministic.' });
  // icount runs every vCPU in one host thread, round-robin: thread=single says so explicitly.
  return ['-accel', 'tcg,thread=single', '-icount', `shift=${ICOUNT_SHIFT},align=off,sleep=off`, '-rtc', 'clock=vm'];
}

export interface BootTimes {
  /** QEMU spawn → SSH authenticated and the first command answered. */
  sshReadyMs: number;
  /** QEMU spawn → the initramfs switch_root (kernel + initramfs done). */
  switchRootMs: number | null;
  /** QEMU spawn → sshd started by /sbin/lab-init. */
  sshdStartedMs: number | null;
}

// ---------------------------------------------------------------------------------------------
// Accelerator

function kvmDeviceUsable(): string | null {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return null;
  } catch {
    return existsSync('/dev/kvm') ? '/dev/kvm is not read-write for this user' : 'no /dev/kvm';
  }
}

const KVM_BROKEN_RE = /KVM internal error|kvm run failed|failed to initialize kvm|Could not access KVM kernel module|KVM_CREATE_VM/i;

export interface KvmVerdict {
  ok: boolean;
  reason: string;
}
let kvmVerdict: KvmVerdict | null = null;

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Whether KVM really works: /dev/kvm opening is not enough (nested KVM here opens fine, then the
 * guest stalls or QEMU reports "KVM internal error"). A tiny probe boot must print the kernel's
 * banner. The verdict is kept per process and in the cache for this host boot.
 */
export async function probeKvm(kernel: KernelImage, opts: { cacheDir?: string; timeoutMs?: number } = {}): Promise<KvmVerdict> {
  if (kvmVerdict) return kvmVerdict;
  const dev = kvmDeviceUsable();
  if (dev) return (kvmVerdict = { ok: false, reason: dev });
  const cacheFile = join(opts.cacheDir ?? DEFAULT_IMAGE_CACHE, 'kvm-probe.json');
  const id = bootId();
  try {
    const saved = JSON.parse(await readFile(cacheFile, 'utf8')) as { bootId?: string; ok?: boolean; reason?: string };
    if (saved.bootId === id && typeof saved.ok === 'boolean') return (kvmVerdict = { ok: saved.ok, reason: saved.reason ?? '' });
  } catch {
    /* no verdict yet */
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const args = ['-accel', 'kvm', '-cpu', 'host', '-m', '256', '-smp', '1', '-nodefaults', '-display', 'none', '-no-reboot',
    '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con', '-kernel', kernel.vmlinuz,
    '-append', 'console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 loglevel=7 panic=-1', '-name', `xcl-kvm-probe-${process.pid}`];
  const verdict = await new Promise<KvmVerdict>((resolve) => {
    const child = spawnQemu(args);
    let out = '';
    let err = '';
    const finish = (v: KvmVerdict): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(v);
    };
    const timer = setTimeout(
      () => finish({ ok: false, reason: `a KVM probe boot printed no kernel banner in ${timeoutMs / 1000} s (nested KVM that does not run guests)` }),
      timeoutMs,
    );
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Linux version/.test(out)) finish({ ok: true, reason: 'probe boot reached the kernel banner' });
    });
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = KVM_BROKEN_RE.exec(err);
      if (m) finish({ ok: false, reason: `QEMU: ${m[0]}` });
    });
    child.on('error', (e) => finish({ ok: false, reason: `cannot start ${QEMU}: ${e.message}` }));
    child.on('exit', (code) => finish({ ok: false, reason: `QEMU exited (${code}) during the KVM probe: ${err.trim().split('\n').slice(-3).join(' ')}` }));
  });
  kvmVerdict = verdict;
  await mkdir(dirname(cacheFile), { recursive: true }).catch(() => undefined);
  await writeFile(cacheFile, JSON.stringify({ bootId: id, ...verdict, at: new Date().toISOString() })).catch(() => undefined);
  return verdict;
}

/** For tests: forget the in-process KVM verdict. */
export function resetKvmVerdict(): void {
  kvmVerdict = null;
}

// ---------------------------------------------------------------------------------------------
// QEMU process

let setprivAvailable: boolean | null = null;
function hasSetpriv(): boolean {
  if (setprivAvailable === null) setprivAvailable = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
  return setprivAvailable;
}

function spawnQemu(args: string[]): ChildProcess {
  // pdeathsig: if the lab dies without running any handler (SIGKILL), the kernel kills QEMU.
  const child = hasSetpriv()
    ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', QEMU, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  return child;
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

interface Running {
  child: ChildProcess;
  console: ConsoleLog;
  stderr: () => string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  exited: Promise<void>;
  startedAt: number;
  port: number;
  qmpPath: string;
}

function launch(args: string[], consoleLog: ConsoleLog, port: number, qmpPath: string): Running {
  const startedAt = Date.now();
  const child = spawnQemu(args);
  let err = '';
  const r: Running = {
    child,
    console: consoleLog,
    stderr: () => err,
    exit: null,
    exited: Promise.resolve(),
    startedAt,
    port,
    qmpPath,
  };
  r.exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      r.exit = { code, signal };
      resolve();
    });
    child.once('error', (e) => {
      err += `\n${e.message}`;
      r.exit = { code: -1, signal: null };
      resolve();
    });
  });
  child.stdout?.on('data', (d: Buffer) => consoleLog.push(d));
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 65536) err = err.slice(-32768);
  });
  return r;
}

async function killAndReap(r: Running, graceMs = 0): Promise<void> {
  if (r.exit === null && graceMs > 0) {
    await Promise.race([r.exited, sleep(graceMs)]);
  }
  if (r.exit === null) {
    r.child.kill('SIGKILL');
    await Promise.race([r.exited, sleep(10_000)]);
  }
  untrack(r.child);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Boot

class KvmBroken extends Error {}
class PortTaken extends Error {}

function defaultIsolcpus(cpus: number): string | null {
  if (cpus <= 1) return null;
  return cpus === 2 ? '1' : `1-${cpus - 1}`;
}

let vmCounter = 0;

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

/** Boots `kernel` and returns when SSH works; throws VM_PANIC / VM_TIMEOUT / VM_BOOT otherwise. */
export async function bootVm(opts: BootOptions): Promise<VmTarget> {
  const sink = opts.progress ?? silent;
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
  let accel: 'kvm' | 'tcg' = 'tcg';
  let accelNote: string;
  if (choice === 'tcg') {
    accelNote = 'TCG requested';
  } else {
    const v = await probeKvm(kernel, { cacheDir: opts.imageOptions?.cacheDir });
    if (v.ok) {
      accel = 'kvm';
      accelNote = v.reason;
    } else if (choice === 'kvm') {
      throw new LabError('VM_BOOT', `KVM was requested but does not work here: ${v.reason}`, {
        remedy: 'Use --accel tcg (emulation; timings are not performance numbers) or run on a host with working KVM.',
      });
    } else {
      accelNote = `KVM unusable: ${v.reason}`;
      sink({
        kind: 'log',
        level: 'warn',
        message: `KVM is not usable here (${v.reason}); falling back to TCG emulation. TCG timings are NOT performance numbers.`,
      });
    }
  }

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

  const attempt = async (acc: 'kvm' | 'tcg'): Promise<VmTarget> => {
    for (let portTry = 1; ; portTry++) {
      try {
        return await bootOnce(acc, await freeLoopbackPort());
      } catch (e) {
        if (e instanceof PortTaken && portTry < 4) continue;
        throw e;
      }
    }
  };

  const bootOnce = async (acc: 'kvm' | 'tcg', port: number): Promise<VmTarget> => {
    const qmpPath = join(runDir, 'qmp.sock');
    await rm(qmpPath, { force: true });
    const args = [
      '-name', `${name},debug-threads=on`,
      '-machine', 'pc',
      ...clockArgs(acc, clock),
      '-cpu', acc === 'kvm' ? 'host' : 'max',
      '-smp', String(cpus),
      '-m', String(memoryMb),
      '-nodefaults', '-display', 'none', '-no-reboot',
      '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
      '-qmp', `unix:${qmpPath},server=on,wait=off`,
      '-kernel', kernel.vmlinuz,
      ...(opts.initramfs === false ? [] : ['-initrd', image.initrd]),
      '-append', guestCmdline({ isolcpus, extra: opts.extraCmdline }),
      // snapshot=on: writes go to a throw-away file, so the cached image stays pristine and
      // several VMs may share it.
      '-drive', `file=${image.rootImage},format=raw,if=none,id=root,snapshot=on`,
      '-device', 'virtio-blk-pci,drive=root',
      '-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${port}-:22`,
      '-device', 'virtio-net-pci,netdev=net0',
      '-device', 'virtio-rng-pci',
    ];
    const con = new ConsoleLog(consolePath);
    const r = launch(args, con, port, qmpPath);
    const timeoutMs = opts.timeoutMs ?? (acc === 'kvm' ? DEFAULT_TIMEOUTS.kvmMs : DEFAULT_TIMEOUTS.tcgMs);
    try {
      const ssh = await waitForSsh(r, {
        timeoutMs,
        accel: acc,
        endpoint: { host: '127.0.0.1', port, username: 'root', privateKey, hostPublicKey: image.hostPublicKey },
        kernel,
        sink,
        phaseId,
      });
      const first = await ssh.exec('uname -r; uname -a; cat /sys/devices/system/cpu/isolated', { timeoutMs: 30_000 });
      const sshReadyMs = Date.now() - r.startedAt;
      const [release = '', uname = '', isolated = ''] = first.stdout.split('\n');
      if (release.trim() !== kernel.release) {
        ssh.close();
        throw new LabError('VM_BOOT', `guest runs ${release.trim() || '(nothing)'}, expected ${kernel.release}`, {
          remedy: 'The image and kernel disagree; delete vm-images/cache/images/ and retry.',
        });
      }
      const times: BootTimes = {
        sshReadyMs,
        switchRootMs: con.markers.initramfsSwitch ?? null,
        sshdStartedMs: con.markers.sshdStarted ?? null,
      };
      // Markers are timed from console open, which is QEMU spawn to within a millisecond.
      const tuning = await tune(r, { cpus, isolcpus, guestIsolated: isolated.trim(), hostCpus: opts.hostCpus, tuneHost: opts.tuneHost ?? true });
      sink({ kind: 'phase-end', id: phaseId, ok: true, message: `${(sshReadyMs / 1000).toFixed(1)} s to SSH (${acc})` });
      return new VmTarget({
        kernel,
        accelerator: acc,
        clock,
        accelNote: clock === 'icount' ? `${accelNote}; instruction-timed (TCG icount shift=${ICOUNT_SHIFT}): reproducible, not wall-clock performance` : accelNote,
        run: r,
        ssh,
        uname: uname.trim(),
        times,
        tuning: tuning.tuning,
        cpufreq: tuning.lock,
        runDir,
        name,
        sink,
      });
    } catch (e) {
      await killAndReap(r);
      await con.close();
      throw e;
    }
  };

  try {
    if (accel === 'kvm') {
      try {
        return await attempt('kvm');
      } catch (e) {
        if (!(e instanceof KvmBroken) || choice === 'kvm') throw e instanceof KvmBroken ? new LabError('VM_BOOT', e.message) : e;
        kvmVerdict = { ok: false, reason: e.message };
        accelNote = `KVM failed during boot: ${e.message}`;
        sink({ kind: 'log', level: 'warn', message: `KVM failed during boot (${e.message}); retrying with TCG emulation. TCG timings are NOT performance numbers.` });
      }
    }
    return await attempt('tcg');
  } catch (e) {
    sink({ kind: 'phase-end', id: phaseId, ok: false, message: errorMessage(e) });
    // Keep the runtime directory only when it holds the console log the error points to.
    untrackDir(runDir);
    if (opts.consoleLog) await rm(runDir, { recursive: true, force: true });
    else await rm(join(runDir, 'qmp.sock'), { force: true });
    throw e;
  }
}

interface WaitOptions {
  timeoutMs: number;
  accel: 'kvm' | 'tcg';
  endpoint: { host: string; port: number; username: string; privateKey: Buffer; hostPublicKey: string };
  kernel: KernelImage;
  sink: ProgressSink;
  phaseId: string;
}

function problemsError(r: Running, problems: readonly ConsoleProblem[], kernel: KernelImage): LabError {
  const tail = r.console.report();
  const first = problems[0];
  return new LabError(
    'VM_PANIC',
    `kernel ${kernel.release} failed to boot: ${first ? first.line : 'guest died'}\n--- console tail ---\n${tail}`,
    {
      remedy: consoleHint(problems, tail, r.console.path),
      details: { consoleTail: tail, consoleLog: r.console.path, problems, exit: r.exit },
    },
  );
}

async function waitForSsh(r: Running, w: WaitOptions): Promise<SshSession> {
  const deadline = r.startedAt + w.timeoutMs;
  let inFlight: Promise<SshSession | Error> | null = null;
  let lastSshError = '';
  let firstLineAt: number | null = null;
  const reported = new Set<string>();
  for (;;) {
    const now = Date.now();
    // 1. The kernel said it is dying: give QEMU a moment to print the rest and exit (panic=-1).
    if (r.console.fatalProblems().length > 0) {
      await Promise.race([r.exited, sleep(1500)]);
      throw problemsError(r, r.console.fatalProblems(), w.kernel);
    }
    // 2. QEMU is gone.
    const sig = interruption();
    if (sig !== null) {
      throw new LabError('INTERRUPTED', `boot of ${w.kernel.release} interrupted by ${sig}; QEMU was stopped`);
    }
    if (r.exit !== null) {
      const err = r.stderr();
      if (/Could not set up host forwarding rule/i.test(err)) throw new PortTaken(err);
      if (w.accel === 'kvm' && KVM_BROKEN_RE.test(err)) throw new KvmBroken(err.trim().split('\n')[0] ?? 'KVM error');
      const tail = r.console.report();
      throw new LabError(
        'VM_BOOT',
        `QEMU exited (${r.exit.signal ?? r.exit.code}) before SSH was ready for ${w.kernel.release}${err.trim() ? `:\n${err.trim().split('\n').slice(-10).join('\n')}` : ''}${tail ? `\n--- console tail ---\n${tail}` : ''}`,
        {
          remedy: tail ? consoleHint([], tail, r.console.path) : `Run the QEMU command by hand to see why it stops (${QEMU} --version to check it works).`,
          details: { stderr: err, consoleTail: tail, exit: r.exit },
        },
      );
    }
    // 3. KVM that accepts the VM but cannot run it.
    if (w.accel === 'kvm') {
      const m = KVM_BROKEN_RE.exec(r.stderr());
      if (m) throw new KvmBroken(`QEMU: ${m[0]}`);
      if (firstLineAt === null && r.console.tail(1) !== '') firstLineAt = now;
      if (firstLineAt === null && now - r.startedAt > Math.min(15_000, w.timeoutMs / 2)) {
        throw new KvmBroken('no console output under KVM (the vCPU does not run)');
      }
    }
    // 4. Timeout.
    if (now > deadline) {
      const tail = r.console.report();
      throw new LabError(
        'VM_TIMEOUT',
        `${w.kernel.release} (${w.accel}): SSH not ready after ${(w.timeoutMs / 1000).toFixed(0)} s${lastSshError ? ` (last SSH error: ${lastSshError})` : ''}\n--- console tail ---\n${tail}`,
        {
          remedy: `${consoleHint([], tail, r.console.path)} Under TCG on a busy host a longer timeoutMs may help.`,
          details: { consoleTail: tail, consoleLog: r.console.path },
        },
      );
    }
    for (const [marker, t] of Object.entries(r.console.markers)) {
      if (!reported.has(marker)) {
        reported.add(marker);
        w.sink({ kind: 'phase-progress', id: w.phaseId, done: reported.size, note: `${marker} at ${(t / 1000).toFixed(1)} s` });
      }
    }
    // 5. SSH, once sshd says it is up (or, if the marker never comes, from half the timeout on).
    const sshdUp = r.console.markers.sshdStarted !== undefined || now - r.startedAt > w.timeoutMs / 2;
    if (sshdUp && inFlight === null) {
      const remaining = Math.max(2000, deadline - now);
      inFlight = SshSession.connect(w.endpoint, Math.min(remaining, 20_000)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
    }
    if (inFlight) {
      const got = await Promise.race([inFlight, sleep(100).then(() => null)]);
      if (got instanceof SshSession) return got;
      if (got instanceof Error) {
        if (isLabError(got, 'SSH')) throw got;
        lastSshError = got.message;
        inFlight = null;
        await sleep(200);
      }
    } else {
      await sleep(100);
    }
  }
}

async function tune(
  r: Running,
  o: { cpus: number; isolcpus: string | null; guestIsolated: string; hostCpus?: number[]; tuneHost: boolean },
): Promise<{ tuning: VmTuning; lock: CpufreqLock | null }> {
  const tuning: VmTuning = {
    isolcpus: o.isolcpus,
    guestIsolated: o.guestIsolated,
    pinning: { applied: false, map: [], reason: 'host tuning disabled (tuneHost: false)' },
    cpufreq: { applied: false, cpus: [], reason: 'host tuning disabled (tuneHost: false)' },
  };
  if (!o.tuneHost) return { tuning, lock: null };
  const hostCpus = hostCpuCount();
  const plan = choosePinning(o.cpus, hostCpus, o.hostCpus);
  let tuneCpus: number[] = Array.from({ length: hostCpus }, (_, i) => i);
  if ('reason' in plan) {
    tuning.pinning = { applied: false, map: [], reason: plan.reason };
  } else {
    let qmp: Qmp | null = null;
    try {
      qmp = await Qmp.connect(r.qmpPath, 5000);
      const threads = (await qmp.queryCpusFast()).map((c) => ({ vcpu: c['cpu-index'], threadId: c['thread-id'] }));
      const pid = r.child.pid;
      tuning.pinning = pid === undefined ? { applied: false, map: [], reason: 'QEMU has no pid' } : await pinVcpus(pid, threads, plan.cpus);
      if (tuning.pinning.applied) tuneCpus = plan.cpus;
    } catch (e) {
      tuning.pinning = { applied: false, map: [], reason: `QMP query-cpus-fast: ${(e as Error).message}` };
    } finally {
      qmp?.close();
    }
  }
  const lock = await lockCpufreq(tuneCpus);
  tuning.cpufreq = lock.result;
  return { tuning, lock };
}

// ---------------------------------------------------------------------------------------------
// Target

interface VmTargetInit {
  kernel: KernelImage;
  accelerator: 'kvm' | 'tcg';
  clock: GuestClock;
  accelNote: string;
  run: Running;
  ssh: SshSession;
  uname: string;
  times: BootTimes;
  tuning: VmTuning;
  cpufreq: CpufreqLock | null;
  runDir: string;
  name: string;
  sink: ProgressSink;
}

export class VmTarget implements Target {
  readonly name: string;
  readonly kernelRelease: string;
  readonly accelerator: Accelerator;
  readonly clock: GuestClock;
  /** Why this accelerator (e.g. "KVM unusable: ..."), for results and reports. */
  readonly acceleratorNote: string;
  readonly workDir = GUEST_WORKDIR;
  readonly kernel: KernelImage;
  /** `uname -a` in the guest. */
  readonly uname: string;
  readonly bootTimes: BootTimes;
  /** What host/guest tuning was achieved (pinning, cpufreq, isolcpus). */
  readonly tuning: VmTuning;
  /** QEMU -name marker (find the process with pgrep -f). */
  readonly qemuName: string;
  readonly consoleLog: string | null;
  readonly sshPort: number;
  private readonly r: Running;
  private readonly ssh: SshSession;
  private readonly cpufreq: CpufreqLock | null;
  private readonly runDir: string;
  private disposed: Promise<void> | null = null;

  constructor(init: VmTargetInit) {
    this.kernel = init.kernel;
    this.name = `vm:${init.kernel.version}`;
    this.kernelRelease = init.kernel.release;
    this.accelerator = init.accelerator;
    this.clock = init.clock;
    this.acceleratorNote = init.accelNote;
    this.uname = init.uname;
    this.bootTimes = init.times;
    this.tuning = init.tuning;
    this.qemuName = init.name;
    this.consoleLog = init.run.console.path;
    this.sshPort = init.run.port;
    this.r = init.run;
    this.ssh = init.ssh;
    this.cpufreq = init.cpufreq;
    this.runDir = init.runDir;
  }

  /** QEMU's pid (null once it has exited). */
  get qemuPid(): number | null {
    return this.r.exit === null ? (this.r.child.pid ?? null) : null;
  }

  /** Oopses, BUGs and panics the console showed since boot. */
  consoleProblems(): readonly ConsoleProblem[] {
    return this.r.console.problems;
  }

  consoleTail(lines = 40): string {
    return this.r.console.tail(lines);
  }

  private deadVm(what: string): LabError {
    const tail = this.r.console.report();
    const problems = this.r.console.fatalProblems();
    const code = problems.length > 0 ? 'VM_PANIC' : 'SSH';
    return new LabError(code, `${this.name} (${this.kernelRelease}): ${what}${this.r.exit ? `; QEMU exited (${this.r.exit.signal ?? this.r.exit.code})` : ''}\n--- console tail ---\n${tail}`, {
      remedy: consoleHint(problems, tail, this.r.console.path),
      details: { consoleTail: tail, problems },
    });
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    if (argv.length === 0) throw new LabError('BAD_INPUT', `${this.name}: run() with an empty argv`);
    if (this.disposed) throw new LabError('BAD_INPUT', `${this.name}: run() after the VM was shut down`);
    const timeoutMs = options.timeoutMs ?? 600_000;
    const line = argv.map(shellQuote).join(' ');
    let res;
    try {
      res = await this.ssh.exec(line, { input: options.input, timeoutMs });
    } catch (e) {
      if (this.r.exit !== null || this.ssh.closed) throw this.deadVm(`lost the guest while running \`${line.slice(0, 200)}\``);
      throw e;
    }
    if (res.timedOut) {
      if (options.allowFailure) return { stdout: res.stdout, stderr: res.stderr, exitCode: -1 };
      throw new LabError('COMMAND', `${this.name}: \`${line.slice(0, 200)}\` timed out after ${timeoutMs} ms`, {
        details: { argv, stdout: res.stdout, stderr: res.stderr },
      });
    }
    const result: CommandResult = { stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode };
    if (result.exitCode !== 0 && !options.allowFailure) throw commandFailed(this.name, argv, result);
    return result;
  }

  sh(script: string, options?: RunOptions): Promise<CommandResult> {
    return this.run(['bash', '-c', script], options);
  }

  async putFile(localPath: string, remotePath: string): Promise<void> {
    let mode: number;
    try {
      mode = (await stat(localPath)).mode & 0o777;
    } catch (e) {
      throw new LabError('MISSING_FILE', `${this.name}: cannot copy ${localPath}: it does not exist`, { cause: e });
    }
    await this.run(['mkdir', '-p', dirname(remotePath)]);
    try {
      await this.ssh.putFile(localPath, remotePath, mode);
    } catch (e) {
      if (this.r.exit !== null) throw this.deadVm(`lost the guest while copying ${localPath}`);
      throw new LabError('SSH', `${this.name}: SFTP ${localPath} → ${remotePath}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Powers the guest off, escalating to QMP quit and SIGKILL; always reaps QEMU. Idempotent. */
  shutdown(): Promise<void> {
    if (!this.disposed) this.disposed = this.doShutdown();
    return this.disposed;
  }

  private async doShutdown(): Promise<void> {
    try {
      if (this.r.exit === null && !this.ssh.closed) {
        // The reply never comes when the guest powers off first: do not wait on it.
        void this.ssh.exec('/sbin/lab-poweroff', { timeoutMs: 3000 }).catch(() => undefined);
        await Promise.race([this.r.exited, sleep(5000)]);
      }
      if (this.r.exit === null) {
        try {
          const qmp = await Qmp.connect(this.r.qmpPath, 2000);
          await qmp.execute('quit', undefined, 2000).catch(() => undefined);
          qmp.close();
        } catch {
          /* QMP gone: SIGKILL below */
        }
      }
      await killAndReap(this.r, 3000);
    } finally {
      this.ssh.close();
      await this.r.console.close();
      await this.cpufreq?.restore();
      // The default console log lives here too: a VM that booted fine leaves nothing behind.
      await rm(this.runDir, { recursive: true, force: true });
      untrackDir(this.runDir);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
