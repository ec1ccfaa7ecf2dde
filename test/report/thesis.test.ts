/**
 * The thesis pseudo-run: the thesis's own numbers as a run directory, reported by the same code,
 * must give back Tables 5.1 and 5.2 exactly. And the repository's copy of those tables
 * (results/reference) must be the thesis's numbers: checked against the tables as typed below from
 * the thesis itself, so the check stands without ../shared; byte for byte against the shared copy
 * when that is present.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { renderReport, type ReportSummary } from '../../lab/report/index.ts';
import { DEFAULT_REFERENCE_DIR, THESIS_RUN_ID, writeThesisPseudoRun } from '../../lab/report/thesis.ts';
import { REPO, SHARED_REFERENCE, cleanScratch, parseCsv, readCsv, scratchDir } from './helpers.ts';

/** The comparison source: shared/reference beside the repository, else the repository's copy. */
const SOURCE = existsSync(SHARED_REFERENCE) ? SHARED_REFERENCE : join(REPO, 'results', 'reference');
const ref51 = () => parseCsv(readFileSync(join(SOURCE, 'brodeur-2023-table-5.1.csv'), 'utf8')).filter((r) => r.length > 1);
const ref52 = () => parseCsv(readFileSync(join(SOURCE, 'brodeur-2023-table-5.2.csv'), 'utf8')).filter((r) => r.length > 1);

/**
 * Brodeur (2023), "Chaînage automatisé de programmes BPF par application de correctifs" (ÉTS
 * Montréal), chapter 5 "Résultats et discussion", section 5.1 "Résultats": Tableau 5.1 "Tableau des
 * résultats" (p. 35). Typed from the thesis in its own notation (French labels, spaces between
 * thousands, decimal commas), not from our CSV, so that a wrong copy cannot agree with itself.
 * Columns: Approche | Linux | Paquets totaux | Temps total (ns) | Cycles totaux | Débit (Gb/s).
 */
const THESIS_TABLE_5_1 = [
  'Manuelle | 6.1 | 248 810 | 7 345 879 383 | 36 020 691 426 | 7,48',
  'XDP Dispatcher | 6.1 | 239 327 | 7 398 361 032 | 35 753 628 502 | 7,35',
  'Chaîne BPF | 6.1 | 236 805 | 7 366 506 314 | 35 338 584 014 | 7,28',
  'Manuelle | 5.15 | 281 731 | 7 693 613 607 | 37 938 591 292 | 7,57',
  'XDP Dispatcher | 5.15 | 276 960 | 7 727 242 250 | 37 989 658 119 | 7,75',
  'Chaîne BPF | 5.15 | 275 955 | 7 696 729 895 | 37 930 177 211 | 7,81',
  'Manuelle | 5.10 | 369 809 | 7 155 167 823 | 34 930 629 697 | 10,4',
  'XDP Dispatcher | 5.10 | 375 173 | 6 844 771 238 | 33 719 918 824 | 9,89',
  'Chaîne BPF | 5.10 | 388 903 | 6 984 593 234 | 34 309 267 790 | 10,2',
  'Manuelle | 5.4 | 354 769 | 6 880 047 777 | 33 226 656 151 | 9,99',
  'XDP Dispatcher | 5.4 | 381 739 | 7 002 703 555 | 33 887 774 870 | 10,1',
  'Chaîne BPF | 5.4 | 388 668 | 6 984 055 570 | 34 135 392 325 | 10,2',
  'Manuelle | 4.19 | 387 804 | 6 997 367 246 | 34 214 054 811 | 10,2',
  'XDP Dispatcher | 4.19 | 387 205 | 7 003 433 883 | 34 190 418 856 | 10,2',
  'Chaîne BPF | 4.19 | 383 235 | 6 987 809 500 | 33 889 770 425 | 10,1',
];

/**
 * Same thesis, section 5.1: Tableau 5.2 "Tableau des moyennes par paquets" (p. 36), typed the same way.
 * Columns: Approche | Linux | Temps moyen par paquet (ns) | Cycles moyens par paquet.
 */
const THESIS_TABLE_5_2 = [
  'Manuelle | 6.1 | 29524,05 | 144771,88',
  'XDP Dispatcher | 6.1 | 30913,19 | 149392,37',
  'Chaîne BPF | 6.1 | 31107,90 | 149230,73',
  'Manuelle | 5.15 | 27308,37 | 134662,47',
  'XDP Dispatcher | 5.15 | 27900,21 | 137166,59',
  'Chaîne BPF | 5.15 | 27891,25 | 137450,59',
  'Manuelle | 5.10 | 19348,28 | 94455,87',
  'XDP Dispatcher | 5.10 | 18244,31 | 89878,32',
  'Chaîne BPF | 5.10 | 17959,73 | 88220,63',
  'Manuelle | 5.4 | 19393,04 | 93657,16',
  'XDP Dispatcher | 5.4 | 18344,22 | 88772,11',
  'Chaîne BPF | 5.4 | 17969,21 | 87826,61',
  'Manuelle | 4.19 | 18043,57 | 88225,12',
  'XDP Dispatcher | 4.19 | 18087,15 | 88300,56',
  'Chaîne BPF | 4.19 | 18233,75 | 88430,78',
];

/** The thesis's approach names, as our CSVs spell them. */
const APPROACH_KEY: Readonly<Record<string, string>> = { Manuelle: 'manual', 'XDP Dispatcher': 'dispatcher', 'Chaîne BPF': 'patched' };

/** One typed thesis row in our CSV's spelling: approach key, digits without spaces, decimal point. */
function csvRow(typed: string): string[] {
  const [approach, kernel, ...numbers] = typed.split(' | ');
  const key = APPROACH_KEY[approach!];
  if (key === undefined) throw new Error(`typed thesis row with unknown approach: ${typed}`);
  return [key, kernel!, ...numbers.map((x) => x.replace(/ /g, '').replace(',', '.'))];
}

/** A CSV of results/reference, without its trailing empty line. */
function ownCopy(file: string): string[][] {
  return parseCsv(readFileSync(join(DEFAULT_REFERENCE_DIR, file), 'utf8')).filter((r) => r.length > 1);
}

let dir: string;
let summary: ReportSummary;
beforeAll(async () => {
  dir = join(scratchDir('thesis'), THESIS_RUN_ID);
  writeThesisPseudoRun(dir);
  summary = await renderReport(dir, { resamples: 200 });
}, 120_000);
afterAll(cleanScratch);

describe('results/reference', () => {
  it('Table 5.1 is the thesis\'s, row for row and digit for digit', () => {
    const [header, ...rows] = ownCopy('brodeur-2023-table-5.1.csv');
    expect(header).toEqual(['approach', 'kernel', 'packets_total', 'time_total_ns', 'cycles_total', 'throughput_gbps']);
    expect(rows).toEqual(THESIS_TABLE_5_1.map(csvRow));
  });

  it('Table 5.2 is the thesis\'s, row for row and digit for digit', () => {
    const [header, ...rows] = ownCopy('brodeur-2023-table-5.2.csv');
    expect(header).toEqual(['approach', 'kernel', 'time_per_packet_ns', 'cycles_per_packet']);
    expect(rows).toEqual(THESIS_TABLE_5_2.map(csvRow));
  });

  it('the typed tables agree with each other: 5.2 is 5.1\'s totals over its packets, to 2 decimals', () => {
    // A typing slip in either table above would break this quotient; the thesis itself satisfies it on all 15 rows.
    const t51 = THESIS_TABLE_5_1.map(csvRow);
    const t52 = THESIS_TABLE_5_2.map(csvRow);
    expect(t52.map((r) => r.slice(0, 2))).toEqual(t51.map((r) => r.slice(0, 2)));
    t51.forEach(([, , packets, ns, cycles], i) => {
      expect([(Number(ns) / Number(packets)).toFixed(2), (Number(cycles) / Number(packets)).toFixed(2)]).toEqual(t52[i]!.slice(2));
    });
  });

  it.skipIf(!existsSync(SHARED_REFERENCE))(`is the shared copy of the thesis tables, byte for byte (needs ${SHARED_REFERENCE})`, () => {
    for (const f of ['brodeur-2023-table-5.1.csv', 'brodeur-2023-table-5.2.csv']) {
      expect(readFileSync(join(DEFAULT_REFERENCE_DIR, f), 'utf8')).toBe(readFileSync(join(SHARED_REFERENCE, f), 'utf8'));
    }
  });
});

describe('thesis pseudo-run', () => {
  it('the thesis divided total ns by its "packets": 7345879383 / 248810 = 29524.05', () => {
    expect((7345879383 / 248810).toFixed(2)).toBe('29524.05');
  });

  it('reproduces Table 5.1 exactly (same rows, order and formatting)', () => {
    const ours = parseCsv(readFileSync(join(dir, 'report', 'table-5.1.csv'), 'utf8'));
    const theirs = ref51();
    expect(ours[0]!.slice(0, 6)).toEqual(theirs[0]);
    expect(ours.slice(1).map((r) => r.slice(0, 6))).toEqual(theirs.slice(1));
    expect(theirs.length).toBe(16);
  });

  it('reproduces Table 5.2 exactly', () => {
    const ours = parseCsv(readFileSync(join(dir, 'report', 'table-5.2.csv'), 'utf8'));
    const theirs = ref52();
    expect(ours[0]!.slice(0, 4)).toEqual(theirs[0]);
    expect(ours.slice(1).map((r) => r.slice(0, 4))).toEqual(theirs.slice(1));
  });

  it('Markdown uses the thesis formatting of totals', () => {
    const md = readFileSync(join(dir, 'report', 'table-5.1.md'), 'utf8');
    expect(md).toContain('| Manual | 6.1 | 248 810 | 7 345 879 383 | 36 020 691 426 | 7.48 | 1 |');
    expect(md).toContain('| XDP Dispatcher | 5.10 | 375 173 | 6 844 771 238 | 33 719 918 824 | 9.89 | 1 |');
    const md52 = readFileSync(join(dir, 'report', 'table-5.2.md'), 'utf8');
    expect(md52).toContain('| BPF chain (patched) | 6.1 | 31107.90 | 149230.73 | 1 |');
  });

  it('is marked as a pseudo-run everywhere', () => {
    expect(summary.pseudoRun).toBe(true);
    expect(summary.runId).toBe(THESIS_RUN_ID);
    expect(readFileSync(join(dir, 'report', 'index.html'), 'utf8')).toContain('Thesis pseudo-run (Brodeur (2023), Tables 5.1 and 5.2)');
    expect(readFileSync(join(dir, 'report', 'table-5.1.md'), 'utf8')).toContain('Thesis pseudo-run: Each cell is one pseudo-run');
    const prov = JSON.parse(readFileSync(join(dir, 'provenance', '6.1.json'), 'utf8')) as { warnings: string[] };
    expect(prov.warnings[0]).toMatch(/^Thesis pseudo-run/);
  });

  it('side by side with itself: every relative difference is 0', () => {
    const rows = readCsv(join(dir, 'report', 'thesis-comparison.csv'));
    expect(rows).toHaveLength(15 * 6);
    for (const r of rows) expect(Math.abs(Number(r.rel_diff))).toBeLessThan(5e-4); // per-packet values are rounded to 2 decimals
    expect(rows.filter((r) => r.metric !== 'time_per_packet_ns' && r.metric !== 'cycles_per_packet').every((r) => Number(r.rel_diff) === 0)).toBe(true);
  });

  it('flags the thesis\'s own effective frequency: cycles/ns ≈ 4.90 GHz against the 3.9 GHz it says it pinned', () => {
    const ghz = summary.flags.filter((f) => /effective .* GHz/.test(f.text));
    expect(ghz).toHaveLength(15);
    // 36 020 691 426 / 7 345 879 383 = 4.9035 GHz; (4.9035 − 3.9) / 3.9 = +25.7%
    expect(ghz[0]!.text).toBe(
      '6.1 / Manual: effective 4.904 GHz (cycles/ns) differs from the recorded 3.900 GHz by 25.7% (> 2%): the frequency was not what was pinned, or cycles and ns do not cover the same interval.',
    );
  });

  it('no distribution, so no test: every pair is untestable, and the true-packet figures are not drawn', () => {
    const sig = readCsv(join(dir, 'report', 'significance.csv'));
    expect(sig.length).toBeGreaterThan(0);
    expect(new Set(sig.map((r) => r.verdict))).toEqual(new Set(['untestable']));
    expect(summary.significance[0]).toMatch(/untestable \(n < 2\)/);
    expect(summary.skippedCharts.map((c) => c.id).sort()).toEqual(['fig-cycles-per-packet-true', 'fig-ns-per-packet-true', 'fig-packets-true']);
    expect(summary.skippedCharts[0]!.reason).toContain('true packet count unknown');
  });

  it('refuses to overwrite a measured run directory', () => {
    const other = scratchDir('measured');
    writeFileSync(join(other, 'raw.jsonl'), '{}\n');
    try {
      writeThesisPseudoRun(other);
      expect.unreachable();
    } catch (e) {
      expect(isLabError(e, 'REPORT')).toBe(true);
    }
    expect(readFileSync(join(other, 'raw.jsonl'), 'utf8')).toBe('{}\n');
  });

  it('a damaged reference file is refused with file and line', () => {
    const refDir = scratchDir('badref');
    writeFileSync(join(refDir, 'brodeur-2023-table-5.1.csv'), readFileSync(join(SOURCE, 'brodeur-2023-table-5.1.csv'), 'utf8').replace('248810', '248,810'));
    writeFileSync(join(refDir, 'brodeur-2023-table-5.2.csv'), readFileSync(join(SOURCE, 'brodeur-2023-table-5.2.csv'), 'utf8'));
    try {
      writeThesisPseudoRun(join(refDir, 'out'), { referenceDir: refDir });
      expect.unreachable();
    } catch (e) {
      expect(isLabError(e, 'BAD_INPUT')).toBe(true);
      expect((e as Error).message).toContain('brodeur-2023-table-5.1.csv:2: expected 6 unquoted fields');
    }
  });
});
