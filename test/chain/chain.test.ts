/**
 * Patched objects chained for real on the host kernel with stock bpftool: one pinned PROG_ARRAY
 * and verdict map shared by every program, packets run through the head with BPF_PROG_TEST_RUN,
 * verdicts compared with the reference model of Algorithm 3.4 (no stale verdict across packets), and each
 * program's own counter checked to move exactly once per packet that reached it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { patchObject } from '../../lab/chain/patch.ts';
import type { PatchMode } from '../../lab/chain/constants.ts';
import { type ModelProgram, chainVerdict } from './model.ts';
import { PinDir, bpftool, compile, packet, progRun, readBytes, readCounter, tempDir } from './support.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool');

interface Spec extends ModelProgram {
  obj: string;
  mode: PatchMode;
  /** index the program is patched with (defaults to its position; the no-reset control lies) */
  patchIndex?: number;
  /** slot in the PROG_ARRAY (defaults to its position) */
  slot?: number;
}

interface Chain {
  head: string;
  hits: string[];
  verdictMap: string;
}

describe.skipIf(need.skip)('patched chains on the host kernel', () => {
  let dir = '';
  let pins: PinDir;
  const obj: Record<string, string> = {};

  beforeAll(() => {
    dir = tempDir('chain');
    pins = new PinDir('chain');
    obj.v0 = compile(dir, 'verdict_byte', { POS: 0 }, '-0');
    obj.v1 = compile(dir, 'verdict_byte', { POS: 1 }, '-1');
    obj.v2 = compile(dir, 'verdict_byte', { POS: 2 }, '-2');
    obj.sub1 = compile(dir, 'subprog_call', { POS: 1 }, '-1');
    obj.stack2 = compile(dir, 'stack_user', { POS: 2 }, '-2');
  });
  afterAll(() => {
    pins?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let chains = 0;
  function buildChain(specs: Spec[]): Chain {
    const tag = `c${chains++}`;
    const base = pins.sub(tag);
    const chainPin = join(base, 'chain');
    const verdictPin = join(base, 'verdict');
    bpftool('map', 'create', chainPin, 'type', 'prog_array', 'key', '4', 'value', '4', 'entries', '64', 'name', 'xcl_chain');
    bpftool('map', 'create', verdictPin, 'type', 'percpu_array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'xcl_verdict');
    let head = '';
    const hits: string[] = [];
    specs.forEach((s, i) => {
      const r = patchObject(readBytes(s.obj), {
        index: s.patchIndex ?? i,
        success: [...s.success],
        redirect: [...s.redirect],
        mode: s.mode,
        fileName: s.obj,
      });
      const out = join(dir, `${tag}-${i}.o`);
      writeFileSync(out, r.object);
      const progDir = pins.sub(`${tag}/p${i}`);
      const mapDir = pins.sub(`${tag}/m${i}`);
      bpftool('prog', 'loadall', out, progDir, 'map', 'name', 'xcl_chain', 'pinned', chainPin, 'map', 'name', 'xcl_verdict', 'pinned', verdictPin, 'pinmaps', mapDir);
      const pin = join(progDir, r.program);
      const slot = s.slot ?? i;
      if (slot === 0) head = pin;
      else bpftool('map', 'update', 'pinned', chainPin, 'key', String(slot), '0', '0', '0', 'value', 'pinned', pin);
      hits.push(join(mapDir, 'hits'));
    });
    return { head, hits, verdictMap: verdictPin };
  }

  /** Every combination of verdict bytes 0..4 for n programs. */
  function corpus(n: number): number[][] {
    let out: number[][] = [[]];
    for (let k = 0; k < n; k++) out = out.flatMap((p) => [0, 1, 2, 3, 4].map((v) => [...p, v]));
    return out;
  }

  function runCorpus(specs: Spec[]): void {
    const chain = buildChain(specs);
    const reachedCount = new Array<number>(specs.length).fill(0);
    const mismatches: string[] = [];
    for (const bytes of corpus(specs.length)) {
      const model = chainVerdict(specs, bytes);
      for (let i = 0; i < model.reached; i++) reachedCount[i]!++;
      const got = progRun(chain.head, packet(bytes), dir);
      if (got !== model.verdict) mismatches.push(`packet ${bytes.join(',')}: kernel ${got}, model ${model.verdict}`);
    }
    expect(mismatches).toEqual([]);
    // Every program's side effect happened exactly once per packet that reached it.
    expect(chain.hits.map((h) => readCounter(h))).toEqual(reachedCount);
  }

  const D = { success: [2], redirect: [3, 4] };

  it('2 programs, subprog mode', () => {
    runCorpus([
      { obj: obj.v0!, mode: 'subprog', ...D },
      { obj: obj.v1!, mode: 'subprog', ...D },
    ]);
  });

  it('2 programs, inline mode', () => {
    runCorpus([
      { obj: obj.v0!, mode: 'inline', ...D },
      { obj: obj.v1!, mode: 'inline', ...D },
    ]);
  });

  it('3 programs, subprog mode (bpf-to-bpf body, stack user with a CO-RE relocation)', () => {
    runCorpus([
      { obj: obj.v0!, mode: 'subprog', ...D },
      { obj: obj.sub1!, mode: 'subprog', ...D },
      { obj: obj.stack2!, mode: 'subprog', ...D },
    ]);
  });

  it('3 programs, inline mode', () => {
    runCorpus([
      { obj: obj.v0!, mode: 'inline', ...D },
      { obj: obj.v1!, mode: 'inline', ...D },
      { obj: obj.stack2!, mode: 'inline', ...D },
    ]);
  });

  it('3 programs, mixed modes and per-program verdict sets', () => {
    runCorpus([
      { obj: obj.v0!, mode: 'inline', success: [2, 1], redirect: [4] },
      { obj: obj.sub1!, mode: 'subprog', success: [2], redirect: [3] },
      { obj: obj.v2!, mode: 'inline', success: [2, 3], redirect: [] },
    ]);
  });

  for (const mode of ['subprog', 'inline'] as const) {
    it(`a stale XDP_TX/XDP_REDIRECT does not leak into the next packet (${mode})`, () => {
      const specs: Spec[] = [
        { obj: obj.v0!, mode, ...D },
        { obj: obj.v1!, mode, ...D },
        { obj: obj.v2!, mode, ...D },
      ];
      const chain = buildChain(specs);
      for (const remembered of [3, 4]) {
        // Packet A: the head remembers TX/REDIRECT, then program 1 drops: C stays set in the map.
        expect(progRun(chain.head, packet([remembered, 1, 2]), dir)).toBe(chainVerdict(specs, [remembered, 1, 2]).verdict);
        // Packet B: every program passes. A leaked C would turn PASS into TX/REDIRECT.
        const b = chainVerdict(specs, [2, 2, 2]);
        expect(b.verdict).toBe(2);
        expect(progRun(chain.head, packet([2, 2, 2]), dir)).toBe(2);
      }
    });
  }

  it('control: a verdict left in the map (by a chain that does not clear it) leaks into the next packet', () => {
    // Every way out of the patched chain clears C, so nothing leaks on its own; write a stale C as
    // the thesis's chain (which never clears) would leave it, and the test above would fail.
    const specs: Spec[] = [
      { obj: obj.v0!, mode: 'subprog', ...D },
      { obj: obj.v2!, mode: 'subprog', ...D },
    ];
    const chain = buildChain(specs);
    bpftool('map', 'update', 'pinned', chain.verdictMap, 'key', '0', '0', '0', '0', 'value', '3', '0', '0', '0');
    const leaked = progRun(chain.head, packet([2, 0, 2]), dir);
    expect(leaked).toBe(chainVerdict(specs, [2, 2], false, 3).verdict);
    expect(leaked).toBe(3);
    // The end of the chain read it and cleared it: the next packet is clean again.
    expect(progRun(chain.head, packet([2, 0, 2]), dir)).toBe(2);
  });
});
