/**
 * The kernel cache: kernels/cache/<version>/ holds one resolved image (boot/, lib/modules/, the
 * config) and image.json, the manifest. Paths in the manifest are relative so the cache can move;
 * a hit is accepted only when vmlinuz still hashes to the recorded sha256.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { z } from 'zod';
import { KERNEL_VERSIONS, type KernelImage, type KernelVersion } from './types.ts';
import { exists, sha256File } from './exec.ts';

export const MANIFEST = 'image.json';
const MANIFEST_FORMAT = 1;

const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  image: z.object({
    version: z.enum(KERNEL_VERSIONS as unknown as [KernelVersion, ...KernelVersion[]]),
    release: z.string(),
    vmlinuz: z.string(),
    modulesRoot: z.string().nullable(),
    configPath: z.string().nullable(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    provider: z.string(),
    bootModules: z.array(z.string()),
  }),
  origin: z.record(z.unknown()),
  createdAt: z.string(),
});
export type Manifest = z.infer<typeof manifestSchema>;

function rel(dir: string, p: string | null): string | null {
  if (p === null) return null;
  const r = relative(dir, p);
  return r.startsWith('..') || isAbsolute(r) ? p : r;
}

function abs(dir: string, p: string | null): string | null {
  if (p === null) return null;
  return isAbsolute(p) ? p : join(dir, p);
}

export async function writeManifest(versionDir: string, image: KernelImage, origin: Record<string, unknown>): Promise<void> {
  // The origin summary is derived from `origin` on every read; the manifest keeps the full record only.
  const { origin: _summary, ...plain } = image;
  const m: Manifest = {
    format: MANIFEST_FORMAT,
    image: {
      ...plain,
      vmlinuz: rel(versionDir, plain.vmlinuz) as string,
      modulesRoot: rel(versionDir, plain.modulesRoot),
      configPath: rel(versionDir, plain.configPath),
    },
    origin,
    createdAt: new Date().toISOString(),
  };
  await writeFile(join(versionDir, MANIFEST), `${JSON.stringify(m, null, 2)}\n`);
}

export async function readManifest(versionDir: string): Promise<Manifest | null> {
  const path = join(versionDir, MANIFEST);
  if (!(await exists(path))) return null;
  try {
    const parsed = manifestSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export type CacheLookup =
  | { hit: true; image: KernelImage; manifest: Manifest }
  | { hit: false; reason: string };

/** The cached image for `versionDir`, verified against its checksum. */
export async function lookupCache(versionDir: string, version: KernelVersion): Promise<CacheLookup> {
  const m = await readManifest(versionDir);
  if (!m) return { hit: false, reason: 'not cached' };
  if (m.image.version !== version) return { hit: false, reason: `cache holds ${m.image.version}, not ${version}` };
  const image: KernelImage = {
    ...m.image,
    vmlinuz: abs(versionDir, m.image.vmlinuz) as string,
    modulesRoot: abs(versionDir, m.image.modulesRoot),
    configPath: abs(versionDir, m.image.configPath),
  };
  if (!(await exists(image.vmlinuz))) return { hit: false, reason: `${image.vmlinuz} is missing` };
  const sum = await sha256File(image.vmlinuz);
  if (sum !== image.sha256) return { hit: false, reason: `${image.vmlinuz}: sha256 ${sum} does not match ${image.sha256}` };
  if (image.modulesRoot !== null && !(await exists(join(image.modulesRoot, 'lib', 'modules', image.release)))) {
    return { hit: false, reason: `modules for ${image.release} are missing` };
  }
  return { hit: true, image, manifest: m };
}

/** Is there a manifest at all (no hashing: for listings)? */
export async function isCached(versionDir: string): Promise<boolean> {
  return (await readManifest(versionDir)) !== null;
}

export async function dropCache(versionDir: string): Promise<void> {
  await rm(versionDir, { recursive: true, force: true });
}
