/**
 * The micro objects are compiled once per content: a second build reuses the object (same path,
 * file untouched), the variants differ, and a rebuild after a source change drops the stale object.
 */
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { buildMicroObject, buildMicroObjects, MICRO_OBJECTS } from '../../lab/programs/micro.ts';

const need = requirements('clang');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.skipIf(need.skip)('micro object build', () => {
  it('builds every object once and reuses it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xt8-build-'));
    dirs.push(dir);
    const first = await buildMicroObjects(dir);
    expect(Object.keys(first).sort()).toEqual(Object.keys(MICRO_OBJECTS).sort());
    expect(new Set(Object.values(first)).size).toBe(Object.keys(MICRO_OBJECTS).length);
    // Backdate one object: a rebuild that reused it leaves the old mtime.
    const old = new Date(2000, 0, 1);
    await utimes(first.pass, old, old);
    const again = await buildMicroObject('pass', dir);
    expect(again).toBe(first.pass);
    expect((await stat(again)).mtime.getFullYear()).toBe(2000);
    expect((await readdir(dir)).filter((f) => f.endsWith('.o'))).toHaveLength(Object.keys(MICRO_OBJECTS).length);
  });

  it('names objects by what built them and removes a stale one of the same name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xt8-build-'));
    dirs.push(dir);
    const real = await buildMicroObject('chainConstant', dir);
    const stale = join(dir, 'chainConstant-0000000000000000.o');
    await rm(real);
    await writeFile(stale, 'old');
    const rebuilt = await buildMicroObject('chainConstant', dir);
    expect(basename(rebuilt)).toBe(basename(real));
    const left = await readdir(dir);
    expect(left).not.toContain(basename(stale));
    expect(left).toContain(basename(rebuilt));
  });
});
