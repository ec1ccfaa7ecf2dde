/**
 * The report's vocabulary: the approaches in the thesis's order with their labels, every metric a
 * cell can show (label, unit, count or ratio, which table), and the thresholds every part shares.
 */
import { APPROACH_NAMES, type ApproachHook, type ApproachName } from '../results/record.ts';
import { approachOrder } from './hooks.ts';
import { BOOTSTRAP_RESAMPLES } from './stats.ts';

/**
 * The thesis's order first (Manuelle, XDP Dispatcher, Chaîne BPF), then what we add (fused, none);
 * then the TC approaches in the same pattern.
 */
export const APPROACH_ORDER: readonly ApproachName[] = [...approachOrder('xdp'), ...approachOrder('tc')];
/** Labels of the approaches known when this was written; one registered later reads as its name. */
const KNOWN_LABEL: Partial<Record<ApproachName, string>> = {
  manual: 'Manual',
  dispatcher: 'XDP Dispatcher',
  patched: 'BPF chain (patched)',
  fused: 'Fused (one program)',
  none: 'None (no XDP)',
  'tc-none': 'TC: clsact, no filter',
  'tc-fused': 'TC: fused (one cls_bpf program)',
  'tc-manual': 'TC: manual tail calls',
  'tc-patched': 'TC: BPF chain (patched)',
  'tc-filters': 'TC: three cls_bpf priorities',
  tcx: 'TC: three tcx programs (bpf_mprog)',
};

export const APPROACH_LABEL: Record<ApproachName, string> = Object.fromEntries(APPROACH_NAMES.map((a) => [a, KNOWN_LABEL[a] ?? a])) as Record<ApproachName, string>;

export type MetricKey =
  | 'throughputGbps'
  | 'calls'
  | 'packets'
  | 'ns'
  | 'cycles'
  | 'nsPerCall'
  | 'nsPerPacket'
  | 'nsPerAddedPacket'
  | 'nsPerPoll'
  | 'cyclesPerCall'
  | 'cyclesPerPacket'
  | 'packetsPerCall'
  | 'effectiveGhz'
  | 'retransmits'
  | 'statsRunCnt'
  | 'statsRunTimeNs'
  | 'statsNsPerPacket';

export interface MetricInfo {
  label: string;
  unit: string;
  /** Counts print as grouped integers; ratios with decimals. */
  count: boolean;
  /** Which of our extended tables shows it. */
  table: '5.1' | '5.2' | 'extra';
}
export const METRICS: Record<MetricKey, MetricInfo> = {
  calls: { label: 'veth_poll calls per run (the thesis\'s "packets")', unit: 'calls', count: true, table: '5.1' },
  packets: { label: 'packets per run (sum of veth_poll return values)', unit: 'packets', count: true, table: '5.1' },
  ns: { label: 'ns in veth_poll per run', unit: 'ns', count: true, table: '5.1' },
  cycles: { label: 'cycles in veth_poll per run', unit: 'cycles', count: true, table: '5.1' },
  throughputGbps: { label: 'throughput', unit: 'Gb/s', count: false, table: '5.1' },
  nsPerCall: { label: 'ns per call (the thesis\'s "per packet")', unit: 'ns', count: false, table: '5.2' },
  nsPerPacket: { label: 'ns per packet', unit: 'ns', count: false, table: '5.2' },
  cyclesPerCall: { label: 'cycles per call (the thesis\'s "per packet")', unit: 'cycles', count: false, table: '5.2' },
  cyclesPerPacket: { label: 'cycles per packet', unit: 'cycles', count: false, table: '5.2' },
  nsPerAddedPacket: { label: 'ns per added packet (slope of a veth_poll call\'s ns over the packets it took)', unit: 'ns', count: false, table: 'extra' },
  nsPerPoll: { label: 'ns of a veth_poll call itself (intercept of the same line)', unit: 'ns', count: false, table: 'extra' },
  packetsPerCall: { label: 'packets per veth_poll call', unit: 'packets', count: false, table: 'extra' },
  effectiveGhz: { label: 'effective GHz (cycles / ns)', unit: 'GHz', count: false, table: 'extra' },
  retransmits: { label: 'iperf3 retransmits per run', unit: 'segments', count: true, table: 'extra' },
  statsRunCnt: { label: 'XDP program runs per run (BPF statistics run_cnt)', unit: 'runs', count: true, table: '5.1' },
  statsRunTimeNs: { label: 'ns in the XDP program per run (BPF statistics run_time_ns)', unit: 'ns', count: true, table: '5.1' },
  statsNsPerPacket: { label: 'ns per packet in the XDP program (BPF statistics)', unit: 'ns', count: false, table: '5.2' },
};
/** The statistics' metrics in the TC section's words: one run of a TC program is one skb. */
const TC_LABEL: Partial<Record<MetricKey, string>> = {
  statsRunCnt: 'TC program runs per run, i.e. skbs (BPF statistics run_cnt)',
  statsRunTimeNs: 'ns in the TC programs per run (BPF statistics run_time_ns)',
  statsNsPerPacket: 'ns per skb in the TC programs (BPF statistics)',
};
export function metricLabel(m: MetricKey, hook: ApproachHook): string {
  return (hook === 'tc' ? TC_LABEL[m] : undefined) ?? METRICS[m].label;
}
/** The metrics taken from BPF run-time statistics (absent from results written before them). */
export const STATS_METRICS: readonly MetricKey[] = ['statsRunCnt', 'statsRunTimeNs', 'statsNsPerPacket'];
export const METRIC_KEYS = Object.keys(METRICS) as MetricKey[];
export const MIN_RUNS = 5;
/** How every CI of the report is drawn, in words. */
export const BOOTSTRAP_NOTE = `${BOOTSTRAP_RESAMPLES} resamples, seeded from the kernel, metric and pair: the same data gives the same interval`;

/** Metrics worth a table or figure in this model: the statistics' only where some run recorded them. */
export function shownMetric(model: { bpfStatsRecorded: boolean }, m: MetricKey): boolean {
  return model.bpfStatsRecorded || !STATS_METRICS.includes(m);
}
