/**
 * Notices when whoever launched the lab is gone. `npm run matrix` is npm → sh → tsx → node; a
 * SIGKILL of npm or tsx (what `timeout -s KILL` or a CI runner does) runs no handler anywhere and
 * leaves this process running on its own. The launchers are the chain of ancestors that are npm,
 * npx, sh or node (tsx is node): each is recorded with its start time (pids are reused) and polled.
 */
import { readFileSync } from 'node:fs';

export interface Ancestor {
  pid: number;
  comm: string;
  /** Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
  startTime: string;
}

/** comm and start time of a live process, or null once it is gone. */
export function readProc(pid: number): { comm: string; ppid: number; startTime: string } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm is in parentheses and may itself contain spaces or parentheses: split after the last ')'.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const rest = stat.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
  return { comm, ppid: Number(rest[1]), startTime: rest[19] ?? '' };
}

const LAUNCHER = /^(node|npm|npx|sh|dash|tsx)\b/;

/** The launcher ancestors of `pid`, nearest first, up to the first process that is not one. */
export function launcherChain(pid = process.pid, isLauncher: (comm: string) => boolean = (c) => LAUNCHER.test(c)): Ancestor[] {
  const out: Ancestor[] = [];
  let p = readProc(pid)?.ppid ?? 0;
  while (p > 1) {
    const info = readProc(p);
    if (!info || !isLauncher(info.comm)) break;
    out.push({ pid: p, comm: info.comm, startTime: info.startTime });
    p = info.ppid;
  }
  return out;
}

/** The first recorded ancestor that no longer exists (or whose pid now names another process). */
export function goneAncestor(chain: readonly Ancestor[]): Ancestor | null {
  for (const a of chain) {
    const now = readProc(a.pid);
    if (!now || now.startTime !== a.startTime) return a;
  }
  return null;
}

/**
 * Polls the launchers; calls `onGone` once when one disappears. The timer is unref'd: it never
 * keeps the lab alive by itself. Returns a function that stops watching.
 */
export function watchLaunchers(onGone: (who: Ancestor) => void, intervalMs = 1000): () => void {
  const chain = launcherChain();
  if (chain.length === 0) return () => undefined;
  const timer = setInterval(() => {
    const gone = goneAncestor(chain);
    if (gone) {
      clearInterval(timer);
      onGone(gone);
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
