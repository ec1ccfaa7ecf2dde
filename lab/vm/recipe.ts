/**
 * The VM image recipe (vm-images/recipe.json and the guest files beside it) and the fingerprints
 * that key the image cache: a hash of every input of a build, so a second run rebuilds nothing.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { LabError, describeIssues } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import type { ProgressSink } from '../progress.ts';
import { REPO_ROOT } from '../paths.ts';

export const RECIPE_DIR = join(REPO_ROOT, 'vm-images');
export const DEFAULT_IMAGE_CACHE = join(RECIPE_DIR, 'cache');

/**
 * Bumped when the build steps change in a way that changes the result (the recipe files are
 * hashed; the code that builds from them is not).
 */
const ROOTFS_FORMAT = 1;
const IMAGE_FORMAT = 1;

/** Files of the recipe whose content makes the rootfs key. */
const ROOTFS_FILES = ['recipe.json', 'guest/lab-init', 'guest/lab-poweroff', 'guest/sshd_config'];
/** The initramfs' /init, relative to the recipe directory; part of the per-kernel image key. */
export const INITRAMFS_INIT = 'initramfs/init';

const recipeSchema = z.object({
  suite: z.string().min(1),
  mirror: z.string().url(),
  variant: z.string().min(1),
  packages: z.array(z.string().min(1)).min(1),
  /** Installed after debootstrap from <suite>-backports (lab/vm/backports.ts); none by default. */
  backports: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/, 'a Debian package name')).default([]),
  pruneDirs: z.array(z.string().min(1)),
  hostname: z.string().min(1),
  freeSpaceMb: z.number().int().nonnegative(),
});
export type Recipe = z.infer<typeof recipeSchema>;

export interface ImageOptions {
  /** Where cached trees and images live (default vm-images/cache). */
  cacheDir?: string;
  /** Where recipe.json, guest/ and initramfs/ are (default vm-images). */
  recipeDir?: string;
  progress?: ProgressSink;
}

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
    const what = describeIssues(parsed.error.issues);
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

/** The per-kernel image cache key: the rootfs, the kernel image and its boot modules, the initramfs init. */
export function imageHash(recipeDir: string, rootfs: string, kernel: KernelImage): Promise<string> {
  return hashFiles(recipeDir, [INITRAMFS_INIT], [
    `image-format-${IMAGE_FORMAT}`,
    rootfs,
    kernel.release,
    kernel.sha256,
    [...kernel.bootModules].sort().join(','),
  ]);
}
