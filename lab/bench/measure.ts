/**
 * One measured iperf3 run of one approach on one kernel session: load, attach, (probes on,)
 * (run-time statistics on, first reading,) iperf3, (second reading, statistics off,) (probe
 * totals,) detach. Detach, probes off and statistics off happen on every path; whatever is not
 * measured is null with the reason, never zeros. TC approaches are measured the same way, without
 * the veth_poll probe (see TC_PROBE_REASON) and with their statistics per skb.
 */
import type { Approach, ApproachContext } from '../approaches/approach.ts';
import { errorMessage, LabError } from '../errors.ts';
import { hookOfApproach, type ApproachHook, type ApproachName, type BpfStats, type ProbeTotals, type RunRecord } from '../results/record.ts';
import { NONE_STATS_REASON, TC_NONE_STATS_REASON, beginStats, tcAccounting, type BpfStatsSession, type StatsInterval } from './bpf-stats.ts';
import type { MatrixRun } from './context.ts';
import type { IperfOutcome, KernelSession } from './kernel-session.ts';
import { probeUnavailableReason, type ProbeSession } from './probe.ts';

export interface Measured {
  hook: ApproachHook;
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

/** The baselines: no program on their hook, so neither statistics nor an attached entry. */
export function isBaseline(name: ApproachName): boolean {
  return name === 'none' || name === 'tc-none';
}

/**
 * Why a TC approach's run has no probe data. Checked on 6.18 (veth pair, the testbed's offloads:
 * GRO off on the receiving veth, TSO on the sender): with only a TC ingress program attached,
 * 200 pings left the receiving veth's rx_queue_0_xdp_packets (counted by veth_poll) at 0, with
 * GRO turned on too; with an XDP program it counted all 200.
 */
export const TC_PROBE_REASON =
  'the veth_poll probe times XDP\'s receive path (veth\'s NAPI poll), which runs only with an XDP program on the receiving veth or GRO on there (off in the testbed: see the record\'s offloads); with a TC program alone it does not run (checked on 6.18: under traffic the veth\'s rx_queue_0_xdp_packets, counted in veth_poll, stays 0) and TC ingress runs from the backlog: there is no probe data'

/** Why a run's probe is null before it starts: the baselines and the TC hook never have probe data. */
export function probeNullReasonOf(name: ApproachName): string | null {
  if (name === 'none') return 'approach none attaches no XDP program: veth_poll does not run, so there is no probe data';
  if (hookOfApproach(name) === 'tc') return `approach ${name} runs on TC ingress: ${TC_PROBE_REASON}`;
  return null;
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
  const hook = hookOfApproach(impl.name);
  const fixedProbeReason = probeNullReasonOf(impl.name);
  const probe = fixedProbeReason ? null : w.probe;
  const { stats } = w;
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
    const baseline = isBaseline(impl.name);
    if (stats && !w.statsNullReason && !baseline) {
      const accounting = hook === 'tc' ? tcAccounting(desc) : undefined;
      const begun = await beginStats(stats, ctx, desc.programs, { maxSeconds: durationS + 120, mode: run.settings.statsMode, accounting });
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
      hook,
      iperf,
      probe: totals,
      bpfStats,
      xdpMode: isNone ? 'none' : desc.xdpMode,
      offloads,
      startedAt,
      endedAt,
    };
    if (totals === null) {
      m.probeNullReason = fixedProbeReason ?? probeNote ?? w.probeNullReason ?? 'probes not requested for this run';
    }
    if (bpfStats === null) {
      m.bpfStatsNullReason = isNone
        ? NONE_STATS_REASON
        : impl.name === 'tc-none'
          ? TC_NONE_STATS_REASON
          : (statsNote ?? w.statsNullReason ?? 'run-time statistics not requested for this run');
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
