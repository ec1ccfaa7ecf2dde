/**
 * Our numbers beside the thesis's (Brodeur 2023, Tables 5.1 and 5.2, published in report/thesis.ts):
 * each published value against our thesis-layout value of the same approach on the kernel of the
 * same major.minor version, with the relative difference and why a value is missing.
 */
import type { ApproachName } from '../results/record.ts';
import type { ThesisRow } from './cells.ts';
import { kernelWarning, type KernelInfo } from './kernels.ts';
import { APPROACH_LABEL } from './metrics.ts';
import type { Reference } from './thesis.ts';

export interface ComparisonRow {
  kernel: string;
  ourKernel: string | null;
  approach: ApproachName;
  metric: 'packets_total' | 'time_total_ns' | 'cycles_total' | 'throughput_gbps' | 'time_per_packet_ns' | 'cycles_per_packet';
  thesis: number;
  ours: number | null;
  relDiff: number | null;
  note: string;
}

export function compareWithThesis(table: ThesisRow[], kernels: KernelInfo[], ref: Reference): ComparisonRow[] {
  const out: ComparisonRow[] = [];
  for (const r51 of ref.table51) {
    const r52 = ref.table52.find((r) => r.kernel === r51.kernel && r.approach === r51.approach);
    const ourK = kernels.find((k) => k.version?.series === r51.kernel) ?? null;
    const row = ourK ? table.find((t) => t.kernel === ourK.label && t.approach === r51.approach) ?? null : null;
    const note = !ourK
      ? `no kernel ${r51.kernel} in this run`
      : !row || row.n === 0
        ? `${APPROACH_LABEL[r51.approach]} not measured on ${ourK.label}${row?.reason ? ` (${row.reason})` : ''}`
        : (kernelWarning(ourK) ?? '');
    const add = (metric: ComparisonRow['metric'], thesis: number, ours: number | null) => {
      out.push({
        kernel: r51.kernel,
        ourKernel: ourK?.label ?? null,
        approach: r51.approach,
        metric,
        thesis,
        ours,
        relDiff: ours === null ? null : (ours - thesis) / thesis,
        note,
      });
    };
    add('packets_total', r51.packetsTotal, row?.packetsTotal ?? null);
    add('time_total_ns', r51.timeTotalNs, row?.timeTotalNs ?? null);
    add('cycles_total', r51.cyclesTotal, row?.cyclesTotal ?? null);
    add('throughput_gbps', r51.throughputGbps, row?.throughputGbps ?? null);
    if (r52) {
      add('time_per_packet_ns', r52.timePerPacketNs, row?.timePerPacketNs ?? null);
      add('cycles_per_packet', r52.cyclesPerPacket, row?.cyclesPerPacket ?? null);
    }
  }
  return out;
}
