/**
 * The kernel catalog (kernels/catalog.json): which LTS series the lab knows and where each can be
 * obtained. The JSON is validated once on load so a hand edit with a typo fails with a clear message.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { LabError, describeIssues, errorMessage } from '../errors.ts';
import { KERNEL_VERSIONS, type KernelVersion } from './types.ts';
import { REPO_ROOT } from '../paths.ts';

/** Repository root (lab/kernels/ → ../../). */
export const CATALOG_PATH = join(REPO_ROOT, 'kernels', 'catalog.json');
export const LAB_CONFIG_FRAGMENT = join(REPO_ROOT, 'kernels', 'config', 'lab.config');
export const DEFAULT_CACHE_DIR = join(REPO_ROOT, 'kernels', 'cache');

const aptSource = z.object({ uri: z.string().url(), suite: z.string().min(1) });
const debianEntry = z.object({
  suite: z.string().min(1),
  sources: z.array(aptSource).min(1),
  /** Flavours in preference order; `meta` is the meta-package whose candidate names the image. */
  flavours: z.array(z.object({ name: z.string().min(1), meta: z.string().min(1) })).min(1),
  /** linux-source-<series> package, for building from Debian's source. */
  source: z.string().min(1).nullable(),
});
const entry = z.object({
  version: z.enum(KERNEL_VERSIONS as unknown as [KernelVersion, ...KernelVersion[]]),
  series: z.string().regex(/^\d+\.\d+$/),
  lts: z.object({ released: z.string(), eol: z.string() }),
  debian: debianEntry.nullable(),
  ubuntuMainline: z.object({ dir: z.string().regex(/^v\d+\.\d+(\.\d+)?$/) }).nullable(),
  kernelOrg: z
    .object({
      dir: z.string().regex(/^v\d+\.x$/),
      tarball: z.string().regex(/^linux-[\d.]+\.tar\.(xz|gz)$/),
      pointRelease: z.string().regex(/^\d+\.\d+\.\d+$/),
    })
    .nullable(),
});
const catalogSchema = z.object({
  kernels: z.array(entry),
  host: z.object({ version: z.literal('host'), description: z.string() }),
});

export type AptSource = z.infer<typeof aptSource>;
export type DebianEntry = z.infer<typeof debianEntry>;
export type CatalogEntry = z.infer<typeof entry>;
export type Catalog = z.infer<typeof catalogSchema>;

let cached: Catalog | undefined;

export function loadCatalog(path: string = CATALOG_PATH): Catalog {
  if (path === CATALOG_PATH && cached) return cached;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new LabError('MISSING_FILE', `kernel catalog ${path}: ${errorMessage(e)}`, {
      cause: e,
      remedy: 'Restore kernels/catalog.json from git (git checkout kernels/catalog.json).',
    });
  }
  const parsed = catalogSchema.safeParse(raw);
  if (!parsed.success) {
    const where = describeIssues(parsed.error.issues);
    throw new LabError('BAD_INPUT', `kernel catalog ${path}: ${where}`, {
      remedy: 'Fix the named fields in kernels/catalog.json (compare with git diff).',
    });
  }
  if (path === CATALOG_PATH) cached = parsed.data;
  return parsed.data;
}

/** Every name the catalog accepts, for messages and `npm run kernels`. */
export function catalogNames(catalog: Catalog = loadCatalog()): string[] {
  return [...catalog.kernels.map((k) => k.version), 'host'];
}

export function isKernelVersion(v: string): v is KernelVersion {
  return (KERNEL_VERSIONS as readonly string[]).includes(v);
}

/** The catalog entry for `version`, or LabError('UNKNOWN_KERNEL') listing the catalog. */
export function catalogEntry(version: string, catalog: Catalog = loadCatalog()): CatalogEntry {
  const found = catalog.kernels.find((k) => k.version === version);
  if (!found) {
    const names = catalogNames(catalog).join(', ');
    throw new LabError('UNKNOWN_KERNEL', `kernel "${version}" is not in the catalog (known: ${names})`, {
      remedy: `Use one of: ${names}; or add an entry to kernels/catalog.json.`,
      details: { version, known: catalogNames(catalog) },
    });
  }
  return found;
}
