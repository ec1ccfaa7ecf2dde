/**
 * The patch's offset remap table (lab/chain/patch/remap.ts) on a small hand-built object: moved,
 * kept and dropped ranges, what stays put (section symbols, kept symbols), records moving to
 * another section, and an offset outside the table.
 */
import { describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { type ElfSymbol, type Section, SHF_ALLOC, SHF_EXECINSTR, SHT_PROGBITS, SHT_REL, STB_GLOBAL, STB_LOCAL, STT_FUNC, STT_NOTYPE, STT_SECTION, newSection } from '../../lab/bpf/elf.ts';
import type { BtfExt } from '../../lab/bpf/btf-ext.ts';
import type { BpfObject } from '../../lab/bpf/object.ts';
import { applyRemap, remapOffset, spliceRemap } from '../../lab/chain/patch/remap.ts';

function sym(name: string, section: Section, value: number, type = STT_NOTYPE): ElfSymbol {
  return { name, bind: type === STT_FUNC ? STB_GLOBAL : STB_LOCAL, type, other: 0, section, special: 0, value, size: 0 };
}

/** A program section "xdp" of 10 instructions with a relocation, a symbol and a line record per instruction. */
function world(): { obj: BpfObject; xdp: Section; text: Section; secSym: ElfSymbol; prog: ElfSymbol } {
  const xdp = newSection('xdp', SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 8, new Uint8Array(80));
  const text = newSection('.text', SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 8, new Uint8Array(16));
  const rel = newSection('.relxdp', SHT_REL, 0, 8);
  rel.target = xdp;
  const target = sym('m', xdp, 0);
  const secSym = sym('', xdp, 0, STT_SECTION);
  const prog = sym('prog', xdp, 16, STT_FUNC);
  const labels = Array.from({ length: 10 }, (_, k) => sym(`L${k}`, xdp, k * 8));
  rel.relocs = Array.from({ length: 10 }, (_, k) => ({ offset: k * 8, type: 1, symbol: target }));
  const ext: BtfExt = {
    version: 1,
    flags: 0,
    hdr_len: 24,
    func_info_rec_size: 8,
    line_info_rec_size: 16,
    core_relo_rec_size: 16,
    func_info: [{ sec_name: 'xdp', records: [{ insn_off: 16, type_id: 1, extra: new Uint8Array(0) }] }],
    line_info: [{ sec_name: 'xdp', records: Array.from({ length: 10 }, (_, k) => ({ insn_off: k * 8, file_name: 'f.c', line: `line ${k}`, line_col: k, extra: new Uint8Array(0) })) }],
    core_relo: [],
  } as BtfExt;
  const obj = {
    elf: { fileName: 'remap.o', sections: [text, xdp, rel], symbols: [secSym, target, prog, ...labels] },
    btf: null,
    ext,
  } as unknown as BpfObject;
  return { obj, xdp, text, secSym, prog };
}

describe('offset remap table', () => {
  it('keeps what is before the range, moves the range, shifts what follows by the delta', () => {
    const { obj, xdp } = world();
    // Instructions 2..4 get one instruction in front of them; everything after shifts by 2 (one more epilogue slot).
    const remap = spliceRemap(xdp, 16, 40, { kind: 'move', section: xdp, base: 24 }, 16);
    expect([0, 8, 16, 32, 40, 72].map((o) => remapOffset(remap, o)?.off)).toEqual([0, 8, 24, 40, 56, 88]);
    applyRemap(obj, remap);
    const rel = obj.elf.sections.find((s) => s.name === '.relxdp')!;
    expect(rel.relocs.map((r) => r.offset)).toEqual([0, 8, 24, 32, 40, 56, 64, 72, 80, 88]);
    expect(obj.ext!.line_info[0]!.records.map((r) => r.insn_off)).toEqual([0, 8, 24, 32, 40, 56, 64, 72, 80, 88]);
    expect(obj.elf.symbols.filter((s) => s.name.startsWith('L')).map((s) => s.value)).toEqual([0, 8, 24, 32, 40, 56, 64, 72, 80, 88]);
  });

  it('moves a range to another section: its records are appended there and a REL section is created after it', () => {
    const { obj, xdp, text, secSym, prog } = world();
    applyRemap(obj, spliceRemap(xdp, 16, 40, { kind: 'move', section: text, base: 16 }, -24 + 32, new Set([prog])));
    const names = obj.elf.sections.map((s) => s.name);
    expect(names).toEqual(['.text', '.rel.text', 'xdp', '.relxdp']);
    const relText = obj.elf.sections[1]!;
    expect(relText.target).toBe(text);
    expect(relText.relocs.map((r) => r.offset)).toEqual([16, 24, 32]);
    expect(obj.elf.sections[3]!.relocs.map((r) => r.offset)).toEqual([0, 8, 48, 56, 64, 72, 80]);
    expect(obj.ext!.func_info.find((b) => b.sec_name === '.text')!.records.map((r) => r.insn_off)).toEqual([16]);
    expect(obj.ext!.line_info.find((b) => b.sec_name === '.text')!.records.map((r) => r.line)).toEqual(['line 2', 'line 3', 'line 4']);
    // The section symbol names the section, the kept symbol (the entry) its start: neither moves.
    expect([secSym.section, secSym.value]).toEqual([xdp, 0]);
    expect([prog.section, prog.value]).toEqual([xdp, 16]);
    const l3 = obj.elf.symbols.find((s) => s.name === 'L3')!;
    expect([l3.section, l3.value]).toEqual([text, 24]);
  });

  it('drops a range: what names an offset inside it goes, what follows closes the gap', () => {
    const { obj, xdp } = world();
    applyRemap(obj, spliceRemap(xdp, 16, 40, { kind: 'drop' }, -24));
    expect(obj.elf.sections.find((s) => s.name === '.relxdp')!.relocs.map((r) => r.offset)).toEqual([0, 8, 16, 24, 32, 40, 48]);
    expect(obj.elf.symbols.filter((s) => s.name.startsWith('L')).map((s) => s.name)).toEqual(['L0', 'L1', 'L5', 'L6', 'L7', 'L8', 'L9']);
    expect(obj.ext!.func_info[0]!.records).toEqual([]);
    expect(obj.ext!.line_info[0]!.records.map((r) => r.line)).toEqual(['line 0', 'line 1', 'line 5', 'line 6', 'line 7', 'line 8', 'line 9']);
  });

  it('refuses an offset no range covers', () => {
    const { xdp } = world();
    const remap = { section: xdp, keep: new Set<ElfSymbol>(), ranges: [{ from: 0, to: 8, kind: 'move' as const, section: xdp, base: 0 }] };
    let err: unknown;
    try {
      remapOffset(remap, 8);
    } catch (e) {
      err = e;
    }
    expect(isLabError(err, 'PATCH')).toBe(true);
  });
});
