/**
 * The provider interface: each way of obtaining a kernel (local image, Debian packages, Ubuntu
 * mainline, kernel.org build) tries and either returns a KernelImage or says why it cannot.
 */
import type { ProgressSink } from '../progress.ts';
import type { CatalogEntry } from './catalog.ts';
import type { KernelImage } from './types.ts';
import type { BuildOptions } from './build.ts';

export interface ProviderContext {
  entry: CatalogEntry;
  /** Root of the kernel cache (kernels/cache by default). */
  cacheDir: string;
  /** Where this provider must leave the finished image: <cacheDir>/<version>. */
  versionDir: string;
  progress: ProgressSink;
  /** Explicit local image from the caller (flag), before the environment variable. */
  localImage?: string;
  /** Explicit kernel source (tree or tarball) from the caller (flag), before XCL_KERNEL_SRC_<ver>. */
  kernelSource?: string;
  /** Build settings for providers that compile (tests: fake compilers, toolchain rules). */
  build?: Pick<BuildOptions, 'env' | 'toolchains' | 'patchesDir' | 'jobs' | 'fragmentPath'>;
  env: NodeJS.ProcessEnv;
}

/** Why a provider does not apply or cannot work, in one line ("no Debian package for 4.19"). */
export type Availability = { ok: true; note?: string } | { ok: false; reason: string };

/** What a provider produced plus facts worth recording in the cache manifest. */
export interface Obtained {
  image: KernelImage;
  /** Provider-specific provenance (package name and version, URL, checksums...). */
  origin: Record<string, unknown>;
  /** Whether resolveKernel may record it in the cache (a user's local image is not copied). */
  cacheable: boolean;
}

export interface Provider {
  readonly name: string;
  /**
   * Cheap check with no download (for `npm run kernels`): does this provider apply to the entry,
   * and are its tools / configuration present? Network reachability is probed with a short timeout.
   */
  available(ctx: ProviderContext): Promise<Availability>;
  /** Obtains the image; throws LabError (DOWNLOAD, CHECKSUM, KERNEL_BUILD...) when it cannot. */
  obtain(ctx: ProviderContext): Promise<Obtained>;
}
