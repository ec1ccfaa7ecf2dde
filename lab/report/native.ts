/**
 * The native baseline in the report: per kernel, the trio as a kernel module against the BPF
 * variants measured on the same packet in the same run (ratios of medians with bootstrap CIs), and
 * the module's insertion time next to the BPF objects' load time; or why native was not measured.
 */
import type { MicroRecord } from '../results/record.ts';
import { NATIVE_CHAIN_VARIANT, NATIVE_COMPARED, NATIVE_VARIANT } from '../results/variants.ts';
import { fmtNum } from './format.ts';
import type { KernelInfo } from './kernels.ts';
import type { LatencyGroup } from './micro.ts';
import { APPROACH_LABEL } from './metrics.ts';
import { bootstrapMedianRatioCi, summarize, type Summary } from './stats.ts';
import { banners, type Table } from './table.ts';
import type { ReportModel } from './model.ts';

export interface NativeRow {
  kernel: string;
  tcg: boolean;
  /** null: not measured, see reason. */
  native: Summary | null;
  reason: string | null;
  variants: { variant: string; median: number; ratio: number; ci: [number, number] | null }[];
  insertMs: Summary | null;
  /** Median object load of each approach on this kernel (ms), from the load-time part. */
  objectLoadMs: { approach: string; median: number }[];
  /**
   * The seed study's depth experiment at the longest length both were measured at: a chain of
   * `length` programs joined by constant tail calls against `length` nested native calls.
   */
  chain: { length: number; tailCalls: number; nativeCalls: number; ratio: number; ci: [number, number] | null } | null;
}

/** The tail-call chain the native chain is set against. */
const TAIL_CALL_CHAIN = 'chain/manual-constant';

const jit = (r: MicroRecord) => (r.execution ?? 'jit') === 'jit';

/** One row per kernel that has a native record (measured or not); none for a run without native. */
export function nativeRows(micro: readonly MicroRecord[], latency: readonly LatencyGroup[], kernels: readonly KernelInfo[], resamples?: number): NativeRow[] {
  const rows: NativeRow[] = [];
  for (const k of kernels) {
    const all = micro.filter((r) => r.kernel === k.label && jit(r));
    // The trio per approach: one record per variant whatever programs it runs (manual: 3).
    const mine = all.filter((r) => !r.variant.startsWith('chain/'));
    const nat = mine.filter((r) => r.variant === NATIVE_VARIANT);
    if (nat.length === 0) continue;
    const values = nat.flatMap((r) => r.nsPerPacket);
    const native = summarize(values, `native/${k.label}`, resamples);
    const insertMs = summarize(nat.flatMap((r) => r.insertMs ?? []), `native-insert/${k.label}`, resamples);
    const row: NativeRow = {
      kernel: k.label,
      tcg: k.tcg,
      native,
      reason: native ? null : (nat.find((r) => r.reason)?.reason ?? 'no repetition recorded'),
      variants: [],
      insertMs,
      objectLoadMs: latency.filter((l) => l.kernel === k.label && l.operation === 'object-load').map((l) => ({ approach: l.approach, median: l.stats.median })),
      chain: depthPair(all, k.label, resamples),
    };
    if (native && native.median > 0) {
      for (const v of NATIVE_COMPARED) {
        const xs = mine.filter((r) => r.variant === v).flatMap((r) => r.nsPerPacket);
        const s = summarize(xs, `native-vs/${k.label}/${v}`, resamples);
        if (!s) continue;
        row.variants.push({ variant: v, median: s.median, ratio: s.median / native.median, ci: bootstrapMedianRatioCi(values, xs, `native/${k.label}/${v}`, resamples) });
      }
    }
    rows.push(row);
  }
  return rows;
}

function depthPair(recs: readonly MicroRecord[], kernel: string, resamples?: number): NativeRow['chain'] {
  const at = (variant: string, len: number) => recs.filter((r) => r.variant === variant && r.chainLength === len).flatMap((r) => r.nsPerPacket);
  const lengths = [...new Set(recs.filter((r) => r.variant === NATIVE_CHAIN_VARIANT && r.nsPerPacket.length > 0).map((r) => r.chainLength))].sort((a, b) => b - a);
  for (const length of lengths) {
    const nativeXs = at(NATIVE_CHAIN_VARIANT, length);
    const tailXs = at(TAIL_CALL_CHAIN, length);
    const n = summarize(nativeXs, `native-chain/${kernel}/${length}`, resamples);
    const t = summarize(tailXs, `tail-chain/${kernel}/${length}`, resamples);
    if (!n || !t || n.median <= 0) continue;
    return { length, tailCalls: t.median, nativeCalls: n.median, ratio: t.median / n.median, ci: bootstrapMedianRatioCi(nativeXs, tailXs, `native-chain/${kernel}/${length}`, resamples) };
  }
  return null;
}

const ci = (c: [number, number] | null) => (c ? `[${c[0].toFixed(2)}, ${c[1].toFixed(2)}]` : '');

export function nativeTables(model: ReportModel): Table[] {
  if (model.native.length === 0) return [];
  const kernels = model.native.map((r) => r.kernel);
  const cost: Table = {
    id: 'native-ratios',
    title: 'Native baseline: the trio as a kernel module against BPF (same packet, BPF_PROG_TEST_RUN\'s way)',
    banners: banners(model, kernels),
    caption:
      'The module includes the fused program\'s source (the parser and the three jobs are one implementation) and runs it on a copy of the representative packet `repeat` times with preemption off, timed with ktime_get_ns, as BPF_PROG_TEST_RUN times a program. Ratio = median of the variant / median of native, 95% bootstrap CI. "Chain of N": the seed study\'s depth experiment, N programs that only pass the packet on, joined by constant-index tail calls, against N nested calls of a native function that only calls the next (its cost per hop is in the cost-per-hop table as chain/native-call). A kernel without modules or headers says why.',
    header: ['Linux', 'Variant', 'n', 'Median (ns per packet)', '÷ native', '95% CI', 'Note'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'l'],
    rows: model.native.flatMap((r): string[][] => {
      if (!r.native) return [[r.kernel, 'native', '0', '—', '', '', `not measured: ${r.reason ?? ''}`]];
      return [
        [r.kernel, 'native (kernel module)', String(r.native.n), fmtNum(r.native.median), '1.00', '', r.tcg ? 'TCG' : ''],
        ...r.variants.map((v) => [r.kernel, v.variant, '', fmtNum(v.median), v.ratio.toFixed(2), ci(v.ci), r.tcg ? 'TCG' : '']),
        ...(r.chain
          ? [
              [r.kernel, `chain of ${r.chain.length}: nested native calls`, '', fmtNum(r.chain.nativeCalls), '1.00', '', r.tcg ? 'TCG' : ''],
              [r.kernel, `chain of ${r.chain.length}: ${TAIL_CALL_CHAIN} (tail calls)`, '', fmtNum(r.chain.tailCalls), r.chain.ratio.toFixed(2), ci(r.chain.ci), `÷ the nested calls${r.tcg ? '; TCG' : ''}`],
            ]
          : []),
      ];
    }),
    footnotes: [],
  };
  const load: Table = {
    id: 'native-load',
    title: 'Native baseline: inserting the module against loading the BPF objects',
    banners: banners(model, kernels),
    caption: 'Milliseconds, medians over the cycles: insmod\'s wall time (its exec included) against libbpf loading each approach\'s objects (maps, BTF, verification, JIT).',
    header: ['Linux', 'What', 'Median (ms)'],
    align: ['l', 'l', 'r'],
    rows: model.native.flatMap((r): string[][] => [
      ...(r.insertMs ? [[r.kernel, 'native: insmod', fmtNum(r.insertMs.median)]] : []),
      ...r.objectLoadMs.map((o) => [r.kernel, `${APPROACH_LABEL[o.approach as keyof typeof APPROACH_LABEL] ?? o.approach}: object load`, fmtNum(o.median)]),
    ]),
    footnotes: [],
  };
  return [cost, ...(load.rows.length > 0 ? [load] : [])];
}
