/**
 * `npm run bench -- latency [--kernel host|<version>]`: request/response latency through each
 * approach (pings across the veth pair, round-trip percentiles in µs). On the host it needs
 * nothing but root; a catalog kernel is booted as for the matrix. A benchmark: it reports, never
 * judges; the difference to `none` is what each chain adds to one packet's round trip.
 */
import { Command, InvalidArgumentError } from 'commander';
import { measureLatency } from '../bench/latency.ts';
import type { LatencySummary } from '../results/rtt-summary.ts';
import type { ApproachName } from '../results/record.ts';
import { interruptible, positiveInt } from '../ui/cli.ts';
import { consoleSink } from '../ui/render.ts';
import { parseApproaches } from './matrix.ts';

function interval(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.001 || n > 10) throw new InvalidArgumentError(`expected seconds between 0.001 and 10, got "${value}"`);
  return n;
}

const us = (v: number | null): string => (v === null ? '-' : v.toFixed(1));

/** The terminal table: one row per approach, and each percentile's difference to `none`. */
export function formatLatency(kernel: string, rows: readonly LatencySummary[]): string[] {
  const none = rows.find((r) => r.approach === 'none');
  const lines = [`${kernel}: round trip in µs (ping across the veth pair; p99 needs 100 replies, p99.9 1000)`];
  lines.push(`${'approach'.padEnd(12)} ${'n'.padStart(6)} ${'min'.padStart(8)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'p99.9'.padStart(8)}  p50 − none`);
  for (const r of rows) {
    const diff = none && r !== none && r.p50Us !== null && none.p50Us !== null ? `${(r.p50Us - none.p50Us).toFixed(1)}` : '';
    lines.push(`${r.approach.padEnd(12)} ${String(r.received).padStart(6)} ${us(r.minUs).padStart(8)} ${us(r.p50Us).padStart(8)} ${us(r.p99Us).padStart(8)} ${us(r.p999Us).padStart(8)}  ${diff}`);
  }
  return lines;
}

export function benchLatencyCommand(): Command {
  return new Command('latency')
    .description('request/response latency through each approach: pings across the veth pair with the approach attached, round-trip p50/p99/p99.9 in µs')
    .option('--kernel <version>', '"host" or a catalog kernel booted in a VM', 'host')
    .option('--approaches <list>', 'comma-separated approaches', parseApproaches, ['none', 'fused', 'manual', 'patched'] as ApproachName[])
    .option('--count <n>', 'pings per approach (p99.9 is given from 1000)', positiveInt, 1000)
    .option('--interval <s>', 'seconds between pings', interval, 0.005)
    .option('--prefix <name>', 'name prefix for namespaces, veths and pins', 'xlat')
    .action(async (o: { kernel: string; approaches: ApproachName[]; count: number; interval: number; prefix: string }) => {
      const sink = consoleSink();
      const intr = interruptible(sink, 'stopping after the approach in flight');
      const { openKernelSession } = await import('../bench/open-session.ts');
      const session = await openKernelSession(o.kernel, { prefix: o.prefix, progress: sink, signal: intr.signal });
      const rows: LatencySummary[] = [];
      try {
        for (const [i, name] of o.approaches.entries()) {
          if (intr.signal.aborted) break;
          sink({ kind: 'log', level: 'info', message: `${session.kernel}: ${name} (${i + 1}/${o.approaches.length}): ${o.count} pings` });
          rows.push(await measureLatency(session, name, { count: o.count, intervalS: o.interval }));
        }
      } finally {
        await session.dispose();
        intr.release();
        sink.stop();
      }
      for (const l of formatLatency(session.kernel, rows)) process.stdout.write(`${l}\n`);
    });
}
