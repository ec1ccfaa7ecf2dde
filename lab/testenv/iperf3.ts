/**
 * iperf3 as the test environment runs it: the options of one run and the summary of the
 * client's `-J` report (receiver-side throughput, bytes, retransmits), failing with iperf3's own
 * error when the run did not happen.
 */
import { LabError } from '../errors.ts';

export interface Iperf3Summary {
  /** Receiver-side throughput. */
  bitsPerSecond: number;
  bytesReceived: number;
  bytesSent: number;
  retransmits: number | null;
  seconds: number;
  /** iperf3 -J output of the client, as parsed JSON. */
  raw: unknown;
}

export interface Iperf3Options {
  /** Seconds of traffic (iperf3 -t). */
  seconds: number;
  serverCpu?: number;
  clientCpu?: number;
  port?: number;
  /** Extra client arguments (e.g. ['-P', '2'], ['-u', '-b', '10M']). */
  clientArgs?: string[];
  /** Send IPv4 instead of IPv6. */
  ipv4?: boolean;
}

export function parseIperf3(stdout: string, where: string): Iperf3Summary {
  let j: {
    error?: string;
    end?: {
      sum_received?: { bytes?: number; bits_per_second?: number; seconds?: number };
      sum_sent?: { bytes?: number; retransmits?: number; seconds?: number };
      sum?: { bytes?: number; bits_per_second?: number; seconds?: number };
    };
  };
  try {
    j = JSON.parse(stdout) as typeof j;
  } catch {
    throw new LabError('BENCH', `${where}: iperf3 output is not JSON: ${stdout.slice(0, 300)}`);
  }
  if (j.error) throw new LabError('BENCH', `${where}: iperf3: ${j.error}`, { remedy: 'Check that the namespaces can reach each other (ping6) and the port is free.' });
  const recv = j.end?.sum_received ?? j.end?.sum;
  const sent = j.end?.sum_sent ?? j.end?.sum;
  if (!recv || recv.bits_per_second === undefined) throw new LabError('BENCH', `${where}: iperf3 report has no end.sum_received`);
  return {
    bitsPerSecond: recv.bits_per_second,
    bytesReceived: recv.bytes ?? 0,
    bytesSent: sent?.bytes ?? 0,
    retransmits: j.end?.sum_sent?.retransmits ?? null,
    seconds: recv.seconds ?? 0,
    raw: j,
  };
}
