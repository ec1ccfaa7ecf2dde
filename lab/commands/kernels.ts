/**
 * `npm run kernels`: the catalog with what this machine can obtain. Cheap: no download; network
 * providers are probed with a short connect timeout, one connection per host.
 */
import { execFileSync } from 'node:child_process';
import { Command } from 'commander';
import type { ProgressSink } from '../progress.ts';
import { loadCatalog } from '../kernels/catalog.ts';
import { lookupCache } from '../kernels/cache.ts';
import type { Provider } from '../kernels/provider.ts';
import { DEFAULT_PROVIDERS, providerContext } from '../kernels/resolve.ts';
import { errorMessage } from '../errors.ts';
import { Version } from '../version.ts';

export interface ProviderStatus {
  name: string;
  available: boolean;
  /** Why not (when unavailable), or what it would use (when available). */
  reason?: string;
}

export interface KernelListing {
  /** Catalog version ("6.1", or "host"). */
  version: string;
  /** LTS series; for host, the running kernel's major.minor. */
  series: string;
  providers: ProviderStatus[];
  /** A verified image is in the cache. */
  cached: boolean;
  /** `uname -r` of the cached image (or of the running kernel for host). */
  release?: string;
}

export async function listKernels(
  opts: { cacheDir?: string; providers?: Provider[]; env?: NodeJS.ProcessEnv; progress?: ProgressSink } = {},
): Promise<KernelListing[]> {
  const catalog = loadCatalog();
  const providers = opts.providers ?? DEFAULT_PROVIDERS;
  const env = opts.env ?? process.env;
  const rows = await Promise.all(
    catalog.kernels.map(async (entry): Promise<KernelListing> => {
      const ctx = providerContext(entry.version, { cacheDir: opts.cacheDir, progress: opts.progress }, env);
      const statuses = await Promise.all(
        providers.map(async (p): Promise<ProviderStatus> => {
          try {
            const a = await p.available(ctx);
            return a.ok ? { name: p.name, available: true, ...(a.note ? { reason: a.note } : {}) } : { name: p.name, available: false, reason: a.reason };
          } catch (e) {
            return { name: p.name, available: false, reason: errorMessage(e) };
          }
        }),
      );
      const cache = await lookupCache(ctx.versionDir, entry.version);
      return {
        version: entry.version,
        series: entry.series,
        providers: statuses,
        cached: cache.hit,
        ...(cache.hit ? { release: cache.image.release } : {}),
      };
    }),
  );
  const release = hostRelease();
  rows.push({
    version: 'host',
    series: Version.ofRelease(release)?.series ?? release,
    providers: [{ name: 'host', available: true, reason: catalog.host.description }],
    cached: false,
    release,
  });
  return rows;
}

function hostRelease(): string {
  try {
    return execFileSync('uname', ['-r']).toString().trim();
  } catch {
    return 'unknown';
  }
}

export function kernelsCommand(): Command {
  return new Command('kernels')
    .description('list the kernel catalog and, for each version, which provider can supply it on this machine')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const rows = await listKernels();
      if (o.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      for (const r of rows) {
        const usable = r.providers.filter((p) => p.available).map((p) => p.name);
        const state = r.cached ? `cached (${r.release ?? '?'})` : usable.length > 0 ? `obtainable via ${usable.join(', ')}` : 'NOT obtainable here';
        process.stdout.write(`${r.version.padEnd(6)} ${state}\n`);
        for (const p of r.providers) {
          process.stdout.write(`         ${p.available ? '+' : '-'} ${p.name}${p.reason ? `: ${p.reason}` : ''}\n`);
        }
      }
    });
}
