/**
 * `npm run bench -- deterministic`: how reproducible instruction-timed guests are. The same quick
 * cells run twice per kernel, each time in a fresh boot under QEMU's instruction counter; the
 * table gives each run's ns per packet (BPF statistics, and veth_poll probes where the kernel has
 * kprobes: their total over the packets, and the slope over poll sizes) and the difference
 * between the two. A benchmark: it reports, never judges.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from 'simple-statistics';
import type { ApproachName } from '../results/record.ts';
import type { ProgressSink } from '../progress.ts';
import { loadRecords } from '../results/jsonl.ts';
import { fitPolls } from '../results/probe-fit.ts';
import { runMatrix } from './matrix.ts';
import type { RunRecord } from '../results/record.ts';

export interface ReproRow {
  kernel: string;
  approach: ApproachName;
  /** probe: total ns / packets (the thesis's kind); probe-slope: ns per added packet (lab/results/probe-fit.ts). */
  metric: 'bpf-stats' | 'probe' | 'probe-slope';
  /** median ns per packet of each repeat's runs */
  first: number | null;
  second: number | null;
  /** |second − first| / first, or null when either is missing */
  relDiff: number | null;
}

const medianOrNull = (xs: number[]): number | null => (xs.length === 0 ? null : median(xs));

function perPacket(r: RunRecord, metric: ReproRow['metric']): number | null {
  if (metric === 'bpf-stats') return r.bpfStats?.nsPerPacket ?? null;
  if (!r.probe) return null;
  if (metric === 'probe') return r.probe.packets > 0 ? r.probe.ns / r.probe.packets : null;
  const fit = r.probe.pollSizes ? fitPolls(r.probe.pollSizes) : null;
  return fit?.ok ? fit.nsPerPacket : null;
}

/** The rows from two repeats' run records (pure: tested alone). */
export function reproRows(first: readonly RunRecord[], second: readonly RunRecord[]): ReproRow[] {
  const rows: ReproRow[] = [];
  const keys = [...new Set(first.map((r) => `${r.kernel}\t${r.approach}`))];
  for (const key of keys) {
    const [kernel, approach] = key.split('\t') as [string, ApproachName];
    for (const metric of ['bpf-stats', 'probe', 'probe-slope'] as const) {
      const pick = (rs: readonly RunRecord[]) => medianOrNull(rs.filter((r) => r.kernel === kernel && r.approach === approach).map((r) => perPacket(r, metric)).filter((v): v is number => v !== null));
      const a = pick(first);
      const b = pick(second);
      if (a === null && b === null) continue;
      rows.push({ kernel, approach, metric, first: a, second: b, relDiff: a !== null && b !== null && a > 0 ? Math.abs(b - a) / a : null });
    }
  }
  return rows;
}

export function formatRepro(rows: readonly ReproRow[]): string[] {
  const f = (v: number | null, d = 1) => (v === null ? '—' : v.toFixed(d));
  const out = ['kernel  approach    metric       run 1 ns/pkt  run 2 ns/pkt  difference'];
  for (const r of rows) {
    out.push(`${r.kernel.padEnd(7)} ${r.approach.padEnd(11)} ${r.metric.padEnd(12)} ${f(r.first).padStart(12)}  ${f(r.second).padStart(12)}  ${r.relDiff === null ? '—' : `${(r.relDiff * 100).toFixed(2)} %`}`);
  }
  return out;
}

export interface ReproOptions {
  kernels: string[];
  approaches: ApproachName[];
  runs: number;
  durationS: number;
  progress: ProgressSink;
  signal?: AbortSignal;
  /** Where the two repeats' raw results are kept; without it they go to a temporary directory removed afterwards. */
  keepDir?: string;
}

export async function benchDeterministic(o: ReproOptions): Promise<ReproRow[]> {
  const out = o.keepDir ?? (await mkdtemp(join(tmpdir(), 'xcl-repro-')));
  try {
    const repeats: RunRecord[][] = [];
    for (const id of ['repeat-1', 'repeat-2']) {
      // Quick mode caps runs and duration at 2: longer cells leave it, so what was asked is what runs.
      const quick = o.runs <= 2 && o.durationS <= 2;
      const r = await runMatrix({ kernels: o.kernels, approaches: o.approaches, runs: o.runs, durationS: o.durationS, quick, runId: id, outDir: out, prefix: 'xrep', micro: false, clock: 'icount', renderReport: false, probeOverheadPairs: 0, statsOverheadPairs: 0, progress: o.progress, signal: o.signal });
      repeats.push((await loadRecords(r.rawFile)).records.filter((x): x is RunRecord => x.kind === 'run'));
    }
    return reproRows(repeats[0]!, repeats[1]!);
  } finally {
    if (!o.keepDir) await rm(out, { recursive: true, force: true });
  }
}
