/**
 * BPF run-time statistics in the report, from test/fixtures/report/bpf-stats/raw.jsonl. Every
 * expected value is worked out by hand from the fixture's numbers.
 *
 * Kernel "host" (6.18.0-xst, no kprobes: probe null), 5 runs each, (Δrun_cnt, ns per packet) per run:
 *   manual:  (100000,180) (105000,175) (98000,185) (102000,190) (99000,178)
 *            run_time_ns 18 000 000, 18 375 000, 18 130 000, 19 380 000, 17 622 000
 *   patched: (100000,200) (101000,205) (99000,210) (103000,198) (97000,202)
 *            run_time_ns 20 000 000, 20 705 000, 20 790 000, 20 394 000, 19 594 000
 *   fused:   (100000,170) (120000,140) (90000,160) (110000,145) (95000,155)
 *            run_time_ns 17 000 000, 16 800 000, 14 400 000, 15 950 000, 14 725 000
 *   none:    bpfStats null (no program)
 * Kernel 4.19 (KVM): manual, 3 runs with probe data, bpfStats null (the kernel has none).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport, type ReportSummary } from '../../lab/report/index.ts';
import { cleanScratch, fixtureCopy, parseCsv, pngInfo, readCsv } from './helpers.ts';

let dir: string;
let summary: ReportSummary;

beforeAll(async () => {
  dir = fixtureCopy('bpf-stats');
  summary = await renderReport(dir, { resamples: 1000 });
}, 120_000);
afterAll(cleanScratch);

const report = (f: string) => join(dir, 'report', f);

describe('Table 5.2 with BPF run-time statistics', () => {
  it('fills the host rows from the statistics: median Δrun_time_ns / median Δrun_cnt, empty where there are none', () => {
    const rows = parseCsv(readFileSync(report('table-5.2.csv'), 'utf8'));
    expect(rows[0]).toEqual(['approach', 'kernel', 'time_per_packet_ns', 'cycles_per_packet', 'n_runs', 'bpf_stats_ns_per_packet', 'accelerator', 'status', 'notes']);
    expect(rows.slice(1).map((r) => r.slice(0, 6))).toEqual([
      // run_time_ns sorted 17.622 18.0 18.13 18.375 19.38 M → 18.13 M; run_cnt median 100 000
      ['manual', 'host', '', '', '5', '181.30'],
      // 19.594 20.0 20.394 20.705 20.79 M → 20.394 M over 100 000
      ['patched', 'host', '', '', '5', '203.94'],
      // 14.4 14.725 15.95 16.8 17.0 M → 15.95 M over 100 000
      ['fused', 'host', '', '', '5', '159.50'],
      ['none', 'host', '', '', '5', ''],
      // probes only: 5.5 M ns / 110 calls; no statistics on 4.19
      ['manual', '4.19', '50000.00', '150000.00', '3', ''],
    ]);
    expect(rows[5]![8]).toContain('BPF statistics null: no BPF run-time statistics on this kernel');
    const md = readFileSync(report('table-5.2.md'), 'utf8');
    expect(md).toContain('| Approach | Linux | Mean time per packet (ns) | Mean cycles per packet | n | XDP program ns per packet (BPF statistics) | Notes |');
    expect(md).toContain('| Fused (one program) | host |  |  | 5 | 159.50 |');
  });
});

describe('our columns from the statistics (stats.csv and the Markdown)', () => {
  const get = (k: string, a: string, m: string) => readCsv(report('stats.csv')).find((r) => r.kernel === k && r.approach === a && r.metric === m)!;

  it('per-run ns per packet, run counts and run times: n, median, quartiles', () => {
    // per run: 170 140 160 145 155 → sorted 140 145 155 160 170
    const f = get('host', 'fused', 'statsNsPerPacket');
    expect(f.n).toBe('5');
    expect(Number(f.median)).toBe(155);
    expect(Number(f.q1)).toBe(145);
    expect(Number(f.q3)).toBe(160);
    expect(Number(get('host', 'manual', 'statsNsPerPacket').median)).toBe(180);
    expect(Number(get('host', 'patched', 'statsNsPerPacket').median)).toBe(202);
    expect(Number(get('host', 'fused', 'statsRunCnt').median)).toBe(100_000);
    expect(Number(get('host', 'fused', 'statsRunTimeNs').median)).toBe(15_950_000);
    expect(get('host', 'none', 'statsNsPerPacket').missing_reason).toMatch(/no XDP program/);
    const old = get('4.19', 'manual', 'statsNsPerPacket');
    expect(old.n).toBe('0');
    expect(old.median).toBe('');
    expect(old.missing_reason).toMatch(/^no BPF run-time statistics on this kernel/);
  });

  it('appear under "Our columns" of Tables 5.1 and 5.2', () => {
    const md51 = readFileSync(report('table-5.1.md'), 'utf8');
    expect(md51).toContain('#### XDP program runs per run (BPF statistics run_cnt) (runs)');
    expect(md51).toContain('#### ns in the XDP program per run (BPF statistics run_time_ns) (ns)');
    expect(md51).toContain('| host | Fused (one program) | 5 | 100 000 | 95 000 | 110 000 | 15 000 |');
    const md52 = readFileSync(report('table-5.2.md'), 'utf8');
    expect(md52).toContain('#### ns per packet in the XDP program (BPF statistics) (ns)');
    expect(md52).toContain('| host | Manual | 5 | 180.00 | 178.00 | 185.00 | 7.000 |');
  });
});

describe('significance on the statistics', () => {
  const pair = (a: string, b: string) => readCsv(report('significance.csv')).find((r) => r.kernel === 'host' && r.metric === 'statsNsPerPacket' && r.a === a && r.b === b)!;

  it('separated per-run ns per packet: exact U = 0 or 25, p = 2/252, Holm over 3 pairs, real', () => {
    for (const [a, b, u] of [
      ['manual', 'patched', '0'], // every manual run is cheaper than every patched run
      ['manual', 'fused', '25'],
      ['patched', 'fused', '25'],
    ] as const) {
      const r = pair(a, b);
      expect(r.u).toBe(u);
      expect(Number(r.p)).toBeCloseTo(2 / 252, 12);
      expect(Number(r.p_holm)).toBeCloseTo(6 / 252, 12);
      expect(r.verdict).toBe('real');
    }
    expect(Number(pair('manual', 'fused').diff_b_minus_a)).toBe(155 - 180);
    expect(Number(pair('manual', 'patched').rel_diff)).toBeCloseTo((202 - 180) / 180, 12);
    expect(pair('manual', 'fused').method).toBe('Mann-Whitney U (exact), Holm over 3 pairs');
    // 4.19 has no statistics: nothing to compare there
    expect(readCsv(report('significance.csv')).filter((r) => r.kernel === '4.19' && r.metric === 'statsNsPerPacket')).toEqual([]);
  });

  it('the sentence for the host names the statistics', () => {
    const host = summary.significance.find((t) => t.startsWith('On host'))!;
    expect(host).toContain('ns per packet in the XDP program (BPF statistics): real: BPF chain (patched) − Manual +12.2%');
    expect(host).toContain('Fused (one program) − Manual −13.9%');
  });
});

describe('figure and flags', () => {
  it('draws the statistics figure, and says which cells have none and why', () => {
    const fig = summary.charts.find((c) => c.id === 'fig-bpf-stats-ns-per-packet')!;
    expect(pngInfo(fig.file)).toMatchObject({ width: 1000, height: 560 });
    const texts = summary.flags.map((f) => f.text);
    expect(texts).toContainEqual(expect.stringMatching(/^4\.19 \/ Manual: BPF run-time statistics missing in 3 of 3 run\(s\) — no BPF run-time statistics on this kernel .* \(shown as empty, never 0\)\.$/));
    // none has no program: not flagged as missing statistics
    expect(texts.filter((t) => t.startsWith('host / None') && t.includes('statistics'))).toEqual([]);
  });

  it('results written before the statistics existed get no such tables or figure', async () => {
    const old = fixtureCopy('small');
    const s = await renderReport(old, { resamples: 200 });
    expect(s.charts.map((c) => c.id)).not.toContain('fig-bpf-stats-ns-per-packet');
    expect(s.skippedCharts).toEqual([]);
    expect(readFileSync(join(old, 'report', 'table-5.2.md'), 'utf8')).not.toContain('ns per packet in the XDP program (BPF statistics) (ns)');
    // the Table 5.2 column is there, empty, without a note about statistics
    const rows = parseCsv(readFileSync(join(old, 'report', 'table-5.2.csv'), 'utf8'));
    expect(rows.slice(1).map((r) => r[5])).toEqual(['', '', '', '', '', '']);
    expect(rows.slice(1).some((r) => r[8]!.includes('BPF statistics'))).toBe(false);
  });
});
