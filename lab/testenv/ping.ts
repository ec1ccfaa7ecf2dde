/**
 * ping's own report read back: one round-trip time per echo reply (iputils prints `time=0.052 ms`
 * with microsecond resolution) and its summary line. Duplicated replies (`DUP!`) are not new
 * round trips and are left out; replies are keyed by icmp_seq so a late reply is counted once.
 */
export interface PingReplies {
  transmitted: number;
  received: number;
  /** Round-trip time of each echo reply, in microseconds, in the order ping printed them. */
  rttUs: number[];
}

const REPLY = /icmp_seq=(\d+)\b.*?\btime[=<]([\d.]+) ms(.*)$/;
const SUMMARY = /(\d+) packets transmitted, (\d+) (?:packets )?received/;

/** Parses iputils ping output; null when it has no summary line (ping did not run to its end). */
export function parsePingReplies(stdout: string): PingReplies | null {
  const summary = SUMMARY.exec(stdout);
  if (!summary) return null;
  const seen = new Set<number>();
  const rttUs: number[] = [];
  for (const line of stdout.split('\n')) {
    const m = REPLY.exec(line);
    if (!m || /\bDUP!/.test(m[3]!)) continue;
    const seq = Number(m[1]);
    if (seen.has(seq)) continue;
    seen.add(seq);
    rttUs.push(Math.round(Number(m[2]) * 1000 * 1000) / 1000);
  }
  return { transmitted: Number(summary[1]), received: Number(summary[2]), rttUs };
}
