/**
 * Guest disk images, built from the recipe in vm-images/ and cached under vm-images/cache/.
 *
 * Two layers, each keyed by a hash of what goes into it so a second run rebuilds nothing:
 *   rootfs-<hash>/        debootstrap'd Debian tree + the lab's guest files + SSH keys (shared)
 *   images/<release>-<hash>/  root.ext4 (rootfs + that kernel's modules) and initrd.cpio
 * The ext4 image is made by `mkfs.ext4 -d` (no loop mounts, no root-only mount calls), and the
 * initramfs exists because Debian's cloud kernels build virtio as modules: it loads them and
 * switch_roots to /sbin/lab-init.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { errorMessage, LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { silent, type ProgressSink } from '../progress.ts';
import { runTool } from './proc.ts';
import { pidAlive, withLock, type LockOptions } from '../lock.ts';
import { REPO_ROOT } from '../paths.ts';

export const RECIPE_DIR = join(REPO_ROOT, 'vm-images');
export const DEFAULT_IMAGE_CACHE = join(RECIPE_DIR, 'cache');

/**
 * Bumped when the build steps below change in a way that changes the result (the recipe files
 * are hashed; this code is not).
 */
const ROOTFS_FORMAT = 1;
const IMAGE_FORMAT = 1;

/** Loaded in the initramfs whatever the kernel asks for: disk, network, entropy, root fs. */
const REQUIRED_INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'ext4'];
/** Loaded there when the kernel has them as modules (saves a modprobe later in the guest). */
const OPTIONAL_INITRAMFS_MODULES = ['virtio_net', 'virtio_rng'];

const recipeSchema = z.object({
  suite: z.string().min(1),
  mirror: z.string().url(),
  variant: z.string().min(1),
  packages: z.array(z.string().min(1)).min(1),
  pruneDirs: z.array(z.string().min(1)),
  hostname: z.string().min(1),
  freeSpaceMb: z.number().int().nonnegative(),
});
export type Recipe = z.infer<typeof recipeSchema>;

/** Files of the recipe whose content makes the rootfs key. */
const ROOTFS_FILES = ['recipe.json', 'guest/lab-init', 'guest/lab-poweroff', 'guest/sshd_config'];
const INITRAMFS_INIT = 'initramfs/init';

export interface ImageOptions {
  /** Where cached trees and images live (default vm-images/cache). */
  cacheDir?: string;
  /** Where recipe.json, guest/ and initramfs/ are (default vm-images). */
  recipeDir?: string;
  progress?: ProgressSink;
}

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

const imageMetaSchema = z.object({
  hash: z.string(),
  kernelRelease: z.string(),
  initrdModules: z.array(z.string()),
  rootfsHash: z.string(),
  hostPublicKey: z.string(),
  sizes: z.object({ rootImageBytes: z.number(), rootImageAllocatedBytes: z.number(), initrdBytes: z.number() }),
  buildSeconds: z.number(),
});

export async function loadRecipe(recipeDir: string = RECIPE_DIR): Promise<Recipe> {
  const path = join(recipeDir, 'recipe.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new LabError('MISSING_FILE', `VM image recipe ${path} is missing`, {
      cause: e,
      remedy: 'Restore vm-images/recipe.json from git.',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LabError('IMAGE', `${path}: not valid JSON: ${(e as Error).message}`, {
      cause: e,
      remedy: 'Fix the JSON syntax of the recipe.',
    });
  }
  const parsed = recipeSchema.safeParse(json);
  if (!parsed.success) {
    const what = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new LabError('IMAGE', `${path}: ${what}`, { remedy: 'Fix the recipe fields named above.' });
  }
  return parsed.data;
}

async function hashFiles(recipeDir: string, files: readonly string[], extra: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) {
    const path = join(recipeDir, f);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      throw new LabError('MISSING_FILE', `VM image recipe file ${path} is missing`, {
        cause: e,
        remedy: 'Restore vm-images/ from git.',
      });
    }
    h.update(`${f}\0${data.length}\0`).update(data);
  }
  for (const x of extra) h.update(`\0${x}`);
  return h.digest('hex');
}

/** The rootfs cache key: recipe files + build-step format. */
export function rootfsHash(recipeDir: string = RECIPE_DIR): Promise<string> {
  return hashFiles(recipeDir, ROOTFS_FILES, [`rootfs-format-${ROOTFS_FORMAT}`]);
}

// ---------------------------------------------------------------------------------------------
// Locking: two processes (a test run and a bench) may ask for the same image at once.

const IMAGE_LOCK_TIMEOUT_MS = 30 * 60_000;

function imageLock(path: string): LockOptions {
  return {
    timeoutMs: IMAGE_LOCK_TIMEOUT_MS,
    timeoutError: (owner) =>
      new LabError('IMAGE', `another process (pid ${owner}) holds ${path} for more than ${IMAGE_LOCK_TIMEOUT_MS / 1000} s`, {
        remedy: `Wait for it to finish, or remove ${path} if that process is gone.`,
      }),
  };
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
async function removeStaleStaging(parent: string): Promise<void> {
  const entries = await readdir(parent).catch(() => [] as string[]);
  for (const e of entries) {
    const m = /\.tmp-(\d+)$/.exec(e);
    if (m && !pidAlive(Number(m[1]))) await removeTree(join(parent, e));
  }
}

// ---------------------------------------------------------------------------------------------

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new LabError('NOT_ROOT', `${what} needs root (debootstrap and device nodes in the tree)`, {
      remedy: 'Run the lab as root (sudo -E npm run ...).',
    });
  }
}

async function readRootfs(dir: string, hash: string): Promise<Rootfs | null> {
  const metaPath = join(dir, 'rootfs.json');
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

/** Builds (or finds in the cache) the shared Debian tree. */
export async function buildRootfs(opts: ImageOptions = {}): Promise<Rootfs> {
  const recipeDir = opts.recipeDir ?? RECIPE_DIR;
  const cacheDir = opts.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const sink = opts.progress ?? silent;
  const recipe = await loadRecipe(recipeDir);
  const hash = await rootfsHash(recipeDir);
  const dir = join(cacheDir, `rootfs-${hash.slice(0, 16)}`);
  const cached = await readRootfs(dir, hash);
  if (cached) return cached;

  requireRoot('Building the VM root filesystem');
  const lock = join(cacheDir, `.lock-rootfs-${hash.slice(0, 16)}`);
  return withLock(lock, imageLock(lock), async () => {
    const again = await readRootfs(dir, hash);
    if (again) return again;
    await mkdir(cacheDir, { recursive: true });
    await removeStaleStaging(cacheDir);
    const staging = `${dir}.tmp-${process.pid}`;
    await removeTree(staging);
    await mkdir(join(staging, 'ssh'), { recursive: true });
    const started = Date.now();
    const id = `rootfs-${hash.slice(0, 8)}`;
    sink({ kind: 'phase-start', id, label: `debootstrap ${recipe.suite} (${recipe.packages.length} extra packages)` });
    try {
      const root = join(staging, 'root');
      let lines = 0;
      await runTool(
        ['debootstrap', `--variant=${recipe.variant}`, `--include=${recipe.packages.join(',')}`, recipe.suite, root, recipe.mirror],
        {
          what: `debootstrap ${recipe.suite} into ${root}`,
          code: 'IMAGE',
          timeoutMs: 30 * 60_000,
          remedy: `Check that ${recipe.mirror} is reachable and that the packages in ${join(recipeDir, 'recipe.json')} exist in ${recipe.suite}.`,
          onLine: (line) => sink({ kind: 'phase-progress', id, done: ++lines, note: line.slice(0, 160) }),
        },
      );
      await customizeRootfs(root, staging, recipe, recipeDir);
      const { stdout } = await runTool(
        ['dpkg-query', `--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f', '${Package} ${Version}\\n'],
        { what: 'listing installed packages', code: 'IMAGE' },
      );
      const packages: Record<string, string> = {};
      for (const line of stdout.split('\n')) {
        const [name, version] = line.trim().split(' ');
        if (name && version) packages[name] = version;
      }
      const hostPublicKey = (await readFile(join(root, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8')).trim();
      const buildSeconds = (Date.now() - started) / 1000;
      await writeFile(join(staging, 'rootfs.json'), JSON.stringify({ hash, packages, buildSeconds, hostPublicKey }, null, 2));
      await removeTree(dir);
      await rename(staging, dir);
      sink({ kind: 'phase-end', id, ok: true, message: `${buildSeconds.toFixed(1)} s` });
      for (const old of await pruneImageCache({ recipeDir, cacheDir })) {
        sink({ kind: 'log', level: 'info', message: `removed stale VM image cache ${old}` });
      }
      const built = await readRootfs(dir, hash);
      if (!built) throw new LabError('IMAGE', `rootfs ${dir} is incomplete right after building it`);
      return { ...built, built: true };
    } catch (e) {
      sink({ kind: 'phase-end', id, ok: false, message: errorMessage(e) });
      await removeTree(staging).catch(() => undefined);
      throw e;
    }
  });
}

/** Everything after debootstrap, done from the host (no chroot needed). */
async function customizeRootfs(root: string, staging: string, recipe: Recipe, recipeDir: string): Promise<void> {
  const what = 'customizing the guest tree';
  // Only the lab's ed25519 host key: the one the host verifies on every connection.
  for (const f of await readdir(join(root, 'etc/ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(join(root, 'etc/ssh', f));
  }
  await runTool(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'xcl-guest-host', '-f', join(root, 'etc/ssh/ssh_host_ed25519_key')], {
    what,
    code: 'IMAGE',
  });
  const clientKey = join(staging, 'ssh', 'client_ed25519');
  await runTool(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'xcl-lab-client', '-f', clientKey], { what, code: 'IMAGE' });
  await mkdir(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
  await chmod(join(root, 'root/.ssh'), 0o700);
  await copyFile(`${clientKey}.pub`, join(root, 'root/.ssh/authorized_keys'));
  await chmod(join(root, 'root/.ssh/authorized_keys'), 0o600);

  await copyFile(join(recipeDir, 'guest/sshd_config'), join(root, 'etc/ssh/sshd_config'));
  await rm(join(root, 'etc/ssh/sshd_config.d'), { recursive: true, force: true });
  for (const f of ['lab-init', 'lab-poweroff']) {
    await copyFile(join(recipeDir, 'guest', f), join(root, 'sbin', f));
    await chmod(join(root, 'sbin', f), 0o755);
  }
  await writeFile(join(root, 'etc/hostname'), `${recipe.hostname}\n`);
  await writeFile(join(root, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${recipe.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  await writeFile(join(root, 'etc/fstab'), '# lab guests: mounts are done by /sbin/lab-init\n');
  await mkdir(join(root, 'root/lab'), { recursive: true });
  for (const d of recipe.pruneDirs) {
    const p = resolve(root, d);
    if (!p.startsWith(`${root}/`)) throw new LabError('IMAGE', `recipe pruneDirs entry "${d}" leaves the tree`, { remedy: 'Use paths relative to the guest root.' });
    await rm(p, { recursive: true, force: true });
    await mkdir(p, { recursive: true });
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
    const meta = await readFile(join(imagesDir, e, 'image.json'), 'utf8').catch(() => null);
    const parsed = meta === null ? null : imageMetaSchema.safeParse(JSON.parse(meta));
    if (!parsed?.success || parsed.data.rootfsHash !== current) {
      await removeTree(join(imagesDir, e));
      removed.push(join(imagesDir, e));
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Per-kernel image.

function modName(file: string): string {
  return basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** Directory holding the kernel's modules: <modulesRoot>/lib/modules/<release> (or usr/lib). */
function kernelModulesDir(kernel: KernelImage): string | null {
  if (kernel.modulesRoot === null) return null;
  for (const sub of ['lib/modules', 'usr/lib/modules']) {
    const d = join(kernel.modulesRoot, sub, kernel.release);
    if (existsSync(d)) return d;
  }
  throw new LabError('IMAGE', `kernel ${kernel.version} (${kernel.release}): no lib/modules/${kernel.release} under ${kernel.modulesRoot}`, {
    remedy: 'Re-resolve the kernel (delete its cache under kernels/cache/) so its modules are extracted again.',
  });
}

/**
 * Orders `wanted` modules and their dependencies so each comes after what it needs
 * (modules.dep lists direct and indirect dependencies of each module).
 */
export function initramfsModuleOrder(
  modulesDep: string,
  modulesBuiltin: string,
  required: readonly string[],
  optional: readonly string[],
): { order: { name: string; path: string }[]; missing: string[] } {
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const rest = line.slice(colon + 1).trim();
    deps.set(modName(path), { path, deps: rest === '' ? [] : rest.split(/\s+/).map(modName) });
  }
  const builtin = new Set(modulesBuiltin.split('\n').filter((l) => l.trim() !== '').map(modName));
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name) || builtin.has(name)) return;
    seen.add(name);
    const entry = deps.get(name);
    if (!entry) return;
    for (const d of entry.deps) visit(d);
    order.push({ name, path: entry.path });
  };
  const missing: string[] = [];
  for (const raw of required) {
    const n = raw.replace(/-/g, '_');
    if (!deps.has(n) && !builtin.has(n)) missing.push(raw);
    else visit(n);
  }
  for (const raw of optional) {
    const n = raw.replace(/-/g, '_');
    if (deps.has(n)) visit(n);
  }
  return { order, missing };
}

async function readImage(dir: string, hash: string, clientKey: string): Promise<VmImage | null> {
  const metaPath = join(dir, 'image.json');
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

/**
 * The bootable disk + initramfs for one kernel: the shared rootfs plus that kernel's
 * /lib/modules/<release>, cached by (rootfs, kernel image, boot modules, initramfs init).
 */
export async function buildVmImage(kernel: KernelImage, opts: ImageOptions = {}): Promise<VmImage> {
  const recipeDir = opts.recipeDir ?? RECIPE_DIR;
  const cacheDir = opts.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const sink = opts.progress ?? silent;
  const rootfs = await buildRootfs(opts);
  const recipe = await loadRecipe(recipeDir);
  const hash = await hashFiles(recipeDir, [INITRAMFS_INIT], [
    `image-format-${IMAGE_FORMAT}`,
    rootfs.hash,
    kernel.release,
    kernel.sha256,
    [...kernel.bootModules].sort().join(','),
  ]);
  const dir = join(cacheDir, 'images', `${kernel.release}-${hash.slice(0, 12)}`);
  const cached = await readImage(dir, hash, rootfs.clientKey);
  if (cached) return cached;

  requireRoot(`Building the VM image for ${kernel.release}`);
  const lock = join(cacheDir, 'images', `.lock-${kernel.release}-${hash.slice(0, 12)}`);
  return withLock(lock, imageLock(lock), async () => {
    const again = await readImage(dir, hash, rootfs.clientKey);
    if (again) return again;
    await mkdir(dirname(dir), { recursive: true });
    await removeStaleStaging(dirname(dir));
    const staging = `${dir}.tmp-${process.pid}`;
    await removeTree(staging);
    await mkdir(staging, { recursive: true });
    const id = `image-${kernel.release}`;
    const started = Date.now();
    sink({ kind: 'phase-start', id, label: `VM image for ${kernel.release}`, total: 3 });
    try {
      // 1. The kernel's modules, with modules.dep (Debian packages leave depmod to postinst).
      const modsBase = join(staging, 'modules');
      const srcMods = kernelModulesDir(kernel);
      let modsDir: string | null = null;
      if (srcMods) {
        modsDir = join(modsBase, 'lib/modules', kernel.release);
        await mkdir(dirname(modsDir), { recursive: true });
        await runTool(['cp', '-a', srcMods, modsDir], { what: `copying modules of ${kernel.release}`, code: 'IMAGE' });
        await runTool(['depmod', '-b', modsBase, kernel.release], { what: `depmod for ${kernel.release}`, code: 'IMAGE' });
      }
      sink({ kind: 'phase-progress', id, done: 1, total: 3, note: 'modules' });

      // 2. initramfs.
      const initrdModules = await buildInitramfs(kernel, modsDir, rootfs.rootDir, recipeDir, staging);
      sink({ kind: 'phase-progress', id, done: 2, total: 3, note: 'initramfs' });

      // 3. ext4 image: hard-linked copy of the shared tree (new files only are added to it, so
      // the shared tree is never modified) + the modules, then mkfs.ext4 -d.
      const tree = join(staging, 'tree');
      await runTool(['cp', '-al', rootfs.rootDir, tree], { what: 'staging the guest tree', code: 'IMAGE' });
      if (modsDir) {
        await mkdir(join(tree, 'usr/lib/modules'), { recursive: true });
        await rename(modsDir, join(tree, 'usr/lib/modules', kernel.release));
      }
      const { stdout: du } = await runTool(['du', '-sb', '--apparent-size', tree], { what: 'sizing the guest tree', code: 'IMAGE' });
      const treeBytes = Number(du.split(/\s/)[0]);
      const sizeMb = Math.ceil((treeBytes * 1.2) / 2 ** 20) + 64 + recipe.freeSpaceMb;
      const rootImage = join(staging, 'root.ext4');
      await runTool(['mkfs.ext4', '-q', '-F', '-L', 'xcl-root', '-d', tree, rootImage, `${sizeMb}M`], {
        what: `mkfs.ext4 -d for ${kernel.release}`,
        code: 'IMAGE',
        remedy: 'Check free disk space under vm-images/cache and that e2fsprogs is >= 1.43 (mkfs.ext4 -d).',
      });
      await removeTree(tree);
      await removeTree(modsBase);
      sink({ kind: 'phase-progress', id, done: 3, total: 3, note: 'ext4' });

      const st = await stat(rootImage);
      const initrdSt = await stat(join(staging, 'initrd.cpio'));
      const meta: z.infer<typeof imageMetaSchema> = {
        hash,
        kernelRelease: kernel.release,
        initrdModules,
        rootfsHash: rootfs.hash,
        hostPublicKey: rootfs.hostPublicKey,
        sizes: { rootImageBytes: st.size, rootImageAllocatedBytes: st.blocks * 512, initrdBytes: initrdSt.size },
        buildSeconds: (Date.now() - started) / 1000,
      };
      await writeFile(join(staging, 'image.json'), JSON.stringify(meta, null, 2));
      await removeTree(dir);
      await rename(staging, dir);
      sink({ kind: 'phase-end', id, ok: true, message: `${meta.buildSeconds.toFixed(1)} s, ${(st.size / 2 ** 20).toFixed(0)} MiB` });
      const built = await readImage(dir, hash, rootfs.clientKey);
      if (!built) throw new LabError('IMAGE', `image ${dir} is incomplete right after building it`);
      return { ...built, built: true };
    } catch (e) {
      sink({ kind: 'phase-end', id, ok: false, message: errorMessage(e) });
      await removeTree(staging).catch(() => undefined);
      throw e;
    }
  });
}

async function buildInitramfs(
  kernel: KernelImage,
  modsDir: string | null,
  rootDir: string,
  recipeDir: string,
  staging: string,
): Promise<string[]> {
  const ir = join(staging, 'initramfs');
  await mkdir(join(ir, 'bin'), { recursive: true });
  await mkdir(join(ir, 'modules'), { recursive: true });
  const busybox = join(rootDir, 'bin/busybox');
  if (!existsSync(busybox)) {
    throw new LabError('IMAGE', `${busybox} is missing: the initramfs needs busybox-static from the rootfs`, {
      remedy: 'Keep busybox-static in vm-images/recipe.json packages.',
    });
  }
  await copyFile(busybox, join(ir, 'bin/busybox'));
  await chmod(join(ir, 'bin/busybox'), 0o755);
  await copyFile(join(recipeDir, INITRAMFS_INIT), join(ir, 'init'));
  await chmod(join(ir, 'init'), 0o755);

  const names: string[] = [];
  if (modsDir) {
    const dep = await readFile(join(modsDir, 'modules.dep'), 'utf8');
    const builtin = await readFile(join(modsDir, 'modules.builtin'), 'utf8').catch(() => '');
    const required = [...new Set([...REQUIRED_INITRAMFS_MODULES, ...kernel.bootModules])];
    const { order, missing } = initramfsModuleOrder(dep, builtin, required, OPTIONAL_INITRAMFS_MODULES);
    if (missing.length > 0) {
      throw new LabError('IMAGE', `kernel ${kernel.release} has neither a module nor a built-in for: ${missing.join(', ')}`, {
        remedy: 'Use a kernel with virtio (PCI, block) and ext4, built in or as modules.',
        details: { missing },
      });
    }
    for (const m of order) {
      const src = join(modsDir, m.path);
      const dst = join(ir, 'modules', `${m.name}.ko`);
      const dec = m.path.endsWith('.xz') ? 'xz' : m.path.endsWith('.zst') ? 'zstd' : m.path.endsWith('.gz') ? 'gzip' : null;
      if (dec) {
        // Binary data must not pass through a JS string: the shell redirects it to the file.
        await runTool(['sh', '-c', `${dec} -dc "$1" > "$2"`, 'sh', src, dst], { what: `decompressing ${m.path}`, code: 'IMAGE' });
      } else {
        await copyFile(src, dst);
      }
      names.push(m.name);
    }
  }
  await writeFile(join(ir, 'modules', 'order'), names.map((n) => `${n}\n`).join(''));
  const files = await listTree(ir);
  await runTool(
    ['sh', '-c', 'cpio --quiet -o -H newc -R 0:0 > "$1"', 'sh', join(staging, 'initrd.cpio')],
    { what: `packing the initramfs for ${kernel.release}`, code: 'IMAGE', cwd: ir, input: files.map((f) => `${f}\n`).join('') },
  );
  await removeTree(ir);
  return names;
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p));
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}
