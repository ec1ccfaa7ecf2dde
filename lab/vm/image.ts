/**
 * The bootable disk and initramfs for one kernel: the shared rootfs plus that kernel's modules,
 * assembled into an ext4 image by `mkfs.ext4 -d` (no loop mounts, no root-only mount calls) and
 * cached by (rootfs, kernel image, boot modules, initramfs init).
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorMessage, LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { withLock } from '../lock.ts';
import { silent } from '../progress.ts';
import {
  IMAGE_META,
  imageDir,
  imageLock,
  imageLockPath,
  readImage,
  removeStaleStaging,
  removeTree,
  requireRoot,
  type ImageMeta,
  type VmImage,
} from './image-cache.ts';
import { buildInitramfs } from './initramfs.ts';
import { runTool } from './proc.ts';
import { buildRootfs } from './rootfs.ts';
import { DEFAULT_IMAGE_CACHE, imageHash, loadRecipe, RECIPE_DIR, type ImageOptions } from './recipe.ts';

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
 * The bootable disk + initramfs for one kernel: the shared rootfs plus that kernel's
 * /lib/modules/<release>, cached by (rootfs, kernel image, boot modules, initramfs init).
 */
export async function buildVmImage(kernel: KernelImage, opts: ImageOptions = {}): Promise<VmImage> {
  const recipeDir = opts.recipeDir ?? RECIPE_DIR;
  const cacheDir = opts.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const sink = opts.progress ?? silent;
  const rootfs = await buildRootfs(opts);
  const recipe = await loadRecipe(recipeDir);
  const hash = await imageHash(recipeDir, rootfs.hash, kernel);
  const dir = imageDir(cacheDir, kernel.release, hash);
  const cached = await readImage(dir, hash, rootfs.clientKey);
  if (cached) return cached;

  requireRoot(`Building the VM image for ${kernel.release}`);
  const lock = imageLockPath(cacheDir, kernel.release, hash);
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
      const meta: ImageMeta = {
        hash,
        kernelRelease: kernel.release,
        initrdModules,
        rootfsHash: rootfs.hash,
        hostPublicKey: rootfs.hostPublicKey,
        sizes: { rootImageBytes: st.size, rootImageAllocatedBytes: st.blocks * 512, initrdBytes: initrdSt.size },
        buildSeconds: (Date.now() - started) / 1000,
      };
      await writeFile(join(staging, IMAGE_META), JSON.stringify(meta, null, 2));
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
