/**
 * `npm run report -- results/<run-id>` and `npm run report -- --thesis [outDir]`.
 * The command prints where the files went; library code below it never prints.
 */
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { LabError } from '../errors.ts';
import type { ProgressEvent, ProgressSink } from '../progress.ts';
import { renderReport, type ReportSummary } from '../report/index.ts';
import { THESIS_RUN_ID, writeThesisPseudoRun } from '../report/thesis.ts';
import { printError } from '../ui/cli.ts';

export const DEFAULT_THESIS_DIR = `results/${THESIS_RUN_ID}`;

/** Plain lines on stderr for warnings; lab/ui may pass a richer sink. */
const plainSink: ProgressSink = (e: ProgressEvent) => {
  if (e.kind === 'log' && e.level !== 'info') process.stderr.write(`${e.level}: ${e.message}\n`);
};

function printSummary(s: ReportSummary, out: (line: string) => void): void {
  out(`report of ${s.runDir}${s.pseudoRun ? ' (thesis pseudo-run)' : ''}: ${s.runs} runs in ${s.cells} cells, kernels ${s.kernels.join(', ') || 'none'}`);
  out(`  html:     ${s.html}`);
  out(`  markdown: ${s.markdown}`);
  out(`  headline: ${s.reportDir}/headline.md, headline.csv`);
  out(`  tables:   ${s.reportDir}/table-5.1.csv, table-5.2.csv, stats.csv, thesis-comparison.csv, significance.csv`);
  out(`  figures:  ${s.charts.length} PNG in ${s.reportDir}/figures`);
  if (s.tc) {
    out(`  ${s.tc.title}: ${s.tc.runs} runs in ${s.tc.cells} cells, approaches ${s.tc.approaches.join(', ') || 'none'} (per skb; no thesis numbers)`);
    out(`    tables: ${s.tc.files.map((f) => basename(f)).join(', ')}`);
  }
  for (const k of s.skippedCharts) out(`  not drawn: ${k.id}: ${k.reason}`);
  if (s.badLines.length > 0) out(`  skipped ${s.badLines.length} corrupt raw line(s): ${s.badLines.map((b) => `${b.file}:${b.line}`).join(', ')}`);
  const warns = s.flags.filter((f) => f.level === 'warn').length;
  const causes = s.warnings.filter((g) => g.level === 'warn').length;
  if (warns > 0) out(`  ${warns} warning(s) from ${causes} cause(s): see "Warnings and flags" in the report`);
  if (s.anyTcg) out('  TCG kernels present: their numbers are not a performance measurement');
}

export function reportCommand(opts: { progress?: ProgressSink; print?: (line: string) => void } = {}): Command {
  const print = opts.print ?? ((l: string) => process.stdout.write(`${l}\n`));
  return new Command('report')
    .description('Regenerate the thesis tables (5.1, 5.2), Figure 5.1, statistics and an HTML page from raw results')
    .argument('[runDir]', 'a run directory, results/<run-id>')
    .option('--thesis [outDir]', `write the thesis's own numbers as a pseudo-run (default ${DEFAULT_THESIS_DIR}) and report on it`)
    .option('--error-bars <kind>', 'whiskers on figures: iqr or ci', 'iqr')
    .action(async (runDir: string | undefined, o: { thesis?: string | boolean; errorBars: string }) => {
      if (o.errorBars !== 'iqr' && o.errorBars !== 'ci') {
        throw new LabError('BAD_INPUT', `--error-bars ${o.errorBars}: expected iqr or ci`, { remedy: 'Use --error-bars iqr (default) or --error-bars ci.' });
      }
      let dir: string;
      if (o.thesis !== undefined) {
        if (runDir !== undefined) {
          throw new LabError('BAD_INPUT', `report: give either a run directory (${runDir}) or --thesis, not both`, {
            remedy: 'Use `npm run report -- --thesis [outDir]` on its own.',
          });
        }
        dir = resolve(typeof o.thesis === 'string' ? o.thesis : DEFAULT_THESIS_DIR);
        writeThesisPseudoRun(dir);
        print(`thesis pseudo-run written to ${dir}`);
      } else if (runDir === undefined) {
        throw new LabError('BAD_INPUT', 'report: no run directory given', {
          remedy: 'Use `npm run report -- results/<run-id>` or `npm run report -- --thesis`.',
        });
      } else {
        dir = resolve(runDir);
      }
      const summary = await renderReport(dir, { progress: opts.progress ?? plainSink, errorBars: o.errorBars });
      printSummary(summary, print);
    });
}

// Direct use: `tsx lab/commands/report.ts results/<run-id>` (the lab's main CLI mounts reportCommand()).
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  reportCommand()
    .parseAsync(process.argv)
    .catch(printError);
}
