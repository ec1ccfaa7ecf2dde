/**
 * Builds the userspace helpers (programs/user/<name>_user.c: the veth_poll probe, the BPF
 * run-time statistics switch and the XDP compare-and-swap) with cc + libbpf into build/user/<name>-<hash>.
 * The output name carries a hash of the helper's source, the shared headers, the compiler and the
 * libbpf headers, so an unchanged tree rebuilds nothing and a changed one never reuses a stale binary.
 * Built on the host and copied to guests: Debian bookworm's libbpf1 there matches libbpf-dev here.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';


export interface HelperBuild {
  /** Absolute path of the built executable. */
  path: string;
  /** Content hash the binary was built from. */
  hash: string;
  /** False when an up-to-date binary was already there. */
  built: boolean;
}

/** The helpers this lab builds: name → source file in programs/user and what it links against. */
export const USER_HELPERS = {
  veth_probe: { source: 'veth_probe_user.c', libbpf: true },
  // Only the bpf() syscall: no libbpf, so it runs on a target whatever libbpf it has.
  bpf_stats: { source: 'bpf_stats_user.c', libbpf: false },
  // A compare-and-swap of an interface's XDP program (XDP_FLAGS_REPLACE), for the chain operations.
  xdp_swap: { source: 'xdp_swap_user.c', libbpf: true },
} as const;
export type UserHelperName = keyof typeof USER_HELPERS;

export interface HelperBuildOptions {
  sourceDir?: string;
  outDir?: string;
  cc?: string;
}

async function ccVersion(cc: string): Promise<string> {
  try {
    const r = await execa(cc, ['--version'], { reject: false });
    if (r.exitCode !== 0) throw new Error(String(r.stderr));
    return String(r.stdout).split('\n')[0] ?? '';
  } catch (e) {
    throw new LabError('MISSING_TOOL', `helper build: C compiler \`${cc}\` not usable`, {
      cause: e,
      remedy: 'Install gcc or clang (run `npm run setup`).',
    });
  }
}

/** Builds build/user/veth_probe-<hash> from programs/user/veth_probe_user.c. */
export function buildProbeHelper(options: HelperBuildOptions = {}): Promise<HelperBuild> {
  return buildUserHelper('veth_probe', options);
}

/** Builds build/user/bpf_stats-<hash> from programs/user/bpf_stats_user.c. */
export function buildStatsHelper(options: HelperBuildOptions = {}): Promise<HelperBuild> {
  return buildUserHelper('bpf_stats', options);
}

export async function buildUserHelper(name: UserHelperName, options: HelperBuildOptions = {}): Promise<HelperBuild> {
  const sourceDir = options.sourceDir ?? join(REPO_ROOT, 'programs', 'user');
  const outDir = options.outDir ?? join(REPO_ROOT, 'build', 'user');
  const cc = options.cc ?? 'cc';
  const { source: sourceName, libbpf } = USER_HELPERS[name];
  const source = join(sourceDir, sourceName);
  const what = name === 'veth_probe' ? 'probe helper' : `${name} helper`;
  if (!existsSync(source)) {
    throw new LabError('MISSING_FILE', `${what}: ${source} not found`, {
      remedy: 'Run from a complete checkout of the lab.',
    });
  }
  const libbpfHeader = '/usr/include/bpf/libbpf.h';
  if (libbpf && !existsSync(libbpfHeader)) {
    throw new LabError('MISSING_TOOL', `${what}: ${libbpfHeader} not found (libbpf-dev)`, {
      remedy: 'Install libbpf-dev (run `npm run setup`).',
    });
  }
  const hash = createHash('sha256');
  for (const file of (await readdir(sourceDir)).filter((n) => n === sourceName || n.endsWith('.h')).sort()) {
    hash.update(file).update('\0').update(await readFile(join(sourceDir, file))).update('\0');
  }
  hash.update(await ccVersion(cc)).update('\0');
  const versionHeader = '/usr/include/bpf/libbpf_version.h';
  if (existsSync(versionHeader)) hash.update(await readFile(versionHeader));
  const digest = hash.digest('hex').slice(0, 16);
  const path = join(outDir, `${name}-${digest}`);
  if (existsSync(path)) return { path, hash: digest, built: false };

  await mkdir(outDir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const r = await execa(cc, ['-O2', '-g', '-Wall', '-Wextra', '-o', tmp, source, ...(libbpf ? ['-lbpf'] : [])], { reject: false, all: true });
  if (r.exitCode !== 0) {
    await rm(tmp, { force: true });
    throw new LabError('COMPILE', `${what}: ${source}: cc failed (exit ${r.exitCode}):\n${String(r.all ?? '').trim()}`, {
      remedy: `Check that ${libbpf ? 'libbpf-dev' : 'linux-libc-dev'} is installed and the source compiles (\`cc programs/user/${sourceName}${libbpf ? ' -lbpf' : ''}\`).`,
    });
  }
  // Rename last so a killed build never leaves a binary under the final name.
  await rename(tmp, path);
  for (const old of await readdir(outDir)) {
    if (old.startsWith(`${name}-`) && join(outDir, old) !== path) await rm(join(outDir, old), { force: true });
  }
  return { path, hash: digest, built: true };
}

/** One line of a helper's stdout: a JSON object with an `event` (see each helper's header). */
export interface HelperLine {
  event?: string;
  [k: string]: unknown;
}

/** The complete JSON lines of a helper's output so far; a line still being written is skipped. */
export function parseHelperLines(text: string): HelperLine[] {
  const out: HelperLine[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      out.push(JSON.parse(t) as HelperLine);
    } catch {
      /* incomplete: read again on the next poll */
    }
  }
  return out;
}
