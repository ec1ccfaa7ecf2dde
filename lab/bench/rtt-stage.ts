/**
 * The matrix's round-trip stage: on each kernel, after its iperf3 cells, pings across the veth pair
 * through every approach of the run (lab/bench/latency.ts), one RttRecord per approach. Before the
 * microbenchmarks, which take longer and can take a guest down with them.
 *
 * The records of a kernel are appended together once every approach was tried, like the
 * microbenchmarks', so a kill part way leaves none and a resume measures them again. An approach the
 * kernel cannot run, or whose pings do not all come back, gets its record with no round trips and
 * the reason: never a silent gap in the latency table.
 */
import { errorMessage, isLabError } from '../errors.ts';
import { appendRecord } from '../results/jsonl.ts';
import { hookOfApproach, measuredOnFields, type ApproachName, type RttRecord } from '../results/record.ts';
import type { KernelSession } from './kernel-session.ts';
import { measureRoundTrips, type LatencyOptions } from './latency.ts';
import { MIN_SAMPLES_FOR } from '../results/rtt-summary.ts';
import type { KernelStage, KernelStageContext } from './matrix.ts';

/** Quick: enough replies for p99, not for p99.9 (the table says so); otherwise enough for both. */
export function rttSettings(quick: boolean): LatencyOptions {
  return { count: quick ? MIN_SAMPLES_FOR.p99 * 2 : MIN_SAMPLES_FOR.p999, intervalS: 0.005 };
}

function record(s: KernelSession, ctx: KernelStageContext, approach: ApproachName, o: LatencyOptions, rttUs: number[], reason?: string): RttRecord {
  return {
    kind: 'rtt',
    ...measuredOnFields(s.target, ctx.runId, s.kernel),
    approach,
    hook: hookOfApproach(approach),
    sent: reason === undefined ? o.count : 0,
    intervalS: o.intervalS,
    rttUs,
    ...(reason === undefined ? {} : { reason }),
  };
}

/** Round trips through every approach of the run on one kernel, once per run id. */
export function rttStage(): KernelStage {
  const done = new Set<string>();
  return {
    pending: (kernel, recorded) => !done.has(kernel) && !recorded.has('rtt'),
    async run(s, ctx) {
      const o = rttSettings(ctx.quick);
      const records: RttRecord[] = [];
      for (const [i, name] of ctx.approaches.entries()) {
        ctx.checkAbort();
        ctx.emit(`${s.kernel}: round trips through ${name} (${i + 1}/${ctx.approaches.length}): ${o.count} pings`);
        try {
          records.push(record(s, ctx, name, o, await measureRoundTrips(s, name, o)));
        } catch (e) {
          if (isLabError(e, 'INTERRUPTED')) throw e;
          const reason = isLabError(e, 'UNSUPPORTED') ? `not measured: ${e.message}` : `failed: ${errorMessage(e)}`;
          if (!isLabError(e, 'UNSUPPORTED')) ctx.warn(`${s.kernel}: round trips through ${name} ${reason}`);
          records.push(record(s, ctx, name, o, [], reason));
        }
      }
      for (const r of records) await appendRecord(ctx.rawFile, r);
      done.add(s.kernel);
    },
  };
}
