/**
 * One measured iperf3 run of one approach on one kernel session: load, attach, (probes on,)
 * (run-time statistics on, first reading,) iperf3, (second reading, statistics off,) (probe
 * totals,) detach. Detach, probes off and statistics off happen on every path; whatever is not
 * measured is null with the reason, never zeros.
 */
import type { Approach, ApproachContext } from '../approaches/approach.ts';
import { errorMessage, LabError } from '../errors.ts';
import type { BpfStats, ProbeTotals, RunRecord } from '../results/record.ts';
import { NONE_STATS_REASON, beginStats, type BpfStatsSession, type StatsInterval } from './bpf-stats.ts';
import type { MatrixRun } from './context.ts';
import type { IperfOutcome, KernelSession } from './kernel-session.ts';
import { probeUnavailableReason, type ProbeSession } from './probe.ts';

export interface Measured {
  iperf: IperfOutcome;
  probe: ProbeTotals | null;
  probeNullReason?: string;
  bpfStats: BpfStats | null;
  bpfStatsNullReason?: string;
  xdpMode: RunRecord['xdpMode'];
  offloads: Record<string, boolean>;
  patchMode?: string;
  patchModeReason?: string;
  startedAt: string;
  endedAt: string;
}

/** What a measured run takes besides the approach: the probes and the run-time statistics, or why not. */
export interface MeasureWith {
  probe: ProbeSession | null;
  probeNullReason: string | null;
  stats: BpfStatsSession | null;
  statsNullReason: string | null;
}

/** Picks the patch mode and why out of a description's notes ("patch mode inline: no body ..."). */
function patchModeFrom(notes: readonly string[]): { mode: string; reason?: string } | undefined {
  for (const n of notes) {
    const m = /\b(?:patch[ -]?)?mode\b\s*[:=]?\s*(subprog|inline)\b(?::\s*(.+))?/i.exec(n);
    if (m?.[1]) return m[2] ? { mode: m[1].toLowerCase(), reason: m[2].trim() } : { mode: m[1].toLowerCase() };
  }
  return undefined;
}

/** One run of `durationS` seconds; `what` names it in errors ("6.1 fused run 3/50", "warm-up"). */
export async function measure(
  run: MatrixRun,
  s: KernelSession,
  impl: Approach,
  ctx: ApproachContext,
  durationS: number,
  what: string,
  w: MeasureWith,
): Promise<Measured> {
  const isNone = impl.name === 'none';
  const { probe, stats } = w;
  let probing = false;
  let interval: StatsInterval | null = null;
  try {
    await impl.load(ctx);
    await impl.attach(ctx);
    const desc = await impl.describe(ctx);
    if (!isNone && !desc.attached) {
      throw new LabError('ATTACH', `${s.target.name}: ${what}: ${impl.name} reports itself not attached on ${ctx.ifname}`, {
        remedy: 'Check `ip link show` in the namespace; another program may hold the interface.',
      });
    }
    const offloads = await s.testbed.offloads();
    let probeNote: string | undefined;
    if (probe && !w.probeNullReason) {
      const start = await probe.start(durationS + 120);
      if (start.ok) probing = true;
      else probeNote = probeUnavailableReason(s.target, start);
    }
    let statsNote: string | undefined;
    if (stats && !w.statsNullReason && !isNone) {
      const begun = await beginStats(stats, ctx, desc.programs, { maxSeconds: durationS + 120, mode: run.settings.statsMode });
      if (begun.ok) interval = begun.interval;
      else statsNote = begun.reason;
    }
    const startedAt = new Date().toISOString();
    const iperf = await s.testbed.iperf(durationS);
    const endedAt = new Date().toISOString();
    let bpfStats: BpfStats | null = null;
    if (interval) {
      const ended = await interval.end();
      interval = null;
      if ('stats' in ended) bpfStats = ended.stats;
      else statsNote = ended.reason;
    }
    const totals = probing ? await probe!.stop() : null;
    probing = false;
    const m: Measured = {
      iperf,
      probe: totals,
      bpfStats,
      xdpMode: isNone ? 'none' : desc.xdpMode,
      offloads,
      startedAt,
      endedAt,
    };
    if (totals === null) {
      m.probeNullReason = isNone
        ? 'approach none attaches no XDP program: veth_poll does not run, so there is no probe data'
        : (probeNote ?? w.probeNullReason ?? 'probes not requested for this run');
    }
    if (bpfStats === null) {
      m.bpfStatsNullReason = isNone ? NONE_STATS_REASON : (statsNote ?? w.statsNullReason ?? 'run-time statistics not requested for this run');
    }
    const pm = impl.name === 'patched' ? patchModeFrom(desc.notes) : undefined;
    if (pm) {
      m.patchMode = pm.mode;
      if (pm.reason) m.patchModeReason = pm.reason;
    }
    return m;
  } finally {
    if (interval) await interval.abort();
    if (probing) await probe!.kill();
    await impl.detach(ctx).catch((e: unknown) => run.emit(`${s.kernel}: ${impl.name}: detach failed: ${errorMessage(e)}`, 'warn'));
  }
}
