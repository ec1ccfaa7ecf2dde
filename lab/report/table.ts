/**
 * One table of the report as rows of text, and what every table shares: the banners of kernels whose
 * numbers are not wall-clock performance, which rows ran under TCG, and the Markdown rendering (the
 * HTML page renders the same rows in html.ts; CSV files carry them with full precision).
 */
import { ICOUNT_WARNING, kernelWarning, kernelWarnings } from './kernels.ts';
import type { ReportModel } from './model.ts';

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

export function banners(model: ReportModel, kernels?: string[]): string[] {
  const out: string[] = [];
  for (const w of kernelWarnings(model.kernels, kernels)) {
    out.push(`⚠ ${w.text}: rows for ${w.kernels.join(', ')} were measured under QEMU TCG${w.text === ICOUNT_WARNING ? ' with its instruction counter' : ''}.`);
  }
  if (model.pseudoRun) out.push(`Thesis pseudo-run: ${model.pseudoRun.note}`);
  return out;
}

export function warningOf(model: ReportModel, kernel: string): string {
  return kernelWarning(model.kernels.find((k) => k.label === kernel)) ?? '';
}

export function isTcg(model: ReportModel, kernel: string | null): boolean {
  return model.kernels.some((k) => k.label === kernel && k.tcg);
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
