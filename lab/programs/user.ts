/**
 * Builds the userspace helpers (programs/user/<name>_user.c: the veth_poll probe, the BPF
 * run-time statistics switch, the XDP compare-and-swap and the tcx detach/replace) with cc + libbpf into build/user/<name>-<hash>,
 * through the toolchain: the name carries the content hash of the source, the headers it includes
 * (programs/user's and libbpf's), the flags and the compiler and its version, so an unchanged tree
 * rebuilds nothing and a changed one never reuses a stale binary. Also reads the helpers' output
 * (JSON lines). Built on the host and copied to guests: Debian bookworm's libbpf1 there matches
 * libbpf-dev here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';
import type { Target } from '../target.ts';
import type { CachedBuild } from '../toolchain/cache.ts';
import { compile } from '../toolchain/clang.ts';

/** The built executable: its path, the content hash it was built from, and whether it was built now. */
export type HelperBuild = CachedBuild;

/** The helpers this lab builds: name → source file in programs/user and what it links against. */
export const USER_HELPERS = {
  veth_probe: { source: 'veth_probe_user.c', libbpf: true },
  // Only the bpf() syscall: no libbpf, so it runs on a target whatever libbpf it has.
  bpf_stats: { source: 'bpf_stats_user.c', libbpf: false },
  // A compare-and-swap of an interface's XDP program (XDP_FLAGS_REPLACE), for the chain operations.
  xdp_swap: { source: 'xdp_swap_user.c', libbpf: true },
  // Loads objects with the verifier's statistics on (log level 4) and times the load.
  load_stats: { source: 'load_stats_user.c', libbpf: true },
  // Precise detach and in-place replace on tcx ingress (bpf_prog_*_opts, libbpf 1.3+).
  tcx: { source: 'tcx_user.c', libbpf: true },
} as const;
export type UserHelperName = keyof typeof USER_HELPERS;

export interface HelperBuildOptions {
  sourceDir?: string;
  outDir?: string;
  cc?: string;
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
  return compile(
    {
      compiler: cc,
      flags: ['-O2', '-g', '-Wall', '-Wextra'],
      source,
      output: 'executable',
      libs: libbpf ? ['-lbpf'] : [],
      what: `${what}: ${source}`,
      remedy: `Check that ${libbpf ? 'libbpf-dev' : 'linux-libc-dev'} is installed and the source compiles (\`cc programs/user/${sourceName}${libbpf ? ' -lbpf' : ''}\`).`,
    },
    { dir: outDir, name, ext: '', layout: 'hashed-latest' },
  );
}

/** The built helper on `target`: the host runs the build output, a guest gets a copy in its work dir. */
export async function helperOnTarget(target: Target, name: UserHelperName): Promise<string> {
  const h = await buildUserHelper(name);
  if (target.accelerator === 'host') return h.path;
  const remote = `${target.workDir}/bin/${name}-${h.hash}`;
  if ((await target.run(['test', '-x', remote], { allowFailure: true })).exitCode !== 0) {
    await target.run(['mkdir', '-p', `${target.workDir}/bin`]);
    await target.putFile(h.path, remote);
    await target.run(['chmod', '755', remote]);
  }
  return remote;
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
