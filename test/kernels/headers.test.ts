/**
 * The module build files kept from a built tree: the linux-headers selection (Makefiles, include/,
 * scripts/ with its built tools, the arch's include and scripts, objtool, Module.symvers, .config)
 * and nothing of the sources or objects, with lib/modules/<release>/build pointing at them.
 */
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepModuleBuildFiles, moduleBuildFiles } from '../../lab/kernels/headers.ts';

let work = '';
let tree = '';

const KEPT = [
  '.config',
  'Makefile',
  'Module.symvers',
  'arch/x86/Makefile',
  'arch/x86/Makefile_32.cpu',
  'arch/x86/include/asm/bitops.h',
  'arch/x86/include/generated/asm/unistd_64_x32.h',
  'arch/x86/um/include/asm/ptrace.h',
  'include/config/auto.conf',
  'include/generated/autoconf.h',
  'include/linux/module.h',
  'scripts/Makefile.modpost',
  'scripts/mod/modpost',
  'tools/objtool/objtool',
];
const LEFT_OUT = ['kernel/fork.c', 'kernel/fork.o', 'vmlinux', 'arch/x86/kernel/setup.c', 'arch/x86/boot/bzImage', 'tools/objtool/check.c', 'drivers/net/veth.ko'];

async function put(rel: string, text = `${rel}\n`): Promise<void> {
  await mkdir(dirname(join(tree, rel)), { recursive: true });
  await writeFile(join(tree, rel), text);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'xcl-headers-'));
  tree = join(work, 'linux');
  for (const f of [...KEPT, ...LEFT_OUT]) await put(f);
  // In-tree symlinks (include/asm-generic style) are kept as links.
  await symlink('module.h', join(tree, 'include', 'linux', 'module-link.h'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('module build files of a built kernel tree', () => {
  it('selects the headers package files and none of the sources or objects', async () => {
    const files = await moduleBuildFiles(tree);
    expect(files).toEqual([...KEPT, 'include/linux/module-link.h'].sort());
  });

  it('copies them under usr/src/linux-headers-<release> and points lib/modules/<release>/build there', async () => {
    const root = join(work, 'root');
    // What modules_install leaves: a build link into the tree that is about to be removed.
    await mkdir(join(root, 'lib', 'modules', '5.15.135'), { recursive: true });
    await symlink(tree, join(root, 'lib', 'modules', '5.15.135', 'build'));
    const kept = await keepModuleBuildFiles(tree, root, '5.15.135', { modules: true });
    expect(kept?.files).toBe(KEPT.length + 1);
    const dir = join(root, 'usr', 'src', 'linux-headers-5.15.135');
    expect(kept?.dir).toBe(dir);
    for (const f of KEPT) expect(await readFile(join(dir, f), 'utf8')).toBe(`${f}\n`);
    expect(await readlink(join(dir, 'include', 'linux', 'module-link.h'))).toBe('module.h');
    for (const f of LEFT_OUT) await expect(lstat(join(dir, f))).rejects.toThrow();
    const build = join(root, 'lib', 'modules', '5.15.135', 'build');
    const target = await readlink(build);
    expect(target.startsWith('/')).toBe(false);
    expect(resolve(dirname(build), target)).toBe(dir);
    expect(await readFile(join(build, 'Module.symvers'), 'utf8')).toBe('Module.symvers\n');
    expect(resolve(dirname(build), await readlink(join(root, 'lib', 'modules', '5.15.135', 'source')))).toBe(dir);
  });

  it('keeps nothing for a kernel without module support', async () => {
    const root = join(work, 'root-nomod');
    expect(await keepModuleBuildFiles(tree, root, '5.15.135', { modules: false })).toBeNull();
    await expect(lstat(join(root, 'usr'))).rejects.toThrow();
  });
});
