/**
 * BPF run-time statistics around one iperf3 run: the helper (programs/user/bpf_stats_user.c) turns
 * them on for the measured interval only, bpftool reads run_cnt and run_time_ns of the approach's
 * programs before and after, and the entry program's deltas give ns per packet for the whole chain.
 *
 * The helper prefers a BPF_ENABLE_STATS file descriptor (5.8+): the kernel drops it however the
 * helper ends, and kernel.bpf_stats_enabled, which other processes may rely on, is never written.
 * Where only the sysctl exists (5.1–5.7) the helper saves it, sets it and writes it back on exit;
 * kill() writes it back itself if the helper had to be killed. Like the probe helper it runs
 * detached (setsid, every fd redirected) with its own --max-seconds bound.
 */
import { LabError } from '../errors.ts';
import { progList, xdpAttached } from '../bpftool/index.ts';
import type { LoadedProgram } from '../approaches/approach.ts';
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import type { BpfStats, ProgramStatsDelta } from '../results/record.ts';
import { type HelperLine, parseHelperLines } from '../programs/user.ts';
import { XDP_ACCOUNTING, tcAccountingNote, tcStatsPrograms, type StatsAccounting } from './stats-accounting.ts';

export { XDP_ACCOUNTING, tcAccounting, type StatsAccounting } from './stats-accounting.ts';

export const SYSCTL_PATH = '/proc/sys/kernel/bpf_stats_enabled';

/** "auto": the fd where the kernel has BPF_ENABLE_STATS, else the sysctl. */
export type StatsMode = 'auto' | 'fd' | 'sysctl';
export type StatsMechanism = BpfStats['mode'];

export interface StatsFiles {
  /** Helper executable on the target. */
  helper: string;
  /** Directory on the target for the helper's output and pid files. */
  stateDir: string;
}

export type StatsStart =
  | { ok: true; mode: StatsMechanism; sysctlBefore: number | null; pid: number | null }
  | { ok: false; stage: string; errno: number | null; reason: string };

export interface StatsStop {
  mode: StatsMechanism;
  sysctlAfter: number | null;
  restored: boolean;
}


const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const mechanism = (v: unknown): StatsMechanism | null => (v === 'fd' || v === 'sysctl' ? v : null);

export class BpfStatsSession {
  private readonly target: Target;
  private readonly files: StatsFiles;
  private started: Extract<StatsStart, { ok: true }> | null = null;

  constructor(target: Target, files: StatsFiles) {
    this.target = target;
    this.files = files;
  }

  private get out(): string {
    return `${this.files.stateDir}/stats.out`;
  }
  private get err(): string {
    return `${this.files.stateDir}/stats.err`;
  }
  private get pidFile(): string {
    return `${this.files.stateDir}/stats.pid`;
  }

  /** Whether statistics are on through this session right now. */
  get running(): boolean {
    return this.started !== null;
  }

  /** The helper's process id on the target while it runs. */
  get pid(): number | null {
    return this.started?.pid ?? null;
  }

  /**
   * Starts the helper and waits until statistics are on (or it says why they cannot be).
   * `maxSeconds` bounds the helper's life in case stop() is never called.
   */
  async start(maxSeconds: number, mode: StatsMode = 'auto', readyTimeoutS = 30): Promise<StatsStart> {
    if (this.started) await this.kill();
    const q = shellQuote;
    const polls = Math.ceil(readyTimeoutS * 20);
    const script = [
      `mkdir -p ${q(this.files.stateDir)}`,
      `rm -f ${q(this.out)} ${q(this.pidFile)} ${q(this.err)}`,
      `setsid ${q(this.files.helper)} --mode ${q(mode)} --max-seconds ${Math.ceil(maxSeconds)} >${q(this.out)} 2>${q(this.err)} </dev/null &`,
      `pid=$!; echo $pid >${q(this.pidFile)}`,
      `i=0; while [ $i -lt ${polls} ]; do`,
      `  if grep -q '"event":"\\(ready\\|error\\)"' ${q(this.out)} 2>/dev/null; then break; fi`,
      `  kill -0 $pid 2>/dev/null || { sleep 0.1; break; }`,
      `  sleep 0.05; i=$((i+1)); done`,
      `echo "pid=$pid"; cat ${q(this.out)}; echo '---stderr---'; tail -c 2000 ${q(this.err)} 2>/dev/null; true`,
    ].join('\n');
    const r = await this.target.sh(script, { timeoutMs: (readyTimeoutS + 30) * 1000 });
    const [outText = '', errText = ''] = r.stdout.split('---stderr---');
    const pid = /^pid=(\d+)$/m.exec(outText)?.[1];
    const lines = parseHelperLines(outText);
    const ready = lines.find((l) => l.event === 'ready');
    const used = mechanism(ready?.mode);
    if (ready && used) {
      this.started = { ok: true, mode: used, sysctlBefore: num(ready.sysctlBefore), pid: pid ? Number(pid) : null };
      return this.started;
    }
    const err = lines.find((l) => l.event === 'error');
    if (err) {
      return { ok: false, stage: String(err.stage ?? 'unknown'), errno: num(err.errno), reason: String(err.message ?? 'bpf_stats helper failed') };
    }
    await this.killProcess();
    return {
      ok: false,
      stage: 'start',
      errno: null,
      reason: `bpf_stats helper on ${this.target.name} neither enabled statistics nor reported an error within ${readyTimeoutS} s${errText.trim() ? `: ${errText.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    };
  }

  /** Asks the helper to stop (SIGTERM): statistics off, the sysctl as it was. */
  async stop(timeoutS = 30): Promise<StatsStop> {
    const started = this.started;
    this.started = null;
    const lines = await this.signalAndWait('TERM', timeoutS);
    const stopped = lines.find((l) => l.event === 'stopped');
    const used = mechanism(stopped?.mode);
    if (!stopped || !used) {
      await this.killProcess();
      const restored = started ? await this.restoreSysctl(started) : null;
      throw new LabError('BENCH', `${this.target.name}: bpf_stats helper did not confirm it stopped within ${timeoutS} s${restored ? `; ${restored}` : ''}`, {
        remedy: `Check ${this.out} and ${this.err} on the target, and that ${SYSCTL_PATH} holds what it held before the run.`,
      });
    }
    const result: StatsStop = { mode: used, sysctlAfter: num(stopped.sysctlAfter), restored: stopped.restored === true };
    await this.target.run(['rm', '-f', this.pidFile], { allowFailure: true });
    if (!result.restored) {
      const fixed = started ? await this.restoreSysctl(started).catch((e: unknown) => `writing it back failed too: ${String(e)}`) : null;
      throw new LabError('BENCH', `${this.target.name}: bpf_stats helper could not restore ${SYSCTL_PATH} (now ${String(result.sysctlAfter)}, was ${String(started?.sysctlBefore)})${fixed ? `; ${fixed}` : ''}`, {
        remedy: `Write the previous value back by hand: echo ${String(started?.sysctlBefore ?? 0)} > ${SYSCTL_PATH}.`,
      });
    }
    return result;
  }

  /** Stops a helper left running on an error path: SIGTERM first so it restores, SIGKILL if it must. */
  async kill(): Promise<void> {
    const started = this.started;
    this.started = null;
    const lines = await this.signalAndWait('TERM', 5).catch((): HelperLine[] => []);
    if (lines.some((l) => l.event === 'stopped')) return;
    await this.killProcess();
    if (started) await this.restoreSysctl(started).catch(() => undefined);
  }

  private async signalAndWait(signal: 'TERM', timeoutS: number): Promise<HelperLine[]> {
    const q = shellQuote;
    const polls = Math.ceil(timeoutS * 20);
    const script = [
      `pid=$(cat ${q(this.pidFile)} 2>/dev/null)`,
      `[ -n "$pid" ] && kill -${signal} $pid 2>/dev/null`,
      `i=0; while [ $i -lt ${polls} ]; do`,
      `  if grep -q '"event":"\\(stopped\\|error\\)"' ${q(this.out)} 2>/dev/null; then break; fi`,
      `  [ -n "$pid" ] && ! kill -0 $pid 2>/dev/null && { sleep 0.05; break; }`,
      `  sleep 0.05; i=$((i+1)); done`,
      `cat ${q(this.out)} 2>/dev/null; true`,
    ].join('\n');
    const r = await this.target.sh(script, { timeoutMs: (timeoutS + 30) * 1000 });
    return parseHelperLines(r.stdout);
  }

  private async killProcess(): Promise<void> {
    await this.target
      .sh(`pid=$(cat ${shellQuote(this.pidFile)} 2>/dev/null); [ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -f ${shellQuote(this.pidFile)}; true`, {
        allowFailure: true,
        timeoutMs: 30_000,
      })
      .catch(() => undefined);
  }

  /** The sysctl as it was, when the helper set it and could not put it back. Returns what it did. */
  private async restoreSysctl(started: Extract<StatsStart, { ok: true }>): Promise<string | null> {
    if (started.mode !== 'sysctl' || started.sysctlBefore !== 0) return null;
    await this.target.sh(`echo 0 > ${SYSCTL_PATH}`);
    return `${SYSCTL_PATH} written back to 0`;
  }
}

/** A program whose counters are read: the entry first, then the rest of the chain. */
export interface StatsProgram {
  role: string;
  id: number;
  name: string;
}

export type StatsSnapshot = Map<number, { runCnt: number; runTimeNs: number }>;

/** run_cnt and run_time_ns of the given programs now (one `bpftool prog show`). */
export async function readStats(target: Target, ids: readonly number[]): Promise<StatsSnapshot> {
  const all = await progList(target);
  const out: StatsSnapshot = new Map();
  for (const id of ids) {
    const p = all.find((x) => x.id === id);
    if (!p) {
      throw new LabError('BENCH', `${target.name}: program id ${id} is no longer loaded: cannot read its run-time statistics`, {
        remedy: 'Something detached or unloaded the approach during the run: check for other users of the interface.',
      });
    }
    // bpftool omits both fields while they are zero.
    out.set(id, { runCnt: p.runCnt ?? 0, runTimeNs: p.runTimeNs ?? 0 });
  }
  return out;
}

/**
 * The program attached to the interface (the chain's entry: the dispatcher for `dispatcher`, the
 * head or first stage for the others) followed by the approach's other programs.
 */
export async function statsPrograms(target: Target, ifname: string, netns: string, described: readonly LoadedProgram[]): Promise<StatsProgram[]> {
  const att = await xdpAttached(target, ifname, netns);
  const entry = att.find((a) => a.mode === 'driver') ?? att[0];
  if (!entry) {
    throw new LabError('BENCH', `${target.name}: no XDP program attached to ${ifname} in ${netns}: no entry program to take statistics of`, {
      remedy: 'Check `bpftool net show` in the namespace; the approach should have attached.',
    });
  }
  const known = described.find((p) => p.id === entry.id);
  const head: StatsProgram = { role: known?.role ?? 'entry', id: entry.id, name: known?.name ?? '' };
  if (!known) {
    const all = await progList(target);
    head.name = all.find((p) => p.id === entry.id)?.name ?? '';
  }
  return [head, ...described.filter((p) => p.id !== entry.id).map((p) => ({ role: p.role, id: p.id, name: p.name }))];
}

/**
 * The record's statistics from two snapshots: the first program is the entry. A run in which the
 * entry never ran gives a reason, never a zero.
 */
export function statsDelta(
  mode: StatsMechanism,
  programs: readonly StatsProgram[],
  before: StatsSnapshot,
  after: StatsSnapshot,
  accounting: StatsAccounting = XDP_ACCOUNTING,
): { stats: BpfStats } | { reason: string } {
  const entry = programs[0];
  if (!entry) return { reason: 'no program to take statistics of' };
  const deltas: ProgramStatsDelta[] = [];
  for (const p of programs) {
    const a = before.get(p.id);
    const b = after.get(p.id);
    if (!a || !b) return { reason: `program ${p.name || p.id} (id ${p.id}) missing from a statistics snapshot` };
    const runCnt = b.runCnt - a.runCnt;
    const runTimeNs = b.runTimeNs - a.runTimeNs;
    if (runCnt < 0 || runTimeNs < 0) return { reason: `statistics of ${p.name || p.id} (id ${p.id}) went backwards: the program was replaced during the run` };
    deltas.push({ role: p.role, id: p.id, name: p.name, runCnt, runTimeNs });
  }
  const e = deltas[0]!;
  if (e.runCnt === 0) return { reason: `the entry program ${e.name || e.id} (id ${e.id}) did not run during the interval (run_cnt unchanged): statistics off, or no packet reached it` };
  if (accounting.hook === 'xdp') {
    return {
      stats: { mode, programId: e.id, programName: e.name, runCnt: e.runCnt, runTimeNs: e.runTimeNs, nsPerPacket: e.runTimeNs / e.runCnt, programs: deltas },
    };
  }
  const summed = Math.max(1, Math.min(accounting.summed, deltas.length));
  const runTimeNs = deltas.slice(0, summed).reduce((t, d) => t + d.runTimeNs, 0);
  return {
    stats: {
      mode,
      programId: e.id,
      programName: e.name,
      runCnt: e.runCnt,
      runTimeNs,
      nsPerPacket: runTimeNs / e.runCnt,
      programs: deltas,
      unit: 'skb',
      summedPrograms: summed,
      accountingNote: tcAccountingNote(summed),
    },
  };
}

/** The reason given in RunRecord.bpfStatsNullReason when statistics cannot be turned on. */
export function statsUnavailableReason(target: Target, start: Extract<StatsStart, { ok: false }>): string {
  const why =
    start.stage === 'unsupported'
      ? 'no BPF run-time statistics on this kernel (kernel.bpf_stats_enabled exists from 5.1, BPF_ENABLE_STATS from 5.8)'
      : `bpf_stats helper failed at ${start.stage}`;
  return `${why} (${target.name}, ${target.kernelRelease}): ${start.reason}`;
}

export const NONE_STATS_REASON = 'approach none attaches no XDP program: there is no program to take run-time statistics of';
export const TC_NONE_STATS_REASON = 'approach tc-none attaches no program (a clsact qdisc with no filter): there is no program to take run-time statistics of';

/** The stats mechanism in words, for provenance. */
export function describeMechanism(mode: StatsMechanism): string {
  return mode === 'fd'
    ? `BPF_ENABLE_STATS: a file descriptor held by the bpf_stats helper during each measured run (${SYSCTL_PATH} untouched)`
    : `${SYSCTL_PATH} set to 1 by the bpf_stats helper during each measured run and restored after`;
}

/** Statistics on and a first reading taken; end() reads again and turns them off. */
export class StatsInterval {
  private readonly session: BpfStatsSession;
  private readonly target: Target;
  readonly mode: StatsMechanism;
  readonly programs: readonly StatsProgram[];
  private readonly before: StatsSnapshot;
  private readonly accounting: StatsAccounting;

  constructor(session: BpfStatsSession, target: Target, mode: StatsMechanism, programs: readonly StatsProgram[], before: StatsSnapshot, accounting: StatsAccounting = XDP_ACCOUNTING) {
    this.session = session;
    this.target = target;
    this.mode = mode;
    this.programs = programs;
    this.before = before;
    this.accounting = accounting;
  }

  /** Second reading, then statistics off (throws if the setting could not be restored). */
  async end(): Promise<{ stats: BpfStats } | { reason: string }> {
    let after: StatsSnapshot;
    try {
      after = await readStats(this.target, this.programs.map((p) => p.id));
    } catch (e) {
      await this.session.kill();
      throw e;
    }
    await this.session.stop();
    return statsDelta(this.mode, this.programs, this.before, after, this.accounting);
  }

  /** Statistics off without a reading (error paths). */
  async abort(): Promise<void> {
    await this.session.kill();
  }
}

export interface BeginOptions {
  maxSeconds: number;
  mode?: StatsMode;
  /** Default XDP: the entry found on the interface. TC: the described programs, in the order the kernel runs them. */
  accounting?: StatsAccounting;
}

/**
 * Turns statistics on and takes the first reading of the programs attached to ctx.ifname (the
 * entry found with `bpftool net show`, then `described`, the approach's own list). Statistics are
 * off again if anything here fails.
 */
export async function beginStats(
  session: BpfStatsSession,
  ctx: { target: Target; ifname: string; netns: string },
  described: readonly LoadedProgram[],
  opts: BeginOptions,
): Promise<{ ok: true; interval: StatsInterval } | { ok: false; reason: string }> {
  const accounting = opts.accounting ?? XDP_ACCOUNTING;
  // TC ingress has no "bpftool net show" entry in XDP's sense: the approach's own list is in the
  // order a packet meets the programs, the attached one(s) first.
  const programs = accounting.hook === 'xdp' ? await statsPrograms(ctx.target, ctx.ifname, ctx.netns, described) : tcStatsPrograms(ctx.target, described);
  const start = await session.start(opts.maxSeconds, opts.mode ?? 'auto');
  if (!start.ok) return { ok: false, reason: statsUnavailableReason(ctx.target, start) };
  try {
    const before = await readStats(ctx.target, programs.map((p) => p.id));
    return { ok: true, interval: new StatsInterval(session, ctx.target, start.mode, programs, before, accounting) };
  } catch (e) {
    await session.kill();
    throw e;
  }
}
