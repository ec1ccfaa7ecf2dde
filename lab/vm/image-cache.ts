/**
 * The image cache's layout under vm-images/cache/: where each rootfs and per-kernel image lives,
 * the metadata records that make an entry complete, lookups, the build locks, safe removal of
 * build trees, and pruning of entries made from an older recipe.
 *
 *   rootfs-<hash>/            debootstrap'd Debian tree + the lab's guest files + SSH keys (shared)
 *   images/<release>-<hash>/  root.ext4 (rootfs + that kernel's modules) and initrd.cpio
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { LabError } from '../errors.ts';
import { pidAlive, type LockOptions } from '../lock.ts';
import { runTool } from './proc.ts';
import { DEFAULT_IMAGE_CACHE, RECIPE_DIR, rootfsHash, type ImageOptions } from './recipe.ts';

export interface Rootfs {
  hash: string;
  /** The cache directory of this rootfs. */
  dir: string;
  /** The Debian tree itself. */
  rootDir: string;
  /** Private key (OpenSSH ed25519) the host uses to log in as root. */
  clientKey: string;
  /** The guest's host public key line ("ssh-ed25519 AAAA..."), to verify we reach our own VM. */
  hostPublicKey: string;
  /** Installed package versions (dpkg-query), recorded for reproducibility. */
  packages: Record<string, string>;
  buildSeconds: number;
  /** False when it came from the cache. */
  built: boolean;
}

export interface VmImage {
  hash: string;
  dir: string;
  kernelRelease: string;
  /** ext4 image with the rootfs and /lib/modules/<release>; QEMU opens it as a throw-away snapshot. */
  rootImage: string;
  /** Uncompressed newc cpio: busybox, the boot modules, /init. */
  initrd: string;
  /** Modules the initramfs loads, in load order. */
  initrdModules: string[];
  clientKey: string;
  hostPublicKey: string;
  rootfsHash: string;
  sizes: { rootImageBytes: number; rootImageAllocatedBytes: number; initrdBytes: number };
  buildSeconds: number;
  built: boolean;
}

const rootfsMetaSchema = z.object({
  hash: z.string(),
  packages: z.record(z.string()),
  buildSeconds: z.number(),
  hostPublicKey: z.string(),
});
export type RootfsMeta = z.infer<typeof rootfsMetaSchema>;

const imageMetaSchema = z.object({
  hash: z.string(),
  kernelRelease: z.string(),
  initrdModules: z.array(z.string()),
  rootfsHash: z.string(),
  hostPublicKey: z.string(),
  sizes: z.object({ rootImageBytes: z.number(), rootImageAllocatedBytes: z.number(), initrdBytes: z.number() }),
  buildSeconds: z.number(),
});
export type ImageMeta = z.infer<typeof imageMetaSchema>;

/** The metadata file that, written last, marks a cache entry complete. */
export const ROOTFS_META = 'rootfs.json';
export const IMAGE_META = 'image.json';

export function rootfsDir(cacheDir: string, hash: string): string {
  return join(cacheDir, `rootfs-${hash.slice(0, 16)}`);
}

export function rootfsLockPath(cacheDir: string, hash: string): string {
  return join(cacheDir, `.lock-rootfs-${hash.slice(0, 16)}`);
}

export function imageDir(cacheDir: string, release: string, hash: string): string {
  return join(cacheDir, 'images', `${release}-${hash.slice(0, 12)}`);
}

export function imageLockPath(cacheDir: string, release: string, hash: string): string {
  return join(cacheDir, 'images', `.lock-${release}-${hash.slice(0, 12)}`);
}

/** The rootfs at `dir` if it is complete and was built for `hash`. */
export async function readRootfs(dir: string, hash: string): Promise<Rootfs | null> {
  const metaPath = join(dir, ROOTFS_META);
  if (!existsSync(metaPath) || !existsSync(join(dir, 'root')) || !existsSync(join(dir, 'ssh', 'client_ed25519'))) return null;
  const parsed = rootfsMetaSchema.safeParse(JSON.parse(await readFile(metaPath, 'utf8')));
  if (!parsed.success || parsed.data.hash !== hash) return null;
  return {
    hash,
    dir,
    rootDir: join(dir, 'root'),
    clientKey: join(dir, 'ssh', 'client_ed25519'),
    hostPublicKey: parsed.data.hostPublicKey,
    packages: parsed.data.packages,
    buildSeconds: parsed.data.buildSeconds,
    built: false,
  };
}

/** The image at `dir` if it is complete and was built for `hash`. */
export async function readImage(dir: string, hash: string, clientKey: string): Promise<VmImage | null> {
  const metaPath = join(dir, IMAGE_META);
  if (!existsSync(metaPath) || !existsSync(join(dir, 'root.ext4')) || !existsSync(join(dir, 'initrd.cpio'))) return null;
  const parsed = imageMetaSchema.safeParse(JSON.parse(await readFile(metaPath, 'utf8')));
  if (!parsed.success || parsed.data.hash !== hash) return null;
  const m = parsed.data;
  return {
    hash,
    dir,
    kernelRelease: m.kernelRelease,
    rootImage: join(dir, 'root.ext4'),
    initrd: join(dir, 'initrd.cpio'),
    initrdModules: m.initrdModules,
    clientKey,
    hostPublicKey: m.hostPublicKey,
    rootfsHash: m.rootfsHash,
    sizes: m.sizes,
    buildSeconds: m.buildSeconds,
    built: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Locking: two processes (a test run and a bench) may ask for the same image at once.

const IMAGE_LOCK_TIMEOUT_MS = 30 * 60_000;

export function imageLock(path: string): LockOptions {
  return {
    timeoutMs: IMAGE_LOCK_TIMEOUT_MS,
    timeoutError: (owner) =>
      new LabError('IMAGE', `another process (pid ${owner}) holds ${path} for more than ${IMAGE_LOCK_TIMEOUT_MS / 1000} s`, {
        remedy: `Wait for it to finish, or remove ${path} if that process is gone.`,
      }),
  };
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new LabError('NOT_ROOT', `${what} needs root (debootstrap and device nodes in the tree)`, {
      remedy: 'Run the lab as root (sudo -E npm run ...).',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Safe removal of build trees: debootstrap mounts /proc and /sys inside its target while it
// works; if it was killed those mounts may remain, and rm -r must never walk into them.

async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const abs = resolve(dir);
  return text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === abs || m.startsWith(`${abs}/`)))
    .map((m) => m.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
}

export async function removeTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const m of await mountsUnder(dir)) {
    await runTool(['umount', '-l', m], { what: `unmounting leftover ${m}`, code: 'IMAGE' }).catch(() => undefined);
  }
  if ((await mountsUnder(dir)).length > 0) {
    throw new LabError('IMAGE', `${dir} still has mounts inside; refusing to delete it`, {
      remedy: `Unmount what \`findmnt -R ${dir}\` lists, then delete ${dir}.`,
    });
  }
  await runTool(['rm', '-rf', '--one-file-system', dir], { what: `removing ${dir}`, code: 'IMAGE' });
}

/** Removes staging directories left by builds whose process is gone. */
export async function removeStaleStaging(parent: string): Promise<void> {
  const entries = await readdir(parent).catch(() => [] as string[]);
  for (const e of entries) {
    const m = /\.tmp-(\d+)$/.exec(e);
    if (m && !pidAlive(Number(m[1]))) await removeTree(join(parent, e));
  }
}

/**
 * Removes cached trees and images made from any other recipe hash than the current one (each
 * rootfs is ~250 MB). Running VMs keep their open image files; staging dirs of live builds stay.
 */
export async function pruneImageCache(opts: ImageOptions = {}): Promise<string[]> {
  const recipeDir = opts.recipeDir ?? RECIPE_DIR;
  const cacheDir = opts.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const current = await rootfsHash(recipeDir);
  const removed: string[] = [];
  for (const e of await readdir(cacheDir).catch(() => [] as string[])) {
    if (/^rootfs-[0-9a-f]{16}$/.test(e) && e !== `rootfs-${current.slice(0, 16)}`) {
      await removeTree(join(cacheDir, e));
      removed.push(join(cacheDir, e));
    }
  }
  const imagesDir = join(cacheDir, 'images');
  for (const e of await readdir(imagesDir).catch(() => [] as string[])) {
    if (e.startsWith('.') || /\.tmp-\d+$/.test(e)) continue;
    const meta = await readFile(join(imagesDir, e, IMAGE_META), 'utf8').catch(() => null);
    const parsed = meta === null ? null : imageMetaSchema.safeParse(JSON.parse(meta));
    if (!parsed?.success || parsed.data.rootfsHash !== current) {
      await removeTree(join(imagesDir, e));
      removed.push(join(imagesDir, e));
    }
  }
  return removed;
}
