/**
 * The one build cache of everything the lab compiles on its own machine (BPF objects, the micro
 * programs, the userspace helpers, the chain's and the feature probes' small sources). An output is
 * keyed on a content hash of every input: the compiler's command and `--version` text, the flags, and
 * the bytes of every file the compile reads (the source and each header it includes). Outputs are
 * written under a temporary name and renamed, so an interrupted build never leaves a half-written
 * file under a name the cache trusts.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LabError } from '../errors.ts';

/** Everything that decides what a compile produces. */
export interface KeyInputs {
  /** The compiler command as run ("clang", "cc", a path). */
  compiler: string;
  /** Its `--version` text: a compiler upgrade must rebuild. */
  version: string;
  /** Every argument but the output path. */
  flags: readonly string[];
  /** Every file the compile reads: the source and each header it includes. */
  files: readonly string[];
}

/** The hex SHA-256 of the inputs; files are read now, so a missing one is a MISSING_FILE LabError. */
export async function inputKey(inputs: KeyInputs): Promise<string> {
  const h = createHash('sha256');
  // Length-prefixed fields: no two different inputs can hash the same bytes.
  const field = (label: string, data: string | Uint8Array): void => {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    h.update(`${label}\0${bytes.length}\0`).update(bytes);
  };
  field('compiler', inputs.compiler);
  field('version', inputs.version);
  for (const f of inputs.flags) field('flag', f);
  for (const file of [...new Set(inputs.files)].sort()) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw new LabError('MISSING_FILE', `build input ${file} cannot be read: ${(e as Error).message}`, {
        remedy: 'Restore the file (a source or header of the build) from the repository.',
        cause: e,
      });
    }
    field('file', file);
    field('bytes', bytes);
  }
  return h.digest('hex');
}

/**
 * Where an output lives:
 * - 'stamp': `<name><ext>`, its key in `<name><ext>.hash` beside it, for outputs other code finds
 *   by a fixed path (build/bpf/filter.o);
 * - 'hashed': `<name>-<key16><ext>`, every version kept, so a path handed out stays valid while other
 *   builds of the same name with other inputs run;
 * - 'hashed-latest': the same, with older versions of that name removed after a build.
 */
export type CacheLayout = 'stamp' | 'hashed' | 'hashed-latest';

export interface CacheRequest {
  dir: string;
  name: string;
  /** Appended to the file name: '.o' for objects, '' for executables. */
  ext: string;
  layout: CacheLayout;
  /** From inputKey(). */
  key: string;
  /** Build even when an output with this key is there. */
  force?: boolean;
  /** Writes the output to `tmpPath`; the cache renames it into place only once this resolves. */
  build(tmpPath: string): Promise<void>;
}

export interface CachedBuild {
  /** Absolute path of the output. */
  path: string;
  /** The key's first 16 hex digits (what a hashed output's name carries). */
  hash: string;
  /** False when an up-to-date output was already there. */
  built: boolean;
}

let tmpSequence = 0;

/** A temporary name beside `path`, unique in this process and across processes. */
function tmpName(path: string): string {
  tmpSequence += 1;
  return `${path}.tmp-${process.pid}-${tmpSequence}`;
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = tmpName(path);
  await writeFile(tmp, data);
  await rename(tmp, path);
}

async function produce(path: string, build: (tmpPath: string) => Promise<void>): Promise<void> {
  const tmp = tmpName(path);
  try {
    await build(tmp);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    if (e instanceof LabError) throw e;
    throw new LabError('COMPILE', `building ${path}: ${(e as Error).message}`, {
      remedy: 'Check that the build directory is writable and has space, then build again.',
      cause: e,
    });
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Returns the cached output for the key, building it first when it is missing (or when forced). */
export async function buildCached(req: CacheRequest): Promise<CachedBuild> {
  const hash = req.key.slice(0, 16);
  const dir = resolve(req.dir);
  await mkdir(dir, { recursive: true });
  if (req.layout === 'stamp') {
    const path = join(dir, `${req.name}${req.ext}`);
    const stamp = `${path}.hash`;
    if (!req.force && existsSync(path) && existsSync(stamp) && (await readFile(stamp, 'utf8')).trim() === req.key) {
      return { path, hash, built: false };
    }
    // The stamp goes first: a build killed after the rename then rebuilds instead of trusting
    // an object its stamp does not describe.
    await rm(stamp, { force: true });
    await produce(path, req.build);
    await writeAtomic(stamp, `${req.key}\n`);
    return { path, hash, built: true };
  }
  const path = join(dir, `${req.name}-${hash}${req.ext}`);
  if (!req.force && existsSync(path)) return { path, hash, built: false };
  await produce(path, req.build);
  if (req.layout === 'hashed-latest') {
    const older = new RegExp(`^${escapeRegExp(req.name)}-[0-9a-f]{16}${escapeRegExp(req.ext)}$`);
    for (const f of await readdir(dir)) {
      if (older.test(f) && join(dir, f) !== path) await rm(join(dir, f), { force: true });
    }
  }
  return { path, hash, built: true };
}
