/**
 * Where the patched chain's nanoseconds go, from one run's own microbenchmarks (no constant from
 * elsewhere): each part is the difference between two variants that differ in that part only.
 * A quantity derived from the raw micro records, so it lives beside their schema: the bench's
 * terminal table (lab/microbench/table.ts) and the report (lab/report/) both show it, by this code.
 *
 *   ctx spill, verdict test, ctx reload   per program   patched-inline's slope − manual-constant's
 *   bpf-to-bpf call frame                 per program   patched-subprog's slope − patched-inline's
 *   end-of-chain verdict read             per packet    manual-end-lookup − manual-constant, at each length
 *   the rest, on the trio                 per packet    what the trio's excess over manual leaves
 *                                                       after 3 × the per-program parts and one read
 *   each stage's excess                   per packet    the same excess split by program: a stage's
 *                                                       cost is the chain run from it on minus the
 *                                                       chain run from the next stage on (the
 *                                                       "…/from-<stage>" rows); patched − manual
 *
 * Slopes are through the medians of chains of at most SHORT_CHAIN programs (the regime of short
 * chains, where the trio lives). The rest is what the parts do not explain: the bodies' own code,
 * which clang compiles differently with and without a tail call in them.
 */
import { linearRegression, median } from 'simple-statistics';
import { fromStageVariant } from './variants.ts';

/** Longest chain counted as "short" for the second slope (and the breakdown's slopes). */
export const SHORT_CHAIN = 8;

/** Slope through the medians of lengths ≤ SHORT_CHAIN (null with fewer than two such lengths). */
export function shortChainSlope(medians: ReadonlyMap<number, number>): number | null {
  const pts = [...medians].filter(([len]) => len <= SHORT_CHAIN).map(([len, ns]) => [len, ns]);
  return new Set(pts.map((p) => p[0])).size < 2 ? null : linearRegression(pts).m;
}

export interface BreakdownInput {
  /** Median ns per packet per chain length, per scaling variant ("chain/manual-constant", ...). */
  scaling: ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** Median ns per packet of the trio, per approach variant ("manual", "patched-inline", ...). */
  trio: ReadonlyMap<string, number>;
}

export type StagePartId = `stage-${'filter' | 'metrics' | 'logger'}-${'inline' | 'subprog'}`;
export type CostPartId = 'spill-test' | 'call-frame' | 'end-read' | 'rest-inline' | 'rest-subprog' | StagePartId;

export interface CostPart {
  id: CostPartId;
  what: string;
  ns: number;
  per: 'program' | 'packet';
  /** The two measurements it is the difference of. */
  from: string;
}

const STAGE_ORDER = ['filter', 'metrics', 'logger'] as const;

const PART_WHAT: Record<Exclude<CostPartId, StagePartId>, string> = {
  'spill-test': 'ctx spill, verdict test, ctx reload (inline mode)',
  'call-frame': 'bpf-to-bpf call frame of the body (subprog mode)',
  'end-read': 'end-of-chain read of the remembered verdict',
  'rest-inline': 'the rest on the trio, inline mode (the bodies\' own code)',
  'rest-subprog': 'the rest on the trio, subprog mode (the bodies\' own code)',
};

/** Programs in the trio: each pays the per-program parts once. */
const TRIO_PROGRAMS = 3;

export function costBreakdown(input: BreakdownInput): CostPart[] {
  const slope = (v: string): number | null => {
    const m = input.scaling.get(v);
    return m ? shortChainSlope(m) : null;
  };
  const manual = slope('chain/manual-constant');
  const inline = slope('chain/patched-inline');
  const subprog = slope('chain/patched-subprog');
  const out: CostPart[] = [];
  const part = (id: Exclude<CostPartId, StagePartId>, ns: number, per: CostPart['per'], from: string): void => {
    out.push({ id, what: PART_WHAT[id], ns, per, from });
  };
  const spill = manual !== null && inline !== null ? inline - manual : null;
  if (spill !== null) part('spill-test', spill, 'program', `slope ≤${SHORT_CHAIN} of chain/patched-inline − chain/manual-constant`);
  const frame = inline !== null && subprog !== null ? subprog - inline : null;
  if (frame !== null) part('call-frame', frame, 'program', `slope ≤${SHORT_CHAIN} of chain/patched-subprog − chain/patched-inline`);

  const base = input.scaling.get('chain/manual-constant');
  const withRead = input.scaling.get('chain/manual-end-lookup');
  let read: number | null = null;
  if (base && withRead) {
    const diffs = [...withRead].filter(([len]) => len <= SHORT_CHAIN && base.has(len)).map(([len, ns]) => ns - base.get(len)!);
    read = diffs.length === 0 ? null : median(diffs);
    if (read !== null) part('end-read', read, 'packet', `median over lengths ≤${SHORT_CHAIN} of chain/manual-end-lookup − chain/manual-constant`);
  }

  const trioManual = input.trio.get('manual');
  const rest = (id: 'rest-inline' | 'rest-subprog', variant: string, perProgram: number | null): void => {
    const t = input.trio.get(variant);
    if (t === undefined || trioManual === undefined || perProgram === null || read === null) return;
    part(id, t - trioManual - TRIO_PROGRAMS * perProgram - read, 'packet', `${variant} − manual on the trio − ${TRIO_PROGRAMS} × per-program parts − end read`);
  };
  rest('rest-inline', 'patched-inline', spill);
  rest('rest-subprog', 'patched-subprog', spill !== null && frame !== null ? spill + frame : null);
  for (const mode of ['inline', 'subprog'] as const) out.push(...stageParts(input.trio, mode));
  return out;
}

/**
 * The trio's excess of patched over manual, program by program: a stage's own cost (its body, its
 * hop, and for the last its chain end) is the chain test-run from that stage on minus the chain
 * run from the next one on; the parts add up to the excess exactly. Empty without every suffix.
 */
function stageParts(trio: ReadonlyMap<string, number>, mode: 'inline' | 'subprog'): CostPart[] {
  const variant = `patched-${mode}`;
  const from = (v: string, k: number): number | undefined => (k >= STAGE_ORDER.length ? 0 : k === 0 ? trio.get(v) : trio.get(fromStageVariant(v, STAGE_ORDER[k]!)));
  const out: CostPart[] = [];
  for (const [k, stage] of STAGE_ORDER.entries()) {
    const [p, pNext, m, mNext] = [from(variant, k), from(variant, k + 1), from('manual', k), from('manual', k + 1)];
    if (p === undefined || pNext === undefined || m === undefined || mNext === undefined) return [];
    out.push({
      id: `stage-${stage}-${mode}`,
      what: `the ${stage}'s own excess, ${mode} mode (its body, hop${k === STAGE_ORDER.length - 1 ? ' and the chain\'s end' : ''})`,
      ns: p - pNext - (m - mNext),
      per: 'packet',
      from: `${variant} − manual, each from the ${stage} on minus from the ${STAGE_ORDER[k + 1] ?? 'end'} on`,
    });
  }
  return out;
}

/** The part that costs the most per packet of the trio (per-program parts count three times). */
export function largestPart(parts: readonly CostPart[], mode: 'inline' | 'subprog'): CostPart | null {
  // The per-stage parts split the same excess another way: counting them too would count it twice.
  const relevant = parts.filter((p) => !p.id.startsWith('stage-') && (mode === 'inline' ? p.id !== 'call-frame' && p.id !== 'rest-subprog' : p.id !== 'rest-inline'));
  const weight = (p: CostPart): number => (p.per === 'program' ? TRIO_PROGRAMS * p.ns : p.ns);
  return relevant.reduce<CostPart | null>((best, p) => (best === null || weight(p) > weight(best) ? p : best), null);
}

export function formatBreakdown(parts: readonly CostPart[]): string[] {
  if (parts.length === 0) return [];
  const width = Math.max(...parts.map((p) => p.what.length));
  return [
    'Cost breakdown of the patched chain (differences between this run\'s variants):',
    ...parts.map((p) => `  ${p.what.padEnd(width)}  ${p.ns >= 0 ? '+' : ''}${p.ns.toFixed(2)} ns per ${p.per}   (${p.from})`),
  ];
}
