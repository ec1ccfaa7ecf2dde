/**
 * One QEMU child process and its whole life: spawned under `setpriv --pdeathsig KILL` and
 * registered with the reaper (so it cannot outlive the lab), its exit and stderr recorded, and
 * stopped on every path by an escalating shutdown (poweroff → QMP quit → SIGKILL) that always
 * waits for it and reaps it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Qmp } from './qmp.ts';
import { track, untrack } from './reaper.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** How long each shutdown step may take before the next, harder one. */
const POWEROFF_WAIT_MS = 5000;
const QMP_TIMEOUT_MS = 2000;
const QUIT_GRACE_MS = 3000;
const SIGKILL_WAIT_MS = 10_000;
/** stderr kept in memory: enough for diagnosis, bounded however chatty QEMU gets. */
const STDERR_MAX = 65536;
const STDERR_KEEP = 32768;

let setprivAvailable: boolean | null = null;
function hasSetpriv(): boolean {
  if (setprivAvailable === null) setprivAvailable = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
  return setprivAvailable;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface QemuStartOptions {
  /** QEMU's stdout (the serial console), as it arrives. */
  onStdout?: (data: Buffer) => void;
  /** QEMU's stderr, as it arrives (it is also kept, bounded, in `stderr()`). */
  onStderr?: (data: Buffer) => void;
  /** The QMP socket the argv opens, used by shutdown() to ask QEMU to quit. */
  qmpPath?: string;
}

export class QemuProcess implements AsyncDisposable {
  readonly child: ChildProcess;
  /** Date.now() at spawn: boot times and deadlines count from here. */
  readonly startedAt: number;
  readonly qmpPath: string | null;
  /** Resolves once QEMU has exited (or could not be started). */
  readonly exited: Promise<void>;
  private exitStatus: QemuExit | null = null;
  private startError: Error | null = null;
  private err = '';

  private constructor(args: readonly string[], opts: QemuStartOptions) {
    this.startedAt = Date.now();
    this.qmpPath = opts.qmpPath ?? null;
    // pdeathsig: if the lab dies without running any handler (SIGKILL), the kernel kills QEMU.
    this.child = hasSetpriv()
      ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', QEMU_BINARY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(QEMU_BINARY, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(this.child);
    this.exited = new Promise<void>((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve();
      });
      this.child.once('error', (e) => {
        this.startError = e;
        this.err += `\n${e.message}`;
        this.exitStatus = { code: -1, signal: null };
        resolve();
      });
    });
    const onStdout = opts.onStdout;
    if (onStdout) this.child.stdout?.on('data', (d: Buffer) => onStdout(d));
    this.child.stderr?.on('data', (d: Buffer) => {
      this.err += d.toString();
      if (this.err.length > STDERR_MAX) this.err = this.err.slice(-STDERR_KEEP);
      opts.onStderr?.(d);
    });
  }

  /** Starts QEMU with `args` (see qemu-args.ts). */
  static start(args: readonly string[], opts: QemuStartOptions = {}): QemuProcess {
    return new QemuProcess(args, opts);
  }

  /** How QEMU ended; null while it runs. A failed spawn reads as code -1. */
  get exit(): QemuExit | null {
    return this.exitStatus;
  }

  /** Why QEMU could not be started at all (e.g. no such binary), if that happened. */
  get spawnError(): Error | null {
    return this.startError;
  }

  /** QEMU's pid while it runs; null once it has exited. */
  get pid(): number | null {
    return this.exitStatus === null ? (this.child.pid ?? null) : null;
  }

  /** QEMU's stderr so far (the last 32-64 KiB). */
  stderr(): string {
    return this.err;
  }

  /** Waits until QEMU exits or `ms` pass; true if it has exited. */
  async waitExit(ms: number): Promise<boolean> {
    if (this.exitStatus === null) await Promise.race([this.exited, sleep(ms)]);
    return this.exitStatus !== null;
  }

  /** Gives QEMU `graceMs` to exit on its own, then SIGKILLs it; waits for it and reaps it. */
  async kill(graceMs = 0): Promise<void> {
    if (this.exitStatus === null && graceMs > 0) await this.waitExit(graceMs);
    if (this.exitStatus === null) {
      this.child.kill('SIGKILL');
      await this.waitExit(SIGKILL_WAIT_MS);
    }
    untrack(this.child);
  }

  /**
   * Stops QEMU, each step only if the one before did not: `poweroff` (asks the guest; QEMU
   * exits when it powers off), QMP quit, SIGKILL. Always waits for QEMU and reaps it.
   */
  async shutdown(poweroff?: () => void): Promise<void> {
    if (this.exitStatus === null && poweroff) {
      poweroff();
      await this.waitExit(POWEROFF_WAIT_MS);
    }
    if (this.exitStatus === null && this.qmpPath !== null) await this.quitByQmp(this.qmpPath);
    await this.kill(QUIT_GRACE_MS);
  }

  private async quitByQmp(path: string): Promise<void> {
    try {
      const qmp = await Qmp.connect(path, QMP_TIMEOUT_MS);
      await qmp.execute('quit', undefined, QMP_TIMEOUT_MS).catch(() => undefined);
      qmp.close();
    } catch {
      /* QMP gone: the SIGKILL step follows */
    }
  }

  /** Disposing kills at once: a QEMU nobody adopted has no guest worth a clean poweroff. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.kill();
  }
}
