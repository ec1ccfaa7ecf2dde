/**
 * The guest's serial console: every byte goes to a log file, each line is scanned for the
 * kernel's failure signatures and for the progress markers our initramfs and init print.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export type ConsoleProblemKind = 'panic' | 'oops' | 'bug' | 'no-root' | 'stall';

/**
 * Kinds that end a boot. Stalls (soft lockups, RCU stalls) are recorded only: under TCG on a
 * busy host a vCPU thread can be starved for tens of seconds without anything being wrong.
 */
export const FATAL_PROBLEMS: ReadonlySet<ConsoleProblemKind> = new Set(['panic', 'oops', 'bug', 'no-root']);

export interface ConsoleProblem {
  kind: ConsoleProblemKind;
  line: string;
  /** Milliseconds since the console was opened. */
  atMs: number;
}

/** Failure signatures, most specific first (a root-mount failure also prints "Kernel panic"). */
const PROBLEM_PATTERNS: { kind: ConsoleProblemKind; re: RegExp }[] = [
  { kind: 'no-root', re: /VFS: Unable to mount root/ },
  { kind: 'stall', re: /BUG: (soft lockup|workqueue lockup)|rcu_\w+ (self-)?detected stalls?|rcu: INFO: .*stall/ },
  { kind: 'panic', re: /Kernel panic/ },
  { kind: 'oops', re: /\bOops\b/ },
  { kind: 'bug', re: /\bBUG:/ },
];

export function classifyConsoleLine(line: string): ConsoleProblemKind | null {
  for (const p of PROBLEM_PATTERNS) if (p.re.test(line)) return p.kind;
  return null;
}

/** What a user should look at for each kind of failure. */
export function consoleHint(problems: readonly ConsoleProblem[], tail: string, logPath: string | null): string {
  const where = logPath ? ` Full console log: ${logPath}.` : '';
  const kinds = new Set(problems.map((p) => p.kind));
  if (kinds.has('no-root') || /xcl-initramfs: (root device|cannot mount)/.test(tail)) {
    return `The kernel could not mount its root filesystem: check root= (the disk is /dev/vda) and that the initramfs loads virtio_pci, virtio_blk and ext4 for this kernel (rebuild the image after changing bootModules).${where}`;
  }
  if (/Attempted to kill init/.test(tail)) {
    return `init exited: the "xcl-initramfs:" / "xcl-guest:" lines above say which step failed.${where}`;
  }
  if (kinds.has('oops') || kinds.has('bug')) {
    return `The guest kernel hit a bug (oops/BUG) during boot; try another point release of this kernel, or report it with the console log.${where}`;
  }
  return `Did the guest kernel panic? Read the console tail above.${where}`;
}

/** The console part of a VM failure: what the error shows of the guest's console and what to do about it. */
export interface ConsoleEvidence {
  /** The lab's boot-step lines, then the last lines (ConsoleLog.report). */
  tail: string;
  /** What the message ends with: a "--- console tail ---" header and the tail. */
  section: string;
  /** The remedy for what the problems and the tail show (consoleHint). */
  hint: string;
  /** The full console log, when it is written to a file. */
  log: string | null;
}

/**
 * The one place a VM error's console tail is built. `omitEmpty`: no section at all when the
 * console stayed silent (QEMU that exits at once has only its stderr to show).
 */
export function consoleEvidence(con: ConsoleLog, problems: readonly ConsoleProblem[] = [], opts: { omitEmpty?: boolean } = {}): ConsoleEvidence {
  const tail = con.report();
  const section = tail || !opts.omitEmpty ? `\n--- console tail ---\n${tail}` : '';
  return { tail, section, hint: consoleHint(problems, tail, con.path), log: con.path };
}

/** Lines our boot chain prints, in order; the host follows the boot with them. */
export const MARKERS = {
  initramfsSwitch: 'xcl-initramfs: switching',
  guestMounts: 'xcl-guest: mounts done',
  sshdStarted: 'xcl-guest: sshd started',
} as const;
export type MarkerName = keyof typeof MARKERS;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export class ConsoleLog {
  readonly path: string | null;
  readonly problems: ConsoleProblem[] = [];
  /** Time (ms since open) each marker was first seen. */
  readonly markers: Partial<Record<MarkerName, number>> = {};
  private readonly file: WriteStream | null;
  private readonly lines: string[] = [];
  private partial = '';
  private readonly started = Date.now();
  private readonly maxLines: number;
  private readonly listeners = new Set<() => void>();
  /** Lines printed by our initramfs and init ("xcl-..."): they say which boot step failed. */
  private readonly own: string[] = [];

  constructor(path: string | null, maxLines = 400) {
    this.path = path;
    this.maxLines = maxLines;
    this.file = path ? createWriteStream(path, { flags: 'w' }) : null;
    // A console file we cannot write must not kill the boot; the scan still works.
    this.file?.on('error', () => undefined);
  }

  /** Feeds raw console bytes. */
  push(chunk: Buffer | string): void {
    this.file?.write(chunk);
    const text = this.partial + chunk.toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    // A partial line longer than any real console line is flushed so it is still scanned.
    if (this.partial.length > 4096) {
      parts.push(this.partial);
      this.partial = '';
    }
    for (const raw of parts) this.addLine(raw);
    if (parts.length > 0) for (const l of this.listeners) l();
  }

  private addLine(raw: string): void {
    const line = raw.replace(ANSI, '').replace(/\r/g, '');
    this.lines.push(line);
    if (this.lines.length > this.maxLines) this.lines.shift();
    const at = Date.now() - this.started;
    if (/^xcl-[a-z]+:/.test(line)) {
      this.own.push(line);
      if (this.own.length > 50) this.own.shift();
    }
    const kind = classifyConsoleLine(line);
    if (kind) this.problems.push({ kind, line: line.trim(), atMs: at });
    for (const [name, text] of Object.entries(MARKERS) as [MarkerName, string][]) {
      if (this.markers[name] === undefined && line.includes(text)) this.markers[name] = at;
    }
  }

  /** Problems that end a boot (see FATAL_PROBLEMS). */
  fatalProblems(): ConsoleProblem[] {
    return this.problems.filter((p) => FATAL_PROBLEMS.has(p.kind));
  }

  /** Called after each batch of complete lines. Returns an unsubscribe function. */
  onLines(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last `n` lines (plus any unterminated one). */
  tail(n = 40): string {
    const all = this.partial ? [...this.lines, this.partial] : this.lines;
    return all.slice(-n).join('\n');
  }

  /** The lab's own boot-step lines seen so far (a panic's call trace pushes them out of the tail). */
  ownLines(): string[] {
    return [...this.own];
  }

  /**
   * What an error should show: the lab's boot-step lines, then the last `n` lines. The kernel's
   * own message comes before its call trace, so the tail is long enough to keep it.
   */
  report(n = 60): string {
    const tail = this.tail(n);
    const own = this.own.filter((l) => !tail.includes(l));
    return own.length > 0 ? `${own.join('\n')}\n[...]\n${tail}` : tail;
  }

  async close(): Promise<void> {
    if (this.partial) this.addLine(this.partial);
    this.partial = '';
    const f = this.file;
    if (!f) return;
    await new Promise<void>((resolve) => f.end(() => resolve()));
  }
}
