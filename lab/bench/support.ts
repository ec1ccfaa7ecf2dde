/**
 * What a kernel session can measure, asked before its first run: which approaches it supports (in
 * the tool's own words when not), and whether the veth_poll probes and the BPF run-time
 * statistics can be turned on there (one trial start/stop each, so every run knows up front).
 */
import type { Approach, ApproachContext } from '../approaches/approach.ts';
import type { ApproachName } from '../results/record.ts';
import { errorMessage } from '../errors.ts';
import { BpfStatsSession, describeMechanism, statsUnavailableReason, type StatsMechanism, type StatsMode } from './bpf-stats.ts';
import type { KernelSession } from './kernel-session.ts';
import type { MeasureWith } from './measure.ts';
import { ProbeSession, probeUnavailableReason } from './probe.ts';

/** An approach this session will measure, with the bpffs context it owns. */
export interface Runnable {
  name: ApproachName;
  impl: Approach;
  ctx: ApproachContext;
}

export type Support = { ok: true; runnable: Runnable } | { ok: false; status: 'skipped' | 'unsupported'; reason: string };

/** Whether `name` can run on this session; a runnable one has the leftovers of a killed earlier invocation cleared. */
export async function approachSupport(s: KernelSession, name: ApproachName): Promise<Support> {
  const impl = s.approach(name);
  if (!impl) return { ok: false, status: 'skipped', reason: `approach ${name} is not implemented in this checkout` };
  let support;
  try {
    support = await impl.supports(s.target);
  } catch (e) {
    support = { supported: false as const, reason: `support check failed: ${errorMessage(e)}` };
  }
  if (!support.supported) return { ok: false, status: 'unsupported', reason: support.reason };
  const ctx = s.contextFor(name);
  // Leftovers of a killed earlier invocation would break the load: clear them first.
  await impl.detach(ctx).catch(() => undefined);
  return { ok: true, runnable: { name, impl, ctx } };
}

/** The probes and statistics every run of the session takes, and what the provenance says of them. */
export interface Instruments {
  with: MeasureWith;
  /** Provenance warnings: what is unavailable and why. */
  warnings: string[];
  /** Provenance tool entries: the statistics helper and the mechanism (or why none). */
  tools: Record<string, string>;
}

export async function trialInstruments(s: KernelSession, statsMode: StatsMode): Promise<Instruments> {
  const probe = s.probe ? new ProbeSession(s.target, s.probe) : null;
  let probeNullReason: string | null = null;
  if (!probe) {
    probeNullReason = 'probe helper not available for this target';
  } else {
    const start = await probe.start(60);
    if (start.ok) await probe.stop();
    else probeNullReason = probeUnavailableReason(s.target, start);
  }
  const stats = s.bpfStats ? new BpfStatsSession(s.target, s.bpfStats) : null;
  let statsNullReason: string | null = null;
  let statsMechanism: StatsMechanism | null = null;
  if (!stats) {
    statsNullReason = 'BPF statistics helper not available for this target';
  } else {
    try {
      const start = await stats.start(60, statsMode);
      if (start.ok) {
        await stats.stop();
        statsMechanism = start.mode;
      } else {
        statsNullReason = statsUnavailableReason(s.target, start);
      }
    } catch (e) {
      await stats.kill();
      statsNullReason = `bpf_stats helper trial failed: ${errorMessage(e)}`;
    }
  }
  const warnings: string[] = [];
  if (probeNullReason) warnings.push(`veth_poll probes unavailable: ${probeNullReason}`);
  if (statsNullReason) warnings.push(`BPF run-time statistics unavailable: ${statsNullReason}`);
  const tools: Record<string, string> = {};
  if (s.bpfStats) tools['bpf_stats helper'] = s.bpfStats.helper.replace(/^.*bpf_stats-/, '');
  tools['BPF run-time statistics'] = statsMechanism ? describeMechanism(statsMechanism) : `none: ${statsNullReason ?? 'unknown'}`;
  return { with: { probe, probeNullReason, stats, statsNullReason }, warnings, tools };
}
