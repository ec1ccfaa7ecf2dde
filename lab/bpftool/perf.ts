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
  try {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
    for (;;) {
      const st = await target.sh(`test -e ${base}.ready && echo ready || (test -e ${base}.started && echo started) || echo wait`, { allowFailure: true });
      const s = st.stdout.trim();
      if (s === 'ready') break;
      if (s === 'started' || Date.now() > deadline) {
        const err = await target.run(['cat', `${base}.err`, `${base}.out`], { allowFailure: true });
        throw new LabError('COMMAND', `${target.name}: bpftool map event_pipe ${refText(map)} did not start:\n${err.stdout.trim()}`, {
          remedy: 'Check that the map is a PERF_EVENT_ARRAY and that perf events are available (root).',
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = await work();
    // perf buffers are read by bpftool's poll loop; give it a moment to drain before stopping.
    await new Promise((r) => setTimeout(r, opts.drainMs ?? 300));
    await target.run(['touch', `${base}.stop`]);
    await bg;
    const out = await target.run(['cat', `${base}.out`], { allowFailure: true });
    return { result, ...parseEventPipe(out.stdout) };
  } finally {
    await cleanup();
  }
}
