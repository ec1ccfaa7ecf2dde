/**
 * One call for "boot kernel X with the lab's image": resolve the version (lab/kernels), build or
 * reuse its image, boot it. The CLI's `npm run kernel -- <version>` uses this.
 */
import { resolveKernel } from '../kernels/resolve.ts';
import { bootVm, type BootOptions } from './boot.ts';
import type { VmTarget } from './target.ts';

export interface BootKernelOptions extends Omit<BootOptions, 'kernel'> {
  /** A bzImage or directory to use instead of the providers (see lab/kernels/resolve.ts). */
  localImage?: string;
  /** Kernel cache root (default kernels/cache). */
  kernelCacheDir?: string;
}

export async function bootKernel(version: string, opts: BootKernelOptions = {}): Promise<VmTarget> {
  const { localImage, kernelCacheDir, ...boot } = opts;
  const kernel = await resolveKernel(version, { localImage, cacheDir: kernelCacheDir, progress: opts.progress });
  return bootVm({ ...boot, kernel });
}
