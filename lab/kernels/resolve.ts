/**
 * resolveKernel(version) → KernelImage: the one entry point the VM layer uses.
 *
 * STATUS (for lab/vm): working for 6.1 and 6.12 (Debian bookworm, cloud-amd64 flavour) and 5.10
 * (Debian bullseye, cloud-amd64). Images land in kernels/cache/<version>/root/{boot,lib/modules}
 * with kernels/cache/<version>/image.json; a second call returns from the cache after re-hashing
 * vmlinuz. Debian's cloud kernels build virtio_pci/virtio_blk/virtio_net as modules (ext4 is built
 * in): `bootModules` lists what to load, dependencies first, and `bootModuleFiles(image)` gives
 * their paths under modulesRoot. Other versions fail with LabError('NO_PROVIDER') here (no network).
 *
 * Order: an explicitly given local image (opts.localImage / XCL_KERNEL_<ver>) always wins and is
 * never cached or silently replaced; then the cache; then each provider in turn (Debian, Ubuntu
 * mainline, kernel.org build). When none works the error names the kernel, every provider and why
 * it failed, and how to supply an image.
 */
import { join } from 'node:path';
import { LabError, isLabError } from '../errors.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { DEFAULT_CACHE_DIR, LAB_CONFIG_FRAGMENT, catalogEntry, loadCatalog } from './catalog.ts';
import { dropCache, lookupCache, readManifest, writeManifest } from './cache.ts';
import { acquireLock } from '../lock.ts';
import { exists } from './exec.ts';
import { bootModulePlan, type BootModule } from './modules.ts';
import type { Provider, ProviderContext } from './provider.ts';
import { debianProvider } from './providers/debian.ts';
import { kernelOrgProvider } from './providers/kernel-org.ts';
import { localEnvName, localProvider } from './providers/local.ts';
import { requestedSource, sourceEnvName, sourceFingerprint, sourceProvider } from './providers/source.ts';
import { ubuntuMainlineProvider } from './providers/ubuntu-mainline.ts';
import { summarizeOrigin } from './origin.ts';
import { describeChecks, fragmentDrift, parseFragment, readKconfig, type ConfigCheck } from './kconfig.ts';
import { readFile } from 'node:fs/promises';
import type { KernelImage } from './types.ts';

function withOrigin(image: KernelImage, provider: string, origin: Readonly<Record<string, unknown>>): KernelImage {
  return { ...image, origin: summarizeOrigin(provider, origin) };
}

export type { Provider } from './provider.ts';

/** Providers in the order they are tried. */
export const DEFAULT_PROVIDERS: readonly Provider[] = [localProvider, sourceProvider, debianProvider, ubuntuMainlineProvider, kernelOrgProvider];

export interface ResolveOptions {
  /** Root of the cache (default kernels/cache, or env XCL_KERNEL_CACHE). */
  cacheDir?: string;
  /** A bzImage or a directory with vmlinuz + lib/modules: used instead of any provider. */
  localImage?: string;
  /** A kernel source tree or tarball: built (or found in the cache, built from the same source) instead of any other provider. */
  kernelSource?: string;
  progress?: ProgressSink;
  /** Providers to try, in order (default DEFAULT_PROVIDERS). */
  providers?: Provider[];
  /** Build settings for compiling providers (tests). */
  build?: ProviderContext['build'];
}

export function cacheRoot(opts: { cacheDir?: string } = {}, env: NodeJS.ProcessEnv = process.env): string {
  return opts.cacheDir ?? env.XCL_KERNEL_CACHE ?? DEFAULT_CACHE_DIR;
}

export function providerContext(version: string, opts: ResolveOptions = {}, env: NodeJS.ProcessEnv = process.env): ProviderContext {
  const entry = catalogEntry(version);
  const cacheDir = cacheRoot(opts, env);
  return {
    entry,
    cacheDir,
    versionDir: join(cacheDir, entry.version),
    progress: opts.progress ?? silent,
    localImage: opts.localImage,
    kernelSource: opts.kernelSource,
    build: opts.build,
    env,
  };
}

function hostError(): LabError {
  return new LabError('BAD_INPUT', 'kernel "host" is the running kernel: there is no image to resolve', {
    remedy: 'Run on the host target directly (npm run kernel -- host); resolveKernel is for VM kernels.',
  });
}

/** A kernel.org build can take hours on a small machine: wait that long for another resolver. */
const RESOLVE_LOCK_TIMEOUT_MS = 6 * 3600_000;

export async function resolveKernel(version: string, opts: ResolveOptions = {}): Promise<KernelImage> {
  if (version === 'host') throw hostError();
  const ctx = providerContext(version, opts);
  const { entry, progress } = ctx;
  const providers = opts.providers ?? DEFAULT_PROVIDERS;
  const local = providers.find((p) => p.name === 'local');
  const envName = localEnvName(entry.version);

  if (local && (ctx.localImage || ctx.env[envName]) && requestedSource(ctx) && providers.some((p) => p.name === 'source')) throw bothGiven(entry.version, envName);
  // An image the user named is used as is: falling back to another kernel would hide their mistake.
  if (local && (ctx.localImage || ctx.env[envName])) {
    const got = await local.obtain(ctx);
    progress({ kind: 'log', level: 'info', message: `kernel ${entry.version}: local image ${got.image.vmlinuz} (${got.image.release})` });
    return withOrigin(got.image, local.name, got.origin);
  }

  const source = requestedSource(ctx);
  const sourceP = providers.find((p) => p.name === 'source');
  if (source && sourceP) {
    return resolveFromSource(ctx, sourceP, source);
  }

  const cached = await lookupCache(ctx.versionDir, entry.version);
  if (cached.hit) {
    progress({ kind: 'log', level: 'info', message: `kernel ${entry.version}: cached ${cached.image.release} from ${cached.image.provider}` });
    // Kept, not dropped: without its source the lab may not be able to build it again. What needs
    // the missing options is refused by its own support check, with the reason.
    const drift = await configDrift(ctx, cached.image);
    if (drift.length > 0) {
      progress({
        kind: 'log',
        level: 'warn',
        message: driftWarning(entry.version, cached.image.release, drift, `using it as it is; to rebuild it with today's config give its source: npm run kernel -- ${entry.version} --kernel-source <tree or tarball> (or ${sourceEnvName(entry.version)})`),
      });
    }
    return withOrigin(cached.image, cached.image.provider, cached.manifest.origin);
  }
  if (await readManifest(ctx.versionDir)) {
    progress({ kind: 'log', level: 'warn', message: `kernel ${entry.version}: discarding cache (${cached.reason})` });
    await dropCache(ctx.versionDir);
  }

  // One obtain at a time per cache: providers share apt lists, downloads and build trees.
  const release = await lockCache(ctx);
  try {
    return await obtainFromProviders(ctx, providers, local, envName);
  } finally {
    await release();
  }
}

/** The providers that build with the lab's config fragment: their cached images must still match it. */
const FRAGMENT_BUILDERS: ReadonlySet<string> = new Set(['source', 'kernel.org']);

/**
 * What a cached lab-built image lacks of today's config fragment (built before an option was added
 * to it); empty for a distribution kernel, an image without its .config, or one that matches.
 */
async function configDrift(ctx: ProviderContext, image: KernelImage): Promise<ConfigCheck[]> {
  if (!FRAGMENT_BUILDERS.has(image.provider) || image.configPath === null || !(await exists(image.configPath))) return [];
  const fragment = parseFragment(await readFile(ctx.build?.fragmentPath ?? LAB_CONFIG_FRAGMENT, 'utf8'));
  return fragmentDrift(await readKconfig(image.configPath), fragment);
}

function driftWarning(version: string, release: string, drift: readonly ConfigCheck[], then: string): string {
  return `kernel ${version}: the cached ${release} was built with an older lab config (${describeChecks(drift)}); ${then}`;
}

function bothGiven(version: string, envName: string): LabError {
  return new LabError('BAD_INPUT', `kernel ${version}: both an image (--kernel-image / ${envName}) and a source (--kernel-source / ${sourceEnvName(version)}) are given`, {
    remedy: 'Give one: the image to boot it as is, or the source to build it here.',
  });
}

async function lockCache(ctx: ProviderContext): Promise<() => Promise<void>> {
  const lock = join(ctx.cacheDir, '.resolve.lock');
  return acquireLock(lock, {
    timeoutMs: RESOLVE_LOCK_TIMEOUT_MS,
    onWait: (owner) =>
      ctx.progress({ kind: 'log', level: 'info', message: `kernel ${ctx.entry.version}: waiting for process ${owner}, which is resolving a kernel in ${ctx.cacheDir}` }),
    timeoutError: (owner) =>
      new LabError('BAD_INPUT', `${lock}: still held by process ${owner} after ${RESOLVE_LOCK_TIMEOUT_MS / 60_000} min`, { remedy: `If process ${owner} is not a lab command, delete ${lock}.` }),
  });
}

/**
 * A source the user named: the cached image when it was built from that very source (same
 * fingerprint), else a build of it. It never falls back to another provider: that would measure
 * a kernel other than the one asked for.
 */
async function resolveFromSource(ctx: ProviderContext, provider: Provider, source: { path: string; from: string }): Promise<KernelImage> {
  const { entry, progress } = ctx;
  if (!(await exists(source.path))) {
    throw new LabError('MISSING_FILE', `${source.from}=${source.path}: no such file or directory`, { remedy: `Point ${source.from} to a kernel source tree or tarball.` });
  }
  const fingerprint = await sourceFingerprint(source.path);
  const fromCache = async (): Promise<KernelImage | null> => {
    const cached = await lookupCache(ctx.versionDir, entry.version);
    if (!cached.hit) return null;
    const origin = cached.manifest.origin as { source?: { fingerprint?: unknown } };
    if (origin.source?.fingerprint === fingerprint) {
      const drift = await configDrift(ctx, cached.image);
      if (drift.length > 0) {
        progress({ kind: 'log', level: 'warn', message: driftWarning(entry.version, cached.image.release, drift, `building it again from ${source.path} (replaces the cached image)`) });
        return null;
      }
      progress({ kind: 'log', level: 'info', message: `kernel ${entry.version}: cached ${cached.image.release}, built from ${source.path}` });
      return withOrigin(cached.image, cached.image.provider, cached.manifest.origin);
    }
    progress({ kind: 'log', level: 'warn', message: `kernel ${entry.version}: the cache holds ${cached.image.release} from ${cached.image.provider}, not built from ${source.path}: building it (replaces the cached image)` });
    return null;
  };
  const hit = await fromCache();
  if (hit) return hit;
  const release = await lockCache(ctx);
  try {
    const again = await lookupCache(ctx.versionDir, entry.version);
    if (again.hit && (again.manifest.origin as { source?: { fingerprint?: unknown } }).source?.fingerprint === fingerprint && (await configDrift(ctx, again.image)).length === 0) {
      return withOrigin(again.image, again.image.provider, again.manifest.origin);
    }
    const got = await provider.obtain(ctx);
    if (got.cacheable) await writeManifest(ctx.versionDir, got.image, { provider: provider.name, ...got.origin });
    progress({ kind: 'log', level: 'info', message: `kernel ${entry.version}: ${got.image.release} built from ${source.path}` });
    return withOrigin(got.image, provider.name, got.origin);
  } finally {
    await release();
  }
}

async function obtainFromProviders(ctx: ProviderContext, providers: readonly Provider[], local: Provider | undefined, envName: string): Promise<KernelImage> {
  const { entry, progress } = ctx;
  // Another process may have resolved this version while we waited for the lock.
  const cached = await lookupCache(ctx.versionDir, entry.version);
  if (cached.hit) return withOrigin(cached.image, cached.image.provider, cached.manifest.origin);
  const attempts: { provider: string; reason: string; code?: string }[] = [];
  for (const p of providers) {
    if (p === local) {
      attempts.push({ provider: p.name, reason: `no image given (set ${envName}=/path/to/bzImage, or \`npm run kernel -- ${entry.version} --kernel-image PATH\`)` });
      continue;
    }
    // Without a source named there is nothing to try; the error's remedy says how to name one.
    if (p.name === 'source' && !requestedSource(ctx)) continue;
    try {
      const got = await p.obtain(ctx);
      if (got.cacheable) await writeManifest(ctx.versionDir, got.image, { provider: p.name, ...got.origin });
      progress({ kind: 'log', level: 'info', message: `kernel ${entry.version}: ${got.image.release} from ${p.name}` });
      return withOrigin(got.image, p.name, got.origin);
    } catch (e) {
      if (isLabError(e, 'INTERRUPTED') || isLabError(e, 'DISK_FULL')) throw e;
      const reason = e instanceof Error ? e.message.split('\n')[0] ?? e.message : String(e);
      attempts.push({ provider: p.name, reason, code: isLabError(e) ? e.code : undefined });
      progress({ kind: 'log', level: 'warn', message: `kernel ${entry.version}: ${p.name}: ${reason}` });
    }
  }
  throw noProvider(entry.version, attempts, envName);
}

function noProvider(version: string, attempts: { provider: string; reason: string; code?: string }[], envName: string): LabError {
  const lines = attempts.map((a) => `  - ${a.provider}: ${a.reason}`).join('\n');
  return new LabError('NO_PROVIDER', `no provider could obtain kernel ${version}:\n${lines}`, {
    remedy:
      `Supply an image: ${envName}=/path/to/bzImage (or a directory with vmlinuz and lib/modules/<release>), ` +
      `or \`npm run kernel -- ${version} --kernel-image PATH\`; or a source to build: ${sourceEnvName(version)}=PATH or ` +
      `\`npm run kernel -- ${version} --kernel-source PATH\` (a tree or a .tar.{gz,xz}); or run where kernel.ubuntu.com / cdn.kernel.org are reachable ` +
      `(base URLs: XCL_UBUNTU_MAINLINE_URL, XCL_KERNEL_ORG_URL).`,
    details: { version, attempts },
  });
}

/** The module files to load for `image`, dependencies first (paths absolute). */
export async function bootModuleFiles(image: KernelImage): Promise<BootModule[]> {
  if (image.modulesRoot === null) return [];
  const dir = join(image.modulesRoot, 'lib', 'modules', image.release);
  const plan = await bootModulePlan(dir);
  return plan.load.map((m) => ({ name: m.name, path: join(dir, m.path) }));
}

/** Catalog versions, for callers that want to iterate (the CLI, listKernels). */
export function catalogVersions(): string[] {
  return loadCatalog().kernels.map((k) => k.version);
}
