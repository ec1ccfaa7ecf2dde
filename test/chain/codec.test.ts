/**
 * Codec round trips: read then write every object (ours, compiled here with BTF on, and the
 * libxdp1 package's), and check with independent tools (llvm-objdump, llvm-readelf, bpftool)
 * that nothing changed, that writing is stable, and that the kernel runs the round-tripped
 * programs exactly like the originals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { readObject, writeObject } from '../../lab/bpf/object.ts';
import { decodeInsns, encodeInsns } from '../../lab/bpf/insn.ts';
import { LIBXDP_OBJECTS, compile, frameCorpus, packet, readBytes, runInPrivateBpffs, tempDir } from './support.ts';

const needClang = requirements('clang');
const needKernel = requirements('root', 'bpf', 'bpftool');
const needLlvm = requirements('llvm');
const needLibxdp = requirements('libxdp-objects');

let dir = '';
const ours: string[] = [];

beforeAll(() => {
  dir = tempDir('codec');
  if (!needClang.skip) {
    ours.push(compile(dir, 'verdict_byte'), compile(dir, 'subprog_call'), compile(dir, 'stack_user'), compile(dir, 'tail_self'));
  }
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function roundTrip(path: string): string {
  const out = join(dir, `rt-${basename(path)}`);
  writeFileSync(out, writeObject(readObject(readBytes(path), path)));
  return out;
}

/** What independent tools print about an object, minus the file name. */
function describeWithTools(path: string): string {
  const run = (cmd: string, args: string[]): string =>
    execFileSync(cmd, [...args, path], { encoding: 'utf8', maxBuffer: 64 << 20 }).replaceAll(path, 'OBJ');
  const parts = [
    run('llvm-objdump', ['-dr', '--no-show-raw-insn']),
    // symbols and relocations; section offsets in the file legitimately move
    run('llvm-readelf', ['-s', '-r']).replace(/at offset 0x[0-9a-f]+/g, ''),
  ];
  if (!requirements('bpftool').skip) parts.push(run('bpftool', ['btf', 'dump', 'file']));
  return parts.join('\n');
}

describe('instruction codec', () => {
  it('decodes and re-encodes every code section byte for byte', () => {
    for (const p of [...ours, ...LIBXDP_OBJECTS]) {
      const obj = readObject(readBytes(p), p);
      for (const s of obj.elf.sections.filter((x) => (x.flags & 4) !== 0)) {
        expect(encodeInsns(decodeInsns(s.data, p, s.name).insns)).toEqual(s.data);
      }
    }
  });
  it('treats ld_imm64 as one 16-byte instruction', () => {
    const bytes = new Uint8Array([0x18, 0x12, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    const d = decodeInsns(bytes);
    expect(d.insns).toHaveLength(2);
    expect(d.slots).toEqual([0, 2]);
    expect(d.insns[0]).toMatchObject({ code: 0x18, dst: 2, src: 1, imm: 1, imm2: 2 });
  });
});

describe.skipIf(needClang.skip && needLibxdp.skip)('ELF/BTF/BTF.ext round trip', () => {
  it('writing is stable: write(read(write(read(x)))) equals write(read(x))', () => {
    for (const p of [...ours, ...LIBXDP_OBJECTS]) {
      const once = writeObject(readObject(readBytes(p), p));
      const twice = writeObject(readObject(once, p));
      expect(Buffer.from(twice).equals(Buffer.from(once)), p).toBe(true);
    }
  });

  it('keeps sections, symbols, relocations, BTF types and BTF.ext records', () => {
    for (const p of [...ours, ...LIBXDP_OBJECTS]) {
      const a = readObject(readBytes(p), p);
      const b = readObject(writeObject(readObject(readBytes(p), p)), p);
      const secs = (o: typeof a) => o.elf.sections.map((s) => [s.name, s.type, s.flags, s.addralign, s.type === 9 ? s.relocs.map((r) => [r.offset, r.type, r.symbol.name]) : Buffer.from(s.data).toString('hex')]);
      const syms = (o: typeof a) => o.elf.symbols.map((s) => [s.name, s.bind, s.type, s.section?.name ?? s.special, s.value, s.size]);
      // .BTF/.BTF.ext bytes may differ (strings re-interned); compare decoded instead.
      const strip = (x: ReturnType<typeof secs>) => x.filter((s) => s[0] !== '.BTF' && s[0] !== '.BTF.ext' && s[0] !== '.strtab');
      expect(strip(secs(b)), p).toEqual(strip(secs(a)));
      expect(syms(b), p).toEqual(syms(a));
      expect(b.btf, p).toEqual(a.btf);
      expect(b.ext, p).toEqual(a.ext);
      expect(a.btf, p).not.toBeNull();
    }
  });

  it.skipIf(needLlvm.skip)('llvm-objdump, llvm-readelf and bpftool see the same object', () => {
    for (const p of [...ours, ...LIBXDP_OBJECTS]) {
      expect(describeWithTools(roundTrip(p)), p).toBe(describeWithTools(p));
    }
  });

  it.skipIf(needKernel.skip)('the kernel runs round-tripped programs exactly like the originals', () => {
    // xdpdump_bpf.o holds fentry/fexit programs that need an attach target: not loadable alone.
    const objs = [...ours.filter((p) => !p.includes('tail_self')), ...LIBXDP_OBJECTS.filter((p) => !p.includes('xdpdump_bpf'))];
    const frames = [...frameCorpus(), packet([0, 1, 2]), packet([3, 4, 2]), packet([2, 2, 4]), packet([1, 3, 0])];
    const pairs = objs.flatMap((p) => [p, roundTrip(p)]);
    const res = runInPrivateBpffs(pairs, frames, dir);
    for (let k = 0; k < objs.length; k++) {
      const orig = res[2 * k]!;
      const rt = res[2 * k + 1]!;
      expect(orig.error, objs[k]).toBeUndefined();
      expect(rt.error, objs[k]).toBeUndefined();
      expect(Object.keys(orig.programs).length, objs[k]).toBeGreaterThan(0);
      for (const v of Object.values(orig.programs)) expect(v, objs[k]).not.toContain(-1);
      expect(rt.programs, objs[k]).toEqual(orig.programs);
    }
  });
});
