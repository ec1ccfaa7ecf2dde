/**
 * Which compiler and flags build a kernel tree: known per series (kernels/toolchains.json), else
 * the default, and a fallback decided from the first error of a failed attempt. What was used
 * (compiler and its version, binutils, flags, every attempt) goes into the image's provenance.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { LabError, describeIssues, errorMessage } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';
import type { BuildError } from './build-log.ts';
import { tool } from './exec.ts';

export const TOOLCHAINS_PATH = join(REPO_ROOT, 'kernels', 'toolchains.json');

const toolchainSchema = z.object({
  cc: z.string().regex(/^[A-Za-z0-9_.+\-/]+$/),
  flags: z.array(z.string().regex(/^-[A-Za-z0-9_=,.\-+]+$/)).default([]),
  why: z.string().optional(),
});
const rulesSchema = z.object({
  default: toolchainSchema,
  fallbackCompilers: z.array(z.string().regex(/^[A-Za-z0-9_.+\-/]+$/)),
  series: z.record(toolchainSchema),
});

export type Toolchain = z.infer<typeof toolchainSchema>;
export type ToolchainRules = z.infer<typeof rulesSchema>;

/** A toolchain as found on this machine. */
export interface ResolvedToolchain extends Toolchain {
  /** `cc -dumpfullversion` ("12.2.0"). */
  ccVersion: string;
  /** Major version, for fallbacks and patch conditions. */
  ccMajor: number;
  /** `ld --version` ("2.40"). */
  binutils: string;
  /** Extra make arguments ([] for the plain default). */
  makeVars: string[];
}

export async function loadToolchainRules(path: string = TOOLCHAINS_PATH): Promise<ToolchainRules> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new LabError('MISSING_FILE', `toolchain rules ${path}: ${errorMessage(e)}`, { remedy: 'Restore kernels/toolchains.json from git.' });
  }
  const parsed = rulesSchema.safeParse(raw);
  if (!parsed.success) {
    const where = describeIssues(parsed.error.issues);
    throw new LabError('BAD_INPUT', `toolchain rules ${path}: ${where}`, { remedy: 'Fix the named fields in kernels/toolchains.json.' });
  }
  return parsed.data;
}

/** The toolchain a series starts with. */
export function initialToolchain(rules: ToolchainRules, series: string): Toolchain {
  const known = rules.series[series];
  return known ? { ...known, why: known.why ?? `known for ${series}` } : { ...rules.default, why: 'default compiler' };
}

/**
 * Flags go into CC and HOSTCC rather than KCFLAGS/HOSTCFLAGS: the x86 decompressor resets its
 * CFLAGS and objtool is built with HOSTCC, and both are where old trees break.
 */
export function makeVars(t: Toolchain, defaultCc = 'gcc'): string[] {
  if (t.cc === defaultCc && t.flags.length === 0) return [];
  const cc = [t.cc, ...t.flags].join(' ');
  return [`CC=${cc}`, `HOSTCC=${cc}`];
}

/** The version of `cc` (null when it is not installed). */
export async function compilerVersion(cc: string, env?: Record<string, string>): Promise<string | null> {
  try {
    const { stdout } = await tool([cc, '-dumpfullversion', '-dumpversion'], { what: `${cc} version`, env });
    const v = stdout.trim().split('\n')[0] ?? '';
    return /^\d+(\.\d+)*$/.test(v) ? v : null;
  } catch {
    return null;
  }
}

export async function binutilsVersion(env?: Record<string, string>): Promise<string> {
  try {
    const { stdout } = await tool(['ld', '--version'], { what: 'ld --version', env });
    return /(\d+\.\d+(?:\.\d+)?)\s*$/.exec(stdout.split('\n')[0] ?? '')?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function debianPackage(cc: string): string {
  return /^gcc-\d+$/.test(cc) ? cc : 'gcc';
}

/** Resolves `t` on this machine; throws MISSING_TOOL when its compiler is not installed. */
export async function resolveToolchain(t: Toolchain, opts: { env?: Record<string, string>; defaultCc?: string } = {}): Promise<ResolvedToolchain> {
  const ccVersion = await compilerVersion(t.cc, opts.env);
  if (!ccVersion) {
    throw new LabError('MISSING_TOOL', `compiler ${t.cc} is not installed (${t.why ?? 'chosen for this kernel'})`, {
      remedy: `apt-get install -y ${debianPackage(t.cc)} (lab/setup.sh installs it), or add a toolchain for this series in kernels/toolchains.json.`,
    });
  }
  return {
    ...t,
    ccVersion,
    ccMajor: Number(ccVersion.split('.')[0]),
    binutils: await binutilsVersion(opts.env),
    makeVars: makeVars(t, opts.defaultCc ?? 'gcc'),
  };
}

/**
 * What to try after a failed attempt, from its first error: -fcommon for a symbol defined twice
 * (GCC >= 10 defaults to -fno-common; kernels before 5.7 were written for -fcommon), an older
 * compiler for a compile error (newer GCC adds warnings old trees build with -Werror, and
 * diagnoses code that older ones accepted). Null when neither applies or was already tried.
 */
export async function fallbackToolchain(
  current: ResolvedToolchain,
  error: BuildError | null,
  rules: ToolchainRules,
  tried: ReadonlySet<string>,
  env?: Record<string, string>,
): Promise<Toolchain | null> {
  if (!error) return null;
  const key = (t: Toolchain) => [t.cc, ...t.flags].join(' ');
  if (error.kind === 'multiple-definition' && !current.flags.includes('-fcommon')) {
    const next = { cc: current.cc, flags: [...current.flags, '-fcommon'], why: `the link failed on "${error.message.slice(0, 120)}": -fcommon, the default before GCC 10` };
    return tried.has(key(next)) ? null : next;
  }
  if (error.kind === 'compile') {
    for (const cc of rules.fallbackCompilers) {
      const v = await compilerVersion(cc, env);
      if (!v || Number(v.split('.')[0]) >= current.ccMajor) continue;
      const next = { cc, flags: current.flags, why: `${current.cc} ${current.ccVersion} failed at ${error.file ?? '?'}:${error.line ?? '?'}: an older compiler` };
      if (!tried.has(key(next))) return next;
    }
  }
  return null;
}

/** The next thing a user can do about a build that failed at `error` with `t`. */
export function nextStep(t: ResolvedToolchain, error: BuildError | null, rules: ToolchainRules, series: string): string {
  const older = rules.fallbackCompilers.filter((c) => c !== t.cc);
  if (error?.kind === 'compile') {
    return (
      `Install an older compiler the lab falls back to (apt-get install -y ${older.join(' ') || 'gcc-11'}), or set one for ${series} in kernels/toolchains.json; ` +
      'if the tree is at fault whatever the compiler, use a later point release of the series or add a fix-up to kernels/patches/patches.json.'
    );
  }
  if (error?.kind === 'multiple-definition') return `Add "-fcommon" to the flags for ${series} in kernels/toolchains.json, or use a later point release of the series.`;
  return `Use a later point release of the ${series} series, or add a fix-up for this error to kernels/patches/patches.json (see kernels/README.md); the tree is kept for inspection.`;
}
