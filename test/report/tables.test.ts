/**
 * The small fixture (test/fixtures/report/small/raw.jsonl) → exact Tables 5.1 and 5.2, our statistics,
 * significance and flags. Every expected value below is worked out by hand from the fixture's numbers.
 *
 * Fixture, kernel 6.1 (KVM, pinned 3000 MHz), 5 runs each:
 *   manual:  Gb/s 8.0 8.2 7.9 8.1 8.3 · calls 1000 1100 900 1050 950 · packets 4000 4100 3900 4200 4050
 *            ns 20.0M 22.0M 19.8M 21.0M 20.9M · cycles = 3.0 × ns
 *   patched: Gb/s 7.5 7.7 7.6 7.8 7.4 · calls 1200 1300 1250 1100 1150 · packets 4800 5200 5000 4400 4600
 *            ns 24.0M 26.0M 25.0M 23.0M 24.5M · cycles = 3.3 × ns
 *   none:    Gb/s 9.0 9.1 9.2 9.3 9.4 · no probe data
 *   dispatcher: unsupported (cell record only)
 * Kernel 5.10 (TCG, no PMU: cycles null):
 *   manual (3 runs): Gb/s 0.3 0.5 0.4 · calls 100 120 110 · ns 5.0M 6.0M 5.5M
 *   patched (2 runs, no cell record): Gb/s 0.35 0.45 · calls 100 120 · ns 5.2M 6.2M
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport, type ReportSummary } from '../../lab/report/index.ts';
import { cleanScratch, fixtureCopy, parseCsv, readCsv } from './helpers.ts';

let dir: string;
let summary: ReportSummary;

beforeAll(async () => {
  dir = fixtureCopy('small');
  summary = await renderReport(dir, { resamples: 1000 });
}, 120_000);
afterAll(cleanScratch);

const report = (f: string) => join(dir, 'report', f);

describe('Table 5.1 from the small fixture', () => {
  it('has the thesis columns, our order (kernels newest first; Manual, Dispatcher, BPF chain, then ours) and median totals', () => {
    const rows = parseCsv(readFileSync(report('table-5.1.csv'), 'utf8'));
    expect(rows[0]).toEqual(['approach', 'kernel', 'packets_total', 'time_total_ns', 'cycles_total', 'throughput_gbps', 'n_runs', 'accelerator', 'status', 'notes']);
    const body = rows.slice(1).map((r) => r.slice(0, 9));
    expect(body).toEqual([
      // medians: calls {900,950,1000,1050,1100} → 1000; ns {19.8,20,20.9,21,22}M → 20.9M; cycles 3 × 20.9M; Gb/s 8.1
      ['manual', '6.1', '1000', '20900000', '62700000', '8.10', '5', 'kvm', 'done'],
      ['dispatcher', '6.1', '', '', '', '', '0', 'kvm', 'unsupported'],
      // calls {1100,1150,1200,1250,1300} → 1200; ns {23,24,24.5,25,26}M → 24.5M; cycles 3.3 × 24.5M = 80.85M; Gb/s 7.6
      ['patched', '6.1', '1200', '24500000', '80850000', '7.60', '5', 'kvm', 'done'],
      ['none', '6.1', '', '', '', '9.20', '5', 'kvm', 'done'],
      // calls {100,110,120} → 110; ns {5,5.5,6}M → 5.5M; no cycles; Gb/s 0.4 to three significant digits
      ['manual', '5.10', '110', '5500000', '', '0.400', '3', 'tcg', 'done'],
      // two runs: medians are means of the two: calls 110, ns 5.7M, Gb/s 0.4
      ['patched', '5.10', '110', '5700000', '', '0.400', '2', 'tcg', 'incomplete'],
    ]);
    const notes = rows.slice(1).map((r) => r[9]!);
    expect(notes[1]).toContain('libxdp: freplace (BPF_PROG_TYPE_EXT) not supported by this kernel');
    expect(notes[3]).toContain('no probe data');
    expect(notes[4]).toContain('TCG emulation: not a performance measurement');
    expect(notes[4]).toContain('cycles null: no PMU under TCG');
    expect(notes[4]).toContain('n=3 < 5');
    expect(notes[5]).toContain('incomplete');
  });

  it('Markdown groups digits like the thesis and carries the TCG banner', () => {
    const md = readFileSync(report('table-5.1.md'), 'utf8');
    expect(md).toContain('| Manual | 6.1 | 1 000 | 20 900 000 | 62 700 000 | 8.10 | 5 |');
    expect(md).toContain('| BPF chain (patched) | 6.1 | 1 200 | 24 500 000 | 80 850 000 | 7.60 | 5 |');
    expect(md).toMatch(/TCG emulation: not a performance measurement: rows for 5\.10/);
    // cycles without a PMU are empty, never 0
    expect(md).toMatch(/\| Manual \| 5\.10 \| 110 \| 5 500 000 \|  \| 0\.400 \|/);
  });
});

describe('Table 5.2 from the small fixture', () => {
  it('per packet = median ns (cycles) / median calls, as the thesis', () => {
    const rows = parseCsv(readFileSync(report('table-5.2.csv'), 'utf8'));
    expect(rows[0]!.slice(0, 4)).toEqual(['approach', 'kernel', 'time_per_packet_ns', 'cycles_per_packet']);
    expect(rows.slice(1).map((r) => r.slice(0, 4))).toEqual([
      ['manual', '6.1', '20900.00', '62700.00'], // 20 900 000 / 1000; 62 700 000 / 1000
      ['dispatcher', '6.1', '', ''],
      ['patched', '6.1', '20416.67', '67375.00'], // 24 500 000 / 1200 = 20416.666…; 80 850 000 / 1200
      ['none', '6.1', '', ''],
      ['manual', '5.10', '50000.00', ''], // 5 500 000 / 110
      ['patched', '5.10', '51818.18', ''], // 5 700 000 / 110 = 51818.1818…
    ]);
  });
});

describe('our columns (stats.csv)', () => {
  const get = (k: string, a: string, m: string) => readCsv(report('stats.csv')).find((r) => r.kernel === k && r.approach === a && r.metric === m)!;

  it('n, median, quartiles and IQR per cell and metric', () => {
    const t = get('6.1', 'manual', 'throughputGbps');
    expect(t.n).toBe('5');
    // sorted 7.9 8.0 8.1 8.2 8.3: type-7 quartiles at positions 1 and 3
    expect(Number(t.median)).toBeCloseTo(8.1, 9);
    expect(Number(t.q1)).toBeCloseTo(8.0, 9);
    expect(Number(t.q3)).toBeCloseTo(8.2, 9);
    expect(Number(t.iqr)).toBeCloseTo(0.2, 9);
    expect(Number(t.ci95_low)).toBeGreaterThanOrEqual(7.9 - 1e-9);
    expect(Number(t.ci95_high)).toBeLessThanOrEqual(8.3 + 1e-9);
    // per true packet: ns/packets per run = 5000, 5365.85, 5076.92, 5000, 5160.49 → median 5076.92
    expect(Number(get('6.1', 'manual', 'nsPerPacket').median)).toBeCloseTo(19_800_000 / 3900, 6);
    // per call, per run: 20000, 20000, 22000, 20000, 22000 → median 20000
    expect(Number(get('6.1', 'manual', 'nsPerCall').median)).toBeCloseTo(20000, 6);
    expect(Number(get('6.1', 'manual', 'effectiveGhz').median)).toBeCloseTo(3, 9);
  });

  it('missing values are empty with their reason, never 0', () => {
    const c = get('5.10', 'manual', 'cycles');
    expect(c.n).toBe('0');
    expect(c.median).toBe('');
    expect(c.missing_reason).toBe('no PMU under TCG');
    expect(c.flag).toBe('TCG emulation: not a performance measurement');
    const none = get('6.1', 'none', 'ns');
    expect(none.median).toBe('');
    expect(none.missing_reason).toContain('veth_poll does not run');
    expect(get('6.1', 'none', 'throughputGbps').n).toBe('5');
  });
});

describe('significance', () => {
  const sig = () => readCsv(report('significance.csv'));
  const pair = (k: string, m: string, a: string, b: string) => sig().find((r) => r.kernel === k && r.metric === m && r.a === a && r.b === b)!;

  it('separated throughputs on 6.1 are real: exact U, Holm over 3 pairs', () => {
    // Each pair is fully separated: exact two-sided p = 2 / C(10,5) = 2/252; Holm over 3 equal p's = 3 · 2/252.
    for (const [a, b] of [
      ['manual', 'patched'],
      ['manual', 'none'],
      ['patched', 'none'],
    ] as const) {
      const r = pair('6.1', 'throughputGbps', a, b);
      expect(Number(r.p)).toBeCloseTo(2 / 252, 9);
      expect(Number(r.p_holm)).toBeCloseTo(6 / 252, 9);
      expect(r.verdict).toBe('real');
    }
    const mp = pair('6.1', 'throughputGbps', 'manual', 'patched');
    expect(Number(mp.diff_b_minus_a)).toBeCloseTo(7.6 - 8.1, 9);
    expect(Number(mp.ci95_high)).toBeLessThan(0);
    expect(mp.u).toBe('25'); // every manual run beats every patched run
  });

  it('cycles per packet: ties → normal approximation, real; ns per call: noise', () => {
    // manual 15000,15000,15230.77,15481.48,16097.56 < patched 16500,16500,16500,17250,17576.09:
    // U = 0, ties 2 and 3: var = 25/12 · (11 − 30/90) = 22.2222; z = 12/√var = 2.54558; p = 0.0109095
    const c = pair('6.1', 'cyclesPerPacket', 'manual', 'patched');
    expect(Number(c.u)).toBe(0);
    expect(Number(c.p)).toBeCloseTo(0.0109095, 5);
    expect(c.verdict).toBe('real');
    // per call: manual 20000,20000,22000,20000,22000 vs patched 20000,20000,20000,20909,21304: medians equal
    const n = pair('6.1', 'nsPerCall', 'manual', 'patched');
    expect(Number(n.diff_b_minus_a)).toBe(0);
    expect(n.verdict).toBe('noise');
  });

  it('one sentence per kernel says which differences are real and which are noise', () => {
    expect(summary.significance).toHaveLength(2);
    const [s61, s510] = summary.significance;
    expect(s61).toMatch(/^On 6\.1, throughput: real: BPF chain \(patched\) − Manual −6\.2%/);
    expect(s61).toMatch(/ns per call \(the thesis's "per packet"\): noise: BPF chain \(patched\) − Manual/);
    expect(s510).toMatch(/noise \(some with fewer than 5 runs\)/);
    expect(s510).toContain('TCG emulation: not a performance measurement');
  });
});

describe('flags', () => {
  const texts = () => summary.flags.map((f) => f.text);
  it('TCG, effective GHz, unsupported, few runs, cycles null, none without probe, unfinished cell', () => {
    const t = texts();
    expect(t).toContainEqual(expect.stringMatching(/^5\.10: TCG emulation: not a performance measurement/));
    // patched: cycles/ns = 3.3 vs pinned 3.0 GHz → +10%; manual is exactly 3.0 and is not flagged
    expect(t).toContainEqual(expect.stringMatching(/6\.1 \/ BPF chain \(patched\): effective 3\.300 GHz .* 3\.000 GHz by 10\.0%/));
    expect(t.filter((x) => x.includes('effective') && x.includes('6.1 / Manual'))).toEqual([]);
    expect(t).toContainEqual(expect.stringMatching(/6\.1 \/ XDP Dispatcher: unsupported — libxdp: freplace/));
    expect(t).toContainEqual(expect.stringMatching(/5\.10 \/ Manual: only 3 run\(s\) \(fewer than 5\)/));
    expect(t).toContainEqual(expect.stringMatching(/5\.10 \/ Manual: cycles missing in 3 of 3 run\(s\) — no PMU under TCG \(shown as empty, never 0\)/));
    expect(t).toContainEqual(expect.stringMatching(/6\.1 \/ None \(no XDP\): no probe data/));
    expect(t).toContainEqual(expect.stringMatching(/5\.10 \/ BPF chain \(patched\): no cell record/));
    expect(summary.anyTcg).toBe(true);
    expect(summary.badLines).toEqual([]);
  });

  it('the thesis side by side compares what exists and says what does not', () => {
    const rows = readCsv(report('thesis-comparison.csv'));
    const thr = rows.find((r) => r.kernel === '6.1' && r.approach === 'manual' && r.metric === 'throughput_gbps')!;
    expect(thr.our_kernel).toBe('6.1');
    expect(Number(thr.ours)).toBeCloseTo(8.1, 9);
    expect(Number(thr.rel_diff)).toBeCloseTo((8.1 - 7.48) / 7.48, 9);
    const disp = rows.find((r) => r.kernel === '6.1' && r.approach === 'dispatcher' && r.metric === 'time_total_ns')!;
    expect(disp.ours).toBe('');
    expect(disp.note).toContain('not measured');
    const tcg = rows.find((r) => r.kernel === '5.10' && r.approach === 'manual' && r.metric === 'time_total_ns')!;
    expect(Number(tcg.ours)).toBe(5_500_000);
    expect(tcg.note).toBe('TCG emulation: not a performance measurement');
    expect(rows.find((r) => r.kernel === '4.19')!.note).toBe('no kernel 4.19 in this run');
  });
});
