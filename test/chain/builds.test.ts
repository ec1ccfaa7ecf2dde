/**
 * Programs built the way real projects build them: every source of the corpus (our fixtures and
 * the trio) compiled with the default CPU and with -mcpu=v3 (ALU32, as Cilium builds), with and
 * without -g (no BTF), each patched in both modes where the mode applies, loaded, and run over the
 * packet corpus: verdict for verdict the same as the unpatched build.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { isLabError } from '../../lab/errors.ts';
import { listPrograms, patchObject } from '../../lab/chain/patch.ts';
import { FIXTURES, frameCorpus, readBytes, runInPrivateBpffs, tempDir } from './support.ts';

const REPO = resolve(import.meta.dirname, '../..');

const need = requirements('root', 'bpf', 'bpftool', 'clang');

interface Source {
  name: string;
  path: string;
  include?: string;
  /** CO-RE relocations and callbacks need BTF: without -g clang cannot build it or the kernel cannot load it. */
  needsBtf?: boolean;
  /** Inline mode refuses it by design (a variable stack offset: no slot provably free). */
  inlineRefused?: boolean;
  /** Defines maps in SEC(".maps"): without -g libbpf cannot open it, and the patch refuses it. */
  mapsNeedBtf?: boolean;
}
const SOURCES: Source[] = [
  { name: 'verdict_byte', path: join(FIXTURES, 'verdict_byte.c'), mapsNeedBtf: true },
  { name: 'no_btf', path: join(FIXTURES, 'no_btf.c') },
  { name: 'stack_user', path: join(FIXTURES, 'stack_user.c'), needsBtf: true },
  { name: 'stack_var', path: join(FIXTURES, 'stack_var.c'), inlineRefused: true },
  { name: 'subprog_call', path: join(FIXTURES, 'subprog_call.c'), mapsNeedBtf: true },
  { name: 'callback_loop', path: join(FIXTURES, 'callback_loop.c'), needsBtf: true },
  ...['filter', 'metrics', 'logger'].map((n) => ({ name: n, path: join(REPO, 'programs', `${n}.c`), include: join(REPO, 'programs'), mapsNeedBtf: true })),
];
const BUILDS: { tag: string; flags: string[] }[] = [
  { tag: 'g', flags: ['-g'] },
  { tag: 'v3-g', flags: ['-g', '-mcpu=v3'] },
  { tag: 'nog', flags: [] },
  { tag: 'v3-nog', flags: ['-mcpu=v3'] },
];

let dir = '';
beforeAll(() => {
  dir = tempDir('builds');
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function build(src: (typeof SOURCES)[number], flags: string[], out: string): void {
  const args = ['-O2', ...flags, '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', ...(src.include ? ['-I', src.include] : [])];
  execFileSync('clang', [...args, '-c', src.path, '-o', out], { stdio: 'pipe' });
}

describe.skipIf(need.skip)('the corpus built with -mcpu=v3 and without -g, patched in both modes', () => {
  for (const b of BUILDS) {
    it(`${b.tag}: every program patches, loads and returns the unpatched verdicts`, () => {
      const files: string[] = [];
      const expected: { file: string; against: number; program: string; what: string }[] = [];
      for (const src of SOURCES) {
        if (src.needsBtf && !b.flags.includes('-g')) continue;
        const plain = join(dir, `${src.name}-${b.tag}.o`);
        build(src, b.flags, plain);
        const [prog] = listPrograms(readBytes(plain), plain);
        expect(prog, plain).toBeDefined();
        if (src.mapsNeedBtf && !b.flags.includes('-g')) {
          for (const mode of ['inline', 'subprog'] as const) {
            expect(() => patchObject(readBytes(plain), { index: 0, success: [2], redirect: [3, 4], mode, fileName: plain }), src.name).toThrow(/no BTF \(built without -g\)/);
          }
          continue;
        }
        const base = files.push(plain) - 1;
        for (const mode of ['inline', 'subprog'] as const) {
          if (mode === 'inline' && prog!.hasSubprogCalls) continue;
          if (mode === 'inline' && src.inlineRefused) {
            expect(() => patchObject(readBytes(plain), { index: 0, success: [2], redirect: [3, 4], mode, fileName: plain }), src.name).toThrow(/cannot prove a stack slot is free/);
            continue;
          }
          let r;
          try {
            r = patchObject(readBytes(plain), { index: 0, success: [2], redirect: [3, 4], mode, fileName: plain });
          } catch (e) {
            throw new Error(`${src.name} ${b.tag} ${mode}: ${isLabError(e) ? e.describe() : String(e)}`);
          }
          const out = join(dir, `${src.name}-${b.tag}-${mode}.o`);
          writeFileSync(out, r.object);
          expected.push({ file: out, against: base, program: prog!.name, what: `${src.name} ${b.tag} ${mode}` });
          files.push(out);
        }
      }
      const res = runInPrivateBpffs(files, frameCorpus(), dir);
      for (const [k, f] of files.entries()) expect(res[k]!.error, f).toBeUndefined();
      for (const e of expected) {
        const k = files.indexOf(e.file);
        expect(res[k]!.programs[e.program], e.what).toEqual(res[e.against]!.programs[e.program]);
        expect(res[k]!.programs[e.program]?.length, e.what).toBe(frameCorpus().length);
      }
    });
  }
});
