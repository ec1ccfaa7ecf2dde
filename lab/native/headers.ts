/**
 * Where the module build headers of a kernel image come from, and getting them: Debian's
 * linux-headers packages (the flavour's, the common one, linux-kbuild) downloaded through the lab's
 * private apt state (kernels/cache/apt/<suite>, as the Debian provider fetches images) and
 * extracted with dpkg-deb under kernels/cache/native-headers/<release>; for a kernel the lab built,
 * the build files lab/kernels/headers.ts kept. A kernel without module support, or with no known
 * headers, has none: the reason says which.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { readKconfig } from '../kernels/kconfig.ts';
import { readManifest } from '../kernels/cache.ts';
import { cacheRoot } from '../kernels/resolve.ts';
import { catalogEntry } from '../kernels/catalog.ts';
import { aptConfig } from '../kernels/providers/debian.ts';
import { exists, tool } from '../kernels/exec.ts';
import { withLock } from '../lock.ts';

export type HeaderSource =
  | { kind: 'debian'; release: string; suite: string; version: string; packages: string[] }
  | { kind: 'kept'; release: string; dir: string; makeVars: string[] }
  | { kind: 'none'; release: string; reason: string };

/** What the lab knows of an image besides the image: its .config and its provider's origin record. */
export interface ImageFacts {
  image: KernelImage;
  /** CONFIG_MODULES from its .config: true, false, or null when there is no .config. */
  modules: boolean | null;
  origin: Readonly<Record<string, unknown>>;
  /** The image's cache directory (kept headers are relative to it). */
  versionDir: string;
}

/** The three Debian packages a module build needs for `release` of a `flavour` (cloud-amd64). */
export function debianHeaderPackages(release: string, flavour: string, series: string, version: string): string[] {
  const suffix = `-${flavour}`;
  if (!release.endsWith(suffix)) throw new LabError('BAD_INPUT', `Debian release ${release} does not end with its flavour ${flavour}`);
  const abi = release.slice(0, -suffix.length);
  return [`linux-headers-${release}`, `linux-headers-${abi}-common`, `linux-kbuild-${series}`].map((p) => `${p}=${version}`);
}

/** Decides where the headers come from; pure, so every refusal is tested without a kernel. */
export function headerSource(facts: ImageFacts): HeaderSource {
  const { image, origin } = facts;
  const release = image.release;
  if (facts.modules === false) return { kind: 'none', release, reason: `kernel ${release} is built without module support (CONFIG_MODULES is not set)` };
  if (image.modulesRoot === null && facts.modules === null) return { kind: 'none', release, reason: `kernel ${release} has no modules and no .config to say it supports them` };
  const headers = typeof (origin.headers as { dir?: unknown } | undefined)?.dir === 'string' ? (origin.headers as { dir: string }).dir : null;
  if (headers) {
    // The variables the kernel was built with (CC=gcc-11 -fcommon...): its modules need the same.
    const tc = origin.toolchain as { cc?: unknown; makeVars?: unknown } | undefined;
    const makeVars = Array.isArray(tc?.makeVars) ? tc.makeVars.filter((v): v is string => typeof v === 'string') : typeof tc?.cc === 'string' ? [`CC=${tc.cc}`] : [];
    return { kind: 'kept', release, dir: join(facts.versionDir, headers), makeVars };
  }
  if (origin.toolchain !== undefined) {
    return { kind: 'none', release, reason: `kernel ${release} was built by the lab without keeping its module build files (built before lab/kernels/headers.ts kept them): rebuild it to measure native` };
  }
  if (image.provider === 'debian') {
    const { packageVersion, flavour, suite } = origin;
    if (typeof packageVersion !== 'string' || typeof flavour !== 'string' || typeof suite !== 'string' || !packageVersion) {
      return { kind: 'none', release, reason: `Debian kernel ${release}: its cache record names no package version and flavour, so its headers packages are unknown` };
    }
    const series = /^(\d+\.\d+)/.exec(release)?.[1] ?? image.version;
    return { kind: 'debian', release, suite, version: packageVersion, packages: debianHeaderPackages(release, flavour, series, packageVersion) };
  }
  return { kind: 'none', release, reason: `kernel ${release} (${image.provider}): no module build headers known (only Debian's packages and kernels the lab builds have them)` };
}

/** Reads the image's .config and cache record. */
export async function imageFacts(image: KernelImage, cacheDir = cacheRoot()): Promise<ImageFacts> {
  const config = image.configPath ? await readKconfig(image.configPath).catch(() => null) : null;
  const versionDir = join(cacheDir, image.version);
  const manifest = await readManifest(versionDir);
  return { image, modules: config ? config.get('CONFIG_MODULES') === 'y' : null, origin: (manifest?.origin ?? {}) as Record<string, unknown>, versionDir };
}

export interface ModuleHeaders {
  release: string;
  /** The directory `make -C` runs in. */
  dir: string;
  /** Variables for kbuild (CC=...) when the kernel was built with another compiler than its Makefile's default. */
  makeVars: string[];
}

/**
 * Debian's headers Makefile includes the common package's by its installed path
 * (/usr/src/linux-headers-<abi>-common); here the packages are extracted elsewhere. The include
 * becomes relative (`make -C` runs in the headers directory, beside the common one), so the cache
 * stays valid wherever it is reached from; an absolute path an older extraction wrote is fixed too.
 */
async function pointAtCommon(root: string, release: string): Promise<void> {
  const makefile = join(root, 'usr', 'src', `linux-headers-${release}`, 'Makefile');
  const text = await readFile(makefile, 'utf8');
  const fixed = text.replace(/^include \S*\/usr\/src\/(linux-headers-\S+-common\/)/m, 'include ../$1');
  if (fixed === text && !/^include \.\.\/linux-headers-\S+-common\//m.test(text)) {
    throw new LabError('IMAGE', `${makefile}: expected "include /usr/src/linux-headers-…-common/Makefile"`, { remedy: 'Debian changed its headers packaging: update lab/native/headers.ts.' });
  }
  if (fixed !== text) await writeFile(makefile, fixed);
}

async function debianHeaders(src: Extract<HeaderSource, { kind: 'debian' }>, cacheDir: string): Promise<ModuleHeaders> {
  const final = join(cacheDir, 'native-headers', `${src.release}_${src.version}`);
  const dir = join(final, 'root', 'usr', 'src', `linux-headers-${src.release}`);
  return withLock(join(cacheDir, '.native-headers.lock'), {
    timeoutMs: 1_800_000,
    timeoutError: (owner) => new LabError('DOWNLOAD', `headers of ${src.release}: process ${owner} has held ${cacheDir}/.native-headers.lock for 30 min`, { remedy: 'Wait for it, or remove the lock if that process is gone.' }),
  }, async () => {
    if (await exists(join(dir, 'Makefile'))) {
      await pointAtCommon(join(final, 'root'), src.release);
      return { release: src.release, dir, makeVars: [] };
    }
    const entry = catalogEntry(/^(\d+\.\d+)/.exec(src.release)?.[1] ?? '');
    if (!entry.debian) throw new LabError('NO_PROVIDER', `the catalog has no Debian entry for ${src.release}`);
    const apt = await aptConfig(cacheDir, entry.debian);
    const staging = `${final}.partial-${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    try {
      const download = () => tool(['apt-get', ...apt.options, 'download', ...src.packages], { cwd: staging, what: `apt-get download ${src.packages.join(' ')}`, code: 'DOWNLOAD', timeoutMs: 600_000 });
      await download().catch(async () => {
        // The lab's lists may predate the package (bookworm-security moves on): refresh once.
        await tool(['apt-get', ...apt.options, 'update'], { what: `apt-get update for ${src.suite}`, code: 'DOWNLOAD', timeoutMs: 300_000 });
        await download();
      });
      const debs = (await readdir(staging)).filter((f) => f.endsWith('.deb'));
      if (debs.length !== src.packages.length) throw new LabError('DOWNLOAD', `apt-get download: expected ${src.packages.length} .deb files, got ${debs.join(', ')}`);
      for (const d of debs) await tool(['dpkg-deb', '-x', join(staging, d), join(staging, 'root')], { what: `dpkg-deb -x ${d}`, code: 'IMAGE' });
      for (const d of debs) await rm(join(staging, d));
      await rm(final, { recursive: true, force: true });
      await rename(staging, final);
      await pointAtCommon(join(final, 'root'), src.release);
    } catch (e) {
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    return { release: src.release, dir, makeVars: [] };
  });
}

/** The headers to build against, or LabError UNSUPPORTED with the reason there are none. */
export async function moduleHeaders(facts: ImageFacts, cacheDir = cacheRoot()): Promise<ModuleHeaders> {
  const src = headerSource(facts);
  if (src.kind === 'none') throw new LabError('UNSUPPORTED', src.reason, { remedy: 'The native baseline runs only in kernels with module support and headers: a Debian kernel, or one the lab builds (CONFIG_MODULES=y).' });
  if (src.kind === 'kept') {
    if (!(await exists(join(src.dir, 'Makefile')))) throw new LabError('MISSING_FILE', `kept headers of ${src.release}: ${src.dir} has no Makefile`, { remedy: 'Rebuild the kernel (npm run kernels -- build) so its module build files are kept.' });
    return { release: src.release, dir: src.dir, makeVars: src.makeVars };
  }
  return debianHeaders(src, cacheDir);
}
