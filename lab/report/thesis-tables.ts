/**
 * The tables in the thesis's terms: the headline (cost per packet over manual and fused), Tables 5.1
 * and 5.2 in the thesis's layout and formatting, and the thesis side by side; each as a Table and as
 * CSV.
 */
import { stringify } from 'csv-stringify/sync';
import { csvNum, fmtNum, fmtPct, fmtPerPacket, fmtRatio, fmtThroughput, fmtTotal } from './format.ts';
import { HEADLINE_METRIC_LABEL, headlineReferences } from './headline.ts';
import { measurementLabel } from './kernels.ts';
import { APPROACH_LABEL, APPROACH_ORDER, BOOTSTRAP_NOTE, metricLabel } from './metrics.ts';
import type { ReportModel } from './model.ts';
import type { ThesisRow } from './cells.ts';
import { banners, isTcg, type Table } from './table.ts';

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

const HEADLINE_CAPTION =
  'Per kernel, the best per-packet metric it has (BPF statistics ns per packet, the whole chain; else the veth_poll ' +
  'probe per packet; else per veth_poll call), named in the third column. "÷ manual" = median(approach) / median(manual), ' +
  `with its 95% bootstrap CI (${BOOTSTRAP_NOTE}); then the verdict of the pair's test on the same metric: "real" = ` +
  'the bootstrap CI of the difference of medians excludes 0 and the Mann-Whitney p, Holm-adjusted over the kernel\'s ' +
  'pairs, is below 0.05; "noise" otherwise; "untestable" below 2 runs. Only the host is real hardware; KVM is a guest; ' +
  'TCG is emulated (the shape only); TCG icount is instruction-timed (reproducible, not wall-clock).';
const TC_HEADLINE_CAPTION =
  'Per kernel, ns per skb of the TC programs from the kernel\'s BPF run-time statistics (Δrun_time_ns of every program ' +
  'the kernel runs on the skb, over Δrun_cnt of the first). "÷ tc-manual" = median(approach) / median(tc-manual), ' +
  `with its 95% bootstrap CI (${BOOTSTRAP_NOTE}); then the verdict of the pair's test on the same metric ("real": the ` +
  'CI of the difference excludes 0 and the Holm-adjusted Mann-Whitney p is below 0.05; "noise" otherwise; "untestable" ' +
  'below 2 runs). tc-none attaches no program: its throughput is the baseline of the relative throughput. ' +
  'For tc-filters and tcx the kernel\'s step from one program to the next (the cls_bpf priority walk, bpf_mprog\'s ' +
  'loop) runs outside every program, so no statistic holds it: the microbenchmark\'s chain/tc-filters and chain/tcx ' +
  'rows (live traffic, timed in-band) give that step\'s cost per added program.';

/** The first thing a section says: per kernel, what each approach costs per packet (skb) relative to manual and fused. */
export function headlineTable(model: ReportModel): Table {
  const tc = model.profile.hook === 'tc';
  const refs = headlineReferences(model.profile).filter((ref) => model.headline.some((h) => h.medians.some((m) => m.approach === ref)));
  const rows: string[][] = [];
  const tcgRows: boolean[] = [];
  for (const h of model.headline) {
    const k = model.kernels.find((x) => x.label === h.kernel)!;
    // The kernel, how it was measured and the metric head its group of rows, once.
    const head = [h.kernel, measurementLabel(k), h.metric ? (tc ? metricLabel(h.metric, 'tc') : HEADLINE_METRIC_LABEL[h.metric]) : 'none (see below)'];
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
    id: `${model.profile.idPrefix}headline`,
    title: tc ? 'TC ingress: cost per skb relative to tc-manual and to tc-fused' : 'The answer: cost per packet relative to manual and to fused',
    banners: model.pseudoRun ? [`Thesis pseudo-run: ${model.pseudoRun.note}`] : [],
    caption: tc ? TC_HEADLINE_CAPTION : HEADLINE_CAPTION,
    header: ['Linux', 'Measured as', tc ? 'Per-skb metric' : 'Per-packet metric', 'Approach', 'n', 'Median (ns)', ...refs.flatMap((r) => [`÷ ${r} [95% CI]`, `vs ${r}`])],
    align: ['l', 'l', 'l', 'l', 'r', 'r', ...refs.flatMap((): ('l' | 'r')[] => ['r', 'l'])],
    rows,
    tcgRows,
    // An empty answer says where the answer is: a run of the TC hook alone has it in its own section.
    footnotes: rows.length === 0 && !tc ? ['No XDP approach has a per-packet figure in this run; a run of the TC hook (--hook tc) gives its answer under "TC ingress".', ...headlineNotes(model)] : headlineNotes(model),
  };
}

/** One footnote per distinct note, naming its kernels: the same reason on every kernel is said once. */
function headlineNotes(model: ReportModel): string[] {
  const byNote = new Map<string, string[]>();
  for (const h of model.headline) if (h.note !== '') byNote.set(h.note, [...(byNote.get(h.note) ?? []), h.kernel]);
  // The patched chain's mode, and why, as its runs recorded it.
  for (const c of model.cells) {
    const r = c.runs.find((x) => x.patchMode);
    if (!r?.patchMode) continue;
    const note = `${APPROACH_LABEL[c.approach]} in ${r.patchMode} mode${r.patchModeReason ? ` (${r.patchModeReason.replace(/^\w+: /, '')})` : ''}`;
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
      csvNum(r.ci?.[0]),
      csvNum(r.ci?.[1]),
      csvNum(r.pAdj),
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

export function comparisonCsv(model: ReportModel): string {
  return stringify(
    model.comparison.map((c) => [c.kernel, c.ourKernel ?? '', c.approach, c.metric, String(c.thesis), csvNum(c.ours), csvNum(c.relDiff), c.note]),
    { header: true, columns: ['kernel', 'our_kernel', 'approach', 'metric', 'thesis', 'ours', 'rel_diff', 'note'] },
  );
}
