/**
 * Where a kernel image came from, in the few fields a reader of the results needs: the provider
 * and what it used (a Debian package, a source tree or tarball, a URL, a file the user gave), the
 * toolchain a built kernel was compiled with, and every fix-up applied to its source (then the
 * kernel under test is not exactly its source). Read from the provider's free-form origin record
 * (kernels/cache/<version>/image.json), never guessed: what the record lacks stays null.
 */
import { z } from 'zod';

export interface KernelOrigin {
  provider: string;
  /** One line: "Debian linux-image-6.1.0-57-cloud-amd64 6.1.192-3", "source tree /src/linux-5.4.286 (5.4.286)". */
  from: string;
  source: { kind: string; path: string; fingerprint: string | null; sourceVersion: string | null } | null;
  toolchain: { cc: string; ccVersion: string; binutils: string; flags: string[] } | null;
  /** Fix-ups that changed the source before it was built. */
  patches: { file: string; sha256: string; why: string }[];
  /** Module build files kept for building against this kernel (relative to its cache directory). */
  headers: string | null;
}

const sourceSchema = z.object({ kind: z.string(), path: z.string(), fingerprint: z.string().optional(), sourceVersion: z.string().optional() });
const toolchainSchema = z.object({ cc: z.string(), ccVersion: z.string(), binutils: z.string(), flags: z.array(z.string()) });
const patchSchema = z.object({ file: z.string(), sha256: z.string(), why: z.string(), status: z.string() });
const debianSchema = z.object({ package: z.string(), packageVersion: z.string(), suite: z.string().optional() });

function parsed<T>(schema: z.ZodType<T>, value: unknown): T | null {
  const r = schema.safeParse(value);
  return r.success ? r.data : null;
}

export function summarizeOrigin(provider: string, origin: Readonly<Record<string, unknown>>): KernelOrigin {
  const source = parsed(sourceSchema, origin.source);
  const toolchain = parsed(toolchainSchema, origin.toolchain);
  const patches = (parsed(z.array(patchSchema), origin.patches) ?? []).filter((p) => p.status === 'applied').map(({ file, sha256, why }) => ({ file, sha256, why }));
  const headers = parsed(z.object({ dir: z.string() }), origin.headers)?.dir ?? null;
  const deb = parsed(debianSchema, origin);
  const sourceVersion = source?.sourceVersion ?? parsed(z.string(), origin.sourceVersion);
  let from: string;
  if (source) from = `source ${source.kind} ${source.path}${sourceVersion ? ` (${sourceVersion})` : ''}`;
  else if (deb) from = `Debian${deb.suite ? ` ${deb.suite}` : ''} ${deb.package} ${deb.packageVersion}`;
  else if (typeof origin.url === 'string') from = `${origin.url}${sourceVersion ? ` (${sourceVersion})` : ''}`;
  else if (typeof origin.path === 'string') from = `image ${origin.path}${typeof origin.from === 'string' ? ` (${origin.from})` : ''}`;
  else from = provider;
  if (toolchain) from += `, built with ${toolchain.cc} ${toolchain.ccVersion}${toolchain.flags.length ? ` ${toolchain.flags.join(' ')}` : ''}, binutils ${toolchain.binutils}`;
  return {
    provider,
    from,
    source: source ? { kind: source.kind, path: source.path, fingerprint: source.fingerprint ?? null, sourceVersion: sourceVersion ?? null } : null,
    toolchain,
    patches,
    headers,
  };
}
