/**
 * The TC section of the report: its own Tables 5.1 and 5.2 in the thesis's layout (totals and
 * throughput; time per skb with CIs and its ratios to tc-manual and tc-fused), and the section as a
 * whole — the note on what a TC number is, its headline, figures, significance, distributions,
 * microbenchmarks and latencies — as Markdown, CSV files and the tables the HTML page renders.
 */
import { stringify } from 'csv-stringify/sync';
import type { ApproachName } from '../results/record.ts';
import type { ChartFile } from './charts.ts';
import type { ThesisRow } from './cells.ts';
import { csvNum, fmtCi, fmtNum, fmtRatio, fmtThroughput, fmtTotal } from './format.ts';
import { headlineReferences } from './headline.ts';
import { TC_NOTE } from './hooks.ts';
import { APPROACH_LABEL, BOOTSTRAP_NOTE, METRIC_KEYS, shownMetric, type MetricKey } from './metrics.ts';
import { latencyCsv, latencyTable, microCsv, microTables } from './micro-tables.ts';
import type { ReportModel } from './model.ts';
import { rttCsv, rttTables } from './rtt.ts';
import { significanceCsv, significanceTables, statsCsv, statsTable } from './stats-tables.ts';
import { banners, isTcg, toMarkdown, type Table } from './table.ts';
import { headlineCsv, headlineTable } from './thesis-tables.ts';

export interface TcSection {
  model: ReportModel;
  title: string;
  note: string;
  headline: Table;
  t51: Table;
  t52: Table;
  stats: Table[];
  significance: Table[];
  micro: Table[];
  latency: Table[];
  /** Round trips through each TC approach, one table per kernel. */
  rtt: Table[];
  /** The section's figures (ids starting "tc-"), the round trips' aside. */
  charts: ChartFile[];
  /** Its round-trip figures, one per kernel. */
  rttCharts: ChartFile[];
  markdown: string;
  /** File name under report/ and its content. */
  files: [string, string][];
}

const TC_TOTALS_CAPTION =
  'Totals are the median over a cell\'s runs of each run\'s total, as Table 5.1 of the XDP section. "skbs" = Δrun_cnt ' +
  'of the first TC program (one run per skb); time = Δrun_time_ns of every TC program the kernel runs on it. Throughput ' +
  'is the median of iperf3\'s receiver rate with the 95% bootstrap CI of that median; "÷ baseline" divides it by the ' +
  'same kernel\'s tc-none (no program; tc-manual where tc-none was not measured). Empty means not measured (never 0).';
const TC_PER_SKB_CAPTION =
  'Mean time per skb as the thesis computed per packet: median total ns divided by median total skbs. Then the per-run ' +
  `ns per skb: median and its 95% bootstrap CI (${BOOTSTRAP_NOTE}), and the median over tc-manual's and over tc-fused's ` +
  'with the bootstrap CI of that ratio (the TC headline\'s numbers). Per skb, not per packet: not comparable with Table 5.2 of XDP.';

const notesOf = (r: ThesisRow) => r.notes.join('; ');

function relativeOf(model: ReportModel, kernel: string, approach: ApproachName) {
  const rel = model.relativeThroughput.find((r) => r.kernel === kernel);
  const bar = rel?.bars.find((b) => b.approach === approach);
  return rel && bar ? { baseline: rel.baseline, ratio: bar.ratio, ci: bar.ci } : null;
}

/** The ratio of a cell's ns per skb over a reference, from the headline (the same numbers, said once). */
function ratioOf(model: ReportModel, kernel: string, approach: ApproachName, reference: ApproachName) {
  const h = model.headline.find((x) => x.kernel === kernel && x.metric === 'statsNsPerPacket');
  if (!h) return null;
  if (approach === reference && h.medians.some((m) => m.approach === approach)) return 'reference' as const;
  return h.ratios.find((r) => r.approach === approach && r.reference === reference) ?? null;
}

const ratioText = (r: ReturnType<typeof ratioOf>): string =>
  r === null ? '' : r === 'reference' ? '1 (reference)' : `${fmtRatio(r.ratio)}× ${r.ci ? `[${fmtRatio(r.ci[0])}, ${fmtRatio(r.ci[1])}]` : '(no CI: n < 2)'}`;

export function tcTable51(model: ReportModel): Table {
  return {
    id: 'tc-table-5.1',
    title: 'TC Table 5.1 — Results per kernel and approach (thesis layout)',
    banners: banners(model),
    caption: TC_TOTALS_CAPTION,
    header: ['Approach', 'Linux', 'skbs total (BPF run_cnt)', 'Total time in the TC programs (ns)', 'Throughput (Gb/s)', 'Throughput 95% CI', 'Throughput ÷ baseline [95% CI]', 'n', 'Notes'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: model.table.map((r) => {
      const c = model.cells.find((x) => x.kernel === r.kernel && x.approach === r.approach)!;
      const rel = relativeOf(model, r.kernel, r.approach);
      const relText = !rel ? '' : rel.baseline === r.approach ? '1 (baseline)' : `${fmtRatio(rel.ratio)}× ÷ ${rel.baseline}${rel.ci ? ` [${fmtRatio(rel.ci[0])}, ${fmtRatio(rel.ci[1])}]` : ''}`;
      return [
        APPROACH_LABEL[r.approach],
        r.kernel,
        fmtTotal(c.stats.statsRunCnt?.median ?? null),
        fmtTotal(c.stats.statsRunTimeNs?.median ?? null),
        fmtThroughput(r.throughputGbps),
        fmtCi(c.stats.throughputGbps, (x) => fmtThroughput(x)),
        relText,
        String(r.n),
        notesOf(r),
      ];
    }),
    tcgRows: model.table.map((r) => isTcg(model, r.kernel)),
    footnotes: [],
  };
}

export function tcTable52(model: ReportModel): Table {
  const refs = headlineReferences(model.profile);
  return {
    id: 'tc-table-5.2',
    title: 'TC Table 5.2 — Means per skb (thesis layout)',
    banners: banners(model),
    caption: TC_PER_SKB_CAPTION,
    header: ['Approach', 'Linux', 'Mean time per skb (ns)', 'Per-run ns per skb: median', '95% CI', ...refs.map((r) => `÷ ${r} [95% CI]`), 'n', 'Notes'],
    align: ['l', 'l', 'r', 'r', 'r', ...refs.map((): 'r' => 'r'), 'r', 'l'],
    rows: model.table.map((r) => {
      const s = model.cells.find((x) => x.kernel === r.kernel && x.approach === r.approach)!.stats.statsNsPerPacket;
      return [
        APPROACH_LABEL[r.approach],
        r.kernel,
        r.statsNsPerPacket === null ? '' : r.statsNsPerPacket.toFixed(2),
        fmtNum(s?.median),
        fmtCi(s),
        ...refs.map((ref) => ratioText(ratioOf(model, r.kernel, r.approach, ref))),
        String(r.n),
        notesOf(r),
      ];
    }),
    tcgRows: model.table.map((r) => isTcg(model, r.kernel)),
    footnotes: [],
  };
}

export function tcTable51Csv(model: ReportModel): string {
  return stringify(
    model.table.map((r) => {
      const c = model.cells.find((x) => x.kernel === r.kernel && x.approach === r.approach)!;
      const rel = relativeOf(model, r.kernel, r.approach);
      return [
        r.approach,
        r.kernel,
        csvNum(c.stats.statsRunCnt?.median),
        csvNum(c.stats.statsRunTimeNs?.median),
        csvNum(r.throughputGbps),
        csvNum(c.stats.throughputGbps?.ci?.[0]),
        csvNum(c.stats.throughputGbps?.ci?.[1]),
        rel?.baseline ?? '',
        csvNum(rel?.ratio),
        csvNum(rel?.ci?.[0]),
        csvNum(rel?.ci?.[1]),
        String(r.n),
        r.accelerator,
        r.status,
        notesOf(r),
      ];
    }),
    {
      header: true,
      columns: ['approach', 'kernel', 'skbs_total', 'time_total_ns', 'throughput_gbps', 'throughput_ci95_low', 'throughput_ci95_high', 'baseline', 'throughput_rel_baseline', 'rel_ci95_low', 'rel_ci95_high', 'n_runs', 'accelerator', 'status', 'notes'],
    },
  );
}

export function tcTable52Csv(model: ReportModel): string {
  const refs = headlineReferences(model.profile);
  const col = (ref: string) => ref.replace(/-/g, '_');
  return stringify(
    model.table.map((r) => {
      const s = model.cells.find((x) => x.kernel === r.kernel && x.approach === r.approach)!.stats.statsNsPerPacket;
      return [
        r.approach,
        r.kernel,
        csvNum(r.statsNsPerPacket),
        csvNum(s?.median),
        csvNum(s?.ci?.[0]),
        csvNum(s?.ci?.[1]),
        ...refs.flatMap((ref) => {
          const x = ratioOf(model, r.kernel, r.approach, ref);
          if (x === null) return ['', '', ''];
          if (x === 'reference') return ['1', '', ''];
          return [String(x.ratio), csvNum(x.ci?.[0]), csvNum(x.ci?.[1])];
        }),
        String(r.n),
        r.accelerator,
        r.status,
        notesOf(r),
      ];
    }),
    {
      header: true,
      columns: [
        'approach',
        'kernel',
        'time_per_skb_ns',
        'ns_per_skb_median',
        'ci95_low',
        'ci95_high',
        ...refs.flatMap((ref) => [`ratio_${col(ref)}`, `ratio_${col(ref)}_ci95_low`, `ratio_${col(ref)}_ci95_high`]),
        'n_runs',
        'accelerator',
        'status',
        'notes',
      ],
    },
  );
}

/** A table of a shared kind (distributions, significance, microbenchmarks) as the TC section's own. */
function asTc(t: Table): Table {
  return { ...t, id: `tc-${t.id}`, title: `TC — ${t.title}` };
}

/** The metrics the TC section has a distribution table of: those some TC run measured (no probe on TC). */
function tcMetrics(model: ReportModel): MetricKey[] {
  const measured = METRIC_KEYS.filter((m) => shownMetric(model, m) && model.cells.some((c) => c.values[m].length > 0));
  return measured.length > 0 ? measured : ['throughputGbps'];
}

export function tcSection(model: ReportModel, allCharts: readonly ChartFile[], rttCharts: ChartFile[]): TcSection {
  const headline = headlineTable(model);
  const t51 = tcTable51(model);
  const t52 = tcTable52(model);
  const stats = tcMetrics(model).map((m) => asTc(statsTable(model, m)));
  const significance = significanceTables(model).map(asTc);
  const micro = microTables(model).map(asTc);
  const latency = latencyTable(model).map(asTc);
  // Their ids and titles are the section's already (idPrefix).
  const rtt = rttTables(model).map((t) => ({ ...t, title: `TC — ${t.title}` }));
  const charts = allCharts.filter((c) => c.id.startsWith(model.profile.idPrefix));
  const title = model.profile.title;
  const markdown = [
    `## ${title}`,
    '',
    `**${TC_NOTE}**`,
    '',
    `Approaches: ${model.approaches.map((a) => `${APPROACH_LABEL[a]} (${a})`).join(', ') || 'none'}.`,
    '',
    toMarkdown(headline, 3),
    toMarkdown(t51, 3),
    toMarkdown(t52, 3),
    '### TC figures',
    '',
    ...charts.map((c) => `![${c.title}](${c.file})\n\n_${c.caption}_\n`),
    '### TC significance',
    '',
    ...(model.sentences.length > 0 ? model.sentences.map((s) => `- ${s.text}`) : ['No pair of TC approaches could be compared on any kernel.']),
    '',
    ...significance.map((t) => toMarkdown(t, 4)),
    '### TC distributions per cell',
    '',
    ...stats.map((t) => toMarkdown(t, 4)),
    ...micro.map((t) => toMarkdown(t, 3)),
    ...latency.map((t) => toMarkdown(t, 3)),
    ...(rtt.length > 0 ? ['### TC round trips', '', ...rttCharts.map((c) => `![${c.title}](${c.file})\n\n_${c.caption}_\n`), ...rtt.map((t) => toMarkdown(t, 4))] : []),
  ].join('\n');
  const files: [string, string][] = [
    ['tc-headline.csv', headlineCsv(model)],
    ['tc-table-5.1.csv', tcTable51Csv(model)],
    ['tc-table-5.2.csv', tcTable52Csv(model)],
    ['tc-stats.csv', statsCsv(model)],
    ['tc-significance.csv', significanceCsv(model)],
    ['tc.md', markdown],
  ];
  if (model.micro.length > 0) files.push(['tc-micro.csv', microCsv(model)]);
  if (model.latency.length > 0) files.push(['tc-latency.csv', latencyCsv(model)]);
  if (model.rtt.length > 0) files.push(['tc-rtt.csv', rttCsv(model)]);
  return { model, title, note: TC_NOTE, headline, t51, t52, stats, significance, micro, latency, rtt, charts, rttCharts, markdown, files };
}

