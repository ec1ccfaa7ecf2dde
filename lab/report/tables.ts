/**
 * Tables of the report, built once as rows of text and rendered as Markdown and HTML; CSV files carry
 * the same rows with full precision (csv-stringify).
 */
import { stringify } from 'csv-stringify/sync';
import { costBreakdown } from '../results/breakdown.ts';
import type { Summary } from './stats.ts';
import {
  APPROACH_LABEL,
  METRICS,
  METRIC_KEYS,
  MIN_RUNS,
  SHORT_CHAIN,
  ICOUNT_WARNING,
  fmtP,
  kernelWarning,
  kernelWarnings,
  measurementLabel,
  APPROACH_ORDER,
  BOOTSTRAP_NOTE,
  HEADLINE_METRIC_LABEL,
  HEADLINE_REFERENCES,
  noteReason,
  type Cell,
  type MetricKey,
  type ReportModel,
  type ThesisRow,
} from './model.ts';

export interface Table {
  id: string;
  title: string;
  /** Lines shown above the table in bold (TCG, pseudo-run). */
  banners: string[];
  /** How the numbers were computed, in one paragraph. */
  caption: string;
  header: string[];
  /** 'r' for numeric columns. */
  align: ('l' | 'r')[];
  rows: string[][];
  /** Rows measured under TCG, highlighted in HTML. */
  tcgRows?: boolean[];
  footnotes: string[];
}

/** Thesis formatting of totals: integers with digits grouped by spaces ("7 345 879 383"). */
export function fmtTotal(x: number | null): string {
  if (x === null) return '';
  return groupDigits(Math.round(x).toString());
}
function groupDigits(intText: string): string {
  const neg = intText.startsWith('-');
  const d = neg ? intText.slice(1) : intText;
  return (neg ? '−' : '') + d.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}
/** The thesis gives throughput to three significant digits (7,48; 10,4). */
export function fmtThroughput(x: number | null): string {
  if (x === null) return '';
  const t = x.toPrecision(3);
  return t.includes('e') ? String(Number(t)) : t;
}
/** The thesis gives per-packet means to two decimals (29524,05). */
export function fmtPerPacket(x: number | null): string {
  return x === null ? '' : x.toFixed(2);
}
/** General numbers in our own columns: grouped integers when large, four significant digits when small. */
export function fmtNum(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '';
  const a = Math.abs(x);
  let t: string;
  if (a >= 1e5) return groupDigits(Math.round(x).toString());
  if (a >= 100) t = x.toFixed(2);
  else if (a === 0) t = '0';
  else t = x.toPrecision(4);
  return t.replace(/^-/, '−');
}
/** Counts (calls, ns, cycles): grouped integers; a median of an even number of runs may end in .5. */
export function fmtCount(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '';
  if (Number.isInteger(x)) return groupDigits(x.toString());
  const whole = Math.trunc(x);
  return `${groupDigits(whole.toString())}${(Math.abs(x - whole)).toFixed(1).slice(1)}`;
}
export function fmtPct(x: number | null): string {
  if (x === null) return '';
  return `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(2)}%`;
}
function fmtCi(s: Summary | undefined, f: (x: number) => string = fmtNum): string {
  return s?.ci ? `[${f(s.ci[0])}, ${f(s.ci[1])}]` : '';
}

function banners(model: ReportModel, kernels?: string[]): string[] {
  const out: string[] = [];
  for (const w of kernelWarnings(model.kernels, kernels)) {
    out.push(`⚠ ${w.text}: rows for ${w.kernels.join(', ')} were measured under QEMU TCG${w.text === ICOUNT_WARNING ? ' with its instruction counter' : ''}.`);
  }
  if (model.pseudoRun) out.push(`Thesis pseudo-run: ${model.pseudoRun.note}`);
  return out;
}

const TOTALS_CAPTION =
  'Totals are the median over a cell\'s runs of each run\'s total (the thesis reports medians of 50 runs); ' +
  '"packets" are veth_poll calls, as the thesis counted them (§4.1.2.1: "le nombre de fois que ces programmes se sont exécutés"); ' +
  'throughput is the median of iperf3\'s receiver rate. Empty means not measured (never 0).';
const PER_PACKET_CAPTION =
  'Per packet as the thesis computed it: median total ns (cycles) divided by median total veth_poll calls. ' +
  'Last numeric column (ours): the XDP program\'s own time per packet from the kernel\'s BPF run-time statistics, median ' +
  'Δrun_time_ns divided by median Δrun_cnt of the program attached to the veth (tail calls and freplace extensions are ' +
  'accounted to it, so this is the whole chain); it needs no kprobe. ' +
  'Our own per-call and per-true-packet ratios, per run, are in the tables below.';

function rowNotes(r: ThesisRow): string {
  return r.notes.join('; ');
}

/** A ratio to three decimals, so a 1.03 target can be read off. */
export function fmtRatio(x: number): string {
  return Math.abs(x) < 10 ? x.toFixed(3) : x.toPrecision(4);
}

/** The first thing the report says: per kernel, what each approach costs per packet relative to manual and fused. */
export function headlineTable(model: ReportModel): Table {
  const refs = HEADLINE_REFERENCES.filter((ref) => model.headline.some((h) => h.medians.some((m) => m.approach === ref)));
  const rows: string[][] = [];
  const tcgRows: boolean[] = [];
  for (const h of model.headline) {
    const k = model.kernels.find((x) => x.label === h.kernel)!;
    // The kernel, how it was measured and the metric head its group of rows, once.
    const head = [h.kernel, measurementLabel(k), h.metric ? HEADLINE_METRIC_LABEL[h.metric] : 'none (see below)'];
    const blank = head.map(() => '');
    const approaches = APPROACH_ORDER.filter((a) => h.medians.some((m) => m.approach === a));
    if (approaches.length === 0) {
      rows.push([...head, '', '', '', ...refs.flatMap(() => ['', ''])]);
      tcgRows.push(k.tcg);
    }
    approaches.forEach((a, i) => {
      const m = h.medians.find((x) => x.approach === a)!;
      const vs = refs.flatMap((ref) => {
        if (ref === a) return ['1 (reference)', ''];
        const r = h.ratios.find((x) => x.approach === a && x.reference === ref);
        // No ratio: the reference has no value of the metric on this kernel.
        if (!r) return ['—', ''];
        return [`${fmtRatio(r.ratio)}× ${r.ci ? `[${fmtRatio(r.ci[0])}, ${fmtRatio(r.ci[1])}]` : '(no CI: n < 2)'}`, r.verdict];
      });
      rows.push([...(i === 0 ? head : blank), APPROACH_LABEL[a], String(m.n), fmtNum(m.median), ...vs]);
      tcgRows.push(k.tcg);
    });
  }
  return {
    id: 'headline',
    title: 'The answer: cost per packet relative to manual and to fused',
    banners: model.pseudoRun ? [`Thesis pseudo-run: ${model.pseudoRun.note}`] : [],
    caption:
      'Per kernel, the best per-packet metric it has (BPF statistics ns per packet, the whole chain; else the veth_poll ' +
      'probe per packet; else per veth_poll call), named in the third column. "÷ manual" = median(approach) / median(manual), ' +
      `with its 95% bootstrap CI (${BOOTSTRAP_NOTE}); then the verdict of the pair's test on the same metric: "real" = ` +
      'the bootstrap CI of the difference of medians excludes 0 and the Mann-Whitney p, Holm-adjusted over the kernel\'s ' +
      'pairs, is below 0.05; "noise" otherwise; "untestable" below 2 runs. Only the host is real hardware; KVM is a guest; ' +
      'TCG is emulated (the shape only); TCG icount is instruction-timed (reproducible, not wall-clock).',
    header: ['Linux', 'Measured as', 'Per-packet metric', 'Approach', 'n', 'Median (ns)', ...refs.flatMap((r) => [`÷ ${r} [95% CI]`, `vs ${r}`])],
    align: ['l', 'l', 'l', 'l', 'r', 'r', ...refs.flatMap((): ('l' | 'r')[] => ['r', 'l'])],
    rows,
    tcgRows,
    footnotes: headlineNotes(model),
  };
}

/** One footnote per distinct note, naming its kernels: the same reason on every kernel is said once. */
function headlineNotes(model: ReportModel): string[] {
  const byNote = new Map<string, string[]>();
  for (const h of model.headline) if (h.note !== '') byNote.set(h.note, [...(byNote.get(h.note) ?? []), h.kernel]);
  // The patched chain's mode, and why, as its runs recorded it.
  for (const c of model.cells) {
    const r = c.approach === 'patched' ? c.runs.find((x) => x.patchMode) : undefined;
    if (!r?.patchMode) continue;
    const note = `BPF chain (patched) in ${r.patchMode} mode${r.patchModeReason ? ` (${r.patchModeReason.replace(/^\w+: /, '')})` : ''}`;
    byNote.set(note, [...(byNote.get(note) ?? []), c.kernel]);
  }
  return [...byNote.entries()].map(([note, ks]) => `${ks.join(', ')}: ${note}.`);
}

export function headlineCsv(model: ReportModel): string {
  const rows = model.headline.flatMap((h) => {
    const k = model.kernels.find((x) => x.label === h.kernel)!;
    const head = [h.kernel, measurementLabel(k), k.accelerators.join('+'), k.clocks.join('+'), h.metric ?? ''];
    if (h.ratios.length === 0) return [[...head, '', '', '', '', '', '', '', '', '', '', '', h.note]];
    return h.ratios.map((r) => [
      ...head,
      r.approach,
      r.reference,
      String(r.n),
      String(r.nRef),
      String(r.median),
      String(r.medianRef),
      String(r.ratio),
      n(r.ci?.[0]),
      n(r.ci?.[1]),
      n(r.pAdj),
      r.verdict,
      h.note,
    ]);
  });
  return stringify(rows, {
    header: true,
    columns: ['kernel', 'measured_as', 'accelerator', 'clock', 'metric', 'approach', 'reference', 'n', 'n_ref', 'median', 'median_ref', 'ratio', 'ci95_low', 'ci95_high', 'p_holm', 'verdict', 'note'],
  });
}

export function table51(model: ReportModel): Table {
  return {
    id: 'table-5.1',
    title: 'Table 5.1 — Results (thesis layout)',
    banners: banners(model),
    caption: TOTALS_CAPTION,
    header: ['Approach', 'Linux', 'Packets total (veth_poll calls)', 'Total time (ns)', 'Total cycles', 'Throughput (Gb/s)', 'n', 'Notes'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: model.table.map((r) => [
      APPROACH_LABEL[r.approach],
      r.kernel,
      fmtTotal(r.packetsTotal),
      fmtTotal(r.timeTotalNs),
      fmtTotal(r.cyclesTotal),
      fmtThroughput(r.throughputGbps),
      String(r.n),
      rowNotes(r),
    ]),
    tcgRows: model.table.map((r) => isTcg(model, r.kernel)),
    footnotes: [],
  };
}

export function table52(model: ReportModel): Table {
  return {
    id: 'table-5.2',
    title: 'Table 5.2 — Means per packet (thesis layout)',
    banners: banners(model),
    caption: PER_PACKET_CAPTION,
    header: ['Approach', 'Linux', 'Mean time per packet (ns)', 'Mean cycles per packet', 'n', 'XDP program ns per packet (BPF statistics)', 'Notes'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'l'],
    rows: model.table.map((r) => [
      APPROACH_LABEL[r.approach],
      r.kernel,
      fmtPerPacket(r.timePerPacketNs),
      fmtPerPacket(r.cyclesPerPacket),
      String(r.n),
      fmtPerPacket(r.statsNsPerPacket),
      rowNotes(r),
    ]),
    tcgRows: model.table.map((r) => isTcg(model, r.kernel)),
    footnotes: [],
  };
}

function warningOf(model: ReportModel, kernel: string): string {
  return kernelWarning(model.kernels.find((k) => k.label === kernel)) ?? '';
}

function isTcg(model: ReportModel, kernel: string | null): boolean {
  return model.kernels.some((k) => k.label === kernel && k.tcg);
}

function cellNote(c: Cell, m: MetricKey): string {
  const notes: string[] = [];
  if (c.tcg) notes.push('TCG');
  if (c.runs.length > 0 && c.runs.length < MIN_RUNS) notes.push(`n<${MIN_RUNS}`);
  if (c.record && c.record.status !== 'done') notes.push(`${c.record.status}${c.record.reason ? `: ${noteReason(c.record.status, c.record.reason)}` : ''}`);
  const missing = c.runs.length - c.values[m].length;
  if (missing > 0 && c.nullReasons[m]) notes.push(`${c.values[m].length === 0 ? 'none' : `${missing} missing`}: ${c.nullReasons[m]!.join('; ')}`);
  return notes.join('; ');
}

/** One table per metric: n, median, quartiles, IQR and the bootstrap CI for every cell. */
export function statsTable(model: ReportModel, metric: MetricKey): Table {
  const info = METRICS[metric];
  return {
    id: `stats-${metric}`,
    title: `${info.label} (${info.unit})`,
    banners: banners(model),
    caption:
      'Per-run values: n runs, median, first and third quartiles (R type 7), IQR = Q3 − Q1, and a 95% percentile-bootstrap ' +
      'confidence interval of the median (seeded: the same data always gives the same interval). No CI with fewer than 2 runs.',
    header: ['Linux', 'Approach', 'n', 'Median', 'Q1', 'Q3', 'IQR', '95% CI of median', 'Notes'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: model.cells.map((c) => {
      const s = c.stats[metric];
      const f = info.count ? fmtCount : fmtNum;
      return [c.kernel, APPROACH_LABEL[c.approach], String(s?.n ?? 0), f(s?.median), f(s?.q1), f(s?.q3), f(s?.iqr), fmtCi(s, f), cellNote(c, metric)];
    }),
    tcgRows: model.cells.map((c) => c.tcg),
    footnotes: [],
  };
}

export function comparisonTable(model: ReportModel): Table {
  return {
    id: 'thesis-comparison',
    title: 'The thesis side by side (Brodeur 2023, Tables 5.1 and 5.2)',
    banners: banners(model),
    caption:
      'Thesis: published median of 50 runs on an i9-10850K pinned at 3.9 GHz. Ours: the thesis-layout value of the same ' +
      'approach on the kernel of the same major.minor version. Δ = (ours − thesis) / thesis.',
    header: ['Linux', 'Our kernel', 'Approach', 'Metric', 'Thesis', 'Ours', 'Δ', 'Note'],
    align: ['l', 'l', 'l', 'l', 'r', 'r', 'r', 'l'],
    rows: model.comparison.map((c) => {
      const perPacket = c.metric === 'time_per_packet_ns' || c.metric === 'cycles_per_packet';
      const f = c.metric === 'throughput_gbps' ? fmtThroughput : perPacket ? fmtPerPacket : fmtTotal;
      return [c.kernel, c.ourKernel ?? '', APPROACH_LABEL[c.approach], c.metric, f(c.thesis), f(c.ours), fmtPct(c.relDiff), c.note];
    }),
    tcgRows: model.comparison.map((c) => isTcg(model, c.ourKernel)),
    footnotes: [],
  };
}

export function significanceTables(model: ReportModel): Table[] {
  return model.kernels
    .map((k) => {
      const pairs = model.pairs.filter((p) => p.kernel === k.label);
      return {
        id: `significance-${k.label}`,
        title: `Significance on ${k.label}`,
        banners: banners(model, [k.label]),
        caption:
          'Difference = median(B) − median(A) with a 95% bootstrap CI; two-sided Mann-Whitney U (exact without ties and ' +
          'up to 50 runs per group, else normal approximation with tie correction); p adjusted with Holm over the pairs ' +
          'of one kernel and one metric. "real" = CI excludes 0 and adjusted p < 0.05; otherwise "noise".',
        header: ['Metric', 'A', 'B', 'n A', 'n B', 'Median A', 'Median B', 'B − A', 'Δ%', '95% CI of B − A', 'U', 'p', 'p (Holm)', 'Verdict'],
        align: ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'] as ('l' | 'r')[],
        rows: pairs.map((p) => [
          METRICS[p.metric].label,
          APPROACH_LABEL[p.a],
          APPROACH_LABEL[p.b],
          String(p.nA),
          String(p.nB),
          fmtNum(p.medianA),
          fmtNum(p.medianB),
          fmtNum(p.diff),
          fmtPct(p.relDiff),
          p.ci ? `[${fmtNum(p.ci[0])}, ${fmtNum(p.ci[1])}]` : '',
          p.u === null ? '' : String(p.u),
          p.p === null ? '' : fmtP(p.p),
          p.pAdj === null ? '' : fmtP(p.pAdj),
          p.verdict,
        ]),
        footnotes: model.sentences.filter((s) => s.kernel === k.label).map((s) => s.text),
      };
    })
    .filter((t) => t.rows.length > 0);
}

export function microTables(model: ReportModel): Table[] {
  if (model.micro.length === 0) return [];
  const kernels = [...new Set(model.micro.map((g) => g.kernel))];
  const fits: Table = {
    id: 'micro-fit',
    title: 'Microbenchmark: cost per hop (BPF_PROG_TEST_RUN)',
    banners: banners(model, kernels),
    caption: `Least-squares line through the median ns per packet at each chain length; slope = ns per added program (hop). "≤${SHORT_CHAIN}": the same line through chains of at most ${SHORT_CHAIN} programs, since the cost per hop need not be constant over 1..33.`,
    header: ['Linux', 'Variant', 'Hop', 'Lengths', 'ns per hop', 'Intercept (ns)', 'r²', `ns per hop (≤${SHORT_CHAIN})`],
    align: ['l', 'l', 'l', 'l', 'r', 'r', 'r', 'r'],
    rows: model.micro
      .filter((g) => g.fit)
      .map((g) => [
        g.kernel,
        g.variant,
        g.hop,
        `${g.points[0]!.chainLength}..${g.points[g.points.length - 1]!.chainLength} (${g.points.length})`,
        fmtNum(g.fit!.slope),
        fmtNum(g.fit!.intercept),
        g.fit!.r2.toFixed(4),
        g.shortFit ? fmtNum(g.shortFit.slope) : '',
      ]),
    footnotes: [],
  };
  const points: Table = {
    id: 'micro-points',
    title: 'Microbenchmark: ns per packet',
    banners: banners(model, kernels),
    caption: 'Each repetition is one BPF_PROG_TEST_RUN of `repeat` packets; n = repetitions. Median, IQR and bootstrap CI over repetitions.',
    header: ['Linux', 'Variant', 'Hop', 'Chain length', 'repeat', 'n', 'Median (ns)', 'IQR', '95% CI', 'Note'],
    align: ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: model.micro.flatMap((g) =>
      g.points.map((p) => [g.kernel, g.variant, g.hop, String(p.chainLength), String(p.repeat), String(p.stats.n), fmtNum(p.stats.median), fmtNum(p.stats.iqr), fmtCi(p.stats), g.tcg ? 'TCG' : '']),
    ),
    footnotes: [],
  };
  const breakdown: Table = {
    id: 'micro-breakdown',
    title: 'Microbenchmark: where the patched chain\'s cost goes',
    banners: banners(model, kernels),
    caption:
      'Each part is the difference between two variants of the same run that differ in that part only (column "From"); per-program parts are paid by every program of a chain. The rest is the trio\'s excess over manual that the parts do not explain: the bodies\' own code.',
    header: ['Linux', 'Part', 'ns', 'Per', 'From'],
    align: ['l', 'l', 'r', 'l', 'l'],
    rows: kernels.flatMap((k) => {
      const groups = model.micro.filter((g) => g.kernel === k);
      const parts = costBreakdown({
        scaling: new Map(groups.filter((g) => g.kind === 'scaling').map((g) => [g.variant, new Map(g.points.map((p) => [p.chainLength, p.stats.median]))])),
        trio: new Map(groups.filter((g) => g.kind === 'approach').map((g) => [g.variant, g.points[0]!.stats.median])),
      });
      return parts.map((p) => [k, p.what, fmtNum(p.ns), p.per, p.from]);
    }),
    footnotes: [],
  };
  return [...(fits.rows.length > 0 ? [fits] : []), ...(breakdown.rows.length > 0 ? [breakdown] : []), points];
}

export function latencyTable(model: ReportModel): Table[] {
  if (model.latency.length === 0) return [];
  return [
    {
      id: 'latency',
      title: 'Load/attach, replace and detach latency',
      banners: banners(model, [...new Set(model.latency.map((g) => g.kernel))]),
      caption: 'Milliseconds per operation; median, IQR and bootstrap CI over repetitions.',
      header: ['Linux', 'Approach', 'Operation', 'n', 'Median (ms)', 'IQR', '95% CI', 'Note'],
      align: ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'l'],
      rows: model.latency.map((g) => [g.kernel, APPROACH_LABEL[g.approach], g.operation, String(g.stats.n), fmtNum(g.stats.median), fmtNum(g.stats.iqr), fmtCi(g.stats), g.tcg ? 'TCG' : '']),
      footnotes: [],
    },
  ];
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function toMarkdown(t: Table, level = 2): string {
  const out: string[] = [`${'#'.repeat(level)} ${t.title}`, ''];
  for (const b of t.banners) out.push(`**${mdEscape(b)}**`, '');
  if (t.caption) out.push(t.caption, '');
  if (t.rows.length === 0) {
    out.push('_No data._', '');
  } else {
    out.push(`| ${t.header.map(mdEscape).join(' | ')} |`);
    out.push(`| ${t.align.map((a) => (a === 'r' ? '---:' : ':---')).join(' | ')} |`);
    for (const r of t.rows) out.push(`| ${r.map(mdEscape).join(' | ')} |`);
    out.push('');
  }
  for (const f of t.footnotes) out.push(`- ${f}`);
  if (t.footnotes.length > 0) out.push('');
  return out.join('\n');
}

// ---------- CSV (full precision) ----------

function n(x: number | null | undefined): string {
  return x === null || x === undefined ? '' : String(x);
}

/** Table 5.1 in the reference CSV's columns (thesis formatting), then ours. */
export function table51Csv(model: ReportModel): string {
  return stringify(
    model.table.map((r) => [
      r.approach,
      r.kernel,
      r.packetsTotal === null ? '' : String(Math.round(r.packetsTotal)),
      r.timeTotalNs === null ? '' : String(Math.round(r.timeTotalNs)),
      r.cyclesTotal === null ? '' : String(Math.round(r.cyclesTotal)),
      fmtThroughput(r.throughputGbps),
      String(r.n),
      r.accelerator,
      r.status,
      rowNotes(r),
    ]),
    { header: true, columns: ['approach', 'kernel', 'packets_total', 'time_total_ns', 'cycles_total', 'throughput_gbps', 'n_runs', 'accelerator', 'status', 'notes'] },
  );
}

export function table52Csv(model: ReportModel): string {
  return stringify(
    model.table.map((r) => [r.approach, r.kernel, fmtPerPacket(r.timePerPacketNs), fmtPerPacket(r.cyclesPerPacket), String(r.n), fmtPerPacket(r.statsNsPerPacket), r.accelerator, r.status, rowNotes(r)]),
    { header: true, columns: ['approach', 'kernel', 'time_per_packet_ns', 'cycles_per_packet', 'n_runs', 'bpf_stats_ns_per_packet', 'accelerator', 'status', 'notes'] },
  );
}

export function statsCsv(model: ReportModel): string {
  const rows: string[][] = [];
  for (const c of model.cells) {
    for (const m of METRIC_KEYS) {
      const s = c.stats[m];
      rows.push([
        c.kernel,
        c.approach,
        m,
        METRICS[m].unit,
        String(s?.n ?? 0),
        n(s?.median),
        n(s?.q1),
        n(s?.q3),
        n(s?.iqr),
        n(s?.ci?.[0]),
        n(s?.ci?.[1]),
        (c.nullReasons[m] ?? []).join('; '),
        warningOf(model, c.kernel),
      ]);
    }
  }
  return stringify(rows, {
    header: true,
    columns: ['kernel', 'approach', 'metric', 'unit', 'n', 'median', 'q1', 'q3', 'iqr', 'ci95_low', 'ci95_high', 'missing_reason', 'flag'],
  });
}

export function comparisonCsv(model: ReportModel): string {
  return stringify(
    model.comparison.map((c) => [c.kernel, c.ourKernel ?? '', c.approach, c.metric, String(c.thesis), n(c.ours), n(c.relDiff), c.note]),
    { header: true, columns: ['kernel', 'our_kernel', 'approach', 'metric', 'thesis', 'ours', 'rel_diff', 'note'] },
  );
}

export function significanceCsv(model: ReportModel): string {
  return stringify(
    model.pairs.map((p) => [p.kernel, p.metric, p.a, p.b, String(p.nA), String(p.nB), String(p.medianA), String(p.medianB), String(p.diff), n(p.relDiff), n(p.ci?.[0]), n(p.ci?.[1]), n(p.u), n(p.p), n(p.pAdj), p.verdict, p.method]),
    {
      header: true,
      columns: ['kernel', 'metric', 'a', 'b', 'n_a', 'n_b', 'median_a', 'median_b', 'diff_b_minus_a', 'rel_diff', 'ci95_low', 'ci95_high', 'u', 'p', 'p_holm', 'verdict', 'method'],
    },
  );
}

export function microCsv(model: ReportModel): string {
  return stringify(
    model.micro.flatMap((g) =>
      g.points.map((p) => [g.kernel, g.variant, g.hop, String(p.chainLength), String(p.repeat), String(p.stats.n), String(p.stats.median), String(p.stats.q1), String(p.stats.q3), n(p.stats.ci?.[0]), n(p.stats.ci?.[1]), n(g.fit?.slope), n(g.fit?.intercept), n(g.shortFit?.slope), warningOf(model, g.kernel)]),
    ),
    { header: true, columns: ['kernel', 'variant', 'hop', 'chain_length', 'repeat', 'n', 'median_ns', 'q1', 'q3', 'ci95_low', 'ci95_high', 'fit_ns_per_hop', 'fit_intercept_ns', `fit_ns_per_hop_le${SHORT_CHAIN}`, 'flag'] },
  );
}

export function latencyCsv(model: ReportModel): string {
  return stringify(
    model.latency.map((g) => [g.kernel, g.approach, g.operation, String(g.stats.n), String(g.stats.median), String(g.stats.q1), String(g.stats.q3), n(g.stats.ci?.[0]), n(g.stats.ci?.[1]), warningOf(model, g.kernel)]),
    { header: true, columns: ['kernel', 'approach', 'operation', 'n', 'median_ms', 'q1', 'q3', 'ci95_low', 'ci95_high', 'flag'] },
  );
}
