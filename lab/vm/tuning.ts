/**
 * Host-side tuning for a VM used in measurements: vCPU threads pinned to host CPUs, host
 * cpufreq governor and frequency fixed (and restored afterwards). What was actually achieved is
 * recorded, never assumed: on many machines (this one: no cpufreq in sysfs, 2 CPUs) little of it
 * is possible, and results must say so.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { runTool } from './proc.ts';
import { Qmp } from './qmp.ts';

export interface PinningResult {
  applied: boolean;
  /** vCPU index → host CPU, when applied. */
  map: { vcpu: number; threadId: number; hostCpu: number }[];
  reason?: string;
}

export interface CpufreqCpuState {
  cpu: number;
  governor: string;
  minKHz: number;
  maxKHz: number;
}

export interface CpufreqResult {
  applied: boolean;
  /** State read back after our writes. */
  cpus: CpufreqCpuState[];
  reason?: string;
}

export interface VmTuning {
  /** isolcpus= passed to the guest, and what the guest reports in /sys/devices/system/cpu/isolated. */
  isolcpus: string | null;
  guestIsolated: string | null;
  pinning: PinningResult;
  cpufreq: CpufreqResult;
}

export function hostCpuCount(): number {
  return availableParallelism();
}

/**
 * Which host CPUs the vCPUs go to: the highest-numbered ones, leaving at least one host CPU for
 * QEMU's I/O thread and the lab itself. Null with a reason when the host is too small.
 */
export function choosePinning(vcpus: number, hostCpus: number, requested?: readonly number[]): { cpus: number[] } | { reason: string } {
  if (requested) {
    if (requested.length !== vcpus) return { reason: `${requested.length} host CPUs requested for ${vcpus} vCPUs` };
    const bad = requested.filter((c) => !Number.isInteger(c) || c < 0 || c >= hostCpus);
    if (bad.length > 0) return { reason: `host CPUs ${bad.join(',')} do not exist (host has ${hostCpus})` };
    return { cpus: [...requested] };
  }
  if (hostCpus < vcpus + 1) {
    return { reason: `host has ${hostCpus} CPUs; pinning ${vcpus} vCPUs needs ${vcpus + 1} (one left for QEMU's I/O thread and the lab)` };
  }
  return { cpus: Array.from({ length: vcpus }, (_, i) => hostCpus - vcpus + i) };
}

/** Pins each vCPU thread with taskset and reads the affinity back from /proc. */
export async function pinVcpus(
  pid: number,
  threads: readonly { vcpu: number; threadId: number }[],
  hostCpus: readonly number[],
): Promise<PinningResult> {
  const map: PinningResult['map'] = [];
  for (const t of threads) {
    const cpu = hostCpus[t.vcpu];
    if (cpu === undefined) return { applied: false, map, reason: `no host CPU for vCPU ${t.vcpu}` };
    try {
      await runTool(['taskset', '-p', '-c', String(cpu), String(t.threadId)], { what: `pinning vCPU ${t.vcpu}`, timeoutMs: 5000 });
      const status = await readFile(`/proc/${pid}/task/${t.threadId}/status`, 'utf8');
      const allowed = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1];
      if (allowed !== String(cpu)) {
        return { applied: false, map, reason: `vCPU ${t.vcpu} thread ${t.threadId} allowed on ${allowed ?? '?'} after pinning to ${cpu}` };
      }
      map.push({ vcpu: t.vcpu, threadId: t.threadId, hostCpu: cpu });
    } catch (e) {
      return { applied: false, map, reason: `pinning vCPU ${t.vcpu}: ${(e as Error).message}` };
    }
  }
  return { applied: true, map };
}

// ---------------------------------------------------------------------------------------------
// cpufreq

async function readSys(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function readState(root: string, cpu: number): Promise<CpufreqCpuState | null> {
  const d = join(root, `cpu${cpu}`, 'cpufreq');
  const governor = await readSys(join(d, 'scaling_governor'));
  const min = await readSys(join(d, 'scaling_min_freq'));
  const max = await readSys(join(d, 'scaling_max_freq'));
  if (governor === null || min === null || max === null) return null;
  return { cpu, governor, minKHz: Number(min), maxKHz: Number(max) };
}

/** Writes min/max in the order the kernel accepts (min may never exceed max). */
async function writeMinMax(d: string, current: { minKHz: number; maxKHz: number }, minKHz: number, maxKHz: number): Promise<void> {
  if (minKHz > current.maxKHz) {
    await writeFile(join(d, 'scaling_max_freq'), String(maxKHz));
    await writeFile(join(d, 'scaling_min_freq'), String(minKHz));
  } else {
    await writeFile(join(d, 'scaling_min_freq'), String(minKHz));
    await writeFile(join(d, 'scaling_max_freq'), String(maxKHz));
  }
}

export interface CpufreqLock {
  result: CpufreqResult;
  /** Puts back what was there before; safe to call more than once. */
  restore(): Promise<void>;
}

/**
 * Sets the `performance` governor and min = max = the nominal frequency (base_frequency when the
 * driver exposes it, else cpuinfo_max_freq) on `cpus`. `sysfsCpuRoot` is a parameter so tests can
 * point it at a fake tree.
 */
export async function lockCpufreq(cpus: readonly number[], sysfsCpuRoot = '/sys/devices/system/cpu'): Promise<CpufreqLock> {
  const saved: CpufreqCpuState[] = [];
  const restore = async (): Promise<void> => {
    while (saved.length > 0) {
      const s = saved.pop();
      if (!s) break;
      const d = join(sysfsCpuRoot, `cpu${s.cpu}`, 'cpufreq');
      try {
        const now = await readState(sysfsCpuRoot, s.cpu);
        await writeFile(join(d, 'scaling_governor'), s.governor);
        if (now) await writeMinMax(d, now, s.minKHz, s.maxKHz);
      } catch {
        /* best effort: the CPU may have gone offline */
      }
    }
  };
  if (cpus.length === 0) return { result: { applied: false, cpus: [], reason: 'no CPUs to tune' }, restore };
  if (!existsSync(join(sysfsCpuRoot, `cpu${cpus[0]}`, 'cpufreq'))) {
    return {
      result: { applied: false, cpus: [], reason: `no ${join(sysfsCpuRoot, `cpu${cpus[0]}`, 'cpufreq')} (no cpufreq driver; common in VMs)` },
      restore,
    };
  }
  const achieved: CpufreqCpuState[] = [];
  try {
    for (const cpu of cpus) {
      const d = join(sysfsCpuRoot, `cpu${cpu}`, 'cpufreq');
      const before = await readState(sysfsCpuRoot, cpu);
      if (!before) throw new Error(`cpu${cpu}: cpufreq files unreadable`);
      saved.push(before);
      const governors = (await readSys(join(d, 'scaling_available_governors')))?.split(/\s+/) ?? [];
      if (governors.includes('performance')) await writeFile(join(d, 'scaling_governor'), 'performance');
      const target = Number((await readSys(join(d, 'base_frequency'))) ?? (await readSys(join(d, 'cpuinfo_max_freq'))) ?? NaN);
      if (Number.isFinite(target) && target > 0) await writeMinMax(d, before, target, target);
      const after = await readState(sysfsCpuRoot, cpu);
      if (after) achieved.push(after);
    }
  } catch (e) {
    await restore();
    return { result: { applied: false, cpus: achieved, reason: `cpufreq: ${(e as Error).message}` }, restore };
  }
  const fixed = achieved.every((s) => s.minKHz === s.maxKHz);
  return {
    result: fixed
      ? { applied: true, cpus: achieved }
      : { applied: false, cpus: achieved, reason: 'the driver did not accept min = max frequency' },
    restore,
  };
}

/**
 * Pins the vCPU threads of QEMU `qemu` (found over its QMP socket) and locks host cpufreq on the
 * CPUs they run on; says what was achieved.
 */
export async function tuneHost(
  qemu: { pid: number | undefined; qmpPath: string },
  o: { cpus: number; isolcpus: string | null; guestIsolated: string; hostCpus?: number[]; tuneHost: boolean },
): Promise<{ tuning: VmTuning; lock: CpufreqLock | null }> {
  const tuning: VmTuning = {
    isolcpus: o.isolcpus,
    guestIsolated: o.guestIsolated,
    pinning: { applied: false, map: [], reason: 'host tuning disabled (tuneHost: false)' },
    cpufreq: { applied: false, cpus: [], reason: 'host tuning disabled (tuneHost: false)' },
  };
  if (!o.tuneHost) return { tuning, lock: null };
  const hostCpus = hostCpuCount();
  const plan = choosePinning(o.cpus, hostCpus, o.hostCpus);
  let tuneCpus: number[] = Array.from({ length: hostCpus }, (_, i) => i);
  if ('reason' in plan) {
    tuning.pinning = { applied: false, map: [], reason: plan.reason };
  } else {
    let qmp: Qmp | null = null;
    try {
      qmp = await Qmp.connect(qemu.qmpPath, 5000);
      const threads = (await qmp.queryCpusFast()).map((c) => ({ vcpu: c['cpu-index'], threadId: c['thread-id'] }));
      const pid = qemu.pid;
      tuning.pinning = pid === undefined ? { applied: false, map: [], reason: 'QEMU has no pid' } : await pinVcpus(pid, threads, plan.cpus);
      if (tuning.pinning.applied) tuneCpus = plan.cpus;
    } catch (e) {
      tuning.pinning = { applied: false, map: [], reason: `QMP query-cpus-fast: ${(e as Error).message}` };
    } finally {
      qmp?.close();
    }
  }
  const lock = await lockCpufreq(tuneCpus);
  tuning.cpufreq = lock.result;
  return { tuning, lock };
}
