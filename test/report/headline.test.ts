/**
 * The report answers first: the headline ratios and their CIs, worked out by hand from the headline
 * fixture; warnings grouped by cause; how each kernel was measured; throughput relative to a baseline.
 *
 * headline fixture (test/fixtures/report/headline/raw.jsonl), no provenance files:
 *   host (accelerator host, 6.18), BPF statistics ns per packet, no kprobes (probe null), 5 runs:
 *     manual 60 62 61 63 64 · fused 55 57 56 58 54 · patched 61 63 62 64 65 · dispatcher 80 82 81 79 83
 *     throughput Gb/s: none 10.0 10.2 10.1 9.9 10.3 · manual 9.0 9.2 9.1 8.9 9.3 · fused 9.5 … 9.8 ·
 *     patched 8.9 … 9.2 · dispatcher 8.0 … 8.3
 *   6.12 (KVM), statistics, 3 runs: manual 70 72 71 · fused 65 66 67
 *   6.1 (TCG, clock icount), statistics and probes, 3 runs: manual 400 410 405 · fused 380 390 385 ·
 *     patched 420 430 425; none: throughput 0.50 0.52 0.51
 *   4.19 (TCG, clock absent = wall), no statistics (reason recorded), probes, 2 runs:
 *     ns per packet manual 500 520 · fused 450 470 · patched 530 550; no none
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImage, createCanvas } from 'canvas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport, type ReportSummary } from '../../lab/report/index.ts';
import { groupFlags, type Flag } from '../../lab/report/flags.ts';
import { ICOUNT_WARNING } from '../../lab/report/kernels.ts';
import { bootstrapMedianRatioCi } from '../../lab/report/stats.ts';
import { cleanScratch, fixtureCopy, parseCsv, readCsv } from './helpers.ts';

let dir: string;
let summary: ReportSummary;
const report = (f: string) => join(dir, 'report', f);

beforeAll(async () => {
  dir = fixtureCopy('headline');
  summary = await renderReport(dir, { resamples: 1000 });
}, 120_000);
afterAll(cleanScratch);

type Row = Record<string, string>;
const headline = (): Row[] => readCsv(report('headline.csv'));
const ratioRow = (rows: Row[], kernel: string, approach: string, reference: string): Row => {
  const r = rows.find((x) => x.kernel === kernel && x.approach === approach && x.reference === reference);
  if (!r) throw new Error(`no headline row ${kernel} ${approach} ÷ ${reference}`);
  return r;
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

describe('headline ratios on the host (BPF statistics)', () => {
  const host = {
    manual: [60, 62, 61, 63, 64],
    fused: [55, 57, 56, 58, 54],
    patched: [61, 63, 62, 64, 65],
    dispatcher: [80, 82, 81, 79, 83],
  };

  it('uses the BPF statistics and gives median ratios worked out by hand', () => {
    const rows = headline();
    const hostRows = rows.filter((r) => r.kernel === 'host');
    expect(new Set(hostRows.map((r) => r.metric))).toEqual(new Set(['statsNsPerPacket']));
    expect(hostRows[0]!.measured_as).toBe('host (real)');
    // medians: manual 62, fused 56, patched 63, dispatcher 81
    expect(median(host.manual)).toBe(62);
    const expected: [string, string, number][] = [
      ['dispatcher', 'manual', 81 / 62],
      ['patched', 'manual', 63 / 62],
      ['fused', 'manual', 56 / 62],
      ['manual', 'fused', 62 / 56],
      ['dispatcher', 'fused', 81 / 56],
      ['patched', 'fused', 63 / 56],
    ];
    expect(hostRows).toHaveLength(expected.length);
    for (const [a, ref, ratio] of expected) {
      const r = ratioRow(rows, 'host', a, ref);
      expect(Number(r.ratio)).toBeCloseTo(ratio, 12);
      expect(Number(r.median)).toBe(median(host[a as keyof typeof host]));
      expect(Number(r.median_ref)).toBe(median(host[ref as keyof typeof host]));
      expect([r.n, r.n_ref]).toEqual(['5', '5']);
    }
  });

  it('each CI contains its point estimate and lies within the ratios the data allow', () => {
    const rows = headline();
    for (const r of rows.filter((x) => x.kernel === 'host')) {
      const a = host[r.approach as keyof typeof host];
      const ref = host[r.reference as keyof typeof host];
      const [lo, hi, ratio] = [Number(r.ci95_low), Number(r.ci95_high), Number(r.ratio)];
      expect(lo).toBeLessThanOrEqual(ratio);
      expect(hi).toBeGreaterThanOrEqual(ratio);
      expect(lo).toBeLessThan(hi);
      // a resampled median stays between a group's extremes
      expect(lo).toBeGreaterThanOrEqual(Math.min(...a) / Math.max(...ref));
      expect(hi).toBeLessThanOrEqual(Math.max(...a) / Math.min(...ref));
    }
    // patched vs manual overlap: the ratio's CI straddles 1; fused vs manual do not overlap: it excludes 1
    const pm = ratioRow(rows, 'host', 'patched', 'manual');
    expect(Number(pm.ci95_low)).toBeLessThan(1);
    expect(Number(pm.ci95_high)).toBeGreaterThan(1);
    const fm = ratioRow(rows, 'host', 'fused', 'manual');
    expect(Number(fm.ci95_high)).toBeLessThan(1);
  });

  it('verdicts come from the significance tests (Mann-Whitney, Holm over the kernel\'s 6 pairs)', () => {
    const rows = headline();
    // Five pairs do not overlap: exact two-sided p = 2 / C(10,5) = 2/252; Holm's largest step for them is 6 × 2/252 = 0.0476 < 0.05.
    for (const [a, ref] of [['dispatcher', 'manual'], ['fused', 'manual'], ['manual', 'fused'], ['dispatcher', 'fused'], ['patched', 'fused']] as const) {
      const r = ratioRow(rows, 'host', a, ref);
      expect(r.verdict).toBe('real');
      expect(Number(r.p_holm)).toBeCloseTo((6 * 2) / 252, 12);
    }
    // patched 61–65 against manual 60–64: ties and overlap, noise
    expect(ratioRow(rows, 'host', 'patched', 'manual').verdict).toBe('noise');
    const sig = readCsv(report('significance.csv')).find((p) => p.kernel === 'host' && p.metric === 'statsNsPerPacket' && [p.a, p.b].sort().join() === 'manual,patched')!;
    expect(ratioRow(rows, 'host', 'patched', 'manual').p_holm).toBe(sig.p_holm);
  });

  it('the CI is the seeded bootstrap of the ratio of medians: reproducible, and the same render gives the same bytes', async () => {
    const again = fixtureCopy('headline');
    await renderReport(again, { resamples: 1000 });
    for (const f of ['headline.csv', 'headline.md']) {
      expect(readFileSync(join(again, 'report', f)).equals(readFileSync(report(f)))).toBe(true);
    }
    const ci = bootstrapMedianRatioCi(host.manual, host.patched, 'headline/host/statsNsPerPacket/patched/manual', 1000);
    const r = ratioRow(headline(), 'host', 'patched', 'manual');
    expect(ci).toEqual([Number(r.ci95_low), Number(r.ci95_high)]);
    // seeded by its key alone: other bootstraps drawn in between change nothing
    bootstrapMedianRatioCi(host.fused, host.dispatcher, 'something else', 1000);
    expect(bootstrapMedianRatioCi(host.manual, host.patched, 'headline/host/statsNsPerPacket/patched/manual', 1000)).toEqual(ci);
  });
});

describe('bootstrapMedianRatioCi', () => {
  it('brackets the ratio of medians; constant groups give it exactly; below 2 values or a zero reference, none', () => {
    // each group resampled on its own: a resampled median of [10, 20, 30] is 10, 20 or 30, of
    // [15, 30, 45] 15, 30 or 45, so a resampled ratio lies in 15/30..45/10
    const ci = bootstrapMedianRatioCi([10, 20, 30], [15, 30, 45], 'k')!;
    expect(ci[0]).toBeLessThanOrEqual(1.5);
    expect(ci[1]).toBeGreaterThanOrEqual(1.5);
    expect(ci[0]).toBeGreaterThanOrEqual(0.5);
    expect(ci[1]).toBeLessThanOrEqual(4.5);
    expect(bootstrapMedianRatioCi([5, 5, 5], [7.5, 7.5, 7.5], 'k')).toEqual([1.5, 1.5]);
    expect(bootstrapMedianRatioCi([5], [7, 8], 'k')).toBeNull();
    expect(bootstrapMedianRatioCi([0, 0], [1, 2], 'k')).toBeNull();
  });
});

describe('headline on the other kernels', () => {
  it('falls back to the probe per packet where the kernel has no statistics, and says so', () => {
    const rows = headline().filter((r) => r.kernel === '4.19');
    expect(new Set(rows.map((r) => r.metric))).toEqual(new Set(['nsPerPacket']));
    // manual {500, 520} → 510; patched {530, 550} → 540; fused {450, 470} → 460
    expect(Number(ratioRow(rows, '4.19', 'patched', 'manual').ratio)).toBeCloseTo(540 / 510, 12);
    expect(Number(ratioRow(rows, '4.19', 'manual', 'fused').ratio)).toBeCloseTo(510 / 460, 12);
    // two runs a cell: the smallest exact p is 1/3, never "real"
    expect(new Set(rows.map((r) => r.verdict))).toEqual(new Set(['noise']));
    expect(rows[0]!.note).toContain('no BPF run-time statistics on this kernel (4.19 < 5.1)');
    const md = readFileSync(report('headline.md'), 'utf8');
    expect(md).toContain('| 4.19 | TCG (emulated: shape only, not a performance measurement) | veth_poll probe: ns per packet | Manual | 2 | 510.00 | 1 (reference) |');
  });

  it('labels each kernel by how it was measured: host (real), KVM, TCG, TCG icount', () => {
    const rows = headline();
    const label = (k: string) => rows.find((r) => r.kernel === k)!.measured_as;
    expect(label('host')).toBe('host (real)');
    expect(label('6.12')).toBe('KVM');
    expect(label('4.19')).toBe('TCG (emulated: shape only, not a performance measurement)');
    expect(label('6.1')).toBe('instruction-timed (TCG icount): reproducible, not wall-clock performance');
    expect(rows.find((r) => r.kernel === '6.1')!.clock).toBe('icount');
    expect(rows.find((r) => r.kernel === '4.19')!.clock).toBe('wall');
    expect(Number(ratioRow(rows, '6.1', 'patched', 'manual').ratio)).toBeCloseTo(425 / 405, 12);
  });

  it('the icount label reaches the page, the tables and the flags, and the plain TCG one stays for 4.19', () => {
    const html = readFileSync(summary.html, 'utf8');
    expect(html).toContain(ICOUNT_WARNING);
    const t52 = readFileSync(report('table-5.2.md'), 'utf8');
    expect(t52).toContain(`⚠ ${ICOUNT_WARNING}: rows for 6.1 were measured under QEMU TCG with its instruction counter.`);
    expect(t52).toContain('⚠ TCG emulation: not a performance measurement: rows for 4.19 were measured under QEMU TCG.');
    const notes = parseCsv(readFileSync(report('table-5.2.csv'), 'utf8'));
    const manual61 = notes.find((r) => r[0] === 'manual' && r[1] === '6.1')!;
    expect(manual61.at(-1)).toContain(ICOUNT_WARNING);
    expect(manual61.at(-1)).not.toContain('TCG emulation');
    expect(summary.flags.map((f) => f.text)).toContainEqual(expect.stringMatching(/^6\.1: instruction-timed \(TCG icount\)/));
  });

  it('the headline is the first thing on the page, before the warnings and the tables', () => {
    const html = readFileSync(summary.html, 'utf8');
    const at = (s: string) => html.indexOf(s);
    expect(at('<section id="headline">')).toBeGreaterThan(0);
    expect(at('<section id="headline">')).toBeLessThan(at('id="warnings"'));
    expect(at('id="warnings"')).toBeLessThan(at('<section id="table-5.1">'));
    const md = readFileSync(summary.markdown, 'utf8');
    expect(md.indexOf('## The answer')).toBeLessThan(md.indexOf('## Warnings and flags'));
    expect(summary.files).toContain(report('headline.md'));
    expect(summary.files).toContain(report('headline.csv'));
  });
});

describe('warnings grouped by cause', () => {
  const warningLines = () => {
    const md = readFileSync(summary.markdown, 'utf8');
    const section = md.slice(md.indexOf('## Warnings and flags'), md.indexOf('## Table 5.1'));
    return section.split('\n').filter((l) => l.startsWith('- '));
  };

  it('one line per cause, listing the cells it affects', () => {
    const lines = warningLines();
    const having = (s: string) => lines.filter((l) => l.includes(s));
    // 9 cells have fewer than 5 runs (every cell of 6.12, 6.1 and 4.19): one line
    expect(having('fewer than 5 runs')).toHaveLength(1);
    const few = having('fewer than 5 runs')[0]!;
    for (const c of ['6.12 / Manual (n=3)', '6.1 / None (no XDP) (n=3)', '4.19 / BPF chain (patched) (n=2)']) expect(few).toContain(c);
    expect(few).toContain('— 9: ');
    // the host's four XDP cells share the reason they have no probe data
    expect(having('no kprobe events on this kernel')).toHaveLength(1);
    expect(having('no kprobe events on this kernel')[0]).toContain('host / Manual, host / XDP Dispatcher, host / BPF chain (patched), host / Fused (one program)');
    // every kernel lacks provenance: one line naming the four
    expect(having('no provenance/')).toEqual(['- ⚠ no provenance/<kernel>.json: CPU, frequency and tool versions unknown. — 4: host, 6.12, 6.1, 4.19']);
    // the same detail everywhere joins the cause, once
    expect(having('BPF run-time statistics missing')).toEqual([
      '- ℹ BPF run-time statistics missing — no BPF run-time statistics on this kernel (4.19 < 5.1) (shown as empty, never 0) (2 of 2 run(s)). — 3: 4.19 / Manual, 4.19 / BPF chain (patched), 4.19 / Fused (one program)',
    ]);
    // no cause twice
    const causes = summary.warnings.map((g) => `${g.level}:${g.cause}`);
    expect(new Set(causes).size).toBe(causes.length);
    expect(summary.warnings.length).toBeLessThan(summary.flags.length);
    // every per-cell flag is in exactly one group
    expect(summary.warnings.reduce((s, g) => s + Math.max(1, g.cells.length), 0)).toBe(summary.flags.length);
  });

  it('the HTML list shows the groups, not the per-cell lines', () => {
    const html = readFileSync(summary.html, 'utf8');
    const list = html.slice(html.indexOf('id="warnings"'), html.indexOf('<section id="table-5.1">'));
    expect(list.match(/<li /g)).toHaveLength(summary.warnings.length);
    expect(list.match(/fewer than 5 runs/g)).toHaveLength(1);
  });

  it('groupFlags keeps differing details per cell and texts without a cause as they are', () => {
    const flags: Flag[] = [
      { level: 'warn', cell: 'a / Manual', cause: 'too few runs.', detail: 'n=2', text: 'a / Manual: only 2' },
      { level: 'warn', cell: 'b / Manual', cause: 'too few runs.', detail: 'n=3', text: 'b / Manual: only 3' },
      { level: 'info', text: 'free text' },
      { level: 'info', text: 'free text' },
      { level: 'warn', cell: 'c / Fused', cause: 'too few runs.', detail: 'n=2', text: 'c / Fused: only 2' },
    ];
    expect(groupFlags(flags)).toEqual([
      {
        level: 'warn',
        cause: 'too few runs.',
        cells: [
          { cell: 'a / Manual', detail: 'n=2' },
          { cell: 'b / Manual', detail: 'n=3' },
          { cell: 'c / Fused', detail: 'n=2' },
        ],
        text: 'too few runs. — 3: a / Manual (n=2), b / Manual (n=3), c / Fused (n=2)',
      },
      { level: 'info', cause: 'free text', cells: [], text: 'free text' },
    ]);
    // one cell: the flag as it was written
    expect(groupFlags([flags[0]!])).toEqual([{ level: 'warn', cause: 'too few runs.', cells: [{ cell: 'a / Manual', detail: 'n=2' }], text: 'a / Manual: only 2' }]);
  });
});

describe('throughput relative to a baseline', () => {
  it('is drawn, decodes as a 1000 × 560 image, and names its baseline per kernel', async () => {
    const chart = summary.charts.find((c) => c.id === 'fig-throughput-relative');
    expect(chart).toBeDefined();
    const img = await loadImage(readFileSync(chart!.file));
    expect([img.width, img.height]).toEqual([1000, 560]);
    // none where measured (host 10.1, 6.1 0.51), else manual (6.12, 4.19)
    const html = readFileSync(summary.html, 'utf8');
    expect(html).toContain('alt="Throughput relative to no XDP (to manual where none was not measured), per kernel"');
  });

  it('the emulated kernel\'s bars are as tall as the host\'s, where on the absolute figure they vanish', async () => {
    // Pixels of the manual colour (#1f77b4) in each kernel's quarter of the plot: host is the first
    // group, 4.19 (TCG, 0.31 Gb/s against the host's 9.1) the last.
    const manualPixels = async (file: string) => {
      const img = await loadImage(readFileSync(file));
      const cv = createCanvas(img.width, img.height);
      const ctx = cv.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const { data } = ctx.getImageData(0, 0, img.width, img.height);
      const quarters = [0, 0, 0, 0];
      // below the legend, so its sample swatch is not counted
      for (let y = 130; y < img.height; y++) {
        for (let x = 60; x < img.width; x++) {
          const i = (y * img.width + x) * 4;
          if (data[i] === 0x1f && data[i + 1] === 0x77 && data[i + 2] === 0xb4) quarters[Math.min(3, Math.floor(((x - 60) / (img.width - 60)) * 4))]!++;
        }
      }
      return quarters;
    };
    const rel = await manualPixels(summary.charts.find((c) => c.id === 'fig-throughput-relative')!.file);
    const abs = await manualPixels(summary.charts.find((c) => c.id === 'fig-5.1a-throughput')!.file);
    // relative: host manual 9.1/10.1 = 0.90, 4.19 manual 1 (its own baseline)
    expect(rel[0]).toBeGreaterThan(1000);
    expect(rel[3]).toBeGreaterThan(rel[0]! * 0.9);
    // absolute: 4.19's manual bar is a thirtieth of the host's
    expect(abs[3]).toBeLessThan(abs[0]! * 0.1);
  });

  it('is not drawn, with the reason, when nothing has throughput', async () => {
    const s = await renderReport(fixtureCopy('micro'), { resamples: 200 });
    expect(s.skippedCharts).toContainEqual(expect.objectContaining({ id: 'fig-throughput-relative', reason: 'no throughput measured' }));
  });
});

describe('patch mode in the headline', () => {
  it('says which mode the patched chain ran in on each kernel, and why, from its runs', () => {
    const md = readFileSync(report('headline.md'), 'utf8');
    expect(md).toContain('host: BPF chain (patched) in inline mode (no body calls other functions, and inline has no call frame around the body (cheaper per packet)).');
    // Kernels whose patched runs recorded no mode get no such line.
    expect(md).not.toMatch(/4\.19[^\n]*patched\) in/);
  });
});
