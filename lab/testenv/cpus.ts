/**
 * Which CPUs the test environment's iperf3 server and client are pinned to: two isolated CPUs
 * where the target has them, else its two highest online ones, else the one it has. Read from the
 * target's sysfs, so the host and a guest follow the same rule.
 */
import type { Target } from '../target.ts';

/** Parses a sysfs CPU list such as "0-2,4". */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) continue;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let c = a; c <= b; c++) out.push(c);
  }
  return out;
}

export interface IperfCpus {
  server: number;
  client: number;
  /** Why the choice is not two isolated CPUs, when it is not. */
  note?: string;
}

/** Server and client CPUs: two isolated CPUs when there are, else the two highest online ones. */
export function chooseIperfCpus(isolated: readonly number[], online: readonly number[]): IperfCpus {
  if (isolated.length >= 2) return { server: isolated[0]!, client: isolated[1]! };
  if (online.length >= 2) {
    const [client, server] = online.slice(-2) as [number, number];
    return { server, client, note: `fewer than 2 isolated CPUs: iperf3 server on CPU ${server}, client on CPU ${client}, shared with the system` };
  }
  return { server: online[0] ?? 0, client: online[0] ?? 0, note: 'only one CPU: iperf3 server and client share it' };
}

/** chooseIperfCpus on the target's isolated and online CPUs. */
export async function iperfCpus(target: Target): Promise<IperfCpus> {
  const list = async (what: 'isolated' | 'online'): Promise<number[]> =>
    parseCpuList((await target.sh(`cat /sys/devices/system/cpu/${what}`, { allowFailure: true })).stdout.trim());
  return chooseIperfCpus(await list('isolated'), await list('online'));
}
