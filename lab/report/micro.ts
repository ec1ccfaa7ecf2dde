/**
 * The microbenchmark and latency records grouped for the report: per kernel and variant, ns per
 * packet at each chain length with the fitted cost per hop (all lengths, and chains of at most
 * SHORT_CHAIN programs), and per approach and operation, load/replace/detach milliseconds.
 */
import { SHORT_CHAIN } from '../results/breakdown.ts';
import type { ApproachName, LatencyRecord, MicroRecord } from '../results/record.ts';
import type { KernelInfo } from './kernels.ts';
import { APPROACH_ORDER } from './metrics.ts';
import { fitLine, summarize, type LinearFit, type Summary } from './stats.ts';

export interface MicroGroup {
  kernel: string;
  variant: string;
  /**
   * 'scaling': a chain of N copies of a trivial program (variant "chain/…", or measured at several
   * lengths); 'approach': one approach on the representative packet (one length).
   */
  kind: 'scaling' | 'approach';
  hop: string;
  /** Who timed it: BPF_PROG_TEST_RUN, or a clock program before and after the chain under live traffic. */
  timing: 'test-run' | 'in-band';
  tcg: boolean;
  points: { chainLength: number; repeat: number; stats: Summary }[];
  /** Cost per added hop, for variants measured at two or more chain lengths. */
  fit: LinearFit | null;
  /**
   * The same through chains of at most SHORT_CHAIN programs only: one line over 1..33 can hide two
   * regimes (seen on the development host: ~1.5 ns per hop up to 8 programs, ~8 ns beyond).
   */
  shortFit: LinearFit | null;
}

export interface LatencyGroup {
  kernel: string;
  approach: ApproachName;
  operation: LatencyRecord['operation'];
  tcg: boolean;
  stats: Summary;
}

/**
 * A variant named "chain/…" (the bench's chain-length scaling) or measured at two or more lengths is a
 * scaling series (ns vs length, fitted cost per hop); any other is a per-approach measurement on the
 * representative packet (bar chart). The fit goes through the median at each length.
 */
export function microGroups(recs: MicroRecord[], kernelInfo: Map<string, KernelInfo>, resamples?: number): MicroGroup[] {
  const map = new Map<string, { kernel: string; variant: string; hops: Set<string>; inBand: boolean; byLen: Map<number, { values: number[]; repeat: number }> }>();
  for (const r of recs) {
    // The interpreter's numbers are another variant, never pooled with the JIT's.
    const variant = r.execution === 'interpreter' ? `${r.variant} (interpreter)` : r.variant;
    const k = `${r.kernel}\u0000${variant}`;
    let g = map.get(k);
    if (!g) map.set(k, (g = { kernel: r.kernel, variant, hops: new Set(), inBand: false, byLen: new Map() }));
    g.hops.add(r.hop);
    g.inBand ||= r.timing === 'in-band';
    const e = g.byLen.get(r.chainLength) ?? { values: [], repeat: r.repeat };
    e.values.push(...r.nsPerPacket);
    g.byLen.set(r.chainLength, e);
  }
  const out: MicroGroup[] = [];
  for (const g of map.values()) {
    const points = [...g.byLen.entries()]
      .sort((a, b) => a[0] - b[0])
      .flatMap(([len, e]) => {
        const stats = summarize(e.values, `micro/${g.kernel}/${g.variant}/${len}`, resamples);
        return stats ? [{ chainLength: len, repeat: e.repeat, stats }] : [];
      });
    // Variants with no repetition at all (unsupported) are reported as flags, not drawn.
    if (points.length === 0) continue;
    const kind = g.variant.startsWith('chain/') || points.length >= 2 ? 'scaling' : 'approach';
    out.push({
      kernel: g.kernel,
      variant: g.variant,
      kind,
      hop: [...g.hops].join('+'),
      timing: g.inBand ? 'in-band' : 'test-run',
      tcg: kernelInfo.get(g.kernel)?.tcg ?? false,
      points,
      fit: kind === 'scaling' && points.length >= 2 ? fitLine(points.map((p) => [p.chainLength, p.stats.median] as const)) : null,
      shortFit: kind === 'scaling' ? shortFit(points) : null,
    });
  }
  const order = [...kernelInfo.keys()];
  return out.sort((a, b) => order.indexOf(a.kernel) - order.indexOf(b.kernel) || a.variant.localeCompare(b.variant));
}

function shortFit(points: MicroGroup['points']): LinearFit | null {
  const short = points.filter((p) => p.chainLength <= SHORT_CHAIN);
  return new Set(short.map((p) => p.chainLength)).size >= 2 ? fitLine(short.map((p) => [p.chainLength, p.stats.median] as const)) : null;
}

export function latencyGroups(recs: LatencyRecord[], kernelInfo: Map<string, KernelInfo>, resamples?: number): LatencyGroup[] {
  const map = new Map<string, { kernel: string; approach: ApproachName; operation: LatencyRecord['operation']; ms: number[] }>();
  for (const r of recs) {
    const k = `${r.kernel}\u0000${r.approach}\u0000${r.operation}`;
    const g = map.get(k) ?? { kernel: r.kernel, approach: r.approach, operation: r.operation, ms: [] };
    g.ms.push(...r.ms);
    map.set(k, g);
  }
  const order = [...kernelInfo.keys()];
  return [...map.values()]
    .flatMap((g) => {
      const stats = summarize(g.ms, `latency/${g.kernel}/${g.approach}/${g.operation}`, resamples);
      return stats ? [{ kernel: g.kernel, approach: g.approach, operation: g.operation, tcg: kernelInfo.get(g.kernel)?.tcg ?? false, stats }] : [];
    })
    .sort(
      (a, b) =>
        order.indexOf(a.kernel) - order.indexOf(b.kernel) ||
        a.operation.localeCompare(b.operation) ||
        APPROACH_ORDER.indexOf(a.approach) - APPROACH_ORDER.indexOf(b.approach),
    );
}
