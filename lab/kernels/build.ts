/**
 * Builds a kernel from a source tarball or tree with the lab's config fragment: the kernel.org
 * provider, the source provider and the Debian linux-source long test share this path.
 * fix-ups (kernels/patches) → defconfig → merge fragment → olddefconfig → verify every requested
 * option is really set → bzImage (+ modules if any are =m), with the toolchain kernels/toolchains.json
 * names for the series and, when an attempt fails, the fallback its first error calls for.
 */
import { availableParallelism } from 'node:os';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { LabError } from '../errors.ts';
import { Version } from '../version.ts';
import { phase, type ProgressSink } from '../progress.ts';
import { LAB_CONFIG_FRAGMENT } from './catalog.ts';
import { exists, onPath, publishDir, stagingDir, tool } from './exec.ts';
import { keepModuleBuildFiles, type KeptHeaders } from './headers.ts';
import { imageFromRoot, type RootImage } from './image.ts';
import { checkConfig, describeChecks, mergeFragment, parseFragment, readKconfig } from './kconfig.ts';
import { describeBuildError, firstBuildError, type BuildError } from './build-log.ts';
import { applyPatches, loadPatches, selectPatches, PATCHES_DIR, type AppliedPatch } from './patches.ts';
import { fallbackToolchain, initialToolchain, loadToolchainRules, nextStep, resolveToolchain, type ResolvedToolchain, type Toolchain, type ToolchainRules } from './toolchain.ts';
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
  /** Toolchain rules (default kernels/toolchains.json). */
  toolchains?: ToolchainRules;
  /** Directory of patches.json and the fix-ups (default kernels/patches). */
  patchesDir?: string;
}

/** One make run with one toolchain, as recorded in provenance. */
export interface BuildAttempt {
  cc: string;
  ccVersion: string;
  flags: string[];
  why: string;
  ok: boolean;
  /** The first error of a failed attempt ("file:line: error: ..."). */
  firstError?: string;
}

export interface BuildResult extends RootImage {
  /** Fragment options skipped because this version's Kconfig does not have them. */
  skipped: string[];
  /** The toolchain the image was built with. */
  toolchain: { cc: string; ccVersion: string; binutils: string; flags: string[]; makeVars: string[]; why: string };
  attempts: BuildAttempt[];
  /** Fix-ups considered for this tree (status applied = the kernel under test differs from its source). */
  patches: AppliedPatch[];
  /** VERSION.PATCHLEVEL.SUBLEVEL+EXTRAVERSION of the tree's Makefile. */
  sourceVersion: string;
  /** The module build files kept from the tree (dir relative to versionDir), or null without module support. */
  headers: { dir: string; files: number } | null;
}

/** VERSION, PATCHLEVEL, SUBLEVEL, EXTRAVERSION of a kernel tree's top Makefile (null: not a kernel tree). */
export async function treeVersion(tree: string): Promise<{ version: number; patchlevel: number; sublevel: number; extra: string; full: string } | null> {
  let text: string;
  try {
    text = await readFile(join(tree, 'Makefile'), 'utf8');
  } catch {
    return null;
  }
  const field = (name: string): string | null => new RegExp(`^${name}\\s*=[ \\t]*(\\S*)[ \\t]*$`, 'm').exec(text)?.[1] ?? null;
  const [v, p, sub] = [field('VERSION'), field('PATCHLEVEL'), field('SUBLEVEL')];
  if (!v || !p || sub === null || !/^\d+$/.test(v) || !/^\d+$/.test(p)) return null;
  const extra = field('EXTRAVERSION') ?? '';
  const sublevel = /^\d+$/.test(sub) ? Number(sub) : 0;
  return { version: Number(v), patchlevel: Number(p), sublevel, extra, full: `${v}.${p}.${sublevel}${extra}` };
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

export async function unpack(tarball: string, dest: string): Promise<string> {
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
export async function configureTree(
  tree: string,
  opts: { fragmentPath: string; what: string; progress: ProgressSink; env?: Record<string, string>; makeVars?: string[] },
): Promise<string[]> {
  const make = (target: string) =>
    tool(['make', 'ARCH=x86_64', ...(opts.makeVars ?? []), target], { cwd: tree, env: opts.env, what: `${opts.what}: make ${target}`, code: 'KERNEL_BUILD', timeoutMs: 600_000 });
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
  await requireBuildTools(what);
  const buildRoot = join(opts.cacheDir, 'build', opts.version);
  const tree = await phase(opts.progress, `build-unpack-${opts.version}`, `unpacking ${tarball.split('/').pop()}`, () => unpack(tarball, buildRoot));
  return buildTree(tree, { ...opts, what, buildRoot });
}

async function requireBuildTools(what: string): Promise<void> {
  const missing = await missingBuildTools();
  if (missing.length > 0) {
    throw new LabError('MISSING_TOOL', `${what}: building needs ${missing.join(', ')}`, {
      remedy: `apt-get install -y ${missing.join(' ')}`,
    });
  }
}

const toolchainKey = (t: Toolchain): string => [t.cc, ...t.flags].join(' ');

/**
 * Builds an unpacked tree that the lab owns (it is patched and configured in place) and publishes
 * the image. `buildRoot` is removed after success unless keepTree; a failed tree is kept for
 * inspection (the next build starts afresh).
 */
export async function buildTree(tree: string, opts: BuildOptions & { what?: string; buildRoot?: string }): Promise<BuildResult> {
  const what = opts.what ?? `kernel ${opts.version}`;
  await requireBuildTools(what);
  const fragmentPath = opts.fragmentPath ?? LAB_CONFIG_FRAGMENT;
  const jobs = opts.jobs ?? availableParallelism();
  const rules = opts.toolchains ?? (await loadToolchainRules());
  const patchesDir = opts.patchesDir ?? PATCHES_DIR;
  const allPatches = await loadPatches(patchesDir);
  // The source provider refuses a tree without a version before it gets here; a downloaded
  // tarball is recorded as whatever its Makefile says.
  const src = (await treeVersion(tree)) ?? { full: 'unknown' };
  const defaultCc = rules.default.cc;

  const attempts: BuildAttempt[] = [];
  const patches: AppliedPatch[] = [];
  const tried = new Set<string>();
  let next: Toolchain | null = initialToolchain(rules, opts.series);
  let skipped: string[] = [];
  let modular = false;
  let built: ResolvedToolchain | null = null;
  while (next && !built) {
    const t = await resolveToolchain(next, { env: opts.env, defaultCc });
    tried.add(toolchainKey(t));
    const done = new Set(patches.map((p) => p.file));
    patches.push(...(await applyPatches(tree, selectPatches(allPatches, opts.series, t), { dir: patchesDir, progress: opts.progress, what, done })));
    const label = `${t.cc} ${t.ccVersion}${t.flags.length ? ` ${t.flags.join(' ')}` : ''}`;
    opts.progress({ kind: 'log', level: 'info', message: `${what}: ${src.full} with ${label}, binutils ${t.binutils} (${t.why ?? ''})` });
    skipped = await phase(opts.progress, `build-config-${opts.version}`, `configuring ${what}`, () =>
      configureTree(tree, { fragmentPath, what, progress: opts.progress, env: opts.env, makeVars: t.makeVars }),
    );
    modular = /^CONFIG_[A-Z0-9_]+=m$/m.test(await readFile(join(tree, '.config'), 'utf8'));
    const targets = modular ? ['bzImage', 'modules'] : ['bzImage'];
    try {
      await phase(opts.progress, `build-make-${opts.version}`, `make -j${jobs} ${targets.join(' ')} (${label})`, () =>
        tool(['make', 'ARCH=x86_64', ...t.makeVars, `-j${jobs}`, ...targets], {
          cwd: tree,
          env: opts.env,
          what: `${what}: make ${targets.join(' ')}`,
          code: 'KERNEL_BUILD',
          timeoutMs: 6 * 3600_000,
          progress: { sink: opts.progress, id: `build-make-${opts.version}` },
        }),
      );
      attempts.push({ cc: t.cc, ccVersion: t.ccVersion, flags: t.flags, why: t.why ?? '', ok: true });
      built = t;
    } catch (e) {
      if (!(e instanceof LabError) || e.code !== 'KERNEL_BUILD' || typeof e.details.stderr !== 'string') throw e;
      const first = firstBuildError(e.details.stderr);
      const firstText = first ? describeBuildError(first) : (e.message.split('\n').slice(-1)[0] ?? e.message);
      attempts.push({ cc: t.cc, ccVersion: t.ccVersion, flags: t.flags, why: t.why ?? '', ok: false, firstError: firstText });
      next = await fallbackToolchain(t, first, rules, tried, opts.env);
      if (next) {
        opts.progress({ kind: 'log', level: 'warn', message: `${what}: failed with ${label} at ${firstText}; retrying with ${[next.cc, ...next.flags].join(' ')} (${next.why ?? ''})` });
        continue;
      }
      throw buildFailure(what, tree, src.full, t, first, attempts, rules, opts.series, e);
    }
  }
  if (!built) throw new LabError('KERNEL_BUILD', `${what}: no toolchain left to try`);
  const makeVars = built.makeVars;
  const release = (
    await tool(['make', '-s', 'ARCH=x86_64', ...makeVars, 'kernelrelease'], { cwd: tree, env: opts.env, what: `${what}: make kernelrelease`, code: 'KERNEL_BUILD' })
  ).stdout.trim().split('\n').pop() ?? '';
  if (!Version.ofRelease(release)) throw new LabError('KERNEL_BUILD', `${what}: make kernelrelease printed "${release}"`);
  const staging = await stagingDir(opts.versionDir);
  let headers: KeptHeaders | null = null;
  try {
    const root = join(staging, 'root');
    await mkdir(join(root, 'boot'), { recursive: true });
    await copyFile(join(tree, 'arch', 'x86', 'boot', 'bzImage'), join(root, 'boot', `vmlinuz-${release}`));
    await copyFile(join(tree, '.config'), join(root, 'boot', `config-${release}`));
    if (modular) {
      await tool(['make', 'ARCH=x86_64', ...makeVars, `INSTALL_MOD_PATH=${root}`, 'modules_install'], {
        cwd: tree,
        env: opts.env,
        what: `${what}: make modules_install`,
        code: 'KERNEL_BUILD',
      });
    }
    // The tree is removed below: keep what building a module against this kernel needs.
    const config = await readKconfig(join(tree, '.config'));
    headers = await keepModuleBuildFiles(tree, root, release, { modules: modular && config.get('CONFIG_MODULES') === 'y', env: opts.env });
    await publishDir(staging, opts.versionDir);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
  const result = await imageFromRoot(join(opts.versionDir, 'root'), opts.version, opts.series, opts.provider, opts.progress);
  if (!opts.keepTree && opts.buildRoot) await rm(opts.buildRoot, { recursive: true, force: true });
  return {
    ...result,
    skipped,
    toolchain: { cc: built.cc, ccVersion: built.ccVersion, binutils: built.binutils, flags: built.flags, makeVars, why: built.why ?? '' },
    attempts,
    patches,
    sourceVersion: src.full,
    headers: headers ? { dir: relative(staging, headers.dir), files: headers.files } : null,
  };
}

export function notAKernelTree(path: string): LabError {
  return new LabError('BAD_INPUT', `${path}: not a Linux kernel source tree (no top-level Makefile with VERSION and PATCHLEVEL)`, {
    remedy: 'Give the top directory of a kernel source tree (the one holding Makefile, Kconfig and arch/), or a linux-<version>.tar.{gz,xz} tarball of one.',
  });
}

function buildFailure(
  what: string,
  tree: string,
  sourceVersion: string,
  t: ResolvedToolchain,
  first: BuildError | null,
  attempts: readonly BuildAttempt[],
  rules: ToolchainRules,
  series: string,
  cause: LabError,
): LabError {
  const history = attempts.length > 1 ? ` (after ${attempts.slice(0, -1).map((a) => `${[a.cc, ...a.flags].join(' ')}: ${a.firstError ?? 'failed'}`).join('; ')})` : '';
  const at = first ? describeBuildError(first) : 'no compiler, linker or tool error found in make\'s output';
  const target = first?.target ? ` [make target ${first.target}]` : '';
  return new LabError('KERNEL_BUILD', `${what}: ${sourceVersion} failed to build with ${t.cc} ${t.ccVersion}${t.flags.length ? ` ${t.flags.join(' ')}` : ''} (binutils ${t.binutils}): ${at}${target}${history}`, {
    cause,
    remedy: `${nextStep(t, first, rules, series)} Tree: ${tree}.`,
    details: { firstError: first, attempts, tree, stderr: cause.details.stderr },
  });
}
