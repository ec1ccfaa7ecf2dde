/**
 * Fuzzes the readers (ELF, instructions, BTF, BTF.ext) and the patch with thousands of mutated
 * objects: every failure must be a LabError, never another exception or a hang (a hang trips
 * the test timeout). The seed is printed; rerun one with XCL_FUZZ_SEED=<seed>.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { requirements } from '../support/requirements.ts';
import { isLabError } from '../../lab/errors.ts';
import { readObject } from '../../lab/chain/object.ts';
import { findSection } from '../../lab/chain/elf.ts';
import { listPrograms, patchObject } from '../../lab/chain/patch.ts';
import { LIBXDP_OBJECTS, compile, readBytes, tempDir } from './support.ts';
import { mulberry32 } from '../../lab/random.ts';

const needClang = requirements('clang');
const seed = Number(process.env.XCL_FUZZ_SEED ?? Date.now() % 2 ** 31);
const PER_OBJECT = Number(process.env.XCL_FUZZ_PER_OBJECT ?? 200);

const rng = mulberry32;

let dir = '';
const bases: { name: string; bytes: Uint8Array; regions: [number, number][] }[] = [];

/** Byte ranges worth aiming at: ELF header, section headers, symtab, code, .BTF, .BTF.ext. */
function regionsOf(bytes: Uint8Array): [number, number][] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = Number(v.getBigUint64(40, true));
  const shnum = v.getUint16(60, true);
  const out: [number, number][] = [[0, 64], [shoff, shoff + shnum * 64]];
  for (let i = 1; i < shnum; i++) {
    const b = shoff + i * 64;
    const type = v.getUint32(b + 4, true);
    const off = Number(v.getBigUint64(b + 24, true));
    const size = Number(v.getBigUint64(b + 32, true));
    if (type !== 8 && size > 0) out.push([off, off + size]);
  }
  return out;
}

beforeAll(() => {
  dir = tempDir('fuzz');
  const paths = [...LIBXDP_OBJECTS];
  if (!needClang.skip) paths.push(compile(dir, 'verdict_byte'), compile(dir, 'subprog_call'), compile(dir, 'stack_user'));
  for (const p of paths) {
    const bytes = readBytes(p);
    const obj = readObject(bytes, p);
    // Weight .BTF/.BTF.ext/symtab/code: random flips elsewhere mostly hit DWARF, which we do not parse.
    const regions = regionsOf(bytes);
    for (const name of ['.BTF', '.BTF.ext']) if (findSection(obj.elf, name)) regions.push(...regions.slice(2));
    bases.push({ name: p, bytes, regions });
  }
  console.log(`[fuzz] seed ${seed} (XCL_FUZZ_SEED=${seed} to replay), ${PER_OBJECT} mutants per object, ${bases.length} objects`);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function mutate(base: Uint8Array, regions: [number, number][], r: () => number): Uint8Array {
  const pick = (n: number): number => Math.floor(r() * n);
  let b = base.slice();
  const rounds = 1 + pick(4);
  for (let k = 0; k < rounds; k++) {
    const [lo, hi] = regions[pick(regions.length)]!;
    const at = Math.min(b.length - 1, lo + pick(Math.max(1, hi - lo)));
    switch (pick(6)) {
      case 0:
        b[at]! ^= 1 << pick(8);
        break;
      case 1:
        b[at] = pick(256);
        break;
      case 2: {
        const interesting = [0, 1, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 8, 16, 24, 64, b.length, b.length + 8];
        if (at + 4 <= b.length) new DataView(b.buffer).setUint32(at, interesting[pick(interesting.length)]! >>> 0, true);
        break;
      }
      case 3:
        b = b.slice(0, pick(b.length));
        break;
      case 4: {
        const len = 1 + pick(32);
        const src = pick(b.length);
        b.copyWithin(at, src, Math.min(b.length, src + len));
        break;
      }
      default:
        if (at + 8 <= b.length) new DataView(b.buffer).setBigUint64(at, BigInt(pick(2 ** 31)) * BigInt(pick(2 ** 31)), true);
    }
    if (b.length === 0) break;
  }
  return b;
}

describe.skipIf(LIBXDP_OBJECTS.length === 0 && needClang.skip)('fuzzed objects', () => {
  it('readers and patch throw only LabErrors', async () => {
    const r = rng(seed);
    const stats = { total: 0, parsed: 0, patched: 0, codes: {} as Record<string, number> };
    const foreign: string[] = [];
    for (const base of bases) {
      await new Promise((r2) => setImmediate(r2)); // let the test runner's RPC breathe
      for (let n = 0; n < PER_OBJECT; n++) {
        const m = mutate(base.bytes, base.regions, r);
        stats.total++;
        const guard = (what: string, f: () => void): boolean => {
          try {
            f();
            return true;
          } catch (e) {
            if (isLabError(e)) {
              stats.codes[e.code] = (stats.codes[e.code] ?? 0) + 1;
              return false;
            }
            foreign.push(`${base.name} mutant ${n} (${what}): ${e instanceof Error ? e.stack : String(e)}`);
            return false;
          }
        };
        if (!guard('read', () => readObject(m, 'mutant'))) continue;
        stats.parsed++;
        guard('list', () => listPrograms(m, 'mutant'));
        for (const mode of ['subprog', 'inline'] as const) {
          const progs = (() => {
            try {
              return listPrograms(m, 'mutant');
            } catch {
              return [];
            }
          })();
          const program = progs.find((p) => p.section.startsWith('xdp'))?.name;
          if (guard(`patch ${mode}`, () => patchObject(m, { index: 1, success: [2], redirect: [3, 4], mode, program, fileName: 'mutant' }))) stats.patched++;
        }
      }
    }
    console.log(`[fuzz] seed ${seed}: ${JSON.stringify(stats)}`);
    expect(foreign.slice(0, 5)).toEqual([]);
    expect(stats.total).toBeGreaterThanOrEqual(1000);
    // The mutants must exercise both outcomes, or the fuzzer is not testing the readers.
    expect(stats.parsed).toBeGreaterThan(0);
    expect(Object.keys(stats.codes).length).toBeGreaterThan(1);
  }, Math.max(120_000, PER_OBJECT * 400)); // a hang trips this bound
});
