/**
 * The thesis pseudo-run: the thesis's own numbers as a run directory, reported by the same code,
 * must give back Tables 5.1 and 5.2 exactly.
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

let dir: string;
let summary: ReportSummary;
beforeAll(async () => {
  dir = join(scratchDir('thesis'), THESIS_RUN_ID);
  writeThesisPseudoRun(dir);
  summary = await renderReport(dir, { resamples: 200 });
}, 120_000);
afterAll(cleanScratch);

describe('results/reference', () => {
  it('is the shared copy of the thesis tables, byte for byte', () => {
    if (!existsSync(SHARED_REFERENCE)) {
      console.warn(`[skip-part] ${SHARED_REFERENCE} absent: the copy is checked against itself only`);
    }
    for (const f of ['brodeur-2023-table-5.1.csv', 'brodeur-2023-table-5.2.csv']) {
      expect(readFileSync(join(DEFAULT_REFERENCE_DIR, f), 'utf8')).toBe(readFileSync(join(SOURCE, f), 'utf8'));
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
