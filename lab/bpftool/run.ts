/**
 * Running `bpftool -j ...` on a Target (host or guest): argv building (object references, the
 * nsenter prefix), JSON parsing, batches, and turning a failure into a LabError with bpftool's
 * own words (its JSON "error" plus the tail of libbpf's/the verifier's stderr).
 *
 * Commands that name an interface take an optional `netns`: they are run through
 * `nsenter --net=/run/netns/<netns>`, never `ip netns exec`, because the latter remounts /sys and
 * hides bpffs pins.
 */
import type { CommandResult, Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError, type LabErrorCode } from '../errors.ts';

/** How bpftool should find a program or map. */
export type ObjRef = { id: number } | { pinned: string } | { name: string } | { tag: string };

export const BPFTOOL = 'bpftool';

export function refArgs(ref: ObjRef): string[] {
  if ('id' in ref) return ['id', String(ref.id)];
  if ('pinned' in ref) return ['pinned', ref.pinned];
  if ('name' in ref) return ['name', ref.name];
  return ['tag', ref.tag];
}

export function refText(ref: ObjRef): string {
  return refArgs(ref).join(' ');
}

export function nsPrefix(netns: string | undefined): string[] {
  return netns === undefined || netns === '' ? [] : ['nsenter', `--net=/run/netns/${netns}`];
}

/** bpftool's own error sentence (from -j output) followed by the tail of libbpf/verifier stderr. */
export function errorText(r: CommandResult): string {
  const parts: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      const j = JSON.parse(t) as { error?: unknown };
      if (typeof j.error === 'string') parts.push(j.error);
    } catch {
      /* not JSON: ignore */
    }
  }
  const err = r.stderr.trim();
  if (err) parts.push(err.split('\n').slice(-20).join('\n'));
  if (parts.length === 0 && r.stdout.trim()) parts.push(r.stdout.trim().split('\n').slice(-10).join('\n'));
  return parts.join('\n');
}

/**
 * EPERM/EACCES mean "not root" only when the caller is not root: the verifier also answers EACCES
 * when it rejects a program, and bpffs answers EPERM to names it refuses.
 */
async function classify(target: Target, text: string, fallback: LabErrorCode): Promise<{ code: LabErrorCode; remedy?: string }> {
  if (/Operation not permitted|Permission denied|EPERM|EACCES/.test(text)) {
    const id = await target.run(['id', '-u'], { allowFailure: true }).catch(() => null);
    if (id && id.stdout.trim() !== '0') {
      return { code: 'NOT_ROOT', remedy: 'Run the lab as root (BPF needs CAP_BPF/CAP_SYS_ADMIN and CAP_NET_ADMIN).' };
    }
  }
  return { code: fallback };
}

export interface BpftoolCall {
  /** Error code when bpftool fails (default COMMAND). */
  code?: LabErrorCode;
  /** What was being done, for the message ("loading filter.o"). */
  what?: string;
  remedy?: string;
  netns?: string;
  timeoutMs?: number;
  /** Command prefix (e.g. taskset) placed before bpftool, after nsenter. */
  prefix?: string[];
}

/**
 * Runs `bpftool -j <args>` and returns its parsed JSON (null when bpftool prints null, as for most
 * commands that only act). Throws LabError with bpftool's message on failure.
 */
export async function bpftoolJson<T = unknown>(target: Target, args: readonly string[], call: BpftoolCall = {}): Promise<T> {
  const argv = [...nsPrefix(call.netns), ...(call.prefix ?? []), BPFTOOL, '-j', ...args];
  let r: CommandResult;
  try {
    r = await target.run(argv, { allowFailure: true, timeoutMs: call.timeoutMs });
  } catch (e) {
    if (e instanceof LabError && e.code === 'MISSING_TOOL') {
      throw new LabError('MISSING_TOOL', `${target.name}: bpftool is not installed`, {
        remedy: 'Install bpftool (Debian: apt-get install bpftool; or run `npm run setup`).',
        cause: e,
      });
    }
    throw e;
  }
  if (r.exitCode !== 0) {
    const text = errorText(r);
    const { code, remedy } = await classify(target, text, call.code ?? 'COMMAND');
    const what = call.what ?? `bpftool ${args.slice(0, 2).join(' ')}`;
    throw new LabError(code, `${target.name}: ${what}: \`${argv.map(shellQuote).join(' ')}\` failed (exit ${r.exitCode}):\n${text}`, {
      remedy: remedy ?? call.remedy,
      details: { argv, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr },
    });
  }
  const out = r.stdout.trim();
  if (out === '') return null as T;
  try {
    return JSON.parse(out) as T;
  } catch (e) {
    throw new LabError('COMMAND', `${target.name}: bpftool ${args.slice(0, 2).join(' ')}: output is not JSON: ${out.slice(0, 200)}`, {
      cause: e,
    });
  }
}

/** bpftool's JSON for one command of a batch. */
export interface BatchEntry {
  command: string[];
  output: unknown;
}

/** Words of one bpftool command in its batch-file syntax (whitespace-separated, "-quoted). */
function batchLine(words: readonly string[]): string {
  return words
    .map((w) => {
      if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
      if (/["\n\\]/.test(w)) throw new LabError('BAD_INPUT', `bpftool batch: argument ${JSON.stringify(w)} cannot be quoted`);
      return `"${w}"`;
    })
    .join(' ');
}

/**
 * bpftool 7.5 (bookworm-backports) ends a JSON batch whose last command is a map command with
 * {"error": "reading batch file failed: Bad file descriptor"} and exit 255 after running every
 * command: it reports an errno left over from the map command as a read error at end of file.
 * That batch is whole (one good entry per command, then only this error), so it is accepted;
 * a batch missing a command or with a failing one is still an error.
 */
function staleBatchErrno(entries: readonly BatchEntry[], commands: number): boolean {
  if (entries.length !== commands + 1) return false;
  const last = entries[commands] as unknown as Record<string, unknown>;
  if (Object.keys(last).length !== 1 || typeof last.error !== 'string' || !last.error.startsWith('reading batch file failed:')) return false;
  return entries.slice(0, commands).every((e) => Array.isArray(e.command) && !(e.output !== null && typeof e.output === 'object' && 'error' in e.output));
}

/**
 * Runs many bpftool commands in one process (`bpftool -j batch file -`): one round trip instead of
 * one per command, which matters on a guest reached over SSH. Any failing command aborts the
 * batch; the error names it with bpftool's own message.
 */
export async function bpftoolBatch(target: Target, commands: readonly (readonly string[])[], what: string): Promise<BatchEntry[]> {
  if (commands.length === 0) return [];
  const input = `${commands.map(batchLine).join('\n')}\n`;
  const r = await target.run([BPFTOOL, '-j', 'batch', 'file', '-'], { input, allowFailure: true, timeoutMs: 3_600_000 });
  let entries: BatchEntry[] = [];
  try {
    const out = r.stdout.trim();
    entries = out === '' ? [] : (JSON.parse(out) as BatchEntry[]);
  } catch {
    /* reported below with the raw output */
  }
  if (staleBatchErrno(entries, commands.length)) return entries.slice(0, commands.length);
  const failed = entries.find((e) => e.output !== null && typeof e.output === 'object' && 'error' in e.output);
  if (r.exitCode !== 0 || failed || entries.length !== commands.length) {
    const msg = failed
      ? `\`bpftool ${failed.command.map(shellQuote).join(' ')}\`: ${String((failed.output as { error: unknown }).error)}`
      : `bpftool batch exited with ${r.exitCode} after ${entries.length} of ${commands.length} commands:\n${(r.stderr || r.stdout).trim().split('\n').slice(-10).join('\n')}`;
    throw new LabError('COMMAND', `${target.name}: ${what}: ${msg}`, {
      remedy: 'Check that bpftool supports `batch` (bpftool 5.6 or later) and that the objects named are still pinned.',
      details: { stdout: r.stdout, stderr: r.stderr },
    });
  }
  return entries;
}
