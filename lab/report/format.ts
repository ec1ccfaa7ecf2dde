/**
 * How numbers read in the report: the thesis's own formatting for its layout (grouped totals, three
 * significant digits of throughput, two decimals per packet), ours for our columns (counts, ratios,
 * percentages, CIs, p-values), and full precision in CSV.
 */
import type { Summary } from './stats.ts';

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
export function fmtCi(s: Summary | undefined, f: (x: number) => string = fmtNum): string {
  return s?.ci ? `[${f(s.ci[0])}, ${f(s.ci[1])}]` : '';
}

/** A ratio to three decimals, so a 1.03 target can be read off. */
export function fmtRatio(x: number): string {
  return Math.abs(x) < 10 ? x.toFixed(3) : x.toPrecision(4);
}

/** A signed number in running text ("+3.2", "−0.004"). */
export function fmtSigned(x: number, digits = 1): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
}

export function fmtP(p: number): string {
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

/** A number in a CSV cell: full precision, empty when absent. */
export function csvNum(x: number | null | undefined): string {
  return x === null || x === undefined ? '' : String(x);
}
