/**
 * The guest recipe's backports, without building a tree: the schema (a list of package names,
 * none by default), the repository's recipe asking for what tcx needs, and the plan installBackports
 * carries out (the source added inside the tree, apt-get run in a chroot with -t <suite>-backports,
 * its archives cleaned; the lists go with pruneDirs).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecipe } from '../../lab/vm/recipe.ts';
import { backportsPlan } from '../../lab/vm/backports.ts';
import { isLabError } from '../../lab/errors.ts';

const dirs: string[] = [];
async function recipeDirWith(recipe: Record<string, unknown>): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tx-recipe-'));
  dirs.push(d);
  await writeFile(join(d, 'recipe.json'), JSON.stringify(recipe));
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const BASE = { suite: 'bookworm', mirror: 'http://deb.debian.org/debian', variant: 'minbase', packages: ['iperf3'], pruneDirs: ['var/lib/apt/lists'], hostname: 'g', freeSpaceMb: 1 };

describe('guest recipe: packages from bookworm-backports', () => {
  it('the repository\'s recipe takes bpftool, iproute2 and libbpf1 from backports and prunes the apt lists', async () => {
    const r = await loadRecipe();
    expect(r.backports).toEqual(expect.arrayContaining(['bpftool', 'iproute2', 'libbpf1']));
    expect(r.pruneDirs).toEqual(expect.arrayContaining(['var/lib/apt/lists', 'var/cache/apt']));
  });

  it('the plan: the backports source inside the tree, then apt-get update, install -t <suite>-backports, clean, all in a chroot', async () => {
    const r = await loadRecipe(await recipeDirWith({ ...BASE, backports: ['bpftool', 'libbpf1'] }));
    const plan = backportsPlan(r, '/t/root')!;
    expect(plan.suite).toBe('bookworm-backports');
    expect(plan.sourcesFile).toEqual({ path: '/t/root/etc/apt/sources.list.d/bookworm-backports.list', content: 'deb http://deb.debian.org/debian bookworm-backports main\n' });
    for (const c of plan.commands) expect(c.slice(0, 2)).toEqual(['chroot', '/t/root']);
    const tails = plan.commands.map((c) => c.slice(c.indexOf('-o') + 2));
    expect(tails).toEqual([['update'], ['install', '-y', '--no-install-recommends', '-t', 'bookworm-backports', 'bpftool', 'libbpf1'], ['clean']]);
    expect(plan.commands[1]).toContain('DEBIAN_FRONTEND=noninteractive');
  });

  it('a recipe without backports installs none; a name apt would not take is refused when the recipe is read', async () => {
    const none = await loadRecipe(await recipeDirWith(BASE));
    expect(none.backports).toEqual([]);
    expect(backportsPlan(none, '/t/root')).toBeNull();
    const err = await loadRecipe(await recipeDirWith({ ...BASE, backports: ['bpftool; rm -rf /'] })).catch((e: unknown) => e);
    expect(isLabError(err, 'IMAGE')).toBe(true);
    expect((err as Error).message).toMatch(/backports/);
  });
});
