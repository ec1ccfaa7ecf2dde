/**
 * Ubuntu mainline builds (kernel.ubuntu.com/mainline/v<x.y.z>/): the generic linux-image-unsigned
 * and linux-modules .debs for amd64, listed in the version directory and verified against its
 * CHECKSUMS file. Base URL: XCL_UBUNTU_MAINLINE_URL (tests point it at a loopback server).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError, isLabError } from '../../errors.ts';
import { phase } from '../../progress.ts';
import { parseChecksumEntries, validCached, verifyFile, type ChecksumEntry } from '../checksums.ts';
import { onPath, publishDir, stagingDir, tool } from '../exec.ts';
import { download, fetchText, probe } from '../http.ts';
import { distroConfigProblems, imageFromRoot } from '../image.ts';
import type { Availability, Obtained, Provider, ProviderContext } from '../provider.ts';

export const DEFAULT_UBUNTU_MAINLINE_URL = 'https://kernel.ubuntu.com/mainline';

export function ubuntuMainlineBase(env: NodeJS.ProcessEnv): string {
  return (env.XCL_UBUNTU_MAINLINE_URL ?? DEFAULT_UBUNTU_MAINLINE_URL).replace(/\/+$/, '');
}

/** Links to .deb files in an HTML directory index (Apache / nginx autoindex). */
export function debLinks(html: string): string[] {
  const names = new Set<string>();
  for (const m of html.matchAll(/href="([^"?#]+\.deb)"/g)) {
    const name = decodeURIComponent(m[1] ?? '').split('/').pop();
    if (name) names.add(name);
  }
  return [...names];
}

/** The generic amd64 image (linux-image-unsigned-…, or linux-image-… before 4.18) and modules packages. */
export function pickDebs(names: readonly string[]): { image: string | null; modules: string | null } {
  const image = names.find((n) => /^linux-image-(unsigned-)?\d+\.\d+[\d.]*-\d+-generic_.*_amd64\.deb$/.test(n)) ?? null;
  const modules = names.find((n) => /^linux-modules-\d+\.\d+[\d.]*-\d+-generic_.*_amd64\.deb$/.test(n)) ?? null;
  return { image, modules };
}

interface Checksums {
  url: string;
  entries: Map<string, ChecksumEntry>;
}

/**
 * The version's CHECKSUMS: builds since 2023 keep one per architecture directory (amd64/CHECKSUMS),
 * older ones one at the top listing "amd64/…" paths.
 */
async function fetchChecksums(base: string, dir: string): Promise<Checksums> {
  let lastError: unknown;
  for (const sub of [`${dir}/amd64`, dir]) {
    const url = `${base}/${sub}/CHECKSUMS`;
    try {
      return { url, entries: parseChecksumEntries(await fetchText(url)) };
    } catch (e) {
      lastError = e;
      if (!(isLabError(e, 'DOWNLOAD') && e.details.status === 404)) throw e;
    }
  }
  throw lastError;
}

/** Where the .debs are: the first of amd64/ and the version directory whose index lists a generic image. */
async function findDebs(base: string, dir: string, sums: Checksums): Promise<{ image: string | null; modules: string | null; urlOf: (name: string) => string }> {
  for (const sub of [`${dir}/amd64`, dir]) {
    // A directory without an index (404, or a mirror without listings) is not an error here.
    const names = debLinks(await fetchText(`${base}/${sub}/`).catch(() => ''));
    const picked = pickDebs(names);
    if (picked.image) return { ...picked, urlOf: (name) => `${base}/${sub}/${name}` };
  }
  // No listing: take the names and paths CHECKSUMS gives, relative to its own directory.
  const sumsDir = sums.url.slice(0, sums.url.lastIndexOf('/'));
  const inArchDir = sumsDir.endsWith('/amd64');
  return {
    ...pickDebs([...sums.entries.keys()]),
    urlOf: (name) => {
      const path = sums.entries.get(name)?.path ?? name;
      return `${sumsDir}/${inArchDir ? path.replace(/^amd64\//, '') : path}`;
    },
  };
}

export const ubuntuMainlineProvider: Provider = {
  name: 'ubuntu-mainline',

  async available(ctx: ProviderContext): Promise<Availability> {
    const um = ctx.entry.ubuntuMainline;
    if (!um) return { ok: false, reason: `catalog names no Ubuntu mainline build for ${ctx.entry.version}` };
    if (!(await onPath('dpkg-deb'))) return { ok: false, reason: 'dpkg-deb not installed' };
    const base = ubuntuMainlineBase(ctx.env);
    const reason = await probe(base);
    return reason ? { ok: false, reason } : { ok: true, note: `${base}/${um.dir}` };
  },

  async obtain(ctx: ProviderContext): Promise<Obtained> {
    const { entry, progress } = ctx;
    const um = entry.ubuntuMainline;
    if (!um) throw new LabError('NO_PROVIDER', `catalog names no Ubuntu mainline build for ${entry.version}`);
    const base = ubuntuMainlineBase(ctx.env);
    const sums = await fetchChecksums(base, um.dir);
    const picked = await findDebs(base, um.dir, sums);
    if (!picked.image) {
      throw new LabError('DOWNLOAD', `${base}/${um.dir}/: no generic amd64 linux-image .deb (the build may have failed for this version)`, {
        remedy: `Pick another point release in kernels/catalog.json (ubuntuMainline.dir) or supply an image.`,
      });
    }
    const files = [picked.image, ...(picked.modules ? [picked.modules] : [])];
    const downloads = join(ctx.cacheDir, 'downloads', 'ubuntu-mainline', um.dir);
    await mkdir(downloads, { recursive: true });
    for (const f of files) {
      const expected = sums.entries.get(f)?.sha256;
      if (!expected) {
        throw new LabError('CHECKSUM', `${f} is not listed in ${sums.url}`, {
          remedy: 'Refusing an unverifiable download; the mirror may be incomplete.',
        });
      }
      const dest = join(downloads, f);
      if (await validCached(dest, expected)) continue;
      const sum = await phase(progress, `ubuntu-download-${f}`, `downloading ${f}`, () =>
        download(picked.urlOf(f), dest, { progress: { sink: progress, id: `ubuntu-download-${f}` } }),
      );
      await verifyFile(dest, expected, sums.url, sum);
    }

    const staging = await stagingDir(ctx.versionDir);
    try {
      const root = join(staging, 'root');
      for (const f of files) {
        await tool(['dpkg-deb', '-x', join(downloads, f), root], { what: `dpkg-deb -x ${f}`, code: 'IMAGE' });
      }
      await publishDir(staging, ctx.versionDir);
    } catch (e) {
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    const { image, plan } = await imageFromRoot(join(ctx.versionDir, 'root'), entry.version, entry.series, 'ubuntu-mainline', progress);
    if (image.configPath) {
      const problems = await distroConfigProblems(image.configPath);
      if (problems) progress({ kind: 'log', level: 'warn', message: `ubuntu-mainline ${image.release}: config lacks ${problems}` });
    }
    return {
      image,
      cacheable: true,
      origin: { urls: files.map((f) => picked.urlOf(f)), checksums: sums.url, bootModulePaths: plan?.load ?? [], builtin: plan?.builtin ?? [] },
    };
  },
};
