/**
 * Debian packages: 5.10 from bullseye, 6.1 and 6.12 from bookworm. apt runs on a lab-private
 * configuration (own sources list, lists and cache under kernels/cache/apt/<suite>) so the
 * system's sources and package state are never touched; `apt-get download` checks each .deb
 * against the signed repository index.
 */
import { copyFile, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LabError } from '../../errors.ts';
import { phase, type ProgressSink } from '../../progress.ts';
import type { DebianEntry } from '../catalog.ts';
import { onPath, publishDir, sha256File, stagingDir, tool, exists } from '../exec.ts';
import { probe } from '../http.ts';
import { distroConfigProblems, imageFromRoot, releaseMatchesSeries } from '../image.ts';
import type { Availability, Obtained, Provider, ProviderContext } from '../provider.ts';

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** The private apt configuration for one suite. */
export interface AptConfig {
  dir: string;
  options: string[];
}

export async function aptConfig(cacheDir: string, deb: DebianEntry): Promise<AptConfig> {
  const dir = join(cacheDir, 'apt', deb.suite);
  await mkdir(join(dir, 'lists', 'partial'), { recursive: true });
  await mkdir(join(dir, 'archives', 'partial'), { recursive: true });
  await mkdir(join(dir, 'sources.list.d'), { recursive: true });
  await mkdir(join(dir, 'preferences.d'), { recursive: true });
  const signedBy = (await exists(KEYRING)) ? ` [signed-by=${KEYRING}]` : '';
  const list = deb.sources.map((s) => `deb${signedBy} ${s.uri} ${s.suite} main`).join('\n');
  await writeFile(join(dir, 'sources.list'), `${list}\n`);
  const options = [
    `Dir::Etc::sourcelist=${join(dir, 'sources.list')}`,
    `Dir::Etc::sourceparts=${join(dir, 'sources.list.d')}`,
    `Dir::Etc::preferences=${join(dir, 'preferences')}`,
    `Dir::Etc::preferencesparts=${join(dir, 'preferences.d')}`,
    `Dir::State::Lists=${join(dir, 'lists')}`,
    `Dir::State::status=/dev/null`,
    `Dir::Cache=${dir}`,
    `Dir::Cache::archives=${join(dir, 'archives')}`,
    'APT::Architectures::=amd64',
    'Acquire::Languages=none',
    // apt drops to the _apt user for downloads, which cannot write into our cache: stay root.
    ...(process.getuid?.() === 0 ? ['APT::Sandbox::User=root'] : []),
  ].flatMap((o) => ['-o', o]);
  return { dir, options };
}

/** The concrete image package a meta-package's candidate depends on, e.g. linux-image-6.1.0-27-cloud-amd64. */
export function imagePackageFromShow(show: string): { pkg: string; version: string } | null {
  const depends = /^Depends:\s*(.*)$/m.exec(show)?.[1] ?? '';
  for (const dep of depends.split(',')) {
    const m = /^\s*(linux-image-[^\s(]+)\s*(?:\(=\s*([^)\s]+)\))?/.exec(dep);
    if (m?.[1] && !m[1].endsWith('-dbg')) return { pkg: m[1], version: m[2] ?? '' };
  }
  return null;
}

/** The SHA256 the repository index gives for the package shown (one stanza: --no-all-versions). */
export function debSha256FromShow(show: string): string | null {
  return /^SHA256:\s*([0-9a-f]{64})\s*$/m.exec(show)?.[1] ?? null;
}

/** Verified downloads: XCL_KERNEL_DOWNLOADS when set (shared between caches), else <cache>/downloads. */
export function downloadsRoot(ctx: Pick<ProviderContext, 'cacheDir' | 'env'>): string {
  return ctx.env.XCL_KERNEL_DOWNLOADS || join(ctx.cacheDir, 'downloads');
}

export const debianProvider: Provider = {
  name: 'debian',

  async available(ctx: ProviderContext): Promise<Availability> {
    const deb = ctx.entry.debian;
    if (!deb) return { ok: false, reason: `Debian has no package for ${ctx.entry.version} (5.10: bullseye; 6.1, 6.12: bookworm)` };
    for (const t of ['apt-get', 'dpkg-deb']) {
      if (!(await onPath(t))) return { ok: false, reason: `${t} not installed` };
    }
    const first = deb.sources[0];
    if (first) {
      const reason = await probe(first.uri);
      if (reason) return { ok: false, reason };
    }
    return { ok: true, note: `${deb.suite}: ${deb.flavours.map((f) => f.meta).join(' | ')}` };
  },

  async obtain(ctx: ProviderContext): Promise<Obtained> {
    const { entry, progress } = ctx;
    const deb = entry.debian;
    if (!deb) throw new LabError('NO_PROVIDER', `Debian has no package for ${entry.version} (5.10: bullseye; 6.1, 6.12: bookworm)`);
    const apt = await aptConfig(ctx.cacheDir, deb);
    await phase(progress, `debian-update-${deb.suite}`, `apt-get update (${deb.suite}, lab-private lists)`, () =>
      tool(['apt-get', ...apt.options, 'update'], {
        what: `apt-get update for ${deb.suite}`,
        code: 'DOWNLOAD',
        timeoutMs: 300_000,
        remedy: 'Check that deb.debian.org is reachable, or supply a kernel image (XCL_KERNEL_<ver>=path).',
      }),
    );

    const rejected: string[] = [];
    for (const flavour of deb.flavours) {
      const show = await tool(['apt-cache', ...apt.options, 'show', '--no-all-versions', flavour.meta], {
        what: `apt-cache show ${flavour.meta} (${deb.suite})`,
        code: 'DOWNLOAD',
      }).catch((e: unknown) => e as LabError);
      if (show instanceof LabError) {
        rejected.push(`${flavour.name}: ${flavour.meta} not found in ${deb.suite}`);
        continue;
      }
      const target = imagePackageFromShow(show.stdout);
      if (!target) {
        rejected.push(`${flavour.name}: ${flavour.meta} depends on no linux-image package`);
        continue;
      }
      if (target.version && !releaseMatchesSeries(target.version, entry.series)) {
        rejected.push(`${flavour.name}: ${target.pkg} is version ${target.version}, not ${entry.series}`);
        continue;
      }

      const staging = await stagingDir(ctx.versionDir);
      try {
        // A .deb downloaded before (by this cache or another one sharing XCL_KERNEL_DOWNLOADS) is
        // reused when its SHA256 is the one the signed index gives for this exact version.
        const pkgShow = await tool(['apt-cache', ...apt.options, 'show', '--no-all-versions', target.pkg], { what: `apt-cache show ${target.pkg}`, code: 'DOWNLOAD' });
        const indexSha = debSha256FromShow(pkgShow.stdout);
        const keep = join(downloadsRoot(ctx), 'debian', `${target.pkg}_${target.version || 'candidate'}.deb`);
        const debFile = await phase(progress, `debian-download-${entry.version}`, `apt-get download ${target.pkg}`, async () => {
          if (indexSha && (await exists(keep)) && (await sha256File(keep)) === indexSha) {
            const reused = join(staging, basename(keep));
            await copyFile(keep, reused);
            progress({ kind: 'log', level: 'info', message: `debian: ${target.pkg} ${target.version} from ${keep} (SHA256 matches the ${deb.suite} index)` });
            return reused;
          }
          await tool(['apt-get', ...apt.options, 'download', target.pkg], {
            cwd: staging,
            what: `apt-get download ${target.pkg}`,
            code: 'DOWNLOAD',
            timeoutMs: 900_000,
          });
          const files = (await readdir(staging)).filter((f) => f.endsWith('.deb'));
          if (files.length !== 1 || !files[0]) throw new LabError('DOWNLOAD', `apt-get download ${target.pkg}: expected one .deb, found ${files.length}`);
          const got = join(staging, files[0]);
          if (indexSha) {
            await mkdir(dirname(keep), { recursive: true });
            await copyFile(got, `${keep}.tmp`);
            await rename(`${keep}.tmp`, keep);
          }
          return got;
        });
        const debSha256 = await sha256File(debFile);
        const root = join(staging, 'root');
        await phase(progress, `debian-extract-${entry.version}`, `dpkg-deb -x ${target.pkg}`, () =>
          tool(['dpkg-deb', '-x', debFile, root], { what: `dpkg-deb -x ${debFile}`, code: 'IMAGE' }),
        );
        const configs = (await readdir(join(root, 'boot'))).filter((f) => f.startsWith('config-'));
        const config = configs[0] ? join(root, 'boot', configs[0]) : null;
        const problems = config ? await distroConfigProblems(config) : 'no /boot/config-* in the package';
        if (problems) {
          rejected.push(`${flavour.name}: ${target.pkg} lacks ${problems}`);
          progress({ kind: 'log', level: 'warn', message: `debian: ${flavour.name} flavour rejected: ${problems}` });
          await rm(staging, { recursive: true, force: true });
          continue;
        }
        await rm(debFile, { force: true });
        // Publish first so every path in the image points into the final cache directory.
        const final = ctx.versionDir;
        await publishDir(staging, final);
        const { image, plan } = await imageFromRoot(join(final, 'root'), entry.version, entry.series, 'debian', progress);
        return {
          image,
          cacheable: true,
          origin: {
            suite: deb.suite,
            flavour: flavour.name,
            meta: flavour.meta,
            package: target.pkg,
            packageVersion: target.version,
            debSha256,
            bootModulePaths: plan?.load ?? [],
            builtin: plan?.builtin ?? [],
          },
        };
      } catch (e) {
        await rm(staging, { recursive: true, force: true });
        throw e;
      }
    }
    throw new LabError('NO_PROVIDER', `no usable Debian ${deb.suite} kernel for ${entry.version}: ${rejected.join('; ')}`);
  },
};

/**
 * Debian's kernel source (linux-source-<series>): downloads the package with the private apt
 * configuration and returns the path of the source tarball it ships, for buildFromTarball.
 */
export async function fetchDebianSource(
  cacheDir: string,
  deb: DebianEntry,
  progress: ProgressSink,
): Promise<{ tarball: string; pkg: string; dir: string }> {
  if (!deb.source) throw new LabError('NO_PROVIDER', `Debian ${deb.suite} entry names no linux-source package`);
  const pkg = deb.source;
  const apt = await aptConfig(cacheDir, deb);
  await phase(progress, `debian-update-${deb.suite}`, `apt-get update (${deb.suite}, lab-private lists)`, () =>
    tool(['apt-get', ...apt.options, 'update'], { what: `apt-get update for ${deb.suite}`, code: 'DOWNLOAD', timeoutMs: 300_000 }),
  );
  const dir = join(cacheDir, 'downloads', 'debian-source', pkg);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await phase(progress, `debian-source-${pkg}`, `apt-get download ${pkg}`, () =>
    tool(['apt-get', ...apt.options, 'download', pkg], { cwd: dir, what: `apt-get download ${pkg}`, code: 'DOWNLOAD', timeoutMs: 1_800_000 }),
  );
  const debFile = (await readdir(dir)).find((f) => f.endsWith('.deb'));
  if (!debFile) throw new LabError('DOWNLOAD', `apt-get download ${pkg}: no .deb in ${dir}`);
  const root = join(dir, 'root');
  await tool(['dpkg-deb', '-x', join(dir, debFile), root], { what: `dpkg-deb -x ${debFile}`, code: 'IMAGE' });
  await rm(join(dir, debFile), { force: true });
  const src = join(root, 'usr', 'src');
  const tar = (await readdir(src)).find((f) => /^linux-source-.*\.tar\.(xz|gz|bz2)$/.test(f));
  if (!tar) throw new LabError('IMAGE', `${pkg}: no linux-source-*.tar.* in /usr/src`);
  return { tarball: join(src, tar), pkg, dir };
}
