/**
 * Round trips through each approach in the report: per kernel, the percentiles of the ping round
 * trips recorded with each approach attached (lab/bench/rtt-stage.ts), and what each adds to the
 * same hook's no-program baseline. One table and one figure per kernel, in each hook's section.
 */
import { stringify } from 'csv-stringify/sync';
import { summariseRtts, type LatencySummary } from '../results/rtt-summary.ts';
import type { ApproachName, RttRecord } from '../results/record.ts';
import { CHART_HEIGHT, CHART_WIDTH, renderBar } from './chart-draw.ts';
import type { ChartFile } from './charts.ts';
import { csvNum, fmtNum } from './format.ts';
import { kernelWarning, type KernelInfo } from './kernels.ts';
import { APPROACH_LABEL, APPROACH_ORDER } from './metrics.ts';
import type { ReportModel } from './model.ts';
import { banners, type Table } from './table.ts';

export interface RttRow {
  kernel: string;
  approach: ApproachName;
  tcg: boolean;
  intervalS: number;
  /** Null where nothing came back to summarise (then `reason` says why). */
  summary: LatencySummary | null;
  reason: string | null;
}

/**
 * One row per kernel and approach, kernels in the report's order, approaches in the thesis's. A
 * kernel measured twice (a resumed run) pools its round trips: they are samples of one distribution.
 */
export function rttRows(recs: readonly RttRecord[], kernels: readonly KernelInfo[]): RttRow[] {
  const rows: RttRow[] = [];
  for (const k of kernels) {
    for (const a of APPROACH_ORDER) {
      const mine = recs.filter((r) => r.kernel === k.label && r.approach === a);
      if (mine.length === 0) continue;
      const rtts = mine.flatMap((r) => r.rttUs);
      const sent = mine.reduce((s, r) => s + r.sent, 0);
      rows.push({
        kernel: k.label,
        approach: a,
        tcg: k.tcg,
        intervalS: mine[0]!.intervalS,
        summary: rtts.length > 0 ? summariseRtts(a, sent, rtts) : null,
        reason: rtts.length > 0 ? null : ([...mine].reverse().find((r) => r.reason !== undefined)?.reason ?? 'no round trip recorded'),
      });
    }
  }
  return rows;
}

const kernelsOf = (model: ReportModel): string[] => [...new Set(model.rtt.map((r) => r.kernel))];
const idOf = (model: ReportModel, kernel: string): string => `${model.profile.idPrefix}rtt-${kernel}`;

/** p − the same kernel's `baseline` p, where both are there. */
function minusBaseline(rows: readonly RttRow[], r: RttRow, p: 'p50Us' | 'p99Us', baseline: ApproachName): number | null {
  const base = rows.find((x) => x.kernel === r.kernel && x.approach === baseline);
  const a = r.summary?.[p];
  const b = base?.summary?.[p];
  return base === r || a === null || a === undefined || b === null || b === undefined ? null : a - b;
}

const us = (x: number | null | undefined): string => (x === null || x === undefined ? '' : fmtNum(x));

export function rttTables(model: ReportModel): Table[] {
  const baseline = model.profile.baseline;
  return kernelsOf(model).map((kernel) => {
    const rows = model.rtt.filter((r) => r.kernel === kernel);
    const intervals = [...new Set(rows.map((r) => r.intervalS * 1000))].join(', ');
    const footnotes = rows.filter((r) => r.reason !== null).map((r) => `${APPROACH_LABEL[r.approach]}: ${r.reason}`);
    if (rows.some((r) => r.summary && r.summary.received < 1000)) footnotes.push('p99.9 needs 1000 replies and p99 100: empty where fewer came back (a quick matrix sends 200).');
    return {
      id: idOf(model, kernel),
      title: `Round trips through each approach — Linux ${kernel}`,
      banners: banners(model, [kernel]),
      caption:
        `ICMPv6 echo across the veth pair (${intervals} ms apart), the approach attached on the receiving side: each reply crosses it once. ` +
        `Percentiles of the round trips in µs (quantiles of the sorted sample, R type 7); "− ${baseline}" is the difference to the same kernel's ${baseline} (no program), ` +
        'what the chain adds to one round trip. Tail percentiles include two scheduler wake-ups and are noisy by nature.',
      header: ['Approach', 'Replies', 'Min (µs)', 'p50 (µs)', 'p99 (µs)', 'p99.9 (µs)', 'Max (µs)', `p50 − ${baseline}`, `p99 − ${baseline}`],
      align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      rows: rows.map((r) => [
        APPROACH_LABEL[r.approach],
        r.summary ? `${r.summary.received}/${r.summary.sent}` : 'not measured',
        us(r.summary?.minUs),
        us(r.summary?.p50Us),
        us(r.summary?.p99Us),
        us(r.summary?.p999Us),
        us(r.summary?.maxUs),
        us(minusBaseline(rows, r, 'p50Us', baseline)),
        us(minusBaseline(rows, r, 'p99Us', baseline)),
      ]),
      tcgRows: rows.map((r) => r.tcg),
      footnotes,
    };
  });
}

export function rttCsv(model: ReportModel): string {
  return stringify(
    model.rtt.map((r) => {
      const s = r.summary;
      const k = model.kernels.find((x) => x.label === r.kernel);
      return [r.kernel, r.approach, csvNum(s?.sent), csvNum(s?.received), String(r.intervalS), csvNum(s?.minUs), csvNum(s?.p50Us), csvNum(s?.p99Us), csvNum(s?.p999Us), csvNum(s?.maxUs), csvNum(minusBaseline(model.rtt, r, 'p50Us', model.profile.baseline)), r.reason ?? '', kernelWarning(k) ?? ''];
    }),
    { header: true, columns: ['kernel', 'approach', 'sent', 'received', 'interval_s', 'min_us', 'p50_us', 'p99_us', 'p999_us', 'max_us', 'p50_minus_baseline_us', 'reason', 'flag'] },
  );
}

/** One figure per kernel: p50 and p99 of each measured approach side by side. */
export async function renderRttCharts(model: ReportModel): Promise<ChartFile[]> {
  const out: ChartFile[] = [];
  for (const kernel of kernelsOf(model)) {
    const rows = model.rtt.filter((r) => r.kernel === kernel && r.summary !== null);
    if (rows.length === 0) continue;
    const k = model.kernels.find((x) => x.label === kernel);
    const warning = kernelWarning(k);
    const id = idOf(model, kernel);
    const title = `Round trip through each approach — Linux ${kernel}`;
    const png = await renderBar({
      id,
      title,
      yLabel: 'round trip (µs)',
      xLabel: 'approach',
      labels: rows.map((r) => APPROACH_LABEL[r.approach]),
      datasets: [
        { label: 'p50', color: '#1f77b4', data: rows.map((r) => r.summary!.p50Us), errors: rows.map(() => null) },
        { label: 'p99', color: '#ff7f0e', data: rows.map((r) => r.summary!.p99Us), errors: rows.map(() => null) },
      ],
      subtitle: [`ping across the veth pair, ${rows[0]!.summary!.sent} echoes per approach`, ...(warning ? [`⚠ ${warning}`] : [])],
      warn: Boolean(warning),
    });
    out.push({
      id,
      file: `figures/${id}.png`,
      title,
      caption: `Median and 99th percentile of the round trips with each approach attached (a missing p99 bar: fewer than 100 replies).${warning ? ` ⚠ ${warning}.` : ''}`,
      png,
      width: CHART_WIDTH,
      height: CHART_HEIGHT,
      tcg: k?.tcg ?? false,
    });
  }
  return out;
}
