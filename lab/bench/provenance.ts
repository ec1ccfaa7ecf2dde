/**
 * results/<run-id>/provenance/<kernel>.json: where and with what each kernel's runs were measured.
 * Everything is read from the machine (host facts on the host, target facts on the target); what
 * cannot be read is null with a note, never guessed.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa } from 'execa';
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import { Provenance, SCHEMA_VERSION } from '../results/record.ts';
import { REPO_ROOT } from '../paths.ts';
import type { FrequencyInfo, KernelSession } from './kernel-session.ts';

async function hostLine(cmd: string, args: string[]): Promise<string | null> {
  try {
    const r = await execa(cmd, args, { reject: false, timeout: 20_000 });
    if (r.exitCode !== 0) return null;
    const text = `${String(r.stdout)}\n${String(r.stderr)}`.trim();
    return text.split('\n')[0]?.trim() || null;
  } catch {
    return null;
  }
}

export async function hostCpuModel(): Promise<string> {
  try {
    const info = await readFile('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    return m?.[1]?.trim() ?? 'unknown (no "model name" in /proc/cpuinfo)';
  } catch {
    return 'unknown (/proc/cpuinfo unreadable)';
  }
}

export async function labCommit(): Promise<string | null> {
  const head = await hostLine('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD']);
  if (!head) return null;
  const r = await execa('git', ['-C', REPO_ROOT, 'status', '--porcelain'], { reject: false });
  return r.exitCode === 0 && String(r.stdout).trim() !== '' ? `${head}-dirty` : head;
}

/** sha256 of a local kernel config file, or of the target's /boot/config-* or /proc/config.gz. */
export async function kernelConfigSha256(target: Target, localConfig: string | null): Promise<string | null> {
  if (localConfig && existsSync(localConfig)) {
    return createHash('sha256').update(await readFile(localConfig)).digest('hex');
  }
  const r = await target.sh(
    'f=/boot/config-$(uname -r); if [ -r "$f" ]; then sha256sum "$f"; elif [ -r /proc/config.gz ]; then zcat /proc/config.gz | sha256sum; else exit 3; fi',
    { allowFailure: true, timeoutMs: 30_000 },
  );
  if (r.exitCode !== 0) return null;
  return /^([0-9a-f]{64})/.exec(r.stdout.trim())?.[1] ?? null;
}

/** Governor and current frequency of the given CPUs on the target (mean MHz). */
export async function targetFrequency(target: Target, cpus: readonly number[]): Promise<FrequencyInfo> {
  const list = cpus.length > 0 ? cpus : [0];
  const script = list
    .map(
      (c) =>
        `g=$(cat /sys/devices/system/cpu/cpu${c}/cpufreq/scaling_governor 2>/dev/null || echo -); ` +
        `f=$(cat /sys/devices/system/cpu/cpu${c}/cpufreq/scaling_cur_freq 2>/dev/null || echo -); echo "cpu ${c} $g $f"`,
    )
    .join('\n') + `\ngrep -i '^cpu MHz' /proc/cpuinfo || true`;
  const r = await target.sh(script, { allowFailure: true, timeoutMs: 30_000 });
  const governors = new Set<string>();
  const khz: number[] = [];
  for (const m of r.stdout.matchAll(/^cpu (\d+) (\S+) (\S+)$/gm)) {
    if (m[2] && m[2] !== '-') governors.add(m[2]);
    if (m[3] && m[3] !== '-' && Number.isFinite(Number(m[3]))) khz.push(Number(m[3]));
  }
  if (khz.length > 0) {
    const info: FrequencyInfo = {
      governor: governors.size === 1 ? [...governors][0]! : governors.size === 0 ? null : [...governors].join(','),
      mhz: khz.reduce((a, b) => a + b, 0) / khz.length / 1000,
    };
    if (governors.size > 1) info.note = 'CPUs run different governors';
    return info;
  }
  const mhz = [...r.stdout.matchAll(/^cpu MHz\s*:\s*([\d.]+)/gim)].map((m) => Number(m[1]));
  const picked = list.map((c) => mhz[c]).filter((x): x is number => x !== undefined && Number.isFinite(x));
  return {
    governor: null,
    mhz: picked.length > 0 ? picked.reduce((a, b) => a + b, 0) / picked.length : null,
    note:
      target.accelerator === 'host'
        ? 'no cpufreq on this machine: frequency not pinned; MHz from /proc/cpuinfo (nominal, may not be achieved)'
        : `no cpufreq in the guest (${target.accelerator}): frequency is the host's; MHz from the guest's /proc/cpuinfo`,
  };
}

/** The target's isolated CPUs (sysfs list, e.g. "1-2"), or null when none. */
export async function targetIsolcpus(target: Target): Promise<string | null> {
  const r = await target.sh('cat /sys/devices/system/cpu/isolated 2>/dev/null; true', { allowFailure: true, timeoutMs: 30_000 });
  const s = r.stdout.trim();
  return s === '' ? null : s;
}

/** Versions of the tools the results depend on: clang and libbpf-dev on the host (they build), the rest on the target. */
export async function toolVersions(target: Target, helperHash: string | null): Promise<Record<string, string>> {
  const tools: Record<string, string> = {};
  const clang = await hostLine('clang', ['--version']);
  tools.clang = clang ?? 'not found';
  const libbpfDev = await hostLine('dpkg-query', ['-W', '-f=${Version}', 'libbpf-dev']);
  tools['libbpf (host, build)'] = libbpfDev ?? 'unknown';
  const q = async (key: string, script: string): Promise<void> => {
    const r = await target.sh(script, { allowFailure: true, timeoutMs: 30_000 }).catch(() => null);
    const line = r && r.exitCode === 0 ? `${r.stdout}\n${r.stderr}`.trim().split('\n')[0]?.trim() : undefined;
    tools[key] = line || 'not found';
  };
  await q('libbpf (target)', "dpkg-query -W -f='${Version}' libbpf1 2>/dev/null || ls /usr/lib/x86_64-linux-gnu/libbpf.so.* | head -1");
  await q('bpftool', 'bpftool version 2>&1 | head -1');
  // xdp-loader has no --version: ask the package manager, else say which binary was found.
  await q('xdp-tools', "dpkg-query -W -f='${Version}' xdp-tools 2>/dev/null || { command -v xdp-loader >/dev/null && echo 'xdp-loader present, version unknown (not a Debian package)'; }");
  await q('libxdp', "dpkg-query -W -f='${Version}' libxdp1 2>/dev/null");
  // tc attaches the TC approaches; tcx needs iproute2 6.6+ and bpftool 7.4+ (bookworm-backports).
  await q('iproute2', 'tc -V 2>&1 | head -1');
  await q('iperf3', 'iperf3 --version 2>&1 | head -1');
  await q('ethtool', 'ethtool --version 2>&1 | head -1');
  if (helperHash) tools['veth_probe helper'] = helperHash;
  return tools;
}

/** Writes provenance atomically (tmp + rename) after validating it against the schema. */
export async function writeProvenance(file: string, p: Provenance): Promise<void> {
  const parsed = Provenance.safeParse(p);
  if (!parsed.success) {
    throw new LabError('RESULTS', `${file}: provenance does not match the schema: ${parsed.error.message}`, {
      remedy: 'This is a bug in the bench: report it.',
    });
  }
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(p, null, 2)}\n`);
  await rename(tmp, file);
}

export async function readProvenance(file: string): Promise<Provenance | null> {
  if (!existsSync(file)) return null;
  try {
    return Provenance.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch (e) {
    throw new LabError('RESULTS', `${file}: unreadable provenance: ${(e as Error).message}`, {
      remedy: 'Delete that file to have it rewritten, or start a new --run-id.',
    });
  }
}

/**
 * Writes (or, on resume, updates) a kernel session's provenance: the earlier warnings kept, the
 * session's own and `extraWarnings` added, a resume noted, the original start time kept.
 */
export async function writeKernelProvenance(
  s: KernelSession,
  file: string,
  run: { runId: string; options: Provenance['options'] },
  extraWarnings: readonly string[],
  extraTools: Record<string, string> = {},
): Promise<Provenance> {
  const { target } = s;
  const cpus = [s.testbed.serverCpu, s.testbed.clientCpu];
  const previous = await readProvenance(file);
  const freq = s.frequency ?? (await targetFrequency(target, cpus));
  const isolcpus = s.isolcpus !== undefined ? s.isolcpus : await targetIsolcpus(target);
  const warnings = [...(previous?.warnings ?? []), ...s.warnings, ...extraWarnings];
  for (const patch of s.kernelOrigin?.patches ?? []) warnings.push(`kernel under test differs from its source by the fix-up ${patch.file}: ${patch.why}`);
  if (previous) warnings.push(`resumed at ${new Date().toISOString()} (target ${target.name}, ${target.kernelRelease})`);
  if (target.clock === 'icount') warnings.push('QEMU TCG with the instruction counter: instruction-timed, reproducible, not wall-clock performance');
  else if (target.accelerator === 'tcg') warnings.push('QEMU TCG (emulated CPU): numbers show relative behaviour only, never performance');
  if (isolcpus === null && !warnings.some((w) => /isolated CPUs/.test(w))) warnings.push(`no isolated CPUs on ${target.name}: iperf3 pinned to CPUs ${cpus.join(' and ')} shared with the rest of the system`);
  const p: Provenance = {
    schema: SCHEMA_VERSION,
    runId: run.runId,
    kernel: s.kernel,
    kernelRelease: target.kernelRelease,
    kernelConfigSha256: await kernelConfigSha256(target, s.configPath),
    kernelOrigin: s.kernelOrigin ?? null,
    accelerator: target.accelerator,
    clock: target.clock ?? 'wall',
    hostCpuModel: await hostCpuModel(),
    cpuFrequency: freq,
    isolcpus,
    pinning: { iperfServerCpu: s.testbed.serverCpu, iperfClientCpu: s.testbed.clientCpu },
    tools: { ...(await toolVersions(target, s.probe ? s.probe.helper.replace(/^.*veth_probe-/, '') : null)), ...extraTools },
    labCommit: await labCommit(),
    options: run.options,
    warnings: [...new Set(warnings)],
    startedAt: previous?.startedAt ?? new Date().toISOString(),
  };
  await writeProvenance(file, p);
  return p;
}
