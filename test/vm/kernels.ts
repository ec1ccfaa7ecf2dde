/** Kernels for the VM tests, through the lab's own resolver (cached under kernels/cache/). */
import { resolveKernel } from '../../lab/kernels/resolve.ts';
import type { KernelImage, KernelVersion } from '../../lab/kernels/types.ts';

export function testKernel(version: KernelVersion): Promise<KernelImage> {
  return resolveKernel(version, {});
}
