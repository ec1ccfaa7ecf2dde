/**
 * Figures as PNG through chartjs-node-canvas: Figure 5.1 a–d (grouped by kernel, one bar per
 * approach), our per-true-packet variants, microbenchmark and latency charts; for the TC section its
 * own set (throughput, ns per skb, relative throughput, microbenchmarks, latency) under ids of its own.
 */
import { isFromStageVariant } from '../results/variants.ts';
import type { ChartConfiguration } from 'chart.js';
import { APPROACH_NAMES, type ApproachName } from '../results/record.ts';
import { CANVAS_OPTIONS, CHART_HEIGHT, CHART_WIDTH, canvas, errorBarPlugin, interval, renderBar, type ErrorBarKind } from './chart-draw.ts';
import { kernelWarnings, type Measurement } from './kernels.ts';
import { APPROACH_LABEL, metricLabel, shownMetric, type MetricKey } from './metrics.ts';
import type { ReportModel } from './model.ts';

export { CHART_HEIGHT, CHART_WIDTH, type ErrorBarKind } from './chart-draw.ts';

export interface ChartFile {
  id: string;
  /** Path relative to the report directory. */
  file: string;
  title: string;
  caption: string;
  png: Buffer;
  width: number;
  height: number;
  tcg: boolean;
}

export interface SkippedChart {
  id: string;
  title: string;
  reason: string;
}

const KNOWN_COLORS: Partial<Record<ApproachName, string>> = {
  manual: '#1f77b4',
  dispatcher: '#ff7f0e',
  patched: '#2ca02c',
  fused: '#9467bd',
  none: '#7f7f7f',
  'tc-none': '#c7c7c7',
  'tc-fused': '#c5b0d5',
  'tc-manual': '#aec7e8',
  'tc-patched': '#98df8a',
  'tc-filters': '#ffbb78',
  tcx: '#98df8a',
};
const EXTRA_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
/** An approach registered after these colours were chosen still gets one of its own. */
const COLORS = Object.fromEntries(
  APPROACH_NAMES.map((a, i) => [a, KNOWN_COLORS[a] ?? EXTRA_COLORS[i % EXTRA_COLORS.length]!]),
) as Record<ApproachName, string>;

function subtitleLines(model: ReportModel, kernels: string[], errorText: string): { text: string[]; tcg: boolean; warning: string } {
  const warnings = kernelWarnings(model.kernels, kernels);
  const lines = [errorText];
  for (const w of warnings) lines.push(`${w.text.toUpperCase()} (${w.kernels.join(', ')})`);
  if (model.pseudoRun) lines.push('Thesis pseudo-run: one published median per cell, no spread');
  // For captions: " TCG emulation: not a performance measurement." (or the icount wording), or nothing.
  const warning = warnings.map((w) => ` ${w.text}.`).join('');
  return { text: lines, tcg: warnings.length > 0, warning };
}

const FIGURES: { id: string; metric: MetricKey; title: string; yLabel: string }[] = [
  { id: 'fig-5.1a-throughput', metric: 'throughputGbps', title: 'Figure 5.1a — Throughput by kernel and approach', yLabel: 'iperf3 throughput (Gb/s)' },
  { id: 'fig-5.1b-packets', metric: 'calls', title: 'Figure 5.1b — Packets processed (veth_poll calls, as the thesis counted)', yLabel: 'veth_poll calls per run' },
  { id: 'fig-5.1c-ns-per-packet', metric: 'nsPerCall', title: 'Figure 5.1c — Mean time per packet (ns per veth_poll call, as the thesis)', yLabel: 'ns per veth_poll call' },
  { id: 'fig-5.1d-cycles-per-packet', metric: 'cyclesPerCall', title: 'Figure 5.1d — Mean cycles per packet (cycles per veth_poll call, as the thesis)', yLabel: 'cycles per veth_poll call' },
  { id: 'fig-packets-true', metric: 'packets', title: 'Packets processed (sum of veth_poll return values)', yLabel: 'packets per run' },
  { id: 'fig-ns-per-packet-true', metric: 'nsPerPacket', title: 'Time per packet (ns per packet actually processed)', yLabel: 'ns per packet' },
  { id: 'fig-cycles-per-packet-true', metric: 'cyclesPerPacket', title: 'Cycles per packet (per packet actually processed)', yLabel: 'cycles per packet' },
  { id: 'fig-bpf-stats-ns-per-packet', metric: 'statsNsPerPacket', title: 'Time per packet in the XDP program (BPF run-time statistics)', yLabel: 'ns per packet (Δrun_time_ns / Δrun_cnt)' },
];
/** The TC section's figures: no veth_poll probe there, so throughput and the programs' own time per skb. */
const TC_FIGURES: typeof FIGURES = [
  { id: 'tc-fig-throughput', metric: 'throughputGbps', title: 'TC — Throughput by kernel and approach', yLabel: 'iperf3 throughput (Gb/s)' },
  { id: 'tc-fig-ns-per-skb', metric: 'statsNsPerPacket', title: 'TC — Time per skb in the TC programs (BPF run-time statistics)', yLabel: 'ns per skb (Δrun_time_ns / Δrun_cnt)' },
];

export async function renderCharts(model: ReportModel, errorBars: ErrorBarKind = 'iqr'): Promise<{ charts: ChartFile[]; skipped: SkippedChart[] }> {
  const charts: ChartFile[] = [];
  const skipped: SkippedChart[] = [];
  const errorText = errorBars === 'iqr' ? 'Bars: median over runs · whiskers: IQR (Q1–Q3)' : 'Bars: median over runs · whiskers: 95% bootstrap CI of the median';
  const kernelLabel = (k: string) => {
    const info = model.kernels.find((x) => x.label === k);
    const release = info && !/\d+\.\d+/.test(k) && info.release !== k ? ` ${info.release}` : '';
    return `${k}${release}${info?.tcg ? ' (TCG)' : ''}`;
  };

  for (const f of model.profile.hook === 'tc' ? TC_FIGURES : FIGURES) {
    // Results from before the statistics existed: no figure, and nothing to say about it.
    if (!shownMetric(model, f.metric)) continue;
    const kernels = model.kernels.map((k) => k.label).filter((k) => model.cells.some((c) => c.kernel === k && c.values[f.metric].length > 0));
    const approaches = model.approaches.filter((a) => model.cells.some((c) => c.approach === a && c.values[f.metric].length > 0));
    if (kernels.length === 0) {
      const reasons = [...new Set(model.cells.flatMap((c) => c.nullReasons[f.metric] ?? []))];
      skipped.push({ id: f.id, title: f.title, reason: reasons.length > 0 ? `no data: ${reasons.join('; ')}` : 'no data' });
      continue;
    }
    const datasets = approaches.map((a) => {
      const cells = kernels.map((k) => model.cells.find((c) => c.kernel === k && c.approach === a));
      return {
        label: APPROACH_LABEL[a],
        color: COLORS[a],
        data: cells.map((c) => c?.stats[f.metric]?.median ?? null),
        errors: cells.map((c) => interval(c?.stats[f.metric], errorBars)),
      };
    });
    const anyWhisker = datasets.some((d) => d.errors.some((e) => e !== null));
    const sub = subtitleLines(model, kernels, anyWhisker ? errorText : 'Bars: median over runs · no whiskers: fewer than 2 runs per cell');
    const png = await renderBar({ id: f.id, title: f.title, yLabel: f.yLabel, xLabel: 'Linux kernel', labels: kernels.map(kernelLabel), datasets, subtitle: sub.text, warn: sub.tcg });
    charts.push({
      id: f.id,
      file: `figures/${f.id}.png`,
      title: f.title,
      caption: `${metricLabel(f.metric, model.profile.hook)}. ${sub.text[0]}.${sub.warning}`,
      png,
      width: CHART_WIDTH,
      height: CHART_HEIGHT,
      tcg: sub.tcg,
    });
  }

  await relativeThroughputChart(model, charts, skipped, kernelLabel);
  await microCharts(model, charts, skipped, errorBars, kernelLabel);
  await latencyCharts(model, charts, errorBars, kernelLabel);
  return { charts, skipped };
}

export const RELATIVE_THROUGHPUT_ID = 'fig-throughput-relative';
/** Under a kernel's name on the x axis, where the full label does not fit. */
const MEASUREMENT_SHORT: Record<Measurement, string> = { host: 'real', kvm: 'KVM', tcg: 'emulated', 'tcg-icount': 'instruction-timed' };

/**
 * Throughput over each kernel's own baseline: an emulated kernel moves a twentieth of the host's
 * bits, so on one absolute axis its bars vanish; as ratios every kernel shows its chain's cost.
 */
async function relativeThroughputChart(model: ReportModel, charts: ChartFile[], skipped: SkippedChart[], kernelLabel: (k: string) => string): Promise<void> {
  const { baseline, manual, idPrefix, hook } = model.profile;
  const title =
    hook === 'tc'
      ? `TC — Throughput relative to ${baseline} (to ${manual} where ${baseline} was not measured), per kernel`
      : 'Throughput relative to no XDP (to manual where none was not measured), per kernel';
  const id = `${idPrefix}${RELATIVE_THROUGHPUT_ID}`;
  const rel = model.relativeThroughput;
  if (rel.length === 0) {
    const why = model.cells.some((c) => c.values.throughputGbps.length > 0) ? `no kernel has a ${baseline} or ${manual} cell with throughput` : 'no throughput measured';
    skipped.push({ id, title, reason: why });
    return;
  }
  const kernels = rel.map((r) => r.kernel);
  const approaches = model.approaches.filter((a) => rel.some((r) => r.bars.some((b) => b.approach === a)));
  const datasets = approaches.map((a) => {
    const bars = rel.map((r) => r.bars.find((b) => b.approach === a));
    return { label: APPROACH_LABEL[a], color: COLORS[a], data: bars.map((b) => b?.ratio ?? null), errors: bars.map((b) => b?.ci ?? null) };
  });
  const anyWhisker = datasets.some((d) => d.errors.some((e) => e !== null));
  const errorText = anyWhisker
    ? 'Bars: median throughput / the baseline\'s median · whiskers: 95% bootstrap CI of the ratio'
    : 'Bars: median throughput / the baseline\'s median · no whiskers: fewer than 2 runs per cell';
  const sub = subtitleLines(model, kernels, errorText);
  const without = model.kernels.map((k) => k.label).filter((k) => !kernels.includes(k) && model.cells.some((c) => c.kernel === k && c.values.throughputGbps.length > 0));
  const labels = rel.map((r) => {
    const info = model.kernels.find((k) => k.label === r.kernel);
    return [kernelLabel(r.kernel), `÷ ${r.baseline}${info?.measurement ? ` · ${MEASUREMENT_SHORT[info.measurement]}` : ''}`];
  });
  const png = await renderBar({
    id,
    title,
    yLabel: 'throughput ÷ baseline throughput (same kernel)',
    xLabel: 'Linux kernel · baseline · how measured',
    labels,
    datasets,
    subtitle: sub.text,
    warn: sub.tcg,
  });
  charts.push({
    id,
    file: `figures/${id}.png`,
    title,
    caption: `iperf3 throughput of each approach divided by the median throughput of the same kernel's baseline (${baseline}, else ${manual}: named under each kernel). ${errorText}.${without.length > 0 ? ` Not drawn (no baseline): ${without.join(', ')}.` : ''}${sub.warning}`,
    png,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    tcg: sub.tcg,
  });
}

async function microCharts(
  model: ReportModel,
  charts: ChartFile[],
  skipped: SkippedChart[],
  errorBars: ErrorBarKind,
  kernelLabel: (k: string) => string,
): Promise<void> {
  if (model.micro.length === 0) return;
  const errorText = errorBars === 'iqr' ? 'Points: median over repetitions · whiskers: IQR' : 'Points: median over repetitions · whiskers: 95% bootstrap CI';
  const kernels = [...new Set(model.micro.map((g) => g.kernel))];
  for (const k of kernels) {
    const series = model.micro.filter((g) => g.kernel === k && g.kind === 'scaling');
    if (series.length === 0) continue;
    const sub = subtitleLines(model, [k], errorText);
    const top = Math.max(0, ...series.flatMap((g) => g.points.map((p) => Math.max(p.stats.median, interval(p.stats, errorBars)?.[1] ?? 0))));
    const config: ChartConfiguration = {
      type: 'scatter',
      data: {
        datasets: series.map((g, i) => ({
          label: `${g.variant} (${g.hop}${g.timing === 'in-band' ? ', live, in-band' : ''}${g.fit ? `, ${g.fit.slope.toFixed(2)} ns/hop` : ''})`,
          data: g.points.map((p) => ({ x: p.chainLength, y: p.stats.median })),
          showLine: true,
          borderColor: EXTRA_COLORS[i % EXTRA_COLORS.length],
          backgroundColor: EXTRA_COLORS[i % EXTRA_COLORS.length],
          pointRadius: 3,
        })),
      },
      options: {
        ...CANVAS_OPTIONS,
        plugins: {
          title: { display: true, text: `${sectionTitle(model)}ns per packet vs chain length — ${kernelLabel(k)}`, font: { size: 18, weight: 'bold' }, color: '#111' },
          subtitle: { display: true, text: sub.text, font: { size: 13, weight: sub.tcg ? 'bold' : 'normal' }, color: sub.tcg ? '#b00020' : '#333', padding: { bottom: 8 } },
          legend: { position: 'top', labels: { font: { size: 13 }, color: '#111', boxHeight: 3 } },
        },
        scales: {
          x: { type: 'linear', min: 0, max: Math.max(...series.flatMap((g) => g.points.map((p) => p.chainLength))) + 1, title: { display: true, text: 'chain length (programs a packet goes through)', font: { size: 14 }, color: '#111' }, ticks: { precision: 0, color: '#111' } },
          y: { beginAtZero: true, suggestedMax: top * 1.05, title: { display: true, text: series.some((g) => g.timing === 'in-band') ? 'ns per packet (BPF_PROG_TEST_RUN) or per skb (live, in-band)' : 'ns per packet (BPF_PROG_TEST_RUN)', font: { size: 14 }, color: '#111' }, ticks: { color: '#111' } },
        },
      },
      plugins: [errorBarPlugin(series.map((g) => g.points.map((p) => interval(p.stats, errorBars))))],
    };
    const id = `${model.profile.idPrefix}micro-scaling-${safe(k)}`;
    charts.push({
      id,
      file: `figures/${id}.png`,
      title: `${sectionTitle(model)}ns per packet vs chain length — ${k}`,
      caption: `Microbenchmark (BPF_PROG_TEST_RUN${series.some((g) => g.timing === 'in-band') ? '; series marked "live, in-band": ns per skb of iperf3 traffic between a clock program before the chain and one after it, for the chains the kernel walks, which a test run cannot run' : ''}). ${errorText}.${sub.warning}`,
      png: await canvas().renderToBuffer(config),
      width: CHART_WIDTH,
      height: CHART_HEIGHT,
      tcg: sub.tcg,
    });
  }
  // A chain test-run from a later stage on ("manual/from-metrics") is a part of a bar, not a bar:
  // the breakdown table uses it.
  const single = model.micro.filter((g) => g.kind === 'approach' && !isFromStageVariant(g.variant));
  const singleId = `${model.profile.idPrefix}micro-approaches`;
  const singleTitle = `${sectionTitle(model)}ns per packet per approach (BPF_PROG_TEST_RUN)`;
  if (single.length === 0) {
    skipped.push({ id: singleId, title: singleTitle, reason: 'no per-approach microbenchmark record (only chain-length scaling)' });
    return;
  }
  const mk = kernels.filter((k) => single.some((g) => g.kernel === k));
  const variants = [...new Set(single.map((g) => g.variant))];
  const sub = subtitleLines(model, mk, errorText.replace('Points', 'Bars'));
  const datasets = variants.map((v, i) => {
    const gs = mk.map((k) => single.find((g) => g.kernel === k && g.variant === v));
    return {
      label: v,
      color: (COLORS as Record<string, string | undefined>)[v] ?? EXTRA_COLORS[i % EXTRA_COLORS.length]!,
      data: gs.map((g) => g?.points[0]?.stats.median ?? null),
      errors: gs.map((g) => interval(g?.points[0]?.stats, errorBars)),
    };
  });
  charts.push({
    id: singleId,
    file: `figures/${singleId}.png`,
    title: singleTitle,
    caption: `Microbenchmark on one packet. ${errorText.replace('Points', 'Bars')}.${sub.warning}`,
    png: await renderBar({ id: singleId, title: singleTitle, yLabel: 'ns per packet', xLabel: 'Linux kernel', labels: mk.map(kernelLabel), datasets, subtitle: sub.text, warn: sub.tcg }),
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    tcg: sub.tcg,
  });
}

async function latencyCharts(model: ReportModel, charts: ChartFile[], errorBars: ErrorBarKind, kernelLabel: (k: string) => string): Promise<void> {
  const ops = [...new Set(model.latency.map((g) => g.operation))];
  const errorText = errorBars === 'iqr' ? 'Bars: median over repetitions · whiskers: IQR' : 'Bars: median over repetitions · whiskers: 95% bootstrap CI';
  for (const op of ops) {
    const gs = model.latency.filter((g) => g.operation === op);
    const kernels = model.kernels.map((k) => k.label).filter((k) => gs.some((g) => g.kernel === k));
    const approaches = model.approaches.length > 0 ? [...new Set([...model.approaches, ...gs.map((g) => g.approach)])] : [...new Set(gs.map((g) => g.approach))];
    const used = approaches.filter((a) => gs.some((g) => g.approach === a));
    const sub = subtitleLines(model, kernels, errorText);
    const datasets = used.map((a) => {
      const row = kernels.map((k) => gs.find((g) => g.kernel === k && g.approach === a));
      return { label: APPROACH_LABEL[a], color: COLORS[a], data: row.map((g) => g?.stats.median ?? null), errors: row.map((g) => interval(g?.stats, errorBars)) };
    });
    const id = `${model.profile.idPrefix}latency-${op}`;
    charts.push({
      id,
      file: `figures/${id}.png`,
      title: `${sectionTitle(model)}${op} latency`,
      caption: `Milliseconds per ${op}. ${errorText}.${sub.warning}`,
      png: await renderBar({ id, title: `${sectionTitle(model)}${op} latency by kernel and approach`, yLabel: 'ms', xLabel: 'Linux kernel', labels: kernels.map(kernelLabel), datasets, subtitle: sub.text, warn: sub.tcg }),
      width: CHART_WIDTH,
      height: CHART_HEIGHT,
      tcg: sub.tcg,
    });
  }
}

/** "TC — " before a TC figure's title, so it never reads as one of the thesis's (XDP) figures. */
function sectionTitle(model: ReportModel): string {
  return model.profile.hook === 'tc' ? 'TC — ' : '';
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}
