/**
 * The bounded wait for a booting guest: polls until SSH answers and stops early, in a fixed
 * order, when the console shows a fatal problem, the lab is interrupted, QEMU exits, KVM does not
 * run the guest, or the deadline passes. Failures are LabErrors quoting the console; the two
 * outcomes a caller retries on are returned as a Setback.
 */
import { isLabError, LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import type { ProgressSink } from '../progress.ts';
import { KVM_BROKEN_RE } from './accel.ts';
import { consoleEvidence, type ConsoleLog } from './console.ts';
import type { Accel } from './qemu-args.ts';
import { QEMU_BINARY, type QemuProcess } from './qemu.ts';
import { interruption } from './reaper.ts';
import { SshSession } from './ssh.ts';

/** QEMU is given this long to print the rest of a panic and exit (panic=-1) before the error. */
const PANIC_GRACE_MS = 1500;
/** A KVM guest that has printed nothing by then does not run (capped at half the boot timeout). */
const KVM_SILENT_MS = 15_000;
const SSH_CONNECT_MAX_MS = 20_000;
const POLL_MS = 100;
const SSH_RETRY_PAUSE_MS = 200;

/**
 * Why one boot attempt ended without a guest although nothing is wrong with the guest, so the
 * caller tries again: 'port-taken' (another process bound the SSH port first: retry on a new
 * one), 'kvm-broken' (KVM accepted the VM but does not run it: fall back to TCG). Every other
 * failure is a thrown LabError.
 */
export interface Setback {
  setback: 'port-taken' | 'kvm-broken';
  reason: string;
}

export interface WaitOptions {
  timeoutMs: number;
  accel: Accel;
  endpoint: { host: string; port: number; username: string; privateKey: Buffer; hostPublicKey: string };
  kernel: KernelImage;
  sink: ProgressSink;
  phaseId: string;
}

/** What the wait loop carries from one poll to the next. */
interface WaitState {
  inFlight: Promise<SshSession | Error> | null;
  lastSshError: string;
  firstLineAt: number | null;
  reported: Set<string>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until SSH answers (see the file header for when it stops early). */
export async function waitForSsh(qemu: QemuProcess, con: ConsoleLog, w: WaitOptions): Promise<SshSession | Setback> {
  const deadline = qemu.startedAt + w.timeoutMs;
  const state: WaitState = { inFlight: null, lastSshError: '', firstLineAt: null, reported: new Set() };
  for (;;) {
    const now = Date.now();
    // 1. The kernel said it is dying: give QEMU a moment to print the rest and exit (panic=-1).
    if (con.fatalProblems().length > 0) {
      await qemu.waitExit(PANIC_GRACE_MS);
      throw panicError(qemu, con, w.kernel);
    }
    // 2. We were interrupted, or QEMU is gone.
    const sig = interruption();
    if (sig !== null) {
      throw new LabError('INTERRUPTED', `boot of ${w.kernel.release} interrupted by ${sig}; QEMU was stopped`);
    }
    if (qemu.exit !== null) {
      const gone = qemuExited(qemu, con, w);
      if (gone instanceof LabError) throw gone;
      return gone;
    }
    // 3. KVM that accepts the VM but cannot run it.
    if (w.accel === 'kvm') {
      const stuck = kvmStuck(qemu, con, w, now, state);
      if (stuck) return stuck;
    }
    // 4. Timeout.
    if (now > deadline) throw timeoutError(con, w, state.lastSshError);
    reportMarkers(con, w, state.reported);
    // 5. SSH, once sshd says it is up (or, if the marker never comes, from half the timeout on).
    const ssh = await pollSsh(qemu, con, w, now, deadline, state);
    if (ssh) return ssh;
  }
}

function panicError(qemu: QemuProcess, con: ConsoleLog, kernel: KernelImage): LabError {
  const problems = con.fatalProblems();
  const shown = consoleEvidence(con, problems);
  const first = problems[0];
  return new LabError('VM_PANIC', `kernel ${kernel.release} failed to boot: ${first ? first.line : 'guest died'}${shown.section}`, {
    remedy: shown.hint,
    details: { consoleTail: shown.tail, consoleLog: shown.log, problems, exit: qemu.exit },
  });
}

/** Why QEMU exited before SSH: a setback the caller retries on, or the error to throw. */
function qemuExited(qemu: QemuProcess, con: ConsoleLog, w: WaitOptions): Setback | LabError {
  const err = qemu.stderr();
  if (/Could not set up host forwarding rule/i.test(err)) return { setback: 'port-taken', reason: err };
  if (w.accel === 'kvm' && KVM_BROKEN_RE.test(err)) return { setback: 'kvm-broken', reason: err.trim().split('\n')[0] ?? 'KVM error' };
  const exit = qemu.exit;
  const shown = consoleEvidence(con, [], { omitEmpty: true });
  const stderrPart = err.trim() ? `:\n${err.trim().split('\n').slice(-10).join('\n')}` : '';
  return new LabError('VM_BOOT', `QEMU exited (${exit?.signal ?? exit?.code}) before SSH was ready for ${w.kernel.release}${stderrPart}${shown.section}`, {
    remedy: shown.tail ? shown.hint : `Run the QEMU command by hand to see why it stops (${QEMU_BINARY} --version to check it works).`,
    details: { stderr: err, consoleTail: shown.tail, exit },
  });
}

/** A KVM error on stderr, or no console output long after the start: this KVM does not run guests. */
function kvmStuck(qemu: QemuProcess, con: ConsoleLog, w: WaitOptions, now: number, state: WaitState): Setback | null {
  const m = KVM_BROKEN_RE.exec(qemu.stderr());
  if (m) return { setback: 'kvm-broken', reason: `QEMU: ${m[0]}` };
  if (state.firstLineAt === null && con.tail(1) !== '') state.firstLineAt = now;
  if (state.firstLineAt === null && now - qemu.startedAt > Math.min(KVM_SILENT_MS, w.timeoutMs / 2)) {
    return { setback: 'kvm-broken', reason: 'no console output under KVM (the vCPU does not run)' };
  }
  return null;
}

function timeoutError(con: ConsoleLog, w: WaitOptions, lastSshError: string): LabError {
  const shown = consoleEvidence(con);
  return new LabError(
    'VM_TIMEOUT',
    `${w.kernel.release} (${w.accel}): SSH not ready after ${(w.timeoutMs / 1000).toFixed(0)} s${lastSshError ? ` (last SSH error: ${lastSshError})` : ''}${shown.section}`,
    {
      remedy: `${shown.hint} Under TCG on a busy host a longer timeoutMs may help.`,
      details: { consoleTail: shown.tail, consoleLog: shown.log },
    },
  );
}

/** One progress event per boot marker, the first time the console shows it. */
function reportMarkers(con: ConsoleLog, w: WaitOptions, reported: Set<string>): void {
  for (const [marker, t] of Object.entries(con.markers)) {
    if (!reported.has(marker)) {
      reported.add(marker);
      w.sink({ kind: 'phase-progress', id: w.phaseId, done: reported.size, note: `${marker} at ${(t / 1000).toFixed(1)} s` });
    }
  }
}

/**
 * One poll of the SSH login: starts a connection when sshd should be up, waits a little for it,
 * and returns the session once it works. Throws only an SSH LabError (a refused key: retrying
 * cannot help); other failures are remembered for the timeout message and retried.
 */
async function pollSsh(qemu: QemuProcess, con: ConsoleLog, w: WaitOptions, now: number, deadline: number, state: WaitState): Promise<SshSession | null> {
  const sshdUp = con.markers.sshdStarted !== undefined || now - qemu.startedAt > w.timeoutMs / 2;
  if (sshdUp && state.inFlight === null) {
    const remaining = Math.max(2000, deadline - now);
    state.inFlight = SshSession.connect(w.endpoint, Math.min(remaining, SSH_CONNECT_MAX_MS)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  }
  if (state.inFlight === null) {
    await sleep(POLL_MS);
    return null;
  }
  const got = await Promise.race([state.inFlight, sleep(POLL_MS).then(() => null)]);
  if (got instanceof SshSession) return got;
  if (got instanceof Error) {
    if (isLabError(got, 'SSH')) throw got;
    state.lastSshError = got.message;
    state.inFlight = null;
    await sleep(SSH_RETRY_PAUSE_MS);
  }
  return null;
}
