/**
 * Which kernel modules a guest must load before it can see a virtio disk, mount ext4 and reach
 * the network: computed from the image's modules.dep / modules.builtin / modules.softdep, so
 * Debian's cloud kernels (virtio as modules) and our all-built-in builds are handled alike.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { exists } from './exec.ts';

/** What the VM layer needs to see its root disk (virtio_pci, virtio_blk, ext4) and SSH (virtio_net). */
export const ROOT_MODULES = ['virtio_pci', 'virtio_blk', 'ext4', 'virtio_net'] as const;

export interface BootModule {
  name: string;
  /** Path relative to lib/modules/<release>/ (e.g. kernel/drivers/block/virtio_blk.ko.xz). */
  path: string;
}

export interface BootModulePlan {
  /** Modules to load, dependencies first. */
  load: BootModule[];
  /** Wanted modules that are built into the kernel. */
  builtin: string[];
  /** Wanted modules the kernel has neither as module nor built in. */
  missing: string[];
}

/** Module name from a path in modules.dep: kernel/fs/ext4/ext4.ko.xz → ext4; dashes become underscores. */
export function moduleName(path: string): string {
  const base = path.split('/').pop() ?? path;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

interface ModuleIndex {
  deps: Map<string, { path: string; deps: string[] }>;
  builtin: Set<string>;
  softPre: Map<string, string[]>;
  aliases: Map<string, string[]>;
}

async function readIfExists(path: string): Promise<string> {
  return (await exists(path)) ? readFile(path, 'utf8') : '';
}

async function loadIndex(modulesDir: string): Promise<ModuleIndex> {
  const depPath = join(modulesDir, 'modules.dep');
  if (!(await exists(depPath))) {
    throw new LabError('IMAGE', `${modulesDir}: no modules.dep`, {
      remedy: `Run depmod -b <root> <release> for this modules tree (the tree must be <root>/lib/modules/<release>).`,
    });
  }
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of (await readFile(depPath, 'utf8')).split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const rest = line.slice(colon + 1).trim();
    deps.set(moduleName(path), { path, deps: rest ? rest.split(/\s+/).map(moduleName) : [] });
  }
  const builtin = new Set(
    (await readIfExists(join(modulesDir, 'modules.builtin')))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(moduleName),
  );
  const softPre = new Map<string, string[]>();
  for (const line of (await readIfExists(join(modulesDir, 'modules.softdep'))).split('\n')) {
    const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    const pre = /pre:\s*([^:]*?)(?:\s+post:.*)?$/.exec(m[2]);
    if (pre?.[1]) softPre.set(m[1].replace(/-/g, '_'), pre[1].trim().split(/\s+/));
  }
  const aliases = new Map<string, string[]>();
  for (const line of (await readIfExists(join(modulesDir, 'modules.alias'))).split('\n')) {
    const m = /^alias\s+(\S+)\s+(\S+)$/.exec(line.trim());
    if (!m?.[1] || !m[2]) continue;
    const list = aliases.get(m[1]) ?? [];
    list.push(m[2].replace(/-/g, '_'));
    aliases.set(m[1], list);
  }
  return { deps, builtin, softPre, aliases };
}

/**
 * The load plan for `wanted` (default ROOT_MODULES) in lib/modules/<release> at `modulesDir`.
 * Soft pre-dependencies (ext4 → crc32c) are followed through modules.alias and are best effort:
 * a soft dependency that is neither a module nor built in is not an error.
 */
export async function bootModulePlan(modulesDir: string, wanted: readonly string[] = ROOT_MODULES): Promise<BootModulePlan> {
  const index = await loadIndex(modulesDir);
  const load: BootModule[] = [];
  const seen = new Set<string>();
  const builtin: string[] = [];
  const missing: string[] = [];

  const visit = (name: string, soft: boolean): void => {
    const n = name.replace(/-/g, '_');
    if (seen.has(n)) return;
    seen.add(n);
    const mod = index.deps.get(n);
    if (!mod) {
      if (index.builtin.has(n)) {
        if (!soft) builtin.push(n);
        return;
      }
      // A soft dependency may name an alias (crc32c → crc32c_generic / crc32c_intel).
      const targets = index.aliases.get(name) ?? [];
      const loadable = targets.find((t) => index.deps.has(t) || index.builtin.has(t));
      if (soft && loadable) visit(loadable, true);
      else if (!soft) missing.push(n);
      return;
    }
    for (const pre of index.softPre.get(n) ?? []) visit(pre, true);
    for (const dep of [...mod.deps].reverse()) visit(dep, false);
    load.push({ name: n, path: mod.path });
  };
  for (const w of wanted) visit(w, false);
  return { load, builtin, missing };
}
