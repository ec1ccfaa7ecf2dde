/**
 * Builds a kernel from a source tarball with the lab's config fragment: the kernel.org provider
 * and the Debian linux-source long test share this path. defconfig → merge fragment →
 * olddefconfig → verify every requested option is really set → bzImage (+ modules if any are =m).
 */
import { availableParallelism } from 'node:os';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { phase, type ProgressSink } from '../progress.ts';
import { LAB_CONFIG_FRAGMENT } from './catalog.ts';
import { exists, onPath, publishDir, stagingDir, tool } from './exec.ts';
import { imageFromRoot, type RootImage } from './image.ts';
import { checkConfig, describeChecks, mergeFragment, parseFragment, readKconfig } from './kconfig.ts';
import type { KernelVersion } from './types.ts';

export interface BuildOptions {
  version: KernelVersion;
  series: string;
  /** Recorded as the image's provider ("kernel.org", "debian-source"). */
  provider: string;
  /** Root of the kernel cache; the tree is unpacked in <cacheDir>/build/<version>. */
  cacheDir: string;
  /** Final home of the image: <versionDir>/root/{boot,lib/modules}. */
  versionDir: string;
  progress: ProgressSink;
  /** Config fragment (default kernels/config/lab.config). */
  fragmentPath?: string;
  /** make -j (default: available CPUs). */
  jobs?: number;
  /** Keep the build tree after success (default: removed, it is several GB). */
  keepTree?: boolean;
  /** Extra environment for make (tests). */
  env?: Record<string, string>;
}

export interface BuildResult extends RootImage {
  /** Fragment options skipped because this version's Kconfig does not have them. */
  skipped: string[];
}

/** Host tools a kernel build needs, with the Debian package providing each. */
export const BUILD_TOOLS: ReadonlyArray<[string, string]> = [
  ['make', 'make'],
  ['gcc', 'gcc'],
  ['flex', 'flex'],
  ['bison', 'bison'],
  ['bc', 'bc'],
  ['perl', 'perl'],
  ['tar', 'tar'],
  ['xz', 'xz-utils'],
  ['pahole', 'dwarves'],
];
const BUILD_HEADERS: ReadonlyArray<[string, string]> = [
  ['/usr/include/gelf.h', 'libelf-dev'],
  ['/usr/include/openssl/ssl.h', 'libssl-dev'],
];

/** Missing build prerequisites as Debian package names ([] when all are there). */
export async function missingBuildTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const [cmd, pkg] of BUILD_TOOLS) if (!(await onPath(cmd))) missing.push(pkg);
  for (const [file, pkg] of BUILD_HEADERS) if (!(await exists(file))) missing.push(pkg);
  return missing;
}

/** Every config symbol the tree's Kconfig files define. */
export async function kconfigSymbols(tree: string): Promise<Set<string>> {
  const { stdout } = await tool(['grep', '-rhoE', '--include=Kconfig*', '^[[:space:]]*(menu)?config[[:space:]]+[A-Za-z0-9_]+', '.'], {
    cwd: tree,
    what: `scanning Kconfig in ${tree}`,
    code: 'KERNEL_BUILD',
  });
  const symbols = new Set<string>();
  for (const line of stdout.split('\n')) {
    const m = /config\s+([A-Za-z0-9_]+)/.exec(line);
    if (m?.[1]) symbols.add(`CONFIG_${m[1]}`);
  }
  return symbols;
}

async function unpack(tarball: string, dest: string): Promise<string> {
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest, { recursive: true });
  await tool(['tar', '-xf', tarball, '-C', dest], { what: `unpacking ${tarball}`, code: 'KERNEL_BUILD', timeoutMs: 1_800_000 });
  const entries = await readdir(dest);
  const top = entries.length === 1 && entries[0] ? join(dest, entries[0]) : dest;
  if (!(await exists(join(top, 'Makefile')))) {
    throw new LabError('KERNEL_BUILD', `${tarball}: no top-level Makefile after unpacking`, { remedy: 'The tarball is not a kernel source tree.' });
  }
  return top;
}

/**
 * Configures a tree: defconfig, merge fragment, olddefconfig, verify. Returns the skipped
 * (absent, optional) options; throws KERNEL_BUILD naming every option that did not stick.
 */
export async function configureTree(tree: string, opts: { fragmentPath: string; what: string; progress: ProgressSink; env?: Record<string, string> }): Promise<string[]> {
  const make = (target: string) =>
    tool(['make', 'ARCH=x86_64', target], { cwd: tree, env: opts.env, what: `${opts.what}: make ${target}`, code: 'KERNEL_BUILD', timeoutMs: 600_000 });
  await make('defconfig');
  const fragment = parseFragment(await readFile(opts.fragmentPath, 'utf8'));
  const symbols = await kconfigSymbols(tree);
  const absent = [...fragment.options.keys()].filter((o) => !symbols.has(o));
  const notOptional = absent.filter((o) => !fragment.optional.has(o));
  if (notOptional.length > 0) {
    throw new LabError('KERNEL_BUILD', `${opts.what}: this kernel has no option ${notOptional.join(', ')} (requested by ${opts.fragmentPath})`, {
      remedy: `Mark them "# xcl-optional: ..." in ${opts.fragmentPath} if the lab can do without them on this version.`,
      details: { absent: notOptional },
    });
  }
  const skipped = absent;
  if (skipped.length > 0) opts.progress({ kind: 'log', level: 'info', message: `${opts.what}: not in this version, skipped: ${skipped.join(' ')}` });
  const dotConfig = join(tree, '.config');
  await writeFile(dotConfig, mergeFragment(await readFile(dotConfig, 'utf8'), fragment, new Set(skipped)));
  await make('olddefconfig');
  const wanted = [...fragment.options].filter(([k]) => !skipped.includes(k));
  const bad = checkConfig(await readKconfig(dotConfig), wanted);
  if (bad.length > 0) {
    const pahole = bad.some((b) => b.option.startsWith('CONFIG_DEBUG_INFO_BTF')) ? ' (DEBUG_INFO_BTF needs pahole: apt-get install dwarves)' : '';
    throw new LabError('KERNEL_BUILD', `${opts.what}: olddefconfig did not keep ${describeChecks(bad)}`, {
      remedy: `A dependency of these options is not met${pahole}; check them with make menuconfig in ${tree}, or adjust ${opts.fragmentPath}.`,
      details: { notSet: bad },
    });
  }
  return skipped;
}

/** Builds `tarball` and publishes the image to opts.versionDir. */
export async function buildFromTarball(tarball: string, opts: BuildOptions): Promise<BuildResult> {
  const what = `kernel ${opts.version} (${tarball.split('/').pop()})`;
  const missing = await missingBuildTools();
  if (missing.length > 0) {
    throw new LabError('MISSING_TOOL', `${what}: building needs ${missing.join(', ')}`, {
      remedy: `apt-get install -y ${missing.join(' ')}`,
    });
  }
  const fragmentPath = opts.fragmentPath ?? LAB_CONFIG_FRAGMENT;
  const buildRoot = join(opts.cacheDir, 'build', opts.version);
  const jobs = opts.jobs ?? availableParallelism();
  const tree = await phase(opts.progress, `build-unpack-${opts.version}`, `unpacking ${tarball.split('/').pop()}`, () => unpack(tarball, buildRoot));
  // A failed tree is kept in <cacheDir>/build/<version> for inspection; the next build starts afresh.
  {
    const skipped = await phase(opts.progress, `build-config-${opts.version}`, `configuring ${what}`, () =>
      configureTree(tree, { fragmentPath, what, progress: opts.progress, env: opts.env }),
    );
    const modular = /^CONFIG_[A-Z0-9_]+=m$/m.test(await readFile(join(tree, '.config'), 'utf8'));
    const targets = modular ? ['bzImage', 'modules'] : ['bzImage'];
    await phase(opts.progress, `build-make-${opts.version}`, `make -j${jobs} ${targets.join(' ')}`, () =>
      tool(['make', 'ARCH=x86_64', `-j${jobs}`, ...targets], {
        cwd: tree,
        env: opts.env,
        what: `${what}: make ${targets.join(' ')}`,
        code: 'KERNEL_BUILD',
        timeoutMs: 6 * 3600_000,
        progress: { sink: opts.progress, id: `build-make-${opts.version}` },
      }),
    );
    const release = (
      await tool(['make', '-s', 'ARCH=x86_64', 'kernelrelease'], { cwd: tree, env: opts.env, what: `${what}: make kernelrelease`, code: 'KERNEL_BUILD' })
    ).stdout.trim().split('\n').pop() ?? '';
    if (!/^\d+\.\d+/.test(release)) throw new LabError('KERNEL_BUILD', `${what}: make kernelrelease printed "${release}"`);
    const staging = await stagingDir(opts.versionDir);
    try {
      const root = join(staging, 'root');
      await mkdir(join(root, 'boot'), { recursive: true });
      await copyFile(join(tree, 'arch', 'x86', 'boot', 'bzImage'), join(root, 'boot', `vmlinuz-${release}`));
      await copyFile(join(tree, '.config'), join(root, 'boot', `config-${release}`));
      if (modular) {
        await tool(['make', 'ARCH=x86_64', `INSTALL_MOD_PATH=${root}`, 'modules_install'], {
          cwd: tree,
          env: opts.env,
          what: `${what}: make modules_install`,
          code: 'KERNEL_BUILD',
        });
      }
      await publishDir(staging, opts.versionDir);
    } catch (e) {
      await rm(staging, { recursive: true, force: true });
      throw e;
    }
    const result = await imageFromRoot(join(opts.versionDir, 'root'), opts.version, opts.series, opts.provider, opts.progress);
    if (!opts.keepTree) await rm(buildRoot, { recursive: true, force: true });
    return { ...result, skipped };
  }
}
