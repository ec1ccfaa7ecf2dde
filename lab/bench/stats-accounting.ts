/**
 * How a measured interval's BPF statistics become the chain's figures on each hook: which programs
 * are read (XDP: the entry found on the interface; TC: the approach's own list, attached first),
 * whose run times add up (TC: every program the kernel runs itself on ingress), and the sentence
 * a TC record carries about what one count is (an skb).
 */
import { LabError } from '../errors.ts';
import { kernelWalksChain, type Description, type LoadedProgram } from '../approaches/approach.ts';
import type { Target } from '../target.ts';

/** A program whose counters are read, as bpf-stats.ts reads them. */
interface StatsProgramRef {
  role: string;
  id: number;
  name: string;
}

/**
 * How an interval's deltas become the chain's figures. XDP: the entry program's own (tail calls
 * and freplace run inside its accounting). TC: the kernel runs each program attached to ingress
 * (cls_bpf priorities, tcx) itself and accounts each separately, so the first `summed` programs'
 * run times add up; a tail call still runs inside its caller's accounting.
 */
export type StatsAccounting = { hook: 'xdp' } | { hook: 'tc'; summed: number };
export const XDP_ACCOUNTING: StatsAccounting = { hook: 'xdp' };

/**
 * The accounting of a TC approach from its description: the kernel walks its programs itself
 * (kernelWalksChain: every program is attached and run by cls_bpf or tcx), or its first program is the
 * only one attached and reaches the others by tail calls (or runs them inline).
 */
export function tcAccounting(d: Pick<Description, 'hop' | 'programs'>): StatsAccounting {
  return { hook: 'tc', summed: kernelWalksChain(d.hop) ? Math.max(1, d.programs.length) : 1 };
}

export function tcAccountingNote(summed: number): string {
  const unit =
    'TC counts skbs, not frames: with TSO/GSO on the sending veth an skb crosses the pair unsegmented and can carry tens of KB (see the record\'s offloads and iperf3 bytes over the count), so ns per packet is ns per skb';
  return summed > 1
    ? `run time is the sum of the ${summed} programs the kernel runs one after another on ingress, over the first one's run count; the kernel's own walk between them is not included. ${unit}`
    : `run time and run count of the program attached to ingress, tail calls included. ${unit}`;
}

/** The programs of a TC approach, as its description lists them (attached first). */
export function tcStatsPrograms(target: Target, described: readonly LoadedProgram[]): StatsProgramRef[] {
  if (described.length === 0) {
    throw new LabError('BENCH', `${target.name}: the TC approach describes no program: no entry program to take statistics of`, {
      remedy: 'Check `tc filter show dev <if> ingress` in the namespace; the approach should have attached.',
    });
  }
  return described.map((p) => ({ role: p.role, id: p.id, name: p.name }));
}

