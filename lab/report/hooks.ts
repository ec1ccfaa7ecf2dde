/**
 * The report's two sections, one per hook: which approaches each shows and in what order, its
 * references (manual and fused) and baseline (none), what one BPF program run counts there (a
 * packet on XDP, an skb on TC), and the raw results of one hook taken out of a run. Every TC name
 * comes from the results schema, so an approach registered later lands in its section unnamed here.
 */
import { APPROACH_NAMES, approachesOfHook, hookOfApproach, type ApproachHook, type ApproachName } from '../results/record.ts';
import type { LoadedRun } from './load.ts';

export interface HookProfile {
  hook: ApproachHook;
  /** The section's heading on the page and in report.md. */
  title: string;
  /** The chain of tail calls every other approach is compared with first. */
  manual: ApproachName;
  /** One program doing the trio's work: the floor a chain is compared with second. */
  fused: ApproachName;
  /** No program at all: the throughput every approach is divided by. */
  baseline: ApproachName;
  /** What one run of the attached program handles. */
  unit: 'packet' | 'skb';
  /** Prefix of every table id, file name and figure id of the section ('' keeps XDP's as they were). */
  idPrefix: string;
}

export const XDP_PROFILE: HookProfile = {
  hook: 'xdp',
  title: 'XDP (the thesis)',
  manual: 'manual',
  fused: 'fused',
  baseline: 'none',
  unit: 'packet',
  idPrefix: '',
};

export const TC_PROFILE: HookProfile = {
  hook: 'tc',
  title: 'TC ingress (cls_bpf, tcx)',
  manual: 'tc-manual',
  fused: 'tc-fused',
  baseline: 'tc-none',
  unit: 'skb',
  idPrefix: 'tc-',
};

export function profileOf(hook: ApproachHook): HookProfile {
  return hook === 'tc' ? TC_PROFILE : XDP_PROFILE;
}

/**
 * What the TC section says before its tables: what a TC number is, and why the thesis is not beside it.
 */
export const TC_NOTE =
  'TC counts skbs, not frames: the BPF statistics count one run per skb, and with GSO/GRO one skb may carry many ' +
  'MTU-size packets, so "ns per skb" here is a per-skb cost, not comparable per packet with the XDP section. ' +
  'The veth_poll probe does not apply on TC (the numbers are the programs\' own BPF run-time statistics). ' +
  'The thesis has no TC numbers: the comparison with the thesis is XDP-only.';

/**
 * The thesis's order within a hook: manual first, then every other chain in the order the schema
 * registers them, then fused, then the baseline (for XDP: manual, dispatcher, patched, fused, none).
 */
export function approachOrder(hook: ApproachHook): ApproachName[] {
  const p = profileOf(hook);
  const rest = approachesOfHook(hook).filter((a) => a !== p.manual && a !== p.fused && a !== p.baseline);
  return [p.manual, ...rest, p.fused, p.baseline];
}

/** Whether the approach is its hook's no-program baseline (none, tc-none). */
export function isBaseline(a: ApproachName): boolean {
  return profileOf(hookOfApproach(a)).baseline === a;
}

/**
 * The hook of a microbenchmark variant: the hook of the longest approach name it is, or begins
 * with followed by "-" ("patched-inline" → patched, "tc-patched-inline" → tc-patched), after an
 * optional "chain/" of the chain-length scaling. A variant naming no approach ("trio-patched",
 * "chain/freplace") is the XDP bench's own.
 */
export function variantHook(variant: string): ApproachHook {
  const v = variant.startsWith('chain/') ? variant.slice('chain/'.length) : variant;
  const named = APPROACH_NAMES.filter((a) => v === a || v.startsWith(`${a}-`)).sort((a, b) => b.length - a.length);
  return named[0] ? hookOfApproach(named[0]) : 'xdp';
}

/** The records of one hook: runs, cells, latencies and round trips by approach, microbenchmarks by variant. */
export function runOfHook(run: LoadedRun, hook: ApproachHook): LoadedRun {
  return {
    ...run,
    runs: run.runs.filter((r) => hookOfApproach(r.approach) === hook),
    cells: run.cells.filter((c) => hookOfApproach(c.approach) === hook),
    micro: run.micro.filter((m) => variantHook(m.variant) === hook),
    latency: run.latency.filter((l) => hookOfApproach(l.approach) === hook),
    rtt: run.rtt.filter((r) => r.hook === hook),
    microReasons: run.microReasons.filter((m) => variantHook(m.variant) === hook),
  };
}

/** Whether a run holds any record of the hook. */
export function hasHook(run: LoadedRun, hook: ApproachHook): boolean {
  const r = runOfHook(run, hook);
  return r.runs.length + r.cells.length + r.micro.length + r.latency.length + r.rtt.length > 0;
}

/** Kernels any record of the run names (provenance files aside). */
export function kernelsWithRecords(run: LoadedRun): Set<string> {
  return new Set([...run.runs, ...run.cells, ...run.micro, ...run.latency, ...run.rtt].map((r) => r.kernel));
}
