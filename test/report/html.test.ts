/**
 * The HTML page loads in headless Chromium without console errors, with every figure decoded.
 * Needs Debian's `chromium` (apt-get install chromium); skipped with that reason without it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { renderReport } from '../../lab/report/index.ts';
import { writeThesisPseudoRun } from '../../lab/report/thesis.ts';
import { checkPage } from './chromium.ts';
import { requirements } from '../support/requirements.ts';
import { cleanScratch, fixtureCopy, scratchDir } from './helpers.ts';
import { records, writeRun } from './tc-records.ts';

const need = requirements('chromium');

afterAll(cleanScratch);

describe.skipIf(need.skip)('HTML report in headless Chromium', () => {
  it('the checker itself sees console errors and broken images (negative control)', async () => {
    const dir = scratchDir('badpage');
    const page = join(dir, 'bad.html');
    writeFileSync(page, '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="missing.png"><script>console.error("boom")</script></body></html>');
    const r = await checkPage(pathToFileURL(page).href);
    expect(r.errors).toContainEqual(expect.stringContaining('boom'));
    expect(r.errors).toContainEqual(expect.stringContaining('missing.png'));
    expect(r.images).toEqual({ total: 1, loaded: 0 });
  });

  it.each(['small', 'corrupt', 'micro'])('fixture %s: no console error, every figure decoded, self-contained', async (name) => {
    const dir = fixtureCopy(name);
    const s = await renderReport(dir, { resamples: 200 });
    const html = readFileSync(s.html, 'utf8');
    // self-contained: no external reference of any kind
    expect(html).not.toMatch(/(src|href)="(?!data:)[^"#]/);
    expect(html).not.toContain('<script');
    const r = await checkPage(pathToFileURL(s.html).href);
    expect(r.errors).toEqual([]);
    expect(r.images).toEqual({ total: s.charts.length, loaded: s.charts.length });
    expect(r.tables).toBeGreaterThan(2);
    expect(r.title).toBe(`xdp-chain-lab report — ${s.runId}`);
  });

  it('a run of both hooks: the XDP and the TC section, every figure of both decoded', async () => {
    const s = await renderReport(writeRun('html-tc', [...records('xdp'), ...records('tc')]), { resamples: 200 });
    expect(s.charts.some((c) => c.id.startsWith('tc-'))).toBe(true);
    const r = await checkPage(pathToFileURL(s.html).href);
    expect(r.errors).toEqual([]);
    expect(r.images).toEqual({ total: s.charts.length, loaded: s.charts.length });
    expect(readFileSync(s.html, 'utf8')).not.toMatch(/(src|href)="(?!data:)[^"#]/);
  });

  it('thesis pseudo-run page', async () => {
    const dir = join(scratchDir('thesis-html'), 'thesis');
    writeThesisPseudoRun(dir);
    const s = await renderReport(dir, { resamples: 200 });
    const r = await checkPage(pathToFileURL(s.html).href);
    expect(r.errors).toEqual([]);
    expect(r.images).toEqual({ total: 5, loaded: 5 }); // Figure 5.1 a–d and throughput relative to manual
  });
});
