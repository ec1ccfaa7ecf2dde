/**
 * Our own tables of the per-run distributions: per metric, every cell's n, median, quartiles, IQR
 * and bootstrap CI; per kernel, the pairwise significance tests with their verdicts; each as a Table
 * and as CSV.
 */
import { stringify } from 'csv-stringify/sync';
import { noteReason, type Cell } from './cells.ts';
import { csvNum, fmtCi, fmtCount, fmtNum, fmtP, fmtPct } from './format.ts';
import { APPROACH_LABEL, METRICS, METRIC_KEYS, metricLabel, MIN_RUNS, type MetricKey } from './metrics.ts';
import type { ReportModel } from './model.ts';
import { banners, warningOf, type Table } from './table.ts';

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
    title: `${metricLabel(metric, model.profile.hook)} (${info.unit})`,
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
          metricLabel(p.metric, model.profile.hook),
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
        csvNum(s?.median),
        csvNum(s?.q1),
        csvNum(s?.q3),
        csvNum(s?.iqr),
        csvNum(s?.ci?.[0]),
        csvNum(s?.ci?.[1]),
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

export function significanceCsv(model: ReportModel): string {
  return stringify(
    model.pairs.map((p) => [p.kernel, p.metric, p.a, p.b, String(p.nA), String(p.nB), String(p.medianA), String(p.medianB), String(p.diff), csvNum(p.relDiff), csvNum(p.ci?.[0]), csvNum(p.ci?.[1]), csvNum(p.u), csvNum(p.p), csvNum(p.pAdj), p.verdict, p.method]),
    {
      header: true,
      columns: ['kernel', 'metric', 'a', 'b', 'n_a', 'n_b', 'median_a', 'median_b', 'diff_b_minus_a', 'rel_diff', 'ci95_low', 'ci95_high', 'u', 'p', 'p_holm', 'verdict', 'method'],
    },
  );
}
