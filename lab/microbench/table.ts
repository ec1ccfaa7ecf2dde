/**
 * Plain-text tables of one target's microbenchmark results, for the terminal: chain length × hop
 * variant (median ns per packet, fitted ns per hop with its 95% CI), the trio per approach, and
 * the latencies. Pure formatting: the numbers come from runMicrobenchDetailed.
 */
import type { ApproachRow, MicrobenchRecord, MicrobenchResult } from './index.ts';
import { hookOfApproach, type ApproachHook, type LatencyRecord } from '../results/record.ts';
import { costBreakdown, formatBreakdown, largestPart, SHORT_CHAIN, shortChainSlope, type BreakdownInput } from '../results/breakdown.ts';
import { isFromStageVariant } from '../results/variants.ts';
import { medianOf } from './stats.ts';
import { isLiveVariant } from './tc-live.ts';

function grid(header: readonly string[], rows: readonly (readonly string[])[], alignRight: (col: number) => boolean = (c) => c > 0): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, c) => (alignRight(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

/** The tables for one target, with a title line naming the kernel. */
export function formatMicrobench(r: MicrobenchResult): string {
  const out: string[] = [];
  out.push(`== ${r.kernel} (${r.kernelRelease}, ${r.target}) — BPF_PROG_TEST_RUN, repeat ${r.repeat}, ${r.repetitions} repetitions ==`);
  for (const n of r.notes) out.push(`  ${n}`);
  if (r.maxChainPrograms !== null) out.push(`  longest chain: one packet ran ${r.maxChainPrograms} programs of a 35-program tail-call chain (${r.maxChainPrograms - 1} tail calls)`);

  // One table per hook: a TC number is per skb of a sched_cls program, never beside XDP's.
  const titles: Record<ApproachHook, string> = {
    xdp: 'Trio per approach, XDP (representative IPv6/TCP packet), ns per packet:',
    tc: 'Trio per approach, TC ingress (the same frame as an skb, sched_cls), ns per packet:',
  };
  for (const hook of ['xdp', 'tc'] as const) {
    const rows = r.approaches.filter((a) => hookOfApproach(a.approach) === hook);
    if (rows.length === 0) continue;
    out.push('', titles[hook]);
    out.push(
      grid(
        ['approach', 'hop', 'programs', 'median', 'min', 'max', 'n'],
        rows.map((a) => [a.variant, a.hop, String(a.chainLength), fmt(medianOf(a.nsPerPacket)), fmt(Math.min(...a.nsPerPacket), 0), fmt(Math.max(...a.nsPerPacket), 0), String(a.nsPerPacket.length)]),
        (c) => c >= 2,
      ),
    );
    if (rows.some((a) => a.variant.endsWith('/sum-of-stages'))) out.push('  */sum-of-stages: each stage test-run alone, added up; the kernel\'s walk between them is not included');
    if (rows.some((a) => isFromStageVariant(a.variant))) out.push('  */from-<stage>: the same chain test-run from that stage on (the cost breakdown splits the trio by program from these)');
  }

  if (r.interpreted.length > 0) {
    const jit = new Map(r.approaches.map((a) => [a.variant, medianOf(a.nsPerPacket)]));
    out.push('', 'The same trio in the BPF interpreter (loaded with net.core.bpf_jit_enable=0), ns per packet:');
    out.push(
      grid(
        ['approach', 'median', 'min', 'max', 'n', '× JIT'],
        r.interpreted.map((a) => {
          const m = medianOf(a.nsPerPacket);
          const j = jit.get(a.variant);
          return [a.variant, fmt(m), fmt(Math.min(...a.nsPerPacket), 0), fmt(Math.max(...a.nsPerPacket), 0), String(a.nsPerPacket.length), m !== null && j ? `${(m / j).toFixed(2)}×` : '-'];
        }),
        (c) => c >= 1,
      ),
    );
  }

  const verdict = targetVerdict(r);
  if (verdict.length > 0) out.push('', ...verdict);
  const parts = formatBreakdown(costBreakdown(breakdownInput(r)));
  if (parts.length > 0) out.push('', ...parts);

  if (r.scaling.length > 0) {
    const lengths = [...new Set(r.scaling.flatMap((s) => [...s.medians.keys()]))].sort((a, b) => a - b);
    out.push('', 'Chain-length scaling, median ns per packet (trivial programs that pass: XDP_PASS, TC_ACT_OK for tc-*):');
    const rows = lengths.map((len) => [String(len), ...r.scaling.map((s) => fmt(s.medians.get(len), 0))]);
    rows.push(['ns/hop', ...r.scaling.map((s) => fmt(s.fit?.slope, 2))]);
    rows.push(['±95% CI', ...r.scaling.map((s) => fmt(s.fit?.slopeCi95, 2))]);
    rows.push(['r²', ...r.scaling.map((s) => fmt(s.fit?.r2, 3))]);
    rows.push(['ns/hop min', ...r.scaling.map((s) => fmt(s.fitMin?.slope, 2))]);
    // One line over 1..33 can hide two regimes (seen on the development host: about 1.5 ns per
    // hop up to 8 programs, about 8 ns beyond): the short-chain slope is shown beside it.
    rows.push([`ns/hop ≤${SHORT_CHAIN}`, ...r.scaling.map((s) => fmt(shortChainSlope(s.medians), 2))]);
    out.push(grid(['length', ...r.scaling.map((s) => s.variant.replace(/^chain\//, ''))], rows));
    out.push(`ns/hop: least-squares slope through every repetition (±95% CI); ns/hop min: through the fastest repetition of each length; ns/hop ≤${SHORT_CHAIN}: through the medians of chains of at most ${SHORT_CHAIN} programs.`);
    out.push('', 'Hop kind of each variant:');
    for (const s of r.scaling) out.push(`  ${s.variant.replace(/^chain\//, '').padEnd(18)} ${s.hop.padEnd(20)} ${s.explains}`);
    const live = r.scaling.filter((s) => isLiveVariant(s.variant)).map((s) => s.variant.replace(/^chain\//, ''));
    if (live.length > 0) {
      out.push(`  ${live.join(', ')}: not BPF_PROG_TEST_RUN (it runs one program, never the kernel's walk between programs): ns per skb of iperf3 traffic between a clock filter before the chain and one after it, whose own cost is in every length alike; the slope is what compares with the test-run rows.`);
    }
  }

  const latency = r.records.filter((x): x is LatencyRecord => x.kind === 'latency');
  if (latency.length > 0) {
    out.push('', 'Latency (ms), median over cycles:');
    const approaches = [...new Set(latency.map((l) => l.approach))];
    const ops = (['load-attach', 'replace', 'detach', 'object-load', 'verify', 'bpf_check', 'jit'] as const).filter((op) => latency.some((l) => l.operation === op));
    out.push(
      grid(
        ['approach', ...ops],
        approaches.map((a) => [a, ...ops.map((op) => fmt(medianOf(latency.find((l) => l.approach === a && l.operation === op)?.ms ?? [])))]),
      ),
    );
  }

  if (r.unsupported.length > 0) {
    out.push('', 'Not measured on this kernel:');
    for (const u of r.unsupported) out.push(`  ${u.variant}: ${u.status}: ${u.reason}`);
  }
  return out.join('\n');
}

/**
 * The lab's first target for the patched chain, checked on this run's numbers: is the patched chain within measurement error
 * of manual chaining (the repetitions' ranges overlap), and within two tail calls of the fused
 * program (a tail call = the fitted cost per constant-index hop)? Ratios, as benchmarks report.
 */
export function targetVerdict(r: MicrobenchResult): string[] {
  const row = (v: string) => r.approaches.find((a) => a.variant === v && a.nsPerPacket.length > 0);
  const manual = row('manual');
  const fused = row('fused');
  const hop = r.scaling.find((s) => s.variant === 'chain/manual-constant')?.fit?.slope ?? null;
  const patchedRows = wholePatchedRows(r);
  if (patchedRows.length === 0 || (!manual && !fused)) return [];
  const out = ['Target: patched within measurement error of manual, and within two tail calls of fused:'];
  const range = (xs: readonly number[]): [number, number] => [Math.min(...xs), Math.max(...xs)];
  for (const p of patchedRows) {
    const pm = medianOf(p.nsPerPacket)!;
    const [plo, phi] = range(p.nsPerPacket);
    if (manual) {
      const mm = medianOf(manual.nsPerPacket)!;
      const [mlo, mhi] = range(manual.nsPerPacket);
      const overlap = plo <= mhi && mlo <= phi;
      out.push(
        `  ${p.variant} / manual = ${fmt(pm / mm, 2)} (${pm - mm >= 0 ? '+' : ''}${fmt(pm - mm)} ns): ${overlap ? 'within measurement error (ranges overlap)' : 'NOT within measurement error (ranges do not overlap)'}`,
      );
    }
    if (fused && hop !== null && hop > 0) {
      const fm = medianOf(fused.nsPerPacket)!;
      const calls = (pm - fm) / hop;
      out.push(`  ${p.variant} / fused = ${fmt(pm / fm, 2)} (${fmt(pm - fm)} ns = ${fmt(calls)} tail calls of ${fmt(hop, 2)} ns): ${calls <= 2 ? 'within two tail calls' : 'NOT within two tail calls'}`);
    }
  }
  out.push(...costTargets(r));
  return out;
}

/** The patched chain at the cost of manual chaining: the trio within 3 %, a hop within 0.5 ns. */
export const TARGET_TRIO_RATIO = 1.03;
export const TARGET_HOP_EXCESS_NS = 0.5;

/**
 * The cost targets on this run's numbers: each patched variant's trio median over manual's, and
 * its cost per hop over chains of at most SHORT_CHAIN programs against manual-constant's.
 */
export function costTargets(r: MicrobenchResult): string[] {
  const manual = r.approaches.find((a) => a.variant === 'manual' && a.nsPerPacket.length > 0);
  const manualHop = r.scaling.find((s) => s.variant === 'chain/manual-constant');
  const manualSlope = manualHop ? shortChainSlope(manualHop.medians) : null;
  const parts = costBreakdown(breakdownInput(r));
  // A missed target names the part of the breakdown that weighs most, so the reader sees why.
  const why = (variant: string): string => {
    const mode = variant.endsWith('subprog') ? 'subprog' : 'inline';
    const p = largestPart(parts, mode);
    return p ? ` — largest part: ${p.what}, ${fmt(p.ns, 2)} ns per ${p.per}` : '';
  };
  const out: string[] = [];
  for (const p of wholePatchedRows(r)) {
    if (!manual) break;
    const ratio = medianOf(p.nsPerPacket)! / medianOf(manual.nsPerPacket)!;
    out.push(`  ${p.variant} / manual = ${fmt(ratio, 3)} on the trio (target ≤ ${TARGET_TRIO_RATIO}): ${ratio <= TARGET_TRIO_RATIO ? 'met' : `MISSED${why(p.variant)}`}`);
  }
  for (const s of r.scaling.filter((x) => x.variant.startsWith('chain/patched'))) {
    const slope = shortChainSlope(s.medians);
    if (slope === null || manualSlope === null) continue;
    const excess = slope - manualSlope;
    out.push(`  ${s.variant.replace('chain/', '')}: ${fmt(slope, 2)} ns per hop (≤${SHORT_CHAIN} programs) against manual's ${fmt(manualSlope, 2)}, ${excess >= 0 ? '+' : ''}${fmt(excess, 2)} ns (target ≤ +${TARGET_HOP_EXCESS_NS}): ${excess <= TARGET_HOP_EXCESS_NS ? 'met' : `MISSED${why(s.variant)}`}`);
  }
  return out.length > 0 ? ['Cost target: patched / manual ≤ 1.03 on the trio, per hop ≤ manual + 0.5 ns:', ...out] : [];
}

/** The measured rows of each patch mode's whole trio (not a chain run from a later stage on). */
function wholePatchedRows(r: MicrobenchResult): ApproachRow[] {
  return r.approaches.filter((a) => a.variant.startsWith('patched') && !isFromStageVariant(a.variant) && a.nsPerPacket.length > 0);
}

/** One run's medians in the breakdown's terms. */
export function breakdownInput(r: MicrobenchResult): BreakdownInput {
  return {
    scaling: new Map(r.scaling.map((s) => [s.variant, s.medians])),
    trio: new Map(r.approaches.filter((a) => a.nsPerPacket.length > 0).map((a) => [a.variant, medianOf(a.nsPerPacket)!])),
  };
}

/** Records per kind, for the CLI's closing line. */
export function countRecords(records: readonly MicrobenchRecord[]): string {
  const micro = records.filter((r) => r.kind === 'micro').length;
  return `${micro} micro and ${records.length - micro} latency records`;
}
