/**
 * No QEMU outlives the lab: every QEMU child is registered here and killed when the process
 * exits or is interrupted, whatever path we took. (QEMU is also started under
 * `setpriv --pdeathsig KILL`, so even a SIGKILLed lab takes its VMs with it.)
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const live = new Set<ChildProcess>();
const scratch = new Set<string>();
let installed = false;

function killAll(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  // Runtime directories (QMP socket, default console log) of VMs that were never disposed.
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
}

/** A directory to delete if the process ends before the VM owning it is disposed. */
export function trackDir(dir: string): void {
  install();
  scratch.add(dir);
}

export function untrackDir(dir: string): void {
  scratch.delete(dir);
}

let interruptedBy: NodeJS.Signals | null = null;

/** The signal that made us kill our VMs, if any (boot waits turn it into INTERRUPTED). */
export function interruption(): NodeJS.Signals | null {
  return interruptedBy;
}

function onSignal(signal: NodeJS.Signals): void {
  interruptedBy = signal;
  killAll();
  process.removeListener(signal, onSignal);
  // With no other handler, behave as if we had never listened: die by the same signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onSignal);
}

export function track(child: ChildProcess): void {
  install();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

export function untrack(child: ChildProcess): void {
  live.delete(child);
}

/** How many QEMU children are alive (for tests and diagnostics). */
export function liveVmCount(): number {
  return live.size;
}
