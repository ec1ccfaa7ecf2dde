/**
 * What the kernel layer hands to the VM layer: a bootable image and what it needs to reach a root
 * filesystem. Produced by a provider (local file, Debian package, Ubuntu mainline, kernel.org build)
 * and cached under kernels/cache/<version>/ with a checksum.
 */
import type { KernelOrigin } from './origin.ts';

export type KernelVersion = '4.19' | '5.4' | '5.10' | '5.15' | '6.1' | '6.6' | '6.12';
export const KERNEL_VERSIONS: readonly KernelVersion[] = ['4.19', '5.4', '5.10', '5.15', '6.1', '6.6', '6.12'];

export interface KernelImage {
  /** Catalog version, e.g. "6.1". */
  version: KernelVersion;
  /** `uname -r` of the image, e.g. "6.1.0-27-cloud-amd64". */
  release: string;
  /** Path of the bzImage / vmlinuz. */
  vmlinuz: string;
  /** Directory holding lib/modules/<release> (null when everything is built in). */
  modulesRoot: string | null;
  /** The kernel's .config, when known. */
  configPath: string | null;
  /** sha256 of vmlinuz. */
  sha256: string;
  /** Which provider produced it ("local", "debian", "ubuntu-mainline", "kernel.org"). */
  provider: string;
  /** Modules that must be loaded before the root disk is visible (virtio_pci, virtio_blk, ext4...). */
  bootModules: string[];
  /** Where it came from (package, source and toolchain, fix-ups), for provenance; set by resolveKernel. */
  origin?: KernelOrigin;
}
