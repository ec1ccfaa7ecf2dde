/**
 * kernel.org stable tarballs, built here with the lab's config fragment (lab/kernels/build.ts).
 * The tarball is checked against the directory's sha256sums.asc (its signature is not checked:
 * that needs the kernel.org developers' keys). Base URL: XCL_KERNEL_ORG_URL.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../errors.ts';
import { phase } from '../../progress.ts';
import { buildFromTarball, missingBuildTools } from '../build.ts';
import { parseSha256List, validCached, verifyFile } from '../checksums.ts';
import { download, fetchText, probe } from '../http.ts';
import type { Availability, Obtained, Provider, ProviderContext } from '../provider.ts';

export const DEFAULT_KERNEL_ORG_URL = 'https://cdn.kernel.org/pub/linux/kernel';

export function kernelOrgBase(env: NodeJS.ProcessEnv): string {
  return (env.XCL_KERNEL_ORG_URL ?? DEFAULT_KERNEL_ORG_URL).replace(/\/+$/, '');
}

export const kernelOrgProvider: Provider = {
  name: 'kernel.org',

  async available(ctx: ProviderContext): Promise<Availability> {
    const ko = ctx.entry.kernelOrg;
    if (!ko) return { ok: false, reason: `catalog names no kernel.org tarball for ${ctx.entry.version}` };
    const base = kernelOrgBase(ctx.env);
    const reason = await probe(base);
    if (reason) return { ok: false, reason };
    const missing = await missingBuildTools();
    if (missing.length > 0) return { ok: false, reason: `building needs ${missing.join(', ')}` };
    return { ok: true, note: `${base}/${ko.dir}/${ko.tarball} (built here)` };
  },

  async obtain(ctx: ProviderContext): Promise<Obtained> {
    const { entry, progress } = ctx;
    const ko = entry.kernelOrg;
    if (!ko) throw new LabError('NO_PROVIDER', `catalog names no kernel.org tarball for ${entry.version}`);
    const base = kernelOrgBase(ctx.env);
    const sumsUrl = `${base}/${ko.dir}/sha256sums.asc`;
    const sums = parseSha256List(await fetchText(sumsUrl));
    const expected = sums.get(ko.tarball);
    if (!expected) {
      throw new LabError('CHECKSUM', `${ko.tarball} is not listed in ${sumsUrl}`, {
        remedy: 'Refusing an unverifiable download; check kernelOrg.tarball in kernels/catalog.json.',
      });
    }
    // Check the tools before a 100+ MB download.
    const missing = await missingBuildTools();
    if (missing.length > 0) {
      throw new LabError('MISSING_TOOL', `building ${ko.tarball} needs ${missing.join(', ')}`, { remedy: `apt-get install -y ${missing.join(' ')}` });
    }
    const downloads = join(ctx.cacheDir, 'downloads', 'kernel.org');
    await mkdir(downloads, { recursive: true });
    const tarball = join(downloads, ko.tarball);
    if (!(await validCached(tarball, expected))) {
      const sum = await phase(progress, `kernel-org-download-${entry.version}`, `downloading ${ko.tarball}`, () =>
        download(`${base}/${ko.dir}/${ko.tarball}`, tarball, { progress: { sink: progress, id: `kernel-org-download-${entry.version}` } }),
      );
      await verifyFile(tarball, expected, sumsUrl, sum);
    }
    const built = await buildFromTarball(tarball, {
      version: entry.version,
      series: entry.series,
      provider: 'kernel.org',
      cacheDir: ctx.cacheDir,
      versionDir: ctx.versionDir,
      progress,
    });
    return {
      image: built.image,
      cacheable: true,
      origin: {
        url: `${base}/${ko.dir}/${ko.tarball}`,
        tarballSha256: expected,
        skippedOptions: built.skipped,
        builtin: built.plan?.builtin ?? [],
        sourceVersion: built.sourceVersion,
        toolchain: built.toolchain,
        attempts: built.attempts,
        patches: built.patches,
        headers: built.headers,
      },
    };
  },
};
