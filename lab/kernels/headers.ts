/**
 * Keeps what an out-of-tree module needs from a built kernel tree (a few tens of MB instead of the
 * several GB of the tree): the Makefiles, include/ and scripts/ with their built tools, the arch's
 * include and scripts directories, objtool and resolve_btfids when built, Module.symvers and
 * .config. The selection follows what the kernel's own deb packaging ships in linux-headers
 * (scripts/package/builddeb, deploy_kernel_headers), for an in-tree build where source and object
 * trees are one.
 *
 * The files land in <root>/usr/src/linux-headers-<release>, and <root>/lib/modules/<release>/build
 * points there (relative, so the cache can move), which is where `make -C .../build M=$PWD`
 * looks, as on a distribution kernel with its headers package installed.
 */
import { lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { exists, tool } from './exec.ts';

const ARCH = 'x86';

/** Built tools that module builds run, when the configuration built them. */
const BUILT_TOOLS = ['tools/objtool/objtool', 'tools/bpf/resolve_btfids/resolve_btfids'] as const;

/** Top-level files of the build that module builds read. */
const TOP_FILES = ['.config', 'Module.symvers', 'System.map'] as const;

async function walk(tree: string, dir: string, keep: (rel: string) => boolean, out: string[]): Promise<void> {
  const abs = join(tree, dir);
  if (!(await exists(abs))) return;
  for (const e of await readdir(abs, { withFileTypes: true })) {
    const rel = dir === '.' ? e.name : `${dir}/${e.name}`;
    if (e.isDirectory()) {
      await walk(tree, rel, keep, out);
    } else if ((e.isFile() || e.isSymbolicLink()) && keep(rel)) {
      out.push(rel);
    }
  }
}

/** The paths (relative to the tree) a module build against this tree needs. */
export async function moduleBuildFiles(tree: string): Promise<string[]> {
  const files: string[] = [];
  const all = (): boolean => true;
  for (const dir of ['.', `arch/${ARCH}`]) {
    for (const e of await readdir(join(tree, dir), { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory() && e.name.startsWith('Makefile')) files.push(dir === '.' ? e.name : `${dir}/${e.name}`);
    }
  }
  await walk(tree, 'include', all, files);
  await walk(tree, 'scripts', all, files);
  // arch/x86's include/ and scripts/ directories, wherever they sit (arch/x86/include, arch/x86/um/...).
  const archDirs: string[] = [];
  const findArchDirs = async (dir: string): Promise<void> => {
    for (const e of await readdir(join(tree, dir), { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue;
      const rel = `${dir}/${e.name}`;
      if (e.name === 'include' || e.name === 'scripts') archDirs.push(rel);
      else await findArchDirs(rel);
    }
  };
  await findArchDirs(`arch/${ARCH}`);
  for (const d of archDirs) await walk(tree, d, all, files);
  await walk(tree, `arch/${ARCH}`, (rel) => /\/(Kbuild\.platforms|Platform)$/.test(rel), files);
  for (const f of [...BUILT_TOOLS, ...TOP_FILES]) if (await exists(join(tree, f))) files.push(f);
  return [...new Set(files)].sort();
}

export interface KeptHeaders {
  /** Absolute path of the headers directory. */
  dir: string;
  files: number;
}

/**
 * Copies the module build files of `tree` under `root` and points lib/modules/<release>/build at
 * them. Returns null for a kernel without module support: nothing could be built against it.
 */
export async function keepModuleBuildFiles(tree: string, root: string, release: string, opts: { modules: boolean; env?: Record<string, string> }): Promise<KeptHeaders | null> {
  if (!opts.modules) return null;
  const files = await moduleBuildFiles(tree);
  const dir = join(root, 'usr', 'src', `linux-headers-${release}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  // tar keeps symlinks, modes and times, and copies tens of thousands of small files in one go.
  const list = join(dir, '.xcl-files');
  await writeFile(list, `${files.join('\n')}\n`);
  await tool(['sh', '-c', 'tar -C "$1" -cf - --files-from="$2" | tar -C "$3" -xf -', 'sh', tree, list, dir], {
    env: opts.env,
    what: `keeping the module build files of ${tree}`,
    code: 'KERNEL_BUILD',
  });
  await rm(list, { force: true });
  const modDir = join(root, 'lib', 'modules', release);
  await mkdir(modDir, { recursive: true });
  for (const name of ['build', 'source']) {
    const link = join(modDir, name);
    if (await lstat(link).then(() => true, () => false)) await rm(link, { recursive: true, force: true });
    await symlink(relative(modDir, dir), link);
  }
  return { dir, files: files.length };
}
