/**
 * The veth_poll probe on a Target: puts the helper (programs/user) and veth_probe.o on the target,
 * starts the helper in the background before a run and stops it after, returning its totals.
 *
 * The helper runs detached (setsid, all fds redirected) so a command channel (SSH or a child
 * process) is never held open by it; it writes JSON lines to a file that we poll. Its own
 * --max-seconds bound guarantees it exits even if the lab is killed between start and stop.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import type { PollSize, ProbeTotals } from '../results/record.ts';
import { type HelperLine, parseHelperLines } from '../programs/user.ts';

export interface ProbeFiles {
  /** Helper executable on the target. */
  helper: string;
  /** veth_probe.o on the target. */
  object: string;
  /** Directory on the target for the helper's output and pid files. */
  stateDir: string;
}

export type ProbeStart =
  | { ok: true; cyclesAvailable: boolean; cyclesNullReason?: string }
  | { ok: false; stage: string; errno: number | null; reason: string };


const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The helper's [packets, calls, ns] triples; undefined when the line has none (an older helper). */
function pollSizesOf(line: HelperLine, where: string): PollSize[] | undefined {
  const v = line.pollSizes;
  if (v === undefined) return undefined;
  const out: PollSize[] = [];
  for (const t of Array.isArray(v) ? v : [v]) {
    const [packets, calls, ns] = Array.isArray(t) && t.length === 3 ? t.map(num) : [null, null, null];
    if (packets == null || calls == null || ns == null || !Number.isInteger(packets) || !Number.isInteger(calls) || calls <= 0 || packets < 0 || ns < 0) {
      throw new LabError('BENCH', `${where}: probe helper printed a malformed poll size ${JSON.stringify(t)} (want [packets, calls, ns])`, {
        remedy: 'Rebuild the helper (delete build/user) and rerun; report it if it persists.',
      });
    }
    out.push({ packets, calls, ns });
  }
  return out;
}

/** Converts the helper's totals line into the schema's ProbeTotals (dropping helper-only fields). */
export function toProbeTotals(line: HelperLine, where: string): ProbeTotals {
  const calls = num(line.calls);
  const packets = num(line.packets);
  const ns = num(line.ns);
  if (calls === null || packets === null || ns === null) {
    throw new LabError('BENCH', `${where}: probe helper printed malformed totals: ${JSON.stringify(line)}`, {
      remedy: 'Rebuild the helper (delete build/user) and rerun; report it if it persists.',
    });
  }
  const cycles = num(line.cycles);
  const totals: ProbeTotals = { calls, packets, ns, cycles };
  const sizes = pollSizesOf(line, where);
  if (sizes) totals.pollSizes = sizes;
  if (cycles === null) {
    totals.cyclesNullReason = typeof line.cyclesNullReason === 'string' ? line.cyclesNullReason : 'cycles not reported by the helper';
  }
  return totals;
}

export class ProbeSession {
  private readonly target: Target;
  private readonly files: ProbeFiles;
  private running = false;

  constructor(target: Target, files: ProbeFiles) {
    this.target = target;
    this.files = files;
  }

  private get out(): string {
    return `${this.files.stateDir}/probe.out`;
  }
  private get pidFile(): string {
    return `${this.files.stateDir}/probe.pid`;
  }

  /**
   * Starts the helper and waits until its probes are attached (or it reports why they cannot be).
   * `maxSeconds` bounds the helper's life in case stop() is never called.
   */
  async start(maxSeconds: number, readyTimeoutS = 60): Promise<ProbeStart> {
    if (this.running) await this.stop().catch(() => undefined);
    const { helper, object, stateDir } = this.files;
    const q = shellQuote;
    const polls = Math.ceil(readyTimeoutS * 10);
    const script = [
      `mkdir -p ${q(stateDir)}`,
      `rm -f ${q(this.out)} ${q(this.pidFile)} ${q(`${stateDir}/probe.err`)}`,
      `setsid ${q(helper)} ${q(object)} --max-seconds ${Math.ceil(maxSeconds)} >${q(this.out)} 2>${q(`${stateDir}/probe.err`)} </dev/null &`,
      `pid=$!; echo $pid >${q(this.pidFile)}`,
      `i=0; while [ $i -lt ${polls} ]; do`,
      `  if grep -q '"event":"\\(ready\\|error\\)"' ${q(this.out)} 2>/dev/null; then break; fi`,
      `  kill -0 $pid 2>/dev/null || { sleep 0.2; break; }`,
      `  sleep 0.1; i=$((i+1)); done`,
      `cat ${q(this.out)}; echo '---stderr---'; tail -c 2000 ${q(`${stateDir}/probe.err`)} 2>/dev/null; true`,
    ].join('\n');
    const r = await this.target.sh(script, { timeoutMs: (readyTimeoutS + 30) * 1000 });
    const [outText = '', errText = ''] = r.stdout.split('---stderr---');
    const lines = parseHelperLines(outText);
    const ready = lines.find((l) => l.event === 'ready');
    if (ready) {
      this.running = true;
      const start: ProbeStart = { ok: true, cyclesAvailable: ready.cyclesAvailable === true };
      if (typeof ready.cyclesNullReason === 'string') start.cyclesNullReason = ready.cyclesNullReason;
      return start;
    }
    const err = lines.find((l) => l.event === 'error');
    if (err) {
      return {
        ok: false,
        stage: String(err.stage ?? 'unknown'),
        errno: num(err.errno),
        reason: String(err.message ?? 'probe helper failed'),
      };
    }
    await this.kill();
    return {
      ok: false,
      stage: 'start',
      errno: null,
      reason: `probe helper on ${this.target.name} neither attached nor reported an error within ${readyTimeoutS} s${errText.trim() ? `: ${errText.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    };
  }

  /** Asks the helper to stop (SIGTERM) and returns its totals. */
  async stop(timeoutS = 60): Promise<ProbeTotals> {
    const q = shellQuote;
    const polls = Math.ceil(timeoutS * 20);
    // Wait for the totals line rather than for the process to disappear: a reparented helper may
    // linger as a zombie where nothing reaps it, but its output is complete once the line is there.
    const script = [
      `pid=$(cat ${q(this.pidFile)} 2>/dev/null)`,
      `[ -n "$pid" ] && kill -TERM $pid 2>/dev/null`,
      `i=0; while [ $i -lt ${polls} ]; do`,
      `  if grep -q '"event":"\\(totals\\|error\\)"' ${q(this.out)} 2>/dev/null; then break; fi`,
      `  sleep 0.05; i=$((i+1)); done`,
      `cat ${q(this.out)} 2>/dev/null; true`,
    ].join('\n');
    this.running = false;
    const r = await this.target.sh(script, { timeoutMs: (timeoutS + 30) * 1000 });
    const lines = parseHelperLines(r.stdout);
    const totals = lines.find((l) => l.event === 'totals');
    if (totals) return toProbeTotals(totals, this.target.name);
    await this.kill();
    const err = lines.find((l) => l.event === 'error');
    throw new LabError('BENCH', `${this.target.name}: veth_poll probe gave no totals${err ? `: ${String(err.message)}` : ` within ${timeoutS} s`}`, {
      remedy: 'Check the helper output under the target work directory (probe/probe.out, probe.err).',
    });
  }

  /** Kills a helper left running (best effort, every path). */
  async kill(): Promise<void> {
    this.running = false;
    await this.target
      .sh(`pid=$(cat ${shellQuote(this.pidFile)} 2>/dev/null); [ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -f ${shellQuote(this.pidFile)}; true`, {
        allowFailure: true,
        timeoutMs: 30_000,
      })
      .catch(() => undefined);
  }
}

/**
 * The reason given in RunRecord.probeNullReason when the probe could not attach on a kernel.
 * Names the kernel and keeps the helper's own words.
 */
export function probeUnavailableReason(target: Target, start: Extract<ProbeStart, { ok: false }>): string {
  const kprobeHint = start.stage === 'attach' ? 'kprobes unavailable on this kernel' : `probe helper failed at ${start.stage}`;
  return `${kprobeHint} (${target.name}, ${target.kernelRelease}): ${start.reason}`;
}
