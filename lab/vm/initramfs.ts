/**
 * The guest's initramfs: busybox, the lab's /init and the boot modules in dependency order, packed
 * as an uncompressed newc cpio. It exists because Debian's cloud kernels build virtio as modules:
 * /init loads them and switch_roots to /sbin/lab-init.
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { LabError } from '../errors.ts';
import type { KernelImage } from '../kernels/types.ts';
import { removeTree } from './image-cache.ts';
import { runTool } from './proc.ts';
import { INITRAMFS_INIT } from './recipe.ts';

/** Loaded in the initramfs whatever the kernel asks for: disk, network, entropy, root fs. */
const REQUIRED_INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'ext4'];
/** Loaded there when the kernel has them as modules (saves a modprobe later in the guest). */
const OPTIONAL_INITRAMFS_MODULES = ['virtio_net', 'virtio_rng'];

function modName(file: string): string {
  return basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
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


/**
 * Builds <staging>/initrd.cpio for `kernel` (its modules in `modsDir`, already depmod'ed; null when
 * everything is built in) and returns the modules it loads, in load order.
 */
export async function buildInitramfs(
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
