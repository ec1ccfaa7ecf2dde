/**
 * Bad input: corrupt lines are reported with file:line and skipped; a partial matrix still gives a
 * report; a missing or empty run directory is a LabError('REPORT'), not a stack trace.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import type { ProgressEvent } from '../../lab/progress.ts';
import { renderReport } from '../../lab/report/index.ts';
import { FIXTURES, cleanScratch, fixtureCopy, parseCsv, scratchDir } from './helpers.ts';

afterAll(cleanScratch);

async function reportError(dir: string): Promise<unknown> {
  try {
    await renderReport(dir, { resamples: 200 });
  } catch (e) {
    return e;
  }
  throw new Error('renderReport did not fail');
}

describe('corrupt raw lines', () => {
  it('are reported with file and line, skipped, and the rest reported as if they were absent', async () => {
    // corrupt/raw.jsonl = small/raw.jsonl with line 3 not JSON, line 7 an approach "turbo", and a
    // last line cut mid-record without a newline (line 28).
    const dir = fixtureCopy('corrupt');
    const events: ProgressEvent[] = [];
    const s = await renderReport(dir, { resamples: 200, progress: (e) => events.push(e) });
    const raw = join(dir, 'raw.jsonl');
    expect(s.badLines.map((b) => [b.file, b.line])).toEqual([
      [raw, 3],
      [raw, 7],
      [raw, 28],
    ]);
    expect(s.badLines[0]!.error).toMatch(/^bad JSON/);
    expect(s.badLines[1]!.error).toMatch(/^schema mismatch: approach: Invalid enum value.*'turbo'/);
    expect(s.badLines[2]!.error).toMatch(/cut by a kill/);
    // never silently: a warning event, a flag, the Markdown and the HTML all name file:line
    const warns = events.filter((e) => e.kind === 'log' && e.level === 'warn').map((e) => (e as { message: string }).message);
    expect(warns).toContainEqual(`${raw}:3: skipped: ${s.badLines[0]!.error}`);
    expect(events.at(-1)).toMatchObject({ kind: 'phase-end', id: 'report', ok: true });
    expect(s.flags.map((f) => f.text)).toContainEqual(expect.stringContaining(`${raw}:7: skipped: schema mismatch`));
    expect(readFileSync(join(dir, 'report', 'report.md'), 'utf8')).toContain(`${raw}:28: skipped`);
    expect(readFileSync(join(dir, 'report', 'index.html'), 'utf8')).toContain(`${raw}:3: skipped`);

    const clean = fixtureCopy('small');
    await renderReport(clean, { resamples: 200 });
    for (const t of ['table-5.1.csv', 'table-5.2.csv', 'stats.csv']) {
      expect(readFileSync(join(dir, 'report', t), 'utf8')).toBe(readFileSync(join(clean, 'report', t), 'utf8'));
    }
  });

  it('a directory of nothing but corrupt lines is a REPORT error naming them', async () => {
    const dir = scratchDir('allbad');
    writeFileSync(join(dir, 'raw.jsonl'), '{oops\n{"kind":"run"}\n');
    const e = await reportError(dir);
    expect(isLabError(e, 'REPORT')).toBe(true);
    expect((e as Error).message).toContain('none of 2 raw lines is a valid record');
    expect((e as Error).message).toContain(`${join(dir, 'raw.jsonl')}:1:`);
  });
});

describe('missing or empty run directory', () => {
  it('missing → REPORT error with the path and a remedy; the progress phase ends as failed', async () => {
    const events: ProgressEvent[] = [];
    await expect(renderReport('/nonexistent/h5-report-run', { progress: (ev) => events.push(ev) })).rejects.toThrow('no such run directory');
    expect(events[0]).toMatchObject({ kind: 'phase-start', id: 'report' });
    expect(events.at(-1)).toMatchObject({ kind: 'phase-end', id: 'report', ok: false });
    const e = await reportError('/nonexistent/h5-report-run');
    expect(isLabError(e, 'REPORT')).toBe(true);
    expect((e as Error).message).toBe('/nonexistent/h5-report-run: no such run directory');
    expect(isLabError(e) && e.remedy).toMatch(/npm run matrix/);
  });

  it('empty directory → REPORT error', async () => {
    const e = await reportError(scratchDir('empty'));
    expect(isLabError(e, 'REPORT')).toBe(true);
    expect((e as Error).message).toMatch(/no raw results/);
  });

  it('raw.jsonl with blank lines only → REPORT error', async () => {
    const dir = scratchDir('blank');
    writeFileSync(join(dir, 'raw.jsonl'), '\n  \n');
    expect(isLabError(await reportError(dir), 'REPORT')).toBe(true);
  });

  it('a file where the directory should be → REPORT error', async () => {
    const dir = scratchDir('file');
    writeFileSync(join(dir, 'x'), '');
    expect(isLabError(await reportError(join(dir, 'x')), 'REPORT')).toBe(true);
  });
});

describe('partial matrix', () => {
  it('a matrix stopped early: some cells, one unfinished, no provenance', async () => {
    const lines = readFileSync(join(FIXTURES, 'small', 'raw.jsonl'), 'utf8').trim().split('\n');
    const keep = lines.filter((l) => {
      const r = JSON.parse(l) as { kind: string; kernel: string; approach: string; iteration?: number };
      // 6.1 manual complete; 6.1 patched stopped after 2 runs without its cell record
      if (r.kernel !== '6.1') return false;
      if (r.approach === 'manual') return true;
      return r.approach === 'patched' && r.kind === 'run' && (r.iteration ?? 99) < 2;
    });
    const dir = scratchDir('partial');
    writeFileSync(join(dir, 'raw.jsonl'), `${keep.join('\n')}\n`);
    const s = await renderReport(dir, { resamples: 200 });
    const t51 = parseCsv(readFileSync(join(dir, 'report', 'table-5.1.csv'), 'utf8')).slice(1);
    // patched, runs 0 and 1: calls 1200, 1300 → 1250; ns 24M, 26M → 25M; cycles 3.3× → 82.5M; Gb/s 7.5, 7.7 → 7.6
    expect(t51.map((r) => r.slice(0, 9))).toEqual([
      ['manual', '6.1', '1000', '20900000', '62700000', '8.10', '5', 'kvm', 'done'],
      ['patched', '6.1', '1250', '25000000', '82500000', '7.60', '2', 'kvm', 'incomplete'],
    ]);
    const texts = s.flags.map((f) => f.text);
    expect(texts).toContainEqual('6.1: no provenance/6.1.json: CPU, frequency and tool versions unknown.');
    expect(texts).toContainEqual(expect.stringMatching(/6\.1 \/ BPF chain \(patched\): no cell record/));
    expect(texts).toContainEqual(expect.stringMatching(/cannot be checked: no pinned frequency recorded/));
    expect(s.charts.map((c) => c.id)).toContain('fig-5.1a-throughput');
  });

  it('only unsupported cells: tables list them with the reason, figures are skipped with a reason', async () => {
    const dir = scratchDir('unsupported');
    const cell = (approach: string, reason: string) =>
      JSON.stringify({ kind: 'cell', schema: 1, runId: 'u', kernel: '4.19', approach, status: 'unsupported', reason, runs: 0 });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'raw.jsonl'), `${cell('dispatcher', "Can't fall back to legacy load with 3 programs")}\n`);
    const s = await renderReport(dir, { resamples: 200 });
    const t51 = parseCsv(readFileSync(join(dir, 'report', 'table-5.1.csv'), 'utf8'));
    expect(t51[1]!.slice(0, 9)).toEqual(['dispatcher', '4.19', '', '', '', '', '0', '', 'unsupported']);
    expect(t51[1]![9]).toBe("unsupported: Can't fall back to legacy load with 3 programs");
    expect(s.charts).toEqual([]);
    expect(s.skippedCharts.find((c) => c.id === 'fig-5.1a-throughput')!.reason).toMatch(/^no /);
  });

  it('a kernel nobody could provide: one warning with the whole reason, one-line notes in the tables', async () => {
    const lines = readFileSync(join(FIXTURES, 'small', 'raw.jsonl'), 'utf8').trim().split('\n');
    const reason = 'kernel 4.19 not available: no provider could obtain kernel 4.19:\n  - debian: no package\n  - kernel.org: cannot reach cdn.kernel.org\n  fix: set XCL_KERNEL_4_19';
    const skipped = ['manual', 'dispatcher', 'patched'].map((approach) =>
      JSON.stringify({ kind: 'cell', schema: 1, runId: lines[0] ? (JSON.parse(lines[0]) as { runId: string }).runId : 'x', kernel: '4.19', approach, status: 'skipped', reason, runs: 0 }),
    );
    const dir = scratchDir('skipped-kernel');
    writeFileSync(join(dir, 'raw.jsonl'), `${[...lines, ...skipped].join('\n')}\n`);
    const s = await renderReport(dir, { resamples: 200 });
    const about419 = s.flags.filter((f) => f.text.startsWith('4.19'));
    expect(about419.map((f) => f.text)).toEqual([`4.19: every approach skipped — ${reason}`]);
    const t51 = parseCsv(readFileSync(join(dir, 'report', 'table-5.1.csv'), 'utf8')).filter((r) => r[1] === '4.19');
    expect(t51).toHaveLength(3);
    for (const r of t51) expect(r[9]).toBe('skipped: kernel 4.19 not available: no provider could obtain kernel 4.19 (see Warnings)');
  });

  it('duplicate run records (a resume gone wrong) count once and are reported', async () => {
    const lines = readFileSync(join(FIXTURES, 'small', 'raw.jsonl'), 'utf8').trim().split('\n');
    const dir = scratchDir('dup');
    writeFileSync(join(dir, 'raw.jsonl'), `${[...lines, lines[0]!].join('\n')}\n`);
    const s = await renderReport(dir, { resamples: 200 });
    expect(s.runs).toBe(20);
    expect(s.flags.map((f) => f.text)).toContainEqual('duplicate run record: kernel 6.1, approach manual, iteration 0 (second copy ignored)');
  });
});
