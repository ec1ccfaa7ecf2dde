/**
 * A booted guest as a Target: commands and file copies over SSH, errors that show the console
 * when the guest died, and a shutdown that powers it off, escalates, reaps QEMU and removes the
 * VM's runtime directory.
 */
import { rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { commandFailed, shellQuote, type Accelerator, type CommandResult, type RunOptions, type Target } from '../target.ts';
import { consoleEvidence, type ConsoleLog, type ConsoleProblem } from './console.ts';
import type { GuestClock } from './qemu-args.ts';
import type { QemuProcess } from './qemu.ts';
import { untrackDir } from './reaper.ts';
import type { SshSession } from './ssh.ts';
import type { CpufreqLock, VmTuning } from './tuning.ts';

const GUEST_WORKDIR = '/root/lab';

export interface BootTimes {
  /** QEMU spawn → SSH authenticated and the first command answered. */
  sshReadyMs: number;
  /** QEMU spawn → the initramfs switch_root (kernel + initramfs done). */
  switchRootMs: number | null;
  /** QEMU spawn → sshd started by /sbin/lab-init. */
  sshdStartedMs: number | null;
}

export interface VmTargetInit {
  kernel: KernelImage;
  accelerator: 'kvm' | 'tcg';
  clock: GuestClock;
  accelNote: string;
  qemu: QemuProcess;
  console: ConsoleLog;
  sshPort: number;
  ssh: SshSession;
  uname: string;
  times: BootTimes;
  tuning: VmTuning;
  cpufreq: CpufreqLock | null;
  runDir: string;
  name: string;
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
  private readonly qemu: QemuProcess;
  private readonly console: ConsoleLog;
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
    this.consoleLog = init.console.path;
    this.sshPort = init.sshPort;
    this.qemu = init.qemu;
    this.console = init.console;
    this.ssh = init.ssh;
    this.cpufreq = init.cpufreq;
    this.runDir = init.runDir;
  }

  /** QEMU's pid (null once it has exited). */
  get qemuPid(): number | null {
    return this.qemu.pid;
  }

  /** Oopses, BUGs and panics the console showed since boot. */
  consoleProblems(): readonly ConsoleProblem[] {
    return this.console.problems;
  }

  consoleTail(lines = 40): string {
    return this.console.tail(lines);
  }

  private deadVm(what: string): LabError {
    const problems = this.console.fatalProblems();
    const code = problems.length > 0 ? 'VM_PANIC' : 'SSH';
    const exit = this.qemu.exit;
    const shown = consoleEvidence(this.console, problems);
    return new LabError(code, `${this.name} (${this.kernelRelease}): ${what}${exit ? `; QEMU exited (${exit.signal ?? exit.code})` : ''}${shown.section}`, {
      remedy: shown.hint,
      details: { consoleTail: shown.tail, problems },
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
      if (this.qemu.exit !== null || this.ssh.closed) throw this.deadVm(`lost the guest while running \`${line.slice(0, 200)}\``);
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
      if (this.qemu.exit !== null) throw this.deadVm(`lost the guest while copying ${localPath}`);
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
      await this.qemu.shutdown(this.ssh.closed ? undefined : () => this.powerOff());
    } finally {
      this.ssh.close();
      await this.console.close();
      await this.cpufreq?.restore();
      // The default console log lives here too: a VM that booted fine leaves nothing behind.
      await rm(this.runDir, { recursive: true, force: true });
      untrackDir(this.runDir);
    }
  }

  /** Asks the guest to power off. The reply never comes when the guest powers off first: do not wait on it. */
  private powerOff(): void {
    void this.ssh.exec('/sbin/lab-poweroff', { timeoutMs: 3000 }).catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
