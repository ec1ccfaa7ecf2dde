/**
 * Reading a PERF_EVENT_ARRAY with `bpftool map event_pipe`: a capture around a piece of work,
 * driven by a small shell script on the target, and the parser of what bpftool prints.
 */
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError } from '../errors.ts';
import { refArgs, refText, type ObjRef } from './run.ts';

export interface PerfRecord {
  cpu: number;
  index: number;
  /** The raw sample as the program wrote it (the kernel may pad it to 8 bytes). */
  data: Uint8Array;
}

/** Parses the JSON array `bpftool -j map event_pipe` prints (closed on SIGINT). */
export function parseEventPipe(stdout: string): { records: PerfRecord[]; lost: number } {
  const text = stdout.trim();
  type Raw = { type?: number; cpu?: number; index?: number; data?: (number | string)[]; lost?: number | { lost?: number } };
  let items: Raw[];
  if (text === '') return { records: [], lost: 0 };
  try {
    items = JSON.parse(text) as Raw[];
  } catch {
    // Stopped before the array was closed: take the complete records.
    const cut = text.lastIndexOf('}');
    items = cut < 0 ? [] : (JSON.parse(`${text.slice(0, cut + 1)}]`) as Raw[]);
  }
  const records: PerfRecord[] = [];
  let lost = 0;
  for (const j of items) {
    if (j.lost !== undefined) lost += typeof j.lost === 'number' ? j.lost : (j.lost.lost ?? 0);
    else if (j.data) {
      records.push({
        cpu: j.cpu ?? -1,
        index: j.index ?? -1,
        data: Uint8Array.from(j.data.map((x) => (typeof x === 'number' ? x : parseInt(x, 16)))),
      });
    }
  }
  return { records, lost };
}

/**
 * Captures what a PERF_EVENT_ARRAY receives while `work` runs, with `bpftool map event_pipe` in
 * the background on the target. A small shell wrapper reports when bpftool has its perf buffers
 * open (so no record of `work` is missed) and stops it with SIGINT (so bpftool closes its JSON)
 * when a stop file appears. Works the same on the host and in a guest.
 */
export async function captureEvents<T>(
  target: Target,
  map: ObjRef,
  work: () => Promise<T>,
  opts: { readyTimeoutMs?: number; drainMs?: number } = {},
): Promise<{ result: T; records: PerfRecord[]; lost: number }> {
  const capture = await startCapture(target, map, opts.readyTimeoutMs ?? 15_000);
  try {
    const result = await work();
    // perf buffers are read by bpftool's poll loop; give it a moment to drain before stopping.
    await new Promise((r) => setTimeout(r, opts.drainMs ?? 300));
    await target.run(['touch', `${capture.base}.stop`]);
    await capture.bg;
    const out = await target.run(['cat', `${capture.base}.out`], { allowFailure: true });
    return { result, ...parseEventPipe(out.stdout) };
  } finally {
    await capture.cleanup();
  }
}

/** How many times a bpftool that exits before opening its perf buffers, saying nothing, is started again. */
const SILENT_EXIT_ATTEMPTS = 3;

interface Capture {
  base: string;
  bg: Promise<unknown>;
  cleanup(): Promise<void>;
}

/**
 * Starts `bpftool map event_pipe` and waits until it holds its perf buffers. Under load bpftool
 * has been seen to exit before that without a word on stderr or stdout; such a start is tried
 * again (a capture that has not started has missed nothing). Any other failure, or silence every
 * time, is a LabError with what bpftool said and its exit status.
 */
async function startCapture(target: Target, map: ObjRef, readyTimeoutMs: number): Promise<Capture> {
  for (let attempt = 1; ; attempt++) {
    const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const base = `/tmp/xcl-events-${tag}`;
    const ref = refArgs(map).map(shellQuote).join(' ');
    const script = [
      `bpftool -j map event_pipe ${ref} > ${base}.out 2> ${base}.err & pid=$!`,
      // Ready once bpftool holds perf event fds (one per CPU), or when it has died.
      `for i in $(seq 1 200); do if ls -l /proc/$pid/fd 2>/dev/null | grep -q perf_event; then touch ${base}.ready; break; fi; kill -0 $pid 2>/dev/null || break; sleep 0.05; done`,
      `touch ${base}.started`,
      `while [ ! -e ${base}.stop ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done`,
      `kill -INT $pid 2>/dev/null; wait $pid; echo $? > ${base}.rc`,
    ].join('\n');
    const bg = target.sh(script, { allowFailure: true, timeoutMs: 3_600_000 });
    const cleanup = async (): Promise<void> => {
      await target.run(['touch', `${base}.stop`], { allowFailure: true });
      await bg.catch(() => undefined);
      await target.sh(`rm -f ${base}.*`, { allowFailure: true });
    };
    const deadline = Date.now() + readyTimeoutMs;
    let state: string;
    for (;;) {
      // started is touched after ready, so once it exists the presence of ready is final; testing
      // ready first could miss it and then see started, both made between the two tests.
      state = (await target.sh(`if test -e ${base}.started; then test -e ${base}.ready && echo ready || echo started; else echo wait; fi`, { allowFailure: true })).stdout.trim();
      if (state === 'ready' || state === 'started' || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (state === 'ready') return { base, bg, cleanup };
    // Stop the wrapper (a live bpftool gets SIGINT) so its exit status is on disk, then read it all.
    await target.run(['touch', `${base}.stop`], { allowFailure: true });
    await bg.catch(() => undefined);
    const said = await target.sh(`cat ${base}.err ${base}.out 2>/dev/null; echo; cat ${base}.rc 2>/dev/null`, { allowFailure: true });
    await cleanup();
    const [text = '', rc = ''] = splitStatus(said.stdout);
    if (state === 'started' && text === '' && attempt < SILENT_EXIT_ATTEMPTS) continue;
    const how = state === 'started' ? `exited${rc ? ` with status ${rc}` : ''} before opening its perf buffers` : `did not open its perf buffers within ${readyTimeoutMs} ms`;
    throw new LabError('COMMAND', `${target.name}: bpftool map event_pipe ${refText(map)} ${how} (attempt ${attempt}):\n${text}`, {
      remedy: 'Check that the map is a PERF_EVENT_ARRAY and that perf events are available (root).',
    });
  }
}

/** bpftool's words, then the exit status on the last line. */
function splitStatus(stdout: string): [string, string] {
  const lines = stdout.trimEnd().split('\n');
  const rc = /^\d+$/.test(lines.at(-1) ?? '') ? lines.pop()! : '';
  return [lines.join('\n').trim(), rc];
}
