/**
 * Boot benchmark: seconds from QEMU start to SSH ready, per kernel and accelerator.
 * Targets: <= 10 s under TCG, <= 2 s under KVM. Image builds are done (or found
 * in the cache) before the clock starts; each boot is a fresh QEMU that is always reaped.
 */
import { loadavg } from 'node:os';
import { errorMessage, isLabError } from '../errors.ts';
import { resolveKernel } from '../kernels/resolve.ts';
import type { KernelImage } from '../kernels/types.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { buildVmImage } from '../vm/image.ts';
import type { ImageOptions } from '../vm/recipe.ts';
import type { AccelChoice } from '../vm/accel.ts';
import { bootVm } from '../vm/boot.ts';
import { median } from 'simple-statistics';

export const BOOT_TARGET_SECONDS = { tcg: 10, kvm: 2 } as const;

export interface BootSample {
  /** QEMU spawn → SSH authenticated and `uname -r` answered. */
  sshReadySeconds: number;
  /** QEMU spawn → initramfs switch_root. */
  switchRootSeconds: number | null;
  /** QEMU spawn → sshd started by the guest init. */
  sshdStartedSeconds: number | null;
  /** 1-minute host load average when the boot started (TCG shares the host CPUs). */
  hostLoad: number;
}

export interface BootBenchResult {
  version: string;
  release: string | null;
  accelerator: 'kvm' | 'tcg' | null;
  acceleratorNote: string | null;
  cpus: number;
  samples: BootSample[];
  medianSeconds: number | null;
  minSeconds: number | null;
  targetSeconds: number | null;
  metTarget: boolean | null;
  /** Why the kernel could not be benchmarked (no provider, boot failure...). */
  error: string | null;
}

export interface BenchBootOptions {
  /** Boots per kernel (default 3). */
  runs?: number;
  accel?: AccelChoice;
  cpus?: number;
  memoryMb?: number;
  timeoutMs?: number;
  progress?: ProgressSink;
  imageOptions?: ImageOptions;
  /** How a version becomes a kernel image (default: the lab's resolver). */
  resolve?: (version: string) => Promise<KernelImage>;
}

export async function benchBoot(versions: readonly string[], opts: BenchBootOptions = {}): Promise<BootBenchResult[]> {
  const sink = opts.progress ?? silent;
  const runs = opts.runs ?? 3;
  const cpus = opts.cpus ?? 3;
  const resolve = opts.resolve ?? ((v: string) => resolveKernel(v, { progress: sink }));
  const results: BootBenchResult[] = [];
  for (const version of versions) {
    const result: BootBenchResult = {
      version,
      release: null,
      accelerator: null,
      acceleratorNote: null,
      cpus,
      samples: [],
      medianSeconds: null,
      minSeconds: null,
      targetSeconds: null,
      metTarget: null,
      error: null,
    };
    results.push(result);
    try {
      const kernel = await resolve(version);
      result.release = kernel.release;
      const image = await buildVmImage(kernel, { ...opts.imageOptions, progress: opts.imageOptions?.progress ?? sink });
      for (let i = 0; i < runs; i++) {
        sink({ kind: 'phase-progress', id: 'bench-boot', done: i, total: runs, note: `${version} boot ${i + 1}/${runs}` });
        const hostLoad = loadavg()[0] ?? 0;
        await using vm = await bootVm({
          kernel,
          image,
          cpus,
          memoryMb: opts.memoryMb,
          accel: opts.accel,
          timeoutMs: opts.timeoutMs,
          progress: sink,
          name: `xcl-bench-${process.pid}-${version.replace(/[^0-9a-z]/gi, '_')}-${i}`,
          // Pinning/cpufreq are for measurements inside the guest, not for the boot itself.
          tuneHost: false,
        });
        result.accelerator = vm.accelerator === 'kvm' ? 'kvm' : 'tcg';
        result.acceleratorNote = vm.acceleratorNote;
        const t = vm.bootTimes;
        result.samples.push({
          sshReadySeconds: t.sshReadyMs / 1000,
          switchRootSeconds: t.switchRootMs === null ? null : t.switchRootMs / 1000,
          sshdStartedSeconds: t.sshdStartedMs === null ? null : t.sshdStartedMs / 1000,
          hostLoad,
        });
      }
      const times = result.samples.map((s) => s.sshReadySeconds);
      result.medianSeconds = times.length > 0 ? median(times) : null;
      result.minSeconds = times.length > 0 ? Math.min(...times) : null;
      if (result.accelerator) {
        result.targetSeconds = BOOT_TARGET_SECONDS[result.accelerator];
        result.metTarget = result.medianSeconds !== null && result.medianSeconds <= result.targetSeconds;
      }
    } catch (e) {
      result.error = isLabError(e) ? e.describe() : errorMessage(e);
      sink({ kind: 'log', level: 'error', message: `boot bench ${version}: ${result.error.split('\n')[0]}` });
    }
  }
  return results;
}
