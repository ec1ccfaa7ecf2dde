/**
 * Per-cell statistics: a cell is (kernel, approach); its valid runs give one value per metric per
 * run (with the reason wherever a metric has none), each summarized as n, median, IQR and a seeded
 * bootstrap CI; and the cell's row in the thesis's layout (Tables 5.1 and 5.2).
 */
import type { ApproachName, CellRecord, RunRecord } from '../results/record.ts';
import { isBaseline } from './hooks.ts';
import type { KernelInfo } from './kernels.ts';
import { kernelWarning } from './kernels.ts';
import type { LoadedRun } from './load.ts';
import { APPROACH_ORDER, METRIC_KEYS, MIN_RUNS, STATS_METRICS, type MetricKey } from './metrics.ts';
import { summarize, type Summary } from './stats.ts';
import { fitPolls } from '../results/probe-fit.ts';

export interface Cell {
  kernel: string;
  approach: ApproachName;
  runs: RunRecord[];
  record: CellRecord | null;
  values: Record<MetricKey, number[]>;
  stats: Partial<Record<MetricKey, Summary>>;
  /** Why a metric has no values (or fewer than the runs), e.g. cycles without a PMU. */
  nullReasons: Partial<Record<MetricKey, string[]>>;
  tcg: boolean;
}

export interface ThesisRow {
  kernel: string;
  approach: ApproachName;
  n: number;
  accelerator: string;
  status: CellRecord['status'] | 'incomplete';
  reason: string | null;
  packetsTotal: number | null;
  timeTotalNs: number | null;
  cyclesTotal: number | null;
  throughputGbps: number | null;
  timePerPacketNs: number | null;
  cyclesPerPacket: number | null;
  /** Median Δrun_time_ns / median Δrun_cnt of the attached program (BPF run-time statistics). */
  statsNsPerPacket: number | null;
  notes: string[];
}

/** The cells of a run, in kernel order then the thesis's approach order, with their statistics. */
export function buildCells(run: LoadedRun, kernels: readonly KernelInfo[], resamples?: number): Cell[] {
  const kernelInfo = new Map(kernels.map((k) => [k.label, k]));
  const packetsAreCalls = run.pseudoRun?.packetsAreCalls ?? false;
  const cellMap = new Map<string, Cell>();
  const key = (k: string, a: ApproachName) => `${k}\u0000${a}`;
  const getCell = (k: string, a: ApproachName): Cell => {
    let c = cellMap.get(key(k, a));
    if (!c) {
      c = { kernel: k, approach: a, runs: [], record: null, values: emptyValues(), stats: {}, nullReasons: {}, tcg: kernelInfo.get(k)?.tcg ?? false };
      cellMap.set(key(k, a), c);
    }
    return c;
  };
  for (const r of run.runs) getCell(r.kernel, r.approach).runs.push(r);
  for (const c of run.cells) getCell(c.kernel, c.approach).record = c;
  const cells = [...cellMap.values()].sort(
    (a, b) =>
      kernels.findIndex((k) => k.label === a.kernel) - kernels.findIndex((k) => k.label === b.kernel) ||
      APPROACH_ORDER.indexOf(a.approach) - APPROACH_ORDER.indexOf(b.approach),
  );
  for (const cell of cells) {
    cell.runs.sort((a, b) => a.iteration - b.iteration);
    for (const r of cell.runs) perRunValues(cell, r, packetsAreCalls);
    for (const m of METRIC_KEYS) {
      const s = summarize(cell.values[m], `${cell.kernel}/${cell.approach}/${m}`, resamples);
      if (s) cell.stats[m] = s;
    }
  }
  return cells;
}

function emptyValues(): Record<MetricKey, number[]> {
  return Object.fromEntries(METRIC_KEYS.map((k) => [k, [] as number[]])) as unknown as Record<MetricKey, number[]>;
}

function addReason(cell: Cell, metric: MetricKey, reason: string): void {
  const list = (cell.nullReasons[metric] ??= []);
  if (!list.includes(reason)) list.push(reason);
}

function perRunValues(cell: Cell, r: RunRecord, packetsAreCalls: boolean): void {
  const v = cell.values;
  v.throughputGbps.push(r.iperf.bitsPerSecond / 1e9);
  if (r.iperf.retransmits !== null) v.retransmits.push(r.iperf.retransmits);
  else addReason(cell, 'retransmits', 'iperf3 reported no retransmit count');
  if (r.bpfStats) {
    v.statsRunCnt.push(r.bpfStats.runCnt);
    v.statsRunTimeNs.push(r.bpfStats.runTimeNs);
    v.statsNsPerPacket.push(r.bpfStats.runTimeNs / r.bpfStats.runCnt);
  } else {
    const why =
      r.bpfStats === undefined
        ? 'not recorded: results written before the lab recorded BPF run-time statistics'
        : (r.bpfStatsNullReason ?? 'no BPF run-time statistics (no reason recorded)');
    for (const m of STATS_METRICS) addReason(cell, m, why);
  }
  const probeMetrics: MetricKey[] = ['calls', 'packets', 'ns', 'cycles', 'nsPerCall', 'nsPerPacket', 'nsPerAddedPacket', 'nsPerPoll', 'cyclesPerCall', 'cyclesPerPacket', 'packetsPerCall', 'effectiveGhz'];
  if (r.probe === null) {
    const why = r.probeNullReason ?? (r.approach === 'none' ? 'no XDP program: veth_poll does not run, so no probe data' : 'no probe data (no reason recorded)');
    for (const m of probeMetrics) addReason(cell, m, why);
    return;
  }
  const p = r.probe;
  v.calls.push(p.calls);
  v.ns.push(p.ns);
  if (p.calls > 0) v.nsPerCall.push(p.ns / p.calls);
  else addReason(cell, 'nsPerCall', 'a run saw no veth_poll call');
  if (packetsAreCalls) {
    for (const m of ['packets', 'nsPerPacket', 'nsPerAddedPacket', 'nsPerPoll', 'cyclesPerPacket', 'packetsPerCall'] as const) {
      addReason(cell, m, 'the thesis published veth_poll call counts only: true packet count unknown');
    }
  } else {
    v.packets.push(p.packets);
    if (p.calls > 0) v.packetsPerCall.push(p.packets / p.calls);
    if (p.packets > 0) v.nsPerPacket.push(p.ns / p.packets);
    else addReason(cell, 'nsPerPacket', 'a run processed no packet');
    const fit = p.pollSizes ? fitPolls(p.pollSizes) : { ok: false as const, reason: 'not recorded: results written before the probe kept its calls by poll size' };
    if (fit.ok) {
      v.nsPerAddedPacket.push(fit.nsPerPacket);
      v.nsPerPoll.push(fit.nsPerPoll);
    } else {
      for (const m of ['nsPerAddedPacket', 'nsPerPoll'] as const) addReason(cell, m, fit.reason);
    }
  }
  if (p.cycles === null) {
    const why = p.cyclesNullReason ?? 'cycles not measured (no reason recorded)';
    for (const m of ['cycles', 'cyclesPerCall', 'cyclesPerPacket', 'effectiveGhz'] as const) addReason(cell, m, why);
    return;
  }
  v.cycles.push(p.cycles);
  if (p.calls > 0) v.cyclesPerCall.push(p.cycles / p.calls);
  if (!packetsAreCalls && p.packets > 0) v.cyclesPerPacket.push(p.cycles / p.packets);
  if (p.ns > 0) v.effectiveGhz.push(p.cycles / p.ns);
}

function median(s: Summary | undefined): number | null {
  return s ? s.median : null;
}

/**
 * A cell's reason in a table cell: one line. A skipped cell keeps only its first line (the full
 * reason, with how to fix it, is in the warnings once per kernel); others are folded onto one line.
 */
export function noteReason(status: string, reason: string): string {
  if (status === 'skipped') return `${reason.split('\n')[0]!.replace(/:$/, '')} (see Warnings)`;
  return reason.replace(/\s*\n\s*/g, ' ').trim();
}

export function thesisRow(cell: Cell, k: KernelInfo | null): ThesisRow {
  const notes: string[] = [];
  const kw = kernelWarning(k);
  if (kw) notes.push(kw);
  if (cell.runs.length > 0 && cell.runs.length < MIN_RUNS) notes.push(`n=${cell.runs.length} < ${MIN_RUNS}`);
  const rec = cell.record;
  const status: ThesisRow['status'] = rec ? rec.status : 'incomplete';
  if (status === 'incomplete') notes.push('incomplete: no cell record (matrix interrupted or still running)');
  else if (status !== 'done') notes.push(`${status}${rec?.reason ? `: ${noteReason(status, rec.reason)}` : ''}`);
  if (cell.approach === 'none') notes.push('no probe data: no XDP program, veth_poll not probed');
  else if (cell.values.cycles.length === 0 && cell.values.calls.length > 0) notes.push(`cycles null: ${(cell.nullReasons.cycles ?? []).join('; ')}`);
  if (!isBaseline(cell.approach) && cell.runs.some((r) => r.bpfStats === null) && cell.values.statsNsPerPacket.length === 0) {
    notes.push(`BPF statistics null: ${(cell.nullReasons.statsNsPerPacket ?? []).join('; ')}`);
  }
  const calls = median(cell.stats.calls);
  const runCnt = median(cell.stats.statsRunCnt);
  const runTimeNs = median(cell.stats.statsRunTimeNs);
  const ns = median(cell.stats.ns);
  const cycles = median(cell.stats.cycles);
  return {
    kernel: cell.kernel,
    approach: cell.approach,
    n: cell.runs.length,
    accelerator: k?.accelerators.join('+') ?? '',
    status,
    reason: rec?.reason ?? null,
    packetsTotal: calls,
    timeTotalNs: ns,
    cyclesTotal: cycles,
    throughputGbps: median(cell.stats.throughputGbps),
    timePerPacketNs: ns !== null && calls ? ns / calls : null,
    cyclesPerPacket: cycles !== null && calls ? cycles / calls : null,
    statsNsPerPacket: runTimeNs !== null && runCnt ? runTimeNs / runCnt : null,
    notes,
  };
}
