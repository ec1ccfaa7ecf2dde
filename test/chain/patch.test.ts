/**
 * The patch on its own: bad input gives one clear LabError each; the output's structure (body
 * moved with its BTF/BTF.ext, immediate tail-call index, maps in .maps) is checked by re-reading
 * it; and stock tools load it: xdp-loader on a veth in a namespace, third-party objects alone in
 * a chain behave like their unpatched selves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { type LabErrorCode, isLabError } from '../../lab/errors.ts';
import { listPrograms, patchObject } from '../../lab/chain/patch.ts';
import type { PatchOptions } from '../../lab/chain/patch/types.ts';
import { findSection, relSectionFor } from '../../lab/bpf/elf.ts';
import { decodeInsns, isExit } from '../../lab/bpf/insn.ts';
import { BTF_KIND_DATASEC, BTF_KIND_FUNC, BTF_KIND_VAR } from '../../lab/bpf/btf.ts';
import { functionInsns, programSymbols, readObject } from '../../lab/bpf/object.ts';
import { benchPatch } from '../../lab/commands/bench-patch.ts';
import { choosePatchMode } from '../../lab/chain/mode.ts';
import { LIBXDP_OBJECTS, compile, frameCorpus, readBytes, runInPrivateBpffs, sh, tempDir } from './support.ts';

const needClang = requirements('clang');
const needKernel = requirements('root', 'bpf', 'bpftool');
const needLoader = requirements('root', 'xdp-loader');
const needLibxdp = requirements('libxdp-objects');

const base: PatchOptions = { index: 1, success: [2], redirect: [3, 4], mode: 'subprog' };
let dir = '';
const o: Record<string, string> = {};

beforeAll(() => {
  dir = tempDir('patch');
  if (needClang.skip) return;
  for (const n of ['verdict_byte', 'subprog_call', 'stack_user', 'tail_self', 'stack_var', 'no_program']) o[n] = compile(dir, n);
  o.no_btf = compile(dir, 'no_btf', {}, '', false);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function errorOf(f: () => unknown): { code: LabErrorCode; message: string; remedy?: string } {
  try {
    f();
  } catch (e) {
    if (isLabError(e)) return { code: e.code, message: e.message, remedy: e.remedy };
    throw e;
  }
  throw new Error('expected a LabError, got success');
}

describe.skipIf(needClang.skip)('bad input → one clear LabError', () => {
  it('garbage, empty and truncated files', () => {
    const valid = readBytes(o.verdict_byte!);
    const garbage = new Uint8Array(2000).map((_, i) => (i * 7919) & 0xff);
    expect(errorOf(() => patchObject(garbage, { ...base, fileName: 'g.o' }))).toMatchObject({ code: 'BAD_ELF', message: expect.stringContaining('g.o: not an ELF') });
    expect(errorOf(() => patchObject(new Uint8Array(0), { ...base, fileName: 'e.o' })).code).toBe('BAD_ELF');
    for (const cut of [20, 63, 200, valid.length - 100]) {
      const e = errorOf(() => patchObject(valid.slice(0, cut), { ...base, fileName: 't.o' }));
      expect(e.code).toBe('BAD_ELF');
      expect(e.message).toMatch(/^t\.o: /);
      expect(e.remedy).toBeTruthy();
    }
  });

  it('non-BPF ELF files: an executable and a gcc object', () => {
    expect(errorOf(() => patchObject(readBytes('/bin/true'), { ...base, fileName: '/bin/true' }))).toMatchObject({ code: 'NOT_BPF', message: expect.stringContaining('EM_BPF') });
    const src = join(dir, 'host.c');
    writeFileSync(src, 'int f(int x) { return x + 1; }\n');
    execFileSync('gcc', ['-c', src, '-o', join(dir, 'host.o')]);
    expect(errorOf(() => patchObject(readBytes(join(dir, 'host.o')), { ...base, fileName: 'host.o' })).code).toBe('NOT_BPF');
  });

  it('no program, unknown program, several programs', () => {
    expect(errorOf(() => patchObject(readBytes(o.no_program!), base))).toMatchObject({ code: 'PATCH', message: expect.stringContaining('no BPF program') });
    expect(errorOf(() => patchObject(readBytes(o.verdict_byte!), { ...base, program: 'nope' }))).toMatchObject({ code: 'PATCH', message: expect.stringContaining('no program "nope"; the object has: verdict_byte (xdp)') });
    const disp = LIBXDP_OBJECTS.find((p) => p.endsWith('xdp-dispatcher.o'));
    if (needLibxdp.skip) return;
    expect(disp, 'libxdp1 ships xdp-dispatcher.o').toBeDefined();
    if (disp) expect(errorOf(() => patchObject(readBytes(disp), base))).toMatchObject({ code: 'PATCH', message: expect.stringContaining('several programs') });
  });

  it('legacy SEC("maps") definitions, with libbpf\'s reason, before anything is written', () => {
    const legacy = compile(dir, 'legacy_maps');
    for (const mode of ['inline', 'subprog'] as const) {
      const e = errorOf(() => patchObject(readBytes(legacy), { ...base, mode }));
      expect(e).toMatchObject({ code: 'PATCH', message: expect.stringContaining('legacy map definitions in SEC("maps") (legacy_hits)') });
      expect(e.message).toContain('not supported by libbpf v1.0+');
      expect(e.remedy).toContain('SEC(".maps")');
    }
  });

  it('a program that already tail-calls', () => {
    const e = errorOf(() => patchObject(readBytes(o.tail_self!), base));
    expect(e.code).toBe('PATCH');
    expect(e.message).toContain('bpf_tail_call');
    expect(e.message).toContain('chains by itself');
  });

  it('index out of range, bad verdict sets, bad mode', () => {
    const b = readBytes(o.verdict_byte!);
    for (const index of [-1, 34, 1.5, Number.NaN]) expect(errorOf(() => patchObject(b, { ...base, index })).code).toBe('BAD_INPUT');
    expect(errorOf(() => patchObject(b, { ...base, index: 34 })).message).toContain('out of range 0..33');
    expect(errorOf(() => patchObject(b, { ...base, redirect: [0, 4] })).code).toBe('BAD_INPUT');
    expect(errorOf(() => patchObject(b, { ...base, success: [-2] })).code).toBe('BAD_INPUT');
    expect(errorOf(() => patchObject(b, { ...base, mode: 'jit' as 'inline' })).code).toBe('BAD_INPUT');
    expect(errorOf(() => patchObject(b, { ...base, chainMap: 'no-dashes' })).code).toBe('BAD_INPUT');
    // Nothing continues: refused up front, not an internal error about a missing tail call.
    for (const mode of ['inline', 'subprog'] as const) {
      expect(errorOf(() => patchObject(b, { ...base, mode, success: [], redirect: [] }))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('no verdict continues the chain') });
    }
  });

  it('inline mode refuses bpf-to-bpf calls and unprovable stack use, naming the reason', () => {
    const e = errorOf(() => patchObject(readBytes(o.subprog_call!), { ...base, mode: 'inline' }));
    expect(e.code).toBe('PATCH');
    expect(e.message).toContain('bpf-to-bpf call');
    expect(e.message).toContain('cannot be chained');
    const s = errorOf(() => patchObject(readBytes(o.stack_var!), { ...base, mode: 'inline' }));
    expect(s.code).toBe('PATCH');
    expect(s.message).toContain('cannot prove a stack slot is free');
    // subprog mode needs no slot
    expect(patchObject(readBytes(o.stack_var!), base).program).toBe('stack_var');
  });

  it('patching a patched object is refused', () => {
    const once = patchObject(readBytes(o.verdict_byte!), base).object;
    expect(errorOf(() => patchObject(once, base))).toMatchObject({ code: 'PATCH', message: expect.stringContaining('patched already') });
  });
});

describe.skipIf(needClang.skip)('patched object structure', () => {
  it('listPrograms reports calls and tail calls', () => {
    expect(listPrograms(readBytes(o.subprog_call!))).toEqual([{ name: 'subprog_call', section: 'xdp', insns: expect.any(Number), hasSubprogCalls: true, hasTailCalls: false }]);
    expect(listPrograms(readBytes(o.tail_self!))[0]).toMatchObject({ hasSubprogCalls: false, hasTailCalls: true });
    expect(listPrograms(readBytes(o.verdict_byte!))[0]).toMatchObject({ name: 'verdict_byte', hasSubprogCalls: false, hasTailCalls: false });
  });

  for (const index of [0, 1, 17, 33]) {
    it(`tail-call index ${index + 1} is an immediate right before every call (both modes)`, () => {
      for (const mode of ['subprog', 'inline'] as const) {
        const r = patchObject(readBytes(o.verdict_byte!), { ...base, index, mode });
        const obj = readObject(r.object);
        const { insns } = functionInsns(obj, programSymbols(obj)[0]!);
        const calls = insns.map((i, k) => (i.code === 0x85 && i.imm === 12 && i.src === 0 ? k : -1)).filter((k) => k >= 0);
        // One tail call per continuing verdict (S = {2}, R = {3, 4}), each with its own constant.
        expect(calls).toHaveLength(base.success.length + base.redirect.length);
        for (const k of calls) expect(insns[k - 1]).toMatchObject({ code: 0xb7, dst: 3, imm: index + 1 });
      }
    });
  }

  it('subprog mode moves the body, its relocations, FUNC, func_info, line_info and CO-RE relocs to .text', () => {
    const before = readObject(readBytes(o.stack_user!));
    const prog0 = programSymbols(before)[0]!;
    const bodyBefore = functionInsns(before, prog0).insns;
    const relBefore = relSectionFor(before.elf, prog0.section!)!.relocs.map((r) => [r.offset, r.symbol.name]);
    const coreBefore = before.ext!.core_relo.find((b) => b.sec_name === 'xdp')!.records;
    const linesBefore = before.ext!.line_info.find((b) => b.sec_name === 'xdp')!.records.length;
    expect(coreBefore.length).toBeGreaterThan(0);

    const r = patchObject(readBytes(o.stack_user!), { ...base, mode: 'subprog' });
    expect(r).toMatchObject({ program: 'stack_user', section: 'xdp', mode: 'subprog' });
    const after = readObject(r.object);
    const text = findSection(after.elf, '.text')!;
    const body = after.elf.symbols.find((s) => s.name === 'stack_user__body')!;
    expect(body).toMatchObject({ section: text, type: 2, bind: 0, size: prog0.size });
    const T = body.value;
    expect(functionInsns(after, body).insns).toEqual(bodyBefore);
    // relocations moved by the body's new base
    const textRel = relSectionFor(after.elf, text)!.relocs.filter((x) => x.offset >= T).map((x) => [x.offset - T, x.symbol.name]);
    expect(textRel).toEqual(relBefore);
    // BTF: a static FUNC for the body with the program's prototype; func_info points at it
    const fn = after.btf!.types.findIndex((t) => t.kind === BTF_KIND_FUNC && t.name === 'stack_user__body') + 1;
    const orig = after.btf!.types.find((t) => t.kind === BTF_KIND_FUNC && t.name === 'stack_user')!;
    expect(after.btf!.types[fn - 1]).toMatchObject({ vlen: 0, size_type: orig.size_type });
    expect(after.ext!.func_info.find((b) => b.sec_name === '.text')!.records).toContainEqual(expect.objectContaining({ insn_off: T, type_id: fn }));
    expect(after.ext!.func_info.find((b) => b.sec_name === 'xdp')!.records.map((x) => x.insn_off)).toEqual([0]);
    const coreAfter = after.ext!.core_relo.find((b) => b.sec_name === '.text')!.records;
    expect(coreAfter.map((x) => ({ ...x, insn_off: x.insn_off - T }))).toEqual(coreBefore);
    const xdpLines = after.ext!.line_info.find((b) => b.sec_name === 'xdp')!.records;
    expect(xdpLines.map((x) => x.insn_off)).toEqual([0]);
    expect(after.ext!.line_info.find((b) => b.sec_name === '.text')!.records.length).toBe(linesBefore);
    // maps are BTF-defined in .maps, next to the program's own
    const ds = after.btf!.types.find((t) => t.kind === BTF_KIND_DATASEC && t.name === '.maps')!;
    const vars = ds.secinfo!.map((s) => after.btf!.types[s.type - 1]!).filter((t) => t.kind === BTF_KIND_VAR).map((t) => t.name);
    expect(vars).toEqual(['hits', 'seen_keys', 'xcl_chain', 'xcl_verdict']);
    expect(r.notes.join('\n')).toContain('stack_user__body');
  });

  it('inline mode keeps the body in place after one spill of ctx; exits become jumps to the epilogue', () => {
    const before = readObject(readBytes(o.stack_user!));
    const bodyBefore = functionInsns(before, programSymbols(before)[0]!).insns;
    const r = patchObject(readBytes(o.stack_user!), { ...base, mode: 'inline', chainMap: 'my_chain', verdictMap: 'my_verdict' });
    const after = readObject(r.object);
    const insns = functionInsns(after, programSymbols(after)[0]!).insns;
    expect(insns[0]).toMatchObject({ code: 0x7b, dst: 10, src: 1 });
    const slot = insns[0]!.off;
    // the body's deepest access is r10-72 (64-byte key + u64): the slot must lie below it
    expect(slot).toBeLessThanOrEqual(-80);
    const body = insns.slice(1, 1 + bodyBefore.length);
    body.forEach((insn, k) => {
      if (isExit(bodyBefore[k]!)) expect(insn.code).toBe(0x05);
      else expect(insn).toEqual(bodyBefore[k]);
    });
    expect(after.btf!.types.filter((t) => t.kind === BTF_KIND_VAR).map((t) => t.name)).toEqual(expect.arrayContaining(['my_chain', 'my_verdict']));
    expect(after.ext!.func_info.find((b) => b.sec_name === 'xdp')!.records.map((x) => x.insn_off)).toEqual([0]);
    expect(after.ext!.line_info.find((b) => b.sec_name === 'xdp')!.records[0]!.insn_off).toBe(0);
  });

  it('drops DWARF and linker-only sections and says so', () => {
    const r = patchObject(readBytes(o.verdict_byte!), base);
    const after = readObject(r.object);
    expect(after.elf.sections.filter((s) => s.name.startsWith('.debug') || s.name === '.rel.BTF')).toEqual([]);
    expect(r.notes.join('\n')).toContain('dropped');
    expect(decodeInsns(findSection(after.elf, 'xdp')!.data).insns.length).toBeGreaterThan(2);
  });
});

describe.skipIf(needClang.skip || needLoader.skip)('xdp-loader loads patched objects unmodified', () => {
  const ns = 'xcl-h1-loader';
  beforeAll(() => {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', ns, 'link', 'add', 'xclh1a', 'type', 'veth', 'peer', 'name', 'xclh1b']);
    sh('ip', ['-n', ns, 'link', 'set', 'xclh1a', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'xclh1b', 'up']);
  });
  afterAll(() => {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* already gone */
    }
  });
  for (const mode of ['subprog', 'inline'] as const) {
    it(`mode ${mode}`, () => {
      const file = join(dir, `loader-${mode}.o`);
      writeFileSync(file, patchObject(readBytes(o.stack_user!), { ...base, index: 0, mode }).object);
      const inNs = (...args: string[]): string => sh('nsenter', [`--net=/run/netns/${ns}`, ...args]);
      inNs('xdp-loader', 'load', '-m', 'native', 'xclh1a', file);
      try {
        expect(inNs('xdp-loader', 'status', 'xclh1a')).toMatch(/xclh1a\s+stack_user\s+native/);
      } finally {
        inNs('xdp-loader', 'unload', 'xclh1a', '--all');
      }
    });
  }
});

describe.skipIf(needKernel.skip || needClang.skip)('objects without BTF', () => {
  it('get a fresh .BTF for the chain maps, load and behave as unpatched', () => {
    expect(findSection(readObject(readBytes(o.no_btf!)).elf, '.BTF')).toBeUndefined();
    const files = [o.no_btf!];
    for (const mode of ['subprog', 'inline'] as const) {
      const r = patchObject(readBytes(o.no_btf!), { ...base, index: 0, mode });
      expect(r.notes.join('\n')).toContain('no BTF');
      const out = join(dir, `nobtf-${mode}.o`);
      writeFileSync(out, r.object);
      files.push(out);
    }
    const frames = [0, 1, 2, 3, 4, 9].map((v) => new Uint8Array([v, ...new Array<number>(20).fill(0)]));
    const res = runInPrivateBpffs(files, frames, dir);
    expect(res[0]!.programs).toEqual({ no_btf: [0, 1, 2, 3, 4, 2] });
    expect(res[1]).toEqual(res[0]);
    expect(res[2]).toEqual(res[0]);
  });
});

describe.skipIf(needKernel.skip || needClang.skip)('objects from the BPF static linker (bpftool gen object)', () => {
  it('keep a valid .maps DATASEC: the kernel takes the BTF, and the program behaves as unpatched', () => {
    const linked = join(dir, 'verdict_byte-linked.o');
    sh('bpftool', ['gen', 'object', linked, o.verdict_byte!]);
    const before = readObject(readBytes(linked));
    const ds = (obj: ReturnType<typeof readObject>) => obj.btf!.types.find((t) => t.kind === BTF_KIND_DATASEC && t.name === '.maps')!;
    expect(ds(before).size_type).toBeGreaterThan(0); // what clang leaves 0
    const files = [linked];
    for (const mode of ['subprog', 'inline'] as const) {
      const r = patchObject(readBytes(linked), { ...base, index: 0, mode });
      const after = readObject(r.object);
      // Every var, the added maps included, lies inside the section the DATASEC describes.
      const sec = ds(after);
      expect(sec.size_type).toBe(findSection(after.elf, '.maps')!.data.length);
      for (const v of sec.secinfo!) expect(v.offset + v.size).toBeLessThanOrEqual(sec.size_type!);
      const out = join(dir, `linked-${mode}.o`);
      writeFileSync(out, r.object);
      files.push(out);
      // Loaded with its BTF (libbpf drops BTF the kernel refuses and loads without it, silently).
      const show = sh('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t bpf bpf /sys/fs/bpf && bpftool prog load ${out} /sys/fs/bpf/p type xdp && bpftool -j prog show pinned /sys/fs/bpf/p`]);
      expect(JSON.parse(show.trim().split('\n').pop()!)).toHaveProperty('btf_id');
    }
    const res = runInPrivateBpffs(files, frameCorpus(), dir);
    expect(res[1]).toEqual(res[0]);
    expect(res[2]).toEqual(res[0]);
  });
});

describe.skipIf(needKernel.skip || needLibxdp.skip)('third-party objects', () => {
  it('libxdp1 objects patch in both modes, load, and alone in a chain behave as unpatched', () => {
    const objs = LIBXDP_OBJECTS.filter((p) => !p.includes('xdpdump_bpf') && !p.includes('xdp-dispatcher'));
    const files: string[] = [];
    const modes: string[] = [];
    for (const p of objs) {
      files.push(p);
      for (const mode of ['subprog', 'inline'] as const) {
        const out = join(dir, `${mode}-${basename(p)}`);
        writeFileSync(out, patchObject(readBytes(p), { ...base, index: 0, mode, fileName: p }).object);
        files.push(out);
        modes.push(mode);
      }
    }
    const res = runInPrivateBpffs(files, frameCorpus(), dir);
    for (let k = 0; k < objs.length; k++) {
      const orig = res[3 * k]!;
      expect(orig.error, objs[k]).toBeUndefined();
      for (const j of [1, 2]) {
        const patched = res[3 * k + j]!;
        expect(patched.error, `${objs[k]} ${modes[2 * k + j - 1]}`).toBeUndefined();
        expect(patched.programs, `${objs[k]} ${modes[2 * k + j - 1]}`).toEqual(orig.programs);
      }
    }
  });
});

describe.skipIf(needKernel.skip || needLibxdp.skip)('several programs in one section', () => {
  it('patching one of xdp-dispatcher.o\'s two xdp programs keeps it alone, behaving as before', () => {
    const disp = LIBXDP_OBJECTS.find((p) => p.endsWith('xdp-dispatcher.o'))!;
    const cases: [string, 'subprog' | 'inline'][] = [['xdp_pass', 'subprog'], ['xdp_pass', 'inline'], ['xdp_dispatcher', 'subprog']];
    const files = [disp];
    for (const [program, mode] of cases) {
      const out = join(dir, `disp-${program}-${mode}.o`);
      const r = patchObject(readBytes(disp), { ...base, index: 0, mode, program, fileName: disp });
      // Loaders that take an object's first program (bpftool prog load) then load exactly this one.
      expect(listPrograms(r.object).map((p) => p.name)).toEqual([program]);
      expect(r.notes.some((n) => n.startsWith('removed the object\'s other programs'))).toBe(true);
      writeFileSync(out, r.object);
      files.push(out);
    }
    const res = runInPrivateBpffs(files, frameCorpus(), dir);
    expect(Object.keys(res[0]!.programs).sort()).toEqual(['xdp_dispatcher', 'xdp_pass']);
    for (let k = 1; k < files.length; k++) {
      const program = cases[k - 1]![0];
      expect(res[k], cases[k - 1]!.join(' ')).toEqual({ programs: { [program]: res[0]!.programs[program] }, error: undefined });
    }
  });
});

describe.skipIf(needClang.skip)('benchPatch', () => {
  it('times each object in each mode it can take (inline skipped for bpf-to-bpf bodies)', async () => {
    const res = await benchPatch([o.verdict_byte!, o.subprog_call!], 3);
    expect(res.map((r) => [basename(r.file), r.mode])).toEqual([
      ['verdict_byte.o', 'subprog'],
      ['verdict_byte.o', 'inline'],
      ['subprog_call.o', 'subprog'],
    ]);
    for (const r of res) expect(r.ms).toBeGreaterThanOrEqual(0);
  });
  it('reports a missing file as a LabError', async () => {
    await expect(benchPatch([join(dir, 'missing.o')])).rejects.toMatchObject({ code: 'MISSING_FILE' });
  });
});

describe('choosePatchMode', () => {
  const kernel = (ok: boolean) => ({ kernelRelease: '9.9-test', features: { tailCallsWithBpf2bpf: { ok, detail: ok ? 'mixes' : 'refuses' } } }) as unknown as Parameters<typeof choosePatchMode>[0];
  it('inline when no body calls another function, whatever the kernel allows', () => {
    for (const ok of [true, false]) expect(choosePatchMode(kernel(ok), [{ where: 'a.o:a', hasSubprogCalls: false }]).mode).toBe('inline');
  });
  it('subprog when a body calls one and the kernel mixes tail calls with bpf-to-bpf calls, naming it', () => {
    const c = choosePatchMode(kernel(true), [{ where: 'a.o:a', hasSubprogCalls: false }, { where: 'b.o:b', hasSubprogCalls: true }]);
    expect(c).toEqual({ mode: 'subprog', reason: expect.stringContaining('b.o:b call other functions') });
  });
  it('an UNSUPPORTED LabError when a body calls one and the kernel refuses the mix', () => {
    const e = errorOf(() => choosePatchMode(kernel(false), [{ where: 'b.o:b', hasSubprogCalls: true }]));
    expect(e).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('kernel 9.9-test forbids tail calls mixed with bpf-to-bpf calls (refuses)') });
  });
});

describe.skipIf(needClang.skip)('callbacks are other functions too', () => {
  let cbDir = '';
  let cb = '';
  beforeAll(() => {
    cbDir = tempDir('callback');
    cb = compile(cbDir, 'callback_loop');
  });
  afterAll(() => {
    if (cbDir) rmSync(cbDir, { recursive: true, force: true });
  });

  it('listPrograms says a bpf_loop body calls other functions', () => {
    expect(listPrograms(readBytes(cb), cb)).toEqual([expect.objectContaining({ name: 'callback_loop', hasSubprogCalls: true })]);
  });

  it('inline mode refuses it, naming the callback', () => {
    const e = errorOf(() => patchObject(readBytes(cb), { ...base, mode: 'inline' }));
    expect(e).toMatchObject({ code: 'PATCH', message: expect.stringContaining('refers to function "add_one" (a bpf-to-bpf call or a callback)') });
  });
});

describe.skipIf(needClang.skip)('stack through callees (subprog mode)', () => {
  let deepDir = '';
  let deep = '';
  beforeAll(() => {
    deepDir = tempDir('deep');
    deep = compile(deepDir, 'deep_callee');
  });
  afterAll(() => {
    if (deepDir) rmSync(deepDir, { recursive: true, force: true });
  });

  it('refuses a body whose call chain no longer fits under the entry, naming the frames and the sum', () => {
    // 248 + 248 bytes load as they are; the entry's 16 make 16 + 256 + 256 = 528 with 16-byte frames.
    const e = errorOf(() => patchObject(readBytes(deep), { ...base, mode: 'subprog', fileName: 'deep_callee.o' }));
    expect(e).toMatchObject({ code: 'PATCH' });
    expect(e.message).toContain('deepest call chain "deep_callee" → "deep" needs 528 bytes of stack');
    expect(e.remedy).toMatch(/__always_inline|reduce the stack/);
  });

  it('counts every frame of the chain: a shallower callee fits', () => {
    const shallow = compile(deepDir, 'subprog_call');
    expect(patchObject(readBytes(shallow), { ...base, mode: 'subprog' }).mode).toBe('subprog');
  });
});
