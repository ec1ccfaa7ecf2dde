/**
 * A kernel source the user has: `--kernel-source PATH` (opts.kernelSource) or XCL_KERNEL_SRC_<ver>
 * (XCL_KERNEL_SRC_4_19=PATH). PATH is a source tree or a tarball (.tar, .tar.gz, .tgz, .tar.xz,
 * .tar.bz2). It is built here exactly as a kernel.org tarball is (lab/kernels/build.ts), in a copy
 * under <cache>/build/<version>: the user's tree is never configured, built or patched in place.
 * The image records the source (path, fingerprint, Makefile version) and `make kernelrelease`.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LabError } from '../../errors.ts';
import { phase } from '../../progress.ts';
import { buildTree, missingBuildTools, notAKernelTree, treeVersion, unpack } from '../build.ts';
import { exists, sha256File, tool } from '../exec.ts';
import type { Availability, Obtained, Provider, ProviderContext } from '../provider.ts';

/** XCL_KERNEL_SRC_4_19 for 4.19 (the local image's variable is XCL_KERNEL_4_19). */
export function sourceEnvName(version: string): string {
  return `XCL_KERNEL_SRC_${version.replace(/\./g, '_')}`;
}

export interface SourceRequest {
  path: string;
  /** "--kernel-source" or the environment variable's name. */
  from: string;
}

export function requestedSource(ctx: Pick<ProviderContext, 'kernelSource' | 'env' | 'entry'>): SourceRequest | null {
  if (ctx.kernelSource) return { path: resolve(ctx.kernelSource), from: '--kernel-source' };
  const name = sourceEnvName(ctx.entry.version);
  const v = ctx.env[name];
  return v ? { path: resolve(v), from: name } : null;
}

/** In <cache>/build/<version>/: the fingerprint of the source copied there. */
const STAMP = 'source-fingerprint';

const TARBALL = /\.(?:tar|tgz|tar\.gz|tar\.xz|tar\.bz2)$/;

function howToGive(version: string): string {
  return `set ${sourceEnvName(version)}=PATH, or \`npm run kernel -- ${version} --kernel-source PATH\` (a source tree or a .tar.{gz,xz})`;
}

/**
 * What identifies a source for the cache: a tarball's sha256, or a tree's file list with sizes and
 * modification times (.git left out). Any edit to the tree makes it another source.
 */
export async function sourceFingerprint(path: string): Promise<string> {
  const s = await stat(path);
  if (!s.isDirectory()) return `sha256:${await sha256File(path)}`;
  const { stdout } = await tool(['find', '.', '-path', './.git', '-prune', '-o', '-type', 'f', '-printf', '%P\t%s\t%T@\n'], {
    cwd: path,
    what: `listing ${path}`,
    code: 'BAD_INPUT',
    timeoutMs: 600_000,
  });
  const lines = stdout.split('\n').filter((l) => l !== '').sort();
  return `tree:${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
}

async function checkTree(tree: string, shownAs: string, series: string): Promise<string> {
  const v = await treeVersion(tree);
  if (!v || !(await exists(join(tree, 'Kconfig'))) || !(await exists(join(tree, 'arch', 'x86')))) throw notAKernelTree(shownAs);
  const treeSeries = `${v.version}.${v.patchlevel}`;
  if (treeSeries !== series) {
    throw new LabError('BAD_INPUT', `${shownAs} is a ${v.full} tree (series ${treeSeries}), not catalog version ${series}`, {
      remedy: `Build it as the version it is (\`npm run kernel -- ${treeSeries} --kernel-source ${shownAs}\`, if the catalog has ${treeSeries}), or give a ${series}.x source.`,
      details: { treeVersion: v.full, requested: series },
    });
  }
  return v.full;
}

export const sourceProvider: Provider = {
  name: 'source',

  async available(ctx: ProviderContext): Promise<Availability> {
    const req = requestedSource(ctx);
    if (!req) return { ok: false, reason: `no source given (${howToGive(ctx.entry.version)})` };
    if (!(await exists(req.path))) return { ok: false, reason: `${req.from}=${req.path}: no such file or directory` };
    const missing = await missingBuildTools();
    if (missing.length > 0) return { ok: false, reason: `building needs ${missing.join(', ')}` };
    return { ok: true, note: `${req.from}=${req.path} (built here)` };
  },

  async obtain(ctx: ProviderContext): Promise<Obtained> {
    const { entry, progress } = ctx;
    const req = requestedSource(ctx);
    if (!req) throw new LabError('NO_PROVIDER', `no source given (${howToGive(entry.version)})`);
    if (!(await exists(req.path))) {
      throw new LabError('MISSING_FILE', `${req.from}=${req.path}: no such file or directory`, { remedy: `Point ${req.from} to a kernel source tree or tarball.` });
    }
    const isDir = (await stat(req.path)).isDirectory();
    if (!isDir && !TARBALL.test(req.path)) {
      throw new LabError('BAD_INPUT', `${req.from}=${req.path}: neither a directory nor a tarball (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2)`, {
        remedy: 'Give the top directory of a kernel source tree or a tarball of one; for a built bzImage use --kernel-image.',
      });
    }
    // Refuse a wrong tree before copying a gigabyte of it.
    if (isDir) await checkTree(req.path, req.path, entry.series);
    const fingerprint = await sourceFingerprint(req.path);
    const buildRoot = join(ctx.cacheDir, 'build', entry.version);
    const what = `kernel ${entry.version} (source ${req.path})`;
    let tree: string;
    if (isDir) {
      tree = join(buildRoot, 'src');
      // A build of this very source that was interrupted or failed is resumed: rsync brings back
      // the source's files (fix-ups are then applied again) and keeps the objects, so make only
      // redoes what changed. Any other tree there is removed first.
      const stamp = join(buildRoot, STAMP);
      const previous = await readFile(stamp, 'utf8').catch(() => '');
      const resume = previous.trim() === fingerprint && (await exists(tree));
      if (!resume) {
        await rm(buildRoot, { recursive: true, force: true });
        await mkdir(buildRoot, { recursive: true });
        await writeFile(stamp, `${fingerprint}\n`);
      } else {
        progress({ kind: 'log', level: 'info', message: `${what}: resuming the build in ${tree} (same source)` });
      }
      await phase(progress, `source-copy-${entry.version}`, `copying ${req.path} to ${tree}`, () =>
        tool(['rsync', '-a', '--exclude=/.git', `${req.path}/`, `${tree}/`], { what: `copying ${req.path}`, code: 'KERNEL_BUILD', timeoutMs: 1_800_000 }),
      );
    } else {
      tree = await phase(progress, `source-unpack-${entry.version}`, `unpacking ${req.path}`, () =>
        unpack(req.path, buildRoot).catch((e: unknown) => {
          // tar failing or finding no Makefile both mean this is not a kernel tarball.
          throw e instanceof LabError && e.code === 'KERNEL_BUILD' ? notAKernelTree(req.path) : e;
        }),
      );
    }
    const sourceVersion = await checkTree(tree, req.path, entry.series);
    const built = await buildTree(tree, {
      version: entry.version,
      series: entry.series,
      provider: 'source',
      cacheDir: ctx.cacheDir,
      versionDir: ctx.versionDir,
      progress,
      what,
      buildRoot,
      ...(ctx.build ?? {}),
    });
    return {
      image: built.image,
      cacheable: true,
      origin: {
        source: { kind: isDir ? 'tree' : 'tarball', path: req.path, from: req.from, fingerprint, sourceVersion },
        release: built.image.release,
        skippedOptions: built.skipped,
        builtin: built.plan?.builtin ?? [],
        toolchain: built.toolchain,
        attempts: built.attempts,
        patches: built.patches,
        headers: built.headers,
      },
    };
  },
};
