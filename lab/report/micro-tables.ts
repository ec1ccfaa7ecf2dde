/**
 * The microbenchmark tables: cost per hop (fitted lines), where the patched chain's cost goes (the
 * breakdown of lab/results/breakdown.ts), ns per packet at each point, and the load/replace/detach
 * latencies; each as a Table and as CSV.
 */
import { stringify } from 'csv-stringify/sync';
import { costBreakdown, SHORT_CHAIN } from '../results/breakdown.ts';
import { csvNum, fmtCi, fmtNum } from './format.ts';
import { APPROACH_LABEL } from './metrics.ts';
import type { ReportModel } from './model.ts';
import { banners, warningOf, type Table } from './table.ts';

/** What "in-band" means, said once under the tables that hold such rows. */
const TIMING_NOTE =
  'Rows marked "live, in-band" are not BPF_PROG_TEST_RUN, which runs one program and never the kernel\'s walk between programs (cls_bpf priorities, tcx): they are ns per skb of iperf3 traffic between a clock program before the chain and one after it; the clock\'s own cost is in every length alike, so their slope compares with the others\' and their intercept does not.';

function hopLabel(g: ReportModel['micro'][number]): string {
  return g.timing === 'in-band' ? `${g.hop} (live, in-band)` : g.hop;
}

export function microTables(model: ReportModel): Table[] {
  if (model.micro.length === 0) return [];
  const kernels = [...new Set(model.micro.map((g) => g.kernel))];
  // On TC a test run builds one skb per packet: the TC section says skb.
  const unit = model.profile.unit;
  const fits: Table = {
    id: 'micro-fit',
    title: 'Microbenchmark: cost per hop',
    banners: banners(model, kernels),
    caption: `Least-squares line through the median ns per ${unit} at each chain length; slope = ns per added program (hop). "≤${SHORT_CHAIN}": the same line through chains of at most ${SHORT_CHAIN} programs, since the cost per hop need not be constant over 1..33.${model.micro.some((g) => g.timing === 'in-band') ? ` ${TIMING_NOTE}` : ''}`,
    header: ['Linux', 'Variant', 'Hop', 'Lengths', 'ns per hop', 'Intercept (ns)', 'r²', `ns per hop (≤${SHORT_CHAIN})`],
    align: ['l', 'l', 'l', 'l', 'r', 'r', 'r', 'r'],
    rows: model.micro
      .filter((g) => g.fit)
      .map((g) => [
        g.kernel,
        g.variant,
        hopLabel(g),
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
    title: `Microbenchmark: ns per ${unit}`,
    banners: banners(model, kernels),
    caption: `Each repetition is one BPF_PROG_TEST_RUN of \`repeat\` packets (in-band rows: one iperf3 run, \`repeat\` its fewest skbs); n = repetitions. Median, IQR and bootstrap CI over repetitions.${model.profile.hook === 'tc' ? ' On TC a test run builds one skb of one frame per packet, so here per packet is per skb (unlike the per-skb figures of live traffic, where one skb may carry many frames).' : ''}`,
    header: ['Linux', 'Variant', 'Hop', 'Chain length', 'repeat', 'n', 'Median (ns)', 'IQR', '95% CI', 'Note'],
    align: ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: model.micro.flatMap((g) =>
      g.points.map((p) => [g.kernel, g.variant, hopLabel(g), String(p.chainLength), String(p.repeat), String(p.stats.n), fmtNum(p.stats.median), fmtNum(p.stats.iqr), fmtCi(p.stats), g.tcg ? 'TCG' : '']),
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

export function microCsv(model: ReportModel): string {
  return stringify(
    model.micro.flatMap((g) =>
      g.points.map((p) => [g.kernel, g.variant, g.hop, g.timing, String(p.chainLength), String(p.repeat), String(p.stats.n), String(p.stats.median), String(p.stats.q1), String(p.stats.q3), csvNum(p.stats.ci?.[0]), csvNum(p.stats.ci?.[1]), csvNum(g.fit?.slope), csvNum(g.fit?.intercept), csvNum(g.shortFit?.slope), warningOf(model, g.kernel)]),
    ),
    { header: true, columns: ['kernel', 'variant', 'hop', 'timing', 'chain_length', 'repeat', 'n', 'median_ns', 'q1', 'q3', 'ci95_low', 'ci95_high', 'fit_ns_per_hop', 'fit_intercept_ns', `fit_ns_per_hop_le${SHORT_CHAIN}`, 'flag'] },
  );
}

export function latencyCsv(model: ReportModel): string {
  return stringify(
    model.latency.map((g) => [g.kernel, g.approach, g.operation, String(g.stats.n), String(g.stats.median), String(g.stats.q1), String(g.stats.q3), csvNum(g.stats.ci?.[0]), csvNum(g.stats.ci?.[1]), warningOf(model, g.kernel)]),
    { header: true, columns: ['kernel', 'approach', 'operation', 'n', 'median_ms', 'q1', 'q3', 'ci95_low', 'ci95_high', 'flag'] },
  );
}
