/**
 * Figures: non-empty PNGs of the expected size, the expected set per kind of data, TCG marking, and
 * the microbenchmark fit worked out by hand from the micro fixture.
 *
 * micro fixture (kernel "host", 6.18): per chain length L, three repetitions centred on
 *   manual 10 + 2L (L = 1..5), patched-subprog 12 + 21L (L = 1..5), dispatcher 15 + 5L (L = 1..3);
 *   single-length variants fused (30..33) and trio-patched (36..39); chain/freplace not measured
 *   (no repetitions, a reason); latency records for load-attach (manual, patched, fused) and replace.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHART_HEIGHT, CHART_WIDTH } from '../../lab/report/charts.ts';
import { renderReport } from '../../lab/report/index.ts';
import { cleanScratch, fixtureCopy, pngInfo, readCsv } from './helpers.ts';

afterAll(cleanScratch);

describe('Figure 5.1 from the small fixture', () => {
  it('draws a–d and the true-packet variants as PNGs of the expected size', async () => {
    const dir = fixtureCopy('small');
    const s = await renderReport(dir, { resamples: 200 });
    expect(s.charts.map((c) => c.id)).toEqual([
      'fig-5.1a-throughput',
      'fig-5.1b-packets',
      'fig-5.1c-ns-per-packet',
      'fig-5.1d-cycles-per-packet',
      'fig-packets-true',
      'fig-ns-per-packet-true',
      'fig-cycles-per-packet-true',
      'fig-throughput-relative',
    ]);
    expect([CHART_WIDTH, CHART_HEIGHT]).toEqual([1000, 560]);
    for (const c of s.charts) {
      expect(c.file).toBe(join(dir, 'report', 'figures', `${c.id}.png`));
      const png = pngInfo(c.file);
      expect([png.width, png.height]).toEqual([1000, 560]);
      expect(png.bytes).toBeGreaterThan(10_000); // axes, labels and bars, not a blank canvas
      expect(statSync(c.file).size).toBe(png.bytes);
    }
    expect(s.skippedCharts).toEqual([]);
  });

  it('whiskers change the image: IQR and CI renders differ', async () => {
    const a = fixtureCopy('small');
    const b = fixtureCopy('small');
    await renderReport(a, { resamples: 200, errorBars: 'iqr' });
    await renderReport(b, { resamples: 200, errorBars: 'ci' });
    const fa = join(a, 'report', 'figures', 'fig-5.1a-throughput.png');
    const fb = join(b, 'report', 'figures', 'fig-5.1a-throughput.png');
    expect(readFileSync(fa).equals(readFileSync(fb))).toBe(false);
  });

  it('the same data renders the same bytes (seeded statistics, no timestamps)', async () => {
    const a = fixtureCopy('small');
    const b = fixtureCopy('small');
    await renderReport(a, { resamples: 200 });
    await renderReport(b, { resamples: 200 });
    for (const f of ['stats.csv', 'significance.csv', 'figures/fig-5.1c-ns-per-packet.png']) {
      expect(readFileSync(join(a, 'report', f)).equals(readFileSync(join(b, 'report', f)))).toBe(true);
    }
  });
});

describe('microbenchmark and latency charts', () => {
  it('draws scaling, per-approach and latency charts and fits the cost per hop', async () => {
    const dir = fixtureCopy('micro');
    const s = await renderReport(dir, { resamples: 200 });
    expect(s.charts.map((c) => c.id)).toEqual(['micro-scaling-host', 'micro-approaches', 'latency-load-attach', 'latency-replace']);
    for (const c of s.charts) expect(pngInfo(c.file)).toMatchObject({ width: 1000, height: 560 });
    // no iperf3 runs: Figure 5.1 is not drawn, and says why
    expect(s.skippedCharts.map((c) => c.id)).toContain('fig-5.1a-throughput');

    const rows = readCsv(join(dir, 'report', 'micro.csv'));
    const fit = (variant: string) => rows.find((r) => r.variant === variant)!;
    expect(Number(fit('manual').fit_ns_per_hop)).toBeCloseTo(2, 9);
    expect(Number(fit('manual').fit_intercept_ns)).toBeCloseTo(10, 9);
    // every length here is ≤ 8: the short-chain slope is the same line
    expect(Number(fit('manual').fit_ns_per_hop_le8)).toBeCloseTo(2, 9);
    expect(fit('fused').fit_ns_per_hop_le8).toBe('');
    expect(Number(fit('patched-subprog').fit_ns_per_hop)).toBeCloseTo(21, 9);
    expect(Number(fit('dispatcher').fit_ns_per_hop)).toBeCloseTo(5, 9);
    expect(fit('fused').fit_ns_per_hop).toBe('');
    // fused: repetitions 30, 31, 32, 33 → median 31.5
    expect(Number(fit('fused').median_ns)).toBeCloseTo(31.5, 9);
    expect(rows.some((r) => r.variant === 'chain/freplace')).toBe(false);
    expect(s.flags.map((f) => f.text)).toContain(
      "host / microbenchmark chain/freplace (length 1): not measured — unsupported: kernel 6.18.0-1-amd64: no freplace for libxdp's dispatcher",
    );
    const lat = readCsv(join(dir, 'report', 'latency.csv'));
    expect(Number(lat.find((r) => r.approach === 'patched' && r.operation === 'load-attach')!.median_ms)).toBe(9);
  });
});

describe('TCG marking on figures', () => {
  it('figures with a TCG kernel are flagged and say so in their caption', async () => {
    const dir = fixtureCopy('small');
    const s = await renderReport(dir, { resamples: 200 });
    const html = readFileSync(join(dir, 'report', 'index.html'), 'utf8');
    // 5.1d (cycles) has no TCG kernel: TCG has no PMU, so only 6.1 is drawn there
    expect(html).toMatch(/<figure class="tcg"><img src="data:image\/png;base64,[^"]+" width="1000" height="560" alt="Figure 5\.1a/);
    expect(html).toMatch(/<figure><img src="data:image\/png;base64,[^"]+" width="1000" height="560" alt="Figure 5\.1d/);
    expect(html).toContain('Figure 5.1a — Throughput by kernel and approach: throughput. Bars: median over runs · whiskers: IQR (Q1–Q3). TCG emulation: not a performance measurement.');
    expect(s.charts.length).toBe(8);
  });
});
