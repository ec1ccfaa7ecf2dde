/**
 * `renderReport(runDir)`: raw results → runDir/report/ (Tables 5.1 and 5.2 as CSV and Markdown,
 * our distribution tables, the thesis side by side, significance, figures as PNG, one HTML page,
 * summary.json). Reads only; writes only under runDir/report/.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { errorMessage, LabError, wrapError } from '../errors.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { renderCharts, type ErrorBarKind } from './charts.ts';
import { renderHtml } from './html.ts';
import { renderRttCharts, rttCsv, rttTables } from './rtt.ts';
import type { ChartFile } from './charts.ts';

/** The round-trip figures of each hook's section, kept apart from the section's other figures. */
interface RttFigures {
  xdp: ChartFile[];
  tc: ChartFile[];
}
import { loadRun, type BadLine } from './load.ts';
import { groupFlags, type Flag, type FlagGroup } from './flags.ts';
import { METRICS, METRIC_KEYS, shownMetric } from './metrics.ts';
import { latencyCsv, latencyTable, microCsv, microTables } from './micro-tables.ts';
import { nativeTables } from './native.ts';
import { buildModel, type ReportModel } from './model.ts';
import { significanceCsv, significanceTables, statsCsv, statsTable } from './stats-tables.ts';
import { toMarkdown } from './table.ts';
import { tcSection } from './tc-tables.ts';
import { comparisonCsv, comparisonTable, headlineCsv, headlineTable, table51, table51Csv, table52, table52Csv } from './thesis-tables.ts';
import { DEFAULT_REFERENCE_DIR, readReference, type Reference } from './thesis.ts';

export { writeThesisPseudoRun, readReference, THESIS_RUN_ID } from './thesis.ts';
export type { Flag, FlagGroup } from './flags.ts';
export type { BadLine } from './load.ts';

export interface ReportOptions {
  progress?: ProgressSink;
  /** Where the thesis's CSVs are; default results/reference/ of this checkout. */
  referenceDir?: string;
  /** Whiskers on the figures: interquartile range (default) or the bootstrap CI of the median. */
  errorBars?: ErrorBarKind;
  /** Bootstrap resamples (default 2000); tests may lower it. */
  resamples?: number;
}

export interface ReportSummary {
  runDir: string;
  reportDir: string;
  runId: string;
  pseudoRun: boolean;
  anyTcg: boolean;
  kernels: string[];
  approaches: string[];
  runs: number;
  cells: number;
  /** Every file written, absolute paths. */
  files: string[];
  /** The HTML page (also what the matrix runner prints as "report: <path>"). */
  path: string;
  html: string;
  markdown: string;
  charts: { id: string; file: string; width: number; height: number }[];
  skippedCharts: { id: string; reason: string }[];
  badLines: BadLine[];
  /** One flag per cause and cell (what scripts match on). */
  flags: Flag[];
  /** The flags and the figures not drawn, one line per cause with the cells it affects (what the page shows). */
  warnings: FlagGroup[];
  /** One sentence per kernel on which differences are real and which are noise. */
  significance: string[];
  /** The TC section (approaches on TC ingress), null when the run has no TC record. */
  tc: { title: string; approaches: string[]; kernels: string[]; runs: number; cells: number; files: string[]; significance: string[] } | null;
}

export async function renderReport(runDir: string, opts: ReportOptions = {}): Promise<ReportSummary> {
  const sink = opts.progress ?? silent;
  const dir = resolve(runDir);
  sink({ kind: 'phase-start', id: 'report', label: `report ${dir}`, total: 4 });
  try {
    const run = loadRun(dir);
    for (const b of run.badLines) sink({ kind: 'log', level: 'warn', message: `${b.file}:${b.line}: skipped: ${b.error}` });
    sink({ kind: 'phase-progress', id: 'report', done: 1, total: 4, note: `${run.runs.length} runs read` });

    let reference: Reference | null = null;
    try {
      reference = readReference(opts.referenceDir ?? DEFAULT_REFERENCE_DIR);
    } catch (e) {
      sink({ kind: 'log', level: 'warn', message: `thesis reference not read: ${errorMessage(e)}` });
    }
    const model = buildModel(run, { reference, resamples: opts.resamples });
    sink({ kind: 'phase-progress', id: 'report', done: 2, total: 4, note: 'statistics' });

    const xdpFigures = await renderCharts(model, opts.errorBars ?? 'iqr');
    const tcFigures = model.tc ? await renderCharts(model.tc, opts.errorBars ?? 'iqr') : { charts: [], skipped: [] };
    const rttFigures: RttFigures = { xdp: await renderRttCharts(model), tc: model.tc ? await renderRttCharts(model.tc) : [] };
    const charts = [...xdpFigures.charts, ...rttFigures.xdp, ...tcFigures.charts, ...rttFigures.tc];
    const skipped = [...xdpFigures.skipped, ...tcFigures.skipped];
    sink({ kind: 'phase-progress', id: 'report', done: 3, total: 4, note: `${charts.length} figures` });

    const warnings = warningGroups(model, skipped);
    const files = writeAll(dir, model, xdpFigures.charts, tcFigures.charts, rttFigures, skipped, warnings);
    sink({ kind: 'phase-progress', id: 'report', done: 4, total: 4 });
    sink({ kind: 'phase-end', id: 'report', ok: true, message: join(dir, 'report', 'index.html') });
    const reportDir = join(dir, 'report');
    const tc = model.tc;
    const runsOf = (m: ReportModel) => m.cells.reduce((s, c) => s + c.runs.length, 0);
    return {
      runDir: dir,
      reportDir,
      runId: model.runId,
      pseudoRun: model.pseudoRun !== null,
      anyTcg: model.anyTcg,
      kernels: model.allKernels.map((k) => k.label),
      approaches: [...model.approaches, ...(tc?.approaches ?? [])],
      runs: runsOf(model) + (tc ? runsOf(tc) : 0),
      cells: model.cells.length + (tc?.cells.length ?? 0),
      files,
      path: join(reportDir, 'index.html'),
      html: join(reportDir, 'index.html'),
      markdown: join(reportDir, 'report.md'),
      charts: charts.map((c) => ({ id: c.id, file: join(reportDir, c.file), width: c.width, height: c.height })),
      skippedCharts: skipped.map((s) => ({ id: s.id, reason: s.reason })),
      badLines: model.badLines,
      flags: model.flags,
      warnings,
      significance: model.sentences.map((s) => s.text),
      tc: tc
        ? {
            title: tc.profile.title,
            approaches: tc.approaches,
            kernels: tc.kernels.map((k) => k.label),
            runs: runsOf(tc),
            cells: tc.cells.length,
            // Its tables and Markdown; its figures are with the others in figures/.
            files: files.filter((f) => dirname(f) === reportDir && /^tc[-.]/.test(basename(f))),
            significance: tc.sentences.map((s) => s.text),
          }
        : null,
    };
  } catch (e) {
    sink({ kind: 'phase-end', id: 'report', ok: false, message: errorMessage(e) });
    if (e instanceof LabError) throw e;
    throw wrapError('REPORT', `report of ${dir}`, e, 'Run with --verbose and file an issue with the raw results attached.');
  }
}

/** The model's flags and the figures not drawn, grouped by cause. */
function warningGroups(model: ReportModel, skipped: Awaited<ReturnType<typeof renderCharts>>['skipped']): FlagGroup[] {
  const notDrawn: Flag[] = skipped.map((s) => ({ level: 'info', cell: s.title, cause: `not drawn: ${s.reason}`, text: `${s.title} not drawn: ${s.reason}` }));
  return groupFlags([...model.flags, ...notDrawn]);
}

function warningLineMd(g: FlagGroup): string {
  return `- ${g.level === 'warn' ? '⚠' : 'ℹ'} ${g.text.replace(/\s*\n\s*/g, ' ')}`;
}

function writeAll(
  dir: string,
  model: ReportModel,
  charts: Awaited<ReturnType<typeof renderCharts>>['charts'],
  tcCharts: Awaited<ReturnType<typeof renderCharts>>['charts'],
  rttCharts: RttFigures,
  skipped: Awaited<ReturnType<typeof renderCharts>>['skipped'],
  warningList: FlagGroup[],
): string[] {
  const reportDir = join(dir, 'report');
  const t51 = table51(model);
  const t52 = table52(model);
  const metricsOf = (t: '5.1' | '5.2' | 'extra') => METRIC_KEYS.filter((m) => METRICS[m].table === t && shownMetric(model, m));
  const stats51 = metricsOf('5.1').map((m) => statsTable(model, m));
  const stats52 = metricsOf('5.2').map((m) => statsTable(model, m));
  const statsExtra = metricsOf('extra').map((m) => statsTable(model, m));
  const comparison = comparisonTable(model);
  const significance = significanceTables(model);
  const micro = [...microTables(model), ...nativeTables(model)];
  const latency = latencyTable(model);
  const rtt = rttTables(model);
  const headline = headlineTable(model);
  const headlineMd = toMarkdown(headline);
  const tc = model.tc ? tcSection(model.tc, tcCharts, rttCharts.tc) : null;

  const warnings = warningList.map(warningLineMd);
  const md51 = [toMarkdown(t51), '### Our columns', '', ...stats51.map((t) => toMarkdown(t, 4))].join('\n');
  const md52 = [toMarkdown(t52), '### Our columns', '', ...stats52.map((t) => toMarkdown(t, 4))].join('\n');
  const figuresMd = charts.map((c) => `![${c.title}](${c.file})\n\n_${c.caption}_\n`).join('\n');
  const sigMd = [
    '## Significance',
    '',
    ...(model.sentences.length > 0 ? model.sentences.map((s) => `- ${s.text}`) : ['No pair of approaches could be compared on any kernel.']),
    '',
    ...significance.map((t) => toMarkdown(t, 3)),
  ].join('\n');
  const reportMd = [
    `# xdp-chain-lab report — ${model.runId}`,
    '',
    headlineMd,
    ...(model.anyTcg ? [`**⚠ Kernels ${model.allKernels.filter((k) => k.tcg).map((k) => k.label).join(', ')} ran under QEMU TCG: not a performance measurement.**`, ''] : []),
    '## Warnings and flags',
    '',
    ...(warnings.length > 0 ? warnings : ['None.']),
    '',
    md51,
    md52,
    '## Figures',
    '',
    figuresMd,
    toMarkdown(comparison),
    sigMd,
    '## Other distributions',
    '',
    ...statsExtra.map((t) => toMarkdown(t, 3)),
    ...micro.map((t) => toMarkdown(t)),
    ...latency.map((t) => toMarkdown(t)),
    ...(rtt.length > 0 ? ['## Round trips', '', ...rttCharts.xdp.map((c) => `![${c.title}](${c.file})\n\n_${c.caption}_\n`), ...rtt.map((t) => toMarkdown(t, 3))] : []),
    ...(tc ? [tc.markdown] : []),
  ].join('\n');

  const html = renderHtml({ model, runDir: dir, headline, warnings: warningList, t51, t52, stats51, stats52, statsExtra, comparison, significance, micro, latency, rtt, rttCharts: rttCharts.xdp, charts, skipped, tc });
  const out: [string, string | Buffer][] = [
    ['headline.csv', headlineCsv(model)],
    ['headline.md', headlineMd],
    ['table-5.1.csv', table51Csv(model)],
    ['table-5.1.md', md51],
    ['table-5.2.csv', table52Csv(model)],
    ['table-5.2.md', md52],
    ['stats.csv', statsCsv(model)],
    ['thesis-comparison.csv', comparisonCsv(model)],
    ['thesis-comparison.md', toMarkdown(comparison)],
    ['significance.csv', significanceCsv(model)],
    ['significance.md', sigMd],
    ['report.md', reportMd],
    ['index.html', html],
  ];
  if (model.micro.length > 0) out.push(['micro.csv', microCsv(model)], ['micro.md', micro.map((t) => toMarkdown(t)).join('\n')]);
  if (model.latency.length > 0) out.push(['latency.csv', latencyCsv(model)], ['latency.md', latency.map((t) => toMarkdown(t)).join('\n')]);
  if (model.rtt.length > 0) out.push(['rtt.csv', rttCsv(model)], ['rtt.md', rtt.map((t) => toMarkdown(t)).join('\n')]);
  if (tc) out.push(...tc.files);
  for (const c of [...charts, ...rttCharts.xdp, ...tcCharts, ...rttCharts.tc]) out.push([c.file, c.png]);
  try {
    // Figures of an earlier render may name kernels no longer present: start the folder afresh.
    rmSync(join(reportDir, 'figures'), { recursive: true, force: true });
    mkdirSync(join(reportDir, 'figures'), { recursive: true });
    const written: string[] = [];
    for (const [name, data] of out) {
      const path = join(reportDir, name);
      writeFileSync(path, data);
      written.push(path);
    }
    const summaryPath = join(reportDir, 'summary.json');
    writeFileSync(
      summaryPath,
      `${JSON.stringify(
        {
          runId: model.runId,
          pseudoRun: model.pseudoRun !== null,
          anyTcg: model.anyTcg,
          kernels: model.allKernels.map((k) => ({ label: k.label, release: k.release, accelerators: k.accelerators })),
          headline: model.headline,
          tc: model.tc ? { title: model.tc.profile.title, note: tc?.note, approaches: model.tc.approaches, headline: model.tc.headline, significance: model.tc.sentences } : null,
          warnings: warningList,
          flags: model.flags,
          skippedCharts: skipped,
          badLines: model.badLines,
          significance: model.sentences,
          rtt: [...model.rtt, ...(model.tc?.rtt ?? [])].map((r) => ({ kernel: r.kernel, approach: r.approach, ...(r.summary ?? {}), reason: r.reason })),
        },
        null,
        2,
      )}\n`,
    );
    written.push(summaryPath);
    return written;
  } catch (e) {
    throw wrapError('REPORT', `${reportDir}: cannot write the report`, e, 'Check that the run directory is writable and the disk is not full.');
  }
}
