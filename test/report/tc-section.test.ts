/**
 * The report's TC section, from the synthetic raw results of tc-records.ts (every XDP and every TC
 * approach the schema names, on two kernels, with BPF statistics, micro and latency records). A mixed set gives the XDP section byte for byte as the XDP-only set does, and a
 * TC section of its own whose numbers are worked out here from the same inputs; an XDP-only set has
 * no TC section; an unsupported TC cell shows its reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCommand } from '../../lab/commands/report.ts';
import { approachOrder, TC_NOTE, variantHook } from '../../lab/report/hooks.ts';
import { renderReport, type ReportSummary } from '../../lab/report/index.ts';
import { APPROACH_LABEL } from '../../lab/report/metrics.ts';
import { APPROACH_NAMES, hookOfApproach, type ApproachName } from '../../lab/results/record.ts';
import { cleanScratch, readCsv } from './helpers.ts';
import { inputs, isNoProgram, KERNELS, key, median, records, RUNS, TC, UNSUPPORTED, UNSUPPORTED_REASON, writeRun, XDP } from './tc-records.ts';

let xdpOnly: string;
let mixed: string;
let sx: ReportSummary;
let sm: ReportSummary;
const read = (dir: string, f: string) => readFileSync(join(dir, 'report', f), 'utf8');

beforeAll(async () => {
  const xdp = records('xdp');
  xdpOnly = writeRun('tc-xdponly', xdp);
  // TC records interleaved before the XDP ones: order in the file must not matter either.
  mixed = writeRun('tc-mixed', [...records('tc'), ...xdp]);
  sx = await renderReport(xdpOnly, { resamples: 200 });
  sm = await renderReport(mixed, { resamples: 200 });
}, 180_000);
afterAll(cleanScratch);

/** Every file of the XDP section (and the thesis comparison, which is XDP-only). */
const XDP_FILES = [
  'headline.csv',
  'headline.md',
  'table-5.1.csv',
  'table-5.1.md',
  'table-5.2.csv',
  'table-5.2.md',
  'stats.csv',
  'significance.csv',
  'significance.md',
  'thesis-comparison.csv',
  'thesis-comparison.md',
  'micro.csv',
  'micro.md',
  'latency.csv',
  'latency.md',
];

describe('the XDP section of a mixed XDP + TC run', () => {
  it('is byte for byte the XDP-only run\'s: tables, CSV, Markdown', () => {
    for (const f of XDP_FILES) expect(read(mixed, f), f).toBe(read(xdpOnly, f));
  });

  it('names no TC approach in any XDP table', () => {
    for (const f of XDP_FILES) {
      for (const a of TC) {
        expect(read(mixed, f), `${f}: ${a}`).not.toContain(APPROACH_LABEL[a]);
        if (f.endsWith('.csv')) expect(readCsv(join(mixed, 'report', f)).some((r) => Object.values(r).includes(a)), `${f}: ${a}`).toBe(false);
      }
    }
  });

  it('draws the same XDP figures, with the same bytes, and the TC ones apart', () => {
    const xdpIds = sx.charts.map((c) => c.id);
    expect(xdpIds.length).toBeGreaterThan(0);
    expect(xdpIds.some((id) => id.startsWith('tc-'))).toBe(false);
    expect(sm.charts.filter((c) => !c.id.startsWith('tc-')).map((c) => c.id)).toEqual(xdpIds);
    for (const c of sx.charts) {
      const m = sm.charts.find((x) => x.id === c.id)!;
      expect(readFileSync(m.file).equals(readFileSync(c.file)), c.id).toBe(true);
    }
    expect(sm.charts.filter((c) => c.id.startsWith('tc-')).map((c) => c.id)).toEqual(
      expect.arrayContaining(['tc-fig-throughput', 'tc-fig-ns-per-skb', 'tc-fig-throughput-relative', 'tc-micro-approaches', 'tc-latency-load-attach']),
    );
  });

  it('the HTML page keeps every TC approach out of the XDP part and shows it in the TC section', () => {
    const html = readFileSync(sm.html, 'utf8');
    const at = html.indexOf('<h2 id="tc">');
    expect(at).toBeGreaterThan(0);
    // The XDP headline, then every XDP table and figure; the warnings list between them is the run's, both hooks'.
    const headline = html.slice(html.indexOf('<section id="headline">'), html.indexOf('<h2 id="warnings">'));
    const xdpPart = headline + html.slice(html.indexOf('<section id="table-5.1">'), at);
    const tcPart = html.slice(at, html.indexOf('<h2 id="provenance">'));
    expect(headline.length).toBeGreaterThan(0);
    for (const a of TC) {
      expect(xdpPart.includes(APPROACH_LABEL[a]), a).toBe(false);
      expect(tcPart.includes(APPROACH_LABEL[a]), a).toBe(true);
    }
    for (const a of XDP) expect(tcPart.includes(`<td class="">${APPROACH_LABEL[a]}</td>`), a).toBe(false);
    expect(tcPart).toContain('<section id="tc-table-5.1">');
    expect(tcPart).toContain('<section id="tc-table-5.2">');
    expect(tcPart).toContain('<section id="tc-headline">');
    expect(tcPart).toMatch(/alt="TC — Throughput by kernel and approach"/);
  });
});

describe('the TC section', () => {
  const tcRows = (f: string) => readCsv(join(mixed, 'report', f));
  const measured = (k: string) => TC.filter((a) => !(k === '6.1' && a === UNSUPPORTED));

  it('has every TC approach of the schema, on every kernel, in the thesis\'s order', () => {
    const rows = tcRows('tc-table-5.1.csv');
    expect(rows.map((r) => [r.kernel, r.approach])).toEqual(KERNELS.flatMap((k) => approachOrder('tc').map((a) => [k.label, a])));
    expect(new Set(approachOrder('tc'))).toEqual(new Set(TC));
    expect(sm.tc).not.toBeNull();
    expect(sm.tc!.approaches).toEqual(approachOrder('tc'));
    expect(sx.tc).toBeNull();
  });

  it('Table 5.1: skbs, time and throughput are the medians of the inputs, throughput also over tc-none', () => {
    for (const r of tcRows('tc-table-5.1.csv')) {
      if (r.status !== 'done') continue;
      const inp = inputs.get(key(r.kernel, r.approach as ApproachName))!;
      expect(Number(r.throughput_gbps)).toBeCloseTo(median(inp.gbps), 9);
      expect(Number(r.throughput_ci95_low)).toBeLessThanOrEqual(Number(r.throughput_gbps));
      expect(Number(r.throughput_ci95_high)).toBeGreaterThanOrEqual(Number(r.throughput_gbps));
      expect(r.baseline).toBe('tc-none');
      expect(Number(r.throughput_rel_baseline)).toBeCloseTo(median(inp.gbps) / median(inputs.get(key(r.kernel, 'tc-none'))!.gbps), 9);
      if (isNoProgram(r.approach as ApproachName)) {
        expect(r.skbs_total).toBe('');
        continue;
      }
      expect(Number(r.skbs_total)).toBe(median(inp.runCnt));
      expect(Number(r.time_total_ns)).toBe(median(inp.runTimeNs));
    }
  });

  it('Table 5.2: ns per skb (thesis convention and per run) and the ratios to tc-manual and tc-fused, from the inputs', () => {
    const rows = tcRows('tc-table-5.2.csv');
    for (const k of KERNELS) {
      const nsOf = (a: ApproachName) => median(inputs.get(key(k.label, a))!.nsPer);
      for (const a of measured(k.label).filter((x) => !isNoProgram(x))) {
        const r = rows.find((x) => x.kernel === k.label && x.approach === a)!;
        const inp = inputs.get(key(k.label, a))!;
        expect(Number(r.time_per_skb_ns)).toBeCloseTo(median(inp.runTimeNs) / median(inp.runCnt), 9);
        expect(Number(r.ns_per_skb_median)).toBeCloseTo(nsOf(a), 9);
        expect(Number(r.ci95_low)).toBeLessThanOrEqual(nsOf(a));
        expect(Number(r.ci95_high)).toBeGreaterThanOrEqual(nsOf(a));
        for (const ref of ['tc-manual', 'tc-fused'] as const) {
          const col = `ratio_${ref.replace('-', '_')}`;
          if (a === ref) expect(r[col]).toBe('1');
          else expect(Number(r[col])).toBeCloseTo(nsOf(a) / nsOf(ref), 12);
        }
      }
      const none = rows.find((x) => x.kernel === k.label && x.approach === 'tc-none')!;
      expect([none.time_per_skb_ns, none.ratio_tc_manual]).toEqual(['', '']);
    }
  });

  it('the TC headline is relative to tc-manual and tc-fused, with the same ratios', () => {
    const rows = tcRows('tc-headline.csv');
    expect(new Set(rows.map((r) => r.reference))).toEqual(new Set(['tc-manual', 'tc-fused']));
    expect(rows.every((r) => r.metric === 'statsNsPerPacket')).toBe(true);
    for (const r of rows) {
      const ns = (a: string | undefined) => median(inputs.get(key(r.kernel, a as ApproachName))!.nsPer);
      expect(Number(r.ratio)).toBeCloseTo(ns(r.approach) / ns(r.reference), 12);
      expect(TC).toContain(r.approach);
    }
    // every measured TC approach but the baseline, against each reference but itself
    const expected = KERNELS.reduce((n, k) => n + 2 * (measured(k.label).filter((a) => !isNoProgram(a)).length - 1), 0);
    expect(rows).toHaveLength(expected);
  });

  it('an unsupported TC cell shows its status and reason, in the CSV, the Markdown and the HTML', () => {
    const r = tcRows('tc-table-5.1.csv').find((x) => x.kernel === '6.1' && x.approach === UNSUPPORTED)!;
    expect(r.status).toBe('unsupported');
    expect(r.n_runs).toBe('0');
    expect(r.notes).toContain(UNSUPPORTED_REASON);
    expect(read(mixed, 'tc.md')).toContain(`| ${APPROACH_LABEL[UNSUPPORTED]} | 6.1 |`);
    expect(read(mixed, 'tc.md')).toContain(UNSUPPORTED_REASON);
    expect(readFileSync(sm.html, 'utf8')).toContain(UNSUPPORTED_REASON);
  });

  it('says that TC counts skbs and that the thesis has no TC numbers, in report.md, tc.md and the page', () => {
    for (const text of [read(mixed, 'report.md'), read(mixed, 'tc.md'), readFileSync(sm.html, 'utf8').replace(/&quot;/g, '"').replace(/&#39;|&apos;/g, "'")]) {
      expect(text).toContain('TC ingress (cls_bpf, tcx)');
      expect(text).toContain(TC_NOTE);
    }
    expect(TC_NOTE).toMatch(/skb/);
    expect(TC_NOTE).toMatch(/thesis has no TC numbers/);
    expect(read(xdpOnly, 'report.md')).not.toContain('TC ingress');
    expect(readFileSync(sx.html, 'utf8')).not.toContain('id="tc"');
  });

  it('microbenchmarks and latencies split by hook: TC variants only in tc-micro.csv, XDP only in micro.csv', () => {
    expect(new Set(tcRows('tc-micro.csv').map((r) => r.variant))).toEqual(new Set(['tc-manual', 'tc-fused']));
    expect(new Set(readCsv(join(mixed, 'report', 'micro.csv')).map((r) => r.variant))).toEqual(new Set(['manual', 'fused']));
    expect(Number(tcRows('tc-micro.csv').find((r) => r.kernel === '6.6' && r.variant === 'tc-manual')!.median_ns)).toBe(41);
    expect(new Set(tcRows('tc-latency.csv').map((r) => r.approach))).toEqual(new Set(['tc-manual']));
    // Each section's microbenchmark table speaks its own unit.
    expect(read(mixed, 'tc.md')).toContain('TC — Microbenchmark: ns per skb');
    expect(read(mixed, 'tc.md')).not.toContain('Microbenchmark: ns per packet');
    expect(read(xdpOnly, 'report.md')).toContain('Microbenchmark: ns per packet');
  });

  it('no TC file in an XDP-only report', () => {
    for (const f of ['tc-headline.csv', 'tc-table-5.1.csv', 'tc-table-5.2.csv', 'tc-stats.csv', 'tc.md']) {
      expect(existsSync(join(xdpOnly, 'report', f)), f).toBe(false);
      expect(existsSync(join(mixed, 'report', f)), f).toBe(true);
    }
  });

  it('the terminal summary names the TC section and its files', async () => {
    const lines: string[] = [];
    const cmd = reportCommand({ print: (l) => lines.push(l), progress: () => {} }).exitOverride();
    await cmd.parseAsync([mixed], { from: 'user' });
    const xdpRuns = KERNELS.length * XDP.length * RUNS;
    const tcRuns = KERNELS.reduce((n, k) => n + measured(k.label).length * RUNS, 0);
    expect(lines[0]).toBe(`report of ${mixed}: ${xdpRuns + tcRuns} runs in ${KERNELS.length * (XDP.length + TC.length)} cells, kernels 6.6, 6.1`);
    expect(lines).toContain(`  TC ingress (cls_bpf, tcx): ${tcRuns} runs in ${KERNELS.length * TC.length} cells, approaches ${approachOrder('tc').join(', ')} (per skb; no thesis numbers)`);
    const tables = lines.find((l) => l.startsWith('    tables: '))!;
    expect(tables).toContain('tc-table-5.1.csv');
    expect(tables).toContain('tc.md');
    expect(tables).not.toContain('.png');
  });
});

describe('a run of TC records only', () => {
  it('has the TC section, an XDP section without rows, and says why no XDP figure was drawn', async () => {
    const dir = writeRun('tc-only', records('tc'));
    const s = await renderReport(dir, { resamples: 200 });
    expect(s.tc!.approaches).toEqual(approachOrder('tc'));
    expect(s.kernels).toEqual(KERNELS.map((k) => k.label));
    expect(readCsv(join(dir, 'report', 'table-5.1.csv'))).toEqual([]);
    expect(readCsv(join(dir, 'report', 'headline.csv'))).toEqual([]);
    expect(readCsv(join(dir, 'report', 'tc-table-5.1.csv'))).toHaveLength(KERNELS.length * TC.length);
    expect(s.charts.every((c) => c.id.startsWith('tc-'))).toBe(true);
    expect(s.skippedCharts.map((c) => c.id)).toContain('fig-5.1a-throughput');
  });
});

describe('hooks of names', () => {
  it('every approach and its microbenchmark variants fall in the approach\'s hook', () => {
    for (const a of APPROACH_NAMES) {
      for (const v of [a, `${a}-inline`, `chain/${a}-constant`]) expect(variantHook(v), v).toBe(hookOfApproach(a));
    }
    expect(variantHook('chain/freplace')).toBe('xdp');
    expect(approachOrder('xdp')).toEqual(['manual', 'dispatcher', 'patched', 'fused', 'none']);
    const tc = approachOrder('tc');
    expect([tc[0], tc.at(-2), tc.at(-1)]).toEqual(['tc-manual', 'tc-fused', 'tc-none']);
    expect([...tc].sort()).toEqual([...TC].sort());
  });
});
