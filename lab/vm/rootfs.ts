/**
 * The shared guest root filesystem: a debootstrap'd Debian tree from the recipe, its backports
 * installed (lab/vm/backports.ts, the one chroot step), made into a lab guest from the host (SSH
 * keys, sshd config, the lab's init and poweroff), built once per recipe hash and cached.
 */
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errorMessage, LabError } from '../errors.ts';
import { withLock } from '../lock.ts';
import { silent } from '../progress.ts';
import {
  imageLock,
  pruneImageCache,
  readRootfs,
  removeStaleStaging,
  removeTree,
  requireRoot,
  rootfsDir,
  rootfsLockPath,
  ROOTFS_META,
  type Rootfs,
  type RootfsMeta,
} from './image-cache.ts';
import { installBackports } from './backports.ts';
import { runTool } from './proc.ts';
import { DEFAULT_IMAGE_CACHE, loadRecipe, RECIPE_DIR, rootfsHash, type ImageOptions, type Recipe } from './recipe.ts';

/** Builds (or finds in the cache) the shared Debian tree. */
export async function buildRootfs(opts: ImageOptions = {}): Promise<Rootfs> {
  const recipeDir = opts.recipeDir ?? RECIPE_DIR;
  const cacheDir = opts.cacheDir ?? DEFAULT_IMAGE_CACHE;
  const sink = opts.progress ?? silent;
  const recipe = await loadRecipe(recipeDir);
  const hash = await rootfsHash(recipeDir);
  const dir = rootfsDir(cacheDir, hash);
  const cached = await readRootfs(dir, hash);
  if (cached) return cached;

  requireRoot('Building the VM root filesystem');
  const lock = rootfsLockPath(cacheDir, hash);
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
      await installBackports(root, recipe, join(recipeDir, 'recipe.json'), (line) => sink({ kind: 'phase-progress', id, done: ++lines, note: line.slice(0, 160) }));
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
      const meta: RootfsMeta = { hash, packages, buildSeconds, hostPublicKey };
      await writeFile(join(staging, ROOTFS_META), JSON.stringify(meta, null, 2));
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
