/**
 * Real kernel sessions for the matrix: the running kernel ("host") or a catalog kernel booted in
 * QEMU (lab/kernels resolveKernel + lab/vm bootVm), with the BPF objects and the probe helper put
 * on the target, the veth testbed of lab/testenv, and the approaches of lab/approaches.
 * Everything created here is released by dispose(), and by this function itself when it fails
 * half-way.
 */
import type { KernelImage } from '../kernels/types.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApproachContext } from '../approaches/approach.ts';
import type { ApproachName } from '../results/record.ts';
import { APPROACHES } from '../approaches/index.ts';
import { LabError } from '../errors.ts';
import type { KernelOrigin } from '../kernels/origin.ts';
import { buildPrograms } from '../programs/build.ts';
import { HostTarget, type Target } from '../target.ts';
import { createTestEnv, type TestEnv } from '../testenv/testenv.ts';
import { buildProbeHelper, buildStatsHelper } from '../programs/user.ts';
import { REPO_ROOT } from '../paths.ts';
import { iperfCpus } from '../testenv/cpus.ts';
import type { FrequencyInfo, KernelSession, OpenKernelOptions, Testbed } from './kernel-session.ts';

/** `ethtool -k` output → feature name → on/off ("[fixed]" and "[requested on]" notes ignored). */
export function parseEthtoolFeatures(text: string): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([a-z0-9-]+):\s+(on|off)\b/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = m[2] === 'on';
  }
  return out;
}

function vmFrequency(t: { tuning?: { cpufreq: { applied: boolean; cpus: { governor: string; minKHz: number; maxKHz: number }[]; reason?: string } } }, hostMhz: number | null): FrequencyInfo | undefined {
  const cf = t.tuning?.cpufreq;
  if (!cf) return undefined;
  if (cf.applied && cf.cpus.length > 0) {
    const govs = [...new Set(cf.cpus.map((c) => c.governor))];
    const fixed = cf.cpus.every((c) => c.minKHz === c.maxKHz);
    const mhz = cf.cpus.reduce((a, c) => a + c.maxKHz, 0) / cf.cpus.length / 1000;
    return fixed
      ? { governor: govs.join(','), mhz }
      : { governor: govs.join(','), mhz, note: 'host cpufreq min and max differ: frequency not pinned, mhz is the maximum' };
  }
  return { governor: null, mhz: hostMhz, note: `host cpufreq not fixed: ${cf.reason ?? 'unknown reason'}; mhz is the host's nominal /proc/cpuinfo value` };
}

async function hostCpuinfoMhz(): Promise<number | null> {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/im.exec(await readFile('/proc/cpuinfo', 'utf8'));
    return m?.[1] ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Opens a session on `kernel` ("host" or a catalog version). */
export async function openKernelSession(kernel: string, options: OpenKernelOptions): Promise<KernelSession> {
  const { prefix, progress } = options;
  if (!/^[a-z0-9][a-z0-9-]{0,9}$/.test(prefix)) {
    throw new LabError('BAD_INPUT', `resource prefix "${prefix}" must be 1-10 characters of [a-z0-9-]`, {
      remedy: 'Pass a short --prefix such as xlab.',
    });
  }
  const objects = await buildPrograms();
  const helper = await buildProbeHelper();
  const statsHelper = await buildStatsHelper();
  const probeObject = objects.veth_probe;

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    let target: Target;
    let configPath: string | null = null;
    let kernelOrigin: KernelOrigin | null = null;
    let image: KernelImage | null = null;
    let frequency: FrequencyInfo | undefined;
    let isolcpus: string | null | undefined;
    const warnings: string[] = [];
    if (kernel === 'host') {
      target = await HostTarget.create(join(REPO_ROOT, 'build', `target-${prefix}`));
    } else {
      const { resolveKernel } = await import('../kernels/resolve.ts');
      const { bootVm } = await import('../vm/boot.ts');
      image = await resolveKernel(kernel, { progress, localImage: options.localImage });
      configPath = image.configPath;
      kernelOrigin = image.origin ?? null;
      const vm = await bootVm({ kernel: image, progress, clock: options.clock ?? 'wall' });
      cleanups.push(() => vm[Symbol.asyncDispose]());
      target = vm;
      frequency = vmFrequency(vm, await hostCpuinfoMhz());
      isolcpus = vm.tuning.guestIsolated && vm.tuning.guestIsolated !== '' ? vm.tuning.guestIsolated : null;
      if (vm.acceleratorNote) warnings.push(`accelerator ${vm.accelerator}: ${vm.acceleratorNote}`);
      if (!vm.tuning.pinning.applied) warnings.push(`vCPUs not pinned to host CPUs: ${vm.tuning.pinning.reason ?? 'unknown reason'}`);
    }

    // Objects and helper where the target can read them (the host reads the build tree directly).
    let objectDir = join(REPO_ROOT, 'build', 'bpf');
    let helperPath = helper.path;
    let statsHelperPath = statsHelper.path;
    let probePath = probeObject ?? null;
    if (target.accelerator !== 'host') {
      objectDir = `${target.workDir}/bpf`;
      for (const [name, local] of Object.entries(objects)) await target.putFile(local, `${objectDir}/${name}.o`);
      helperPath = `${target.workDir}/bin/veth_probe-${helper.hash}`;
      await target.putFile(helper.path, helperPath);
      await target.run(['chmod', '755', helperPath]);
      statsHelperPath = `${target.workDir}/bin/bpf_stats-${statsHelper.hash}`;
      await target.putFile(statsHelper.path, statsHelperPath);
      await target.run(['chmod', '755', statsHelperPath]);
      probePath = probeObject ? `${objectDir}/veth_probe.o` : null;
    }

    const env: TestEnv = await createTestEnv(target, { name: `${prefix}m` });
    cleanups.push(() => env[Symbol.asyncDispose]());
    for (const line of env.staleCleaned) progress?.({ kind: 'log', level: 'warn', message: `${target.name}: cleaned up: ${line}` });

    const cpus = await iperfCpus(target);
    if (cpus.note) warnings.push(cpus.note);

    const testbed: Testbed = {
      ifname: env.b.ifname,
      netns: env.b.netns,
      objectDir,
      serverCpu: cpus.server,
      clientCpu: cpus.client,
      async iperf(durationS) {
        const r = await env.iperf3({ seconds: durationS, serverCpu: cpus.server, clientCpu: cpus.client });
        if (!(r.seconds > 0)) {
          throw new LabError('BENCH', `${target.name}: iperf3 reported a ${r.seconds} s run`, { remedy: 'Check iperf3 on the target.' });
        }
        return { bitsPerSecond: r.bitsPerSecond, bytes: r.bytesReceived, seconds: r.seconds, retransmits: r.retransmits };
      },
      ping(count, intervalS) {
        return env.pingRtts(count, { intervalS });
      },
      async offloads() {
        const r = await env.exec(env.b.netns, ['ethtool', '-k', env.b.ifname], { allowFailure: true });
        if (r.exitCode !== 0) {
          throw new LabError('MISSING_TOOL', `${target.name}: ethtool -k ${env.b.ifname} failed: ${(r.stderr || r.stdout).trim()}`, {
            remedy: 'Install ethtool on the target (npm run setup; the VM image recipe includes it).',
          });
        }
        return parseEthtoolFeatures(r.stdout);
      },
      async dispose() {
        await env[Symbol.asyncDispose]();
      },
    };

    const contextFor = (name: ApproachName): ApproachContext => ({
      target,
      ifname: env.b.ifname,
      netns: env.b.netns,
      pinDir: `/sys/fs/bpf/xdp-chain-lab/${env.b.netns}-${name}`,
      objectDir,
    });
    const session: KernelSession = {
      kernel,
      target,
      configPath,
      kernelOrigin,
      image,
      testbed,
      probe: probePath ? { helper: helperPath, object: probePath, stateDir: `${target.workDir}/probe-${prefix}` } : null,
      bpfStats: { helper: statsHelperPath, stateDir: `${target.workDir}/stats-${prefix}` },
      ...(frequency ? { frequency } : {}),
      ...(isolcpus !== undefined ? { isolcpus } : {}),
      warnings,
      approach: (name) => APPROACHES[name] ?? null,
      contextFor,
      dispose: cleanup,
    };
    return session;
  } catch (e) {
    await cleanup();
    throw e;
  }
}
