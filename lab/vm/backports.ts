/**
 * The guest tree's packages from <suite>-backports (tcx needs bpftool 7.4+, libbpf 1.3+ and an
 * iproute2 that knows it; bookworm has 7.1, 1.1 and 6.1): after debootstrap, the backports source
 * is added inside the tree and the recipe's `backports` list installed from it with apt in a
 * chroot. The apt lists and archives it fetched go with the recipe's pruneDirs afterwards.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Recipe } from './recipe.ts';
import { runTool } from './proc.ts';

/** What installing the backports does to a tree at `root`: one file written, then these commands. */
export interface BackportsPlan {
  suite: string;
  sourcesFile: { path: string; content: string };
  commands: string[][];
}

/** The plan for the recipe's backports, or null when it lists none. Pure: tested without a tree. */
export function backportsPlan(recipe: Recipe, root: string): BackportsPlan | null {
  if (recipe.backports.length === 0) return null;
  const suite = `${recipe.suite}-backports`;
  const apt = ['chroot', root, 'env', 'DEBIAN_FRONTEND=noninteractive', 'LC_ALL=C', 'apt-get', '-q', '-o', 'Dpkg::Use-Pty=0'];
  return {
    suite,
    sourcesFile: { path: join(root, 'etc/apt/sources.list.d', `${suite}.list`), content: `deb ${recipe.mirror} ${suite} main\n` },
    commands: [
      [...apt, 'update'],
      [...apt, 'install', '-y', '--no-install-recommends', '-t', suite, ...recipe.backports],
      [...apt, 'clean'],
    ],
  };
}

/** Installs the recipe's backports into the debootstrap'd tree at `root` (run as root). */
export async function installBackports(root: string, recipe: Recipe, recipeFile: string, onLine?: (line: string) => void): Promise<void> {
  const plan = backportsPlan(recipe, root);
  if (plan === null) return;
  await mkdir(dirname(plan.sourcesFile.path), { recursive: true });
  await writeFile(plan.sourcesFile.path, plan.sourcesFile.content);
  for (const argv of plan.commands) {
    await runTool(argv, {
      what: `${argv.slice(argv.indexOf('apt-get')).join(' ')} in ${root}`,
      code: 'IMAGE',
      timeoutMs: 20 * 60_000,
      remedy: `Check that ${recipe.mirror} serves ${plan.suite} and that the packages in ${recipeFile}'s "backports" exist there.`,
      onLine,
    });
  }
}
