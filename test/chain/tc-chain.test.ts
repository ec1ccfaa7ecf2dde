/**
 * Patched sched_cls (TC) objects chained for real on the host kernel with stock bpftool, as
 * chain.test.ts does for XDP: one pinned PROG_ARRAY and verdict map shared by every program,
 * packets run through the head with BPF_PROG_TEST_RUN, the kernel's verdict compared with the
 * reference model of Algorithm 3.4 under the TC verdict sets for every combination of per-program
 * verdicts (continue, remembered, leave, including TC_ACT_UNSPEC = -1), and each program's counter
 * checked to move once per packet that reached it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirements } from '../support/requirements.ts';
import { RUN_TAG } from '../support/names.ts';
import { patchObject } from '../../lab/chain/patch.ts';
import type { PatchMode } from '../../lab/chain/constants.ts';
import { TC_ACTIONS } from '../../lab/bpf/uapi.ts';
import { MODEL_DEFAULTS, type ModelProgram, chainVerdict, tcVerdict } from './model.ts';
import { FIXTURES_TC, PinDir, bpftool, compile, packet, progRun, readBytes, readCounter, tempDir } from './support.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool');

interface Spec extends ModelProgram {
  obj: string;
  mode: PatchMode;
}

/** The verdicts a test packet chooses per program: UNSPEC, OK, SHOT, PIPE, REDIRECT. */
const VOCAB = [TC_ACTIONS.unspec, TC_ACTIONS.ok, TC_ACTIONS.shot, TC_ACTIONS.pipe, TC_ACTIONS.redirect];
/** The fixtures read each verdict as a signed byte of the packet. */
const byte = (v: number): number => v & 0xff;
const D = MODEL_DEFAULTS.sched_cls;

describe.skipIf(need.skip)('patched TC chains on the host kernel', () => {
  let dir = '';
  let pins: PinDir;
  const obj: Record<string, string> = {};

  beforeAll(() => {
    dir = tempDir('tcchain');
    pins = new PinDir(`tc-${RUN_TAG}`);
    obj.v0 = compile(dir, 'verdict_tc', { POS: 0 }, '-0', true, FIXTURES_TC);
    obj.v1 = compile(dir, 'verdict_tc', { POS: 1, SECNAME: 'classifier' }, '-1', true, FIXTURES_TC);
    obj.v2 = compile(dir, 'verdict_tc', { POS: 2 }, '-2', true, FIXTURES_TC);
    obj.sub1 = compile(dir, 'tc_subprog', { POS: 1 }, '-1', true, FIXTURES_TC);
  });
  afterAll(() => {
    pins?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let chains = 0;
  function buildChain(specs: Spec[]): { head: string; hits: string[]; verdictMap: string } {
    const tag = `c${chains++}`;
    const base = pins.sub(tag);
    const chainPin = join(base, 'chain');
    const verdictPin = join(base, 'verdict');
    bpftool('map', 'create', chainPin, 'type', 'prog_array', 'key', '4', 'value', '4', 'entries', '64', 'name', 'xcl_chain');
    bpftool('map', 'create', verdictPin, 'type', 'percpu_array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'xcl_verdict');
    let head = '';
    const hits: string[] = [];
    specs.forEach((s, i) => {
      const r = patchObject(readBytes(s.obj), { index: i, success: [...s.success], redirect: [...s.redirect], mode: s.mode, fileName: s.obj });
      expect(r.hook).toBe('sched_cls');
      const out = join(dir, `${tag}-${i}.o`);
      writeFileSync(out, r.object);
      const progDir = pins.sub(`${tag}/p${i}`);
      const mapDir = pins.sub(`${tag}/m${i}`);
      bpftool('prog', 'loadall', out, progDir, 'map', 'name', 'xcl_chain', 'pinned', chainPin, 'map', 'name', 'xcl_verdict', 'pinned', verdictPin, 'pinmaps', mapDir);
      const pin = join(progDir, r.program);
      expect(JSON.parse(bpftool('-j', 'prog', 'show', 'pinned', pin)) as { type: string }).toMatchObject({ type: 'sched_cls' });
      if (i === 0) head = pin;
      else bpftool('map', 'update', 'pinned', chainPin, 'key', String(i), '0', '0', '0', 'value', 'pinned', pin);
      hits.push(join(mapDir, 'hits'));
    });
    return { head, hits, verdictMap: verdictPin };
  }

  function corpus(n: number): number[][] {
    let out: number[][] = [[]];
    for (let k = 0; k < n; k++) out = out.flatMap((p) => VOCAB.map((v) => [...p, v]));
    return out;
  }

  function runCorpus(specs: Spec[]): void {
    const chain = buildChain(specs);
    const reachedCount = new Array<number>(specs.length).fill(0);
    const mismatches: string[] = [];
    const seen = new Set<number>();
    for (const verdicts of corpus(specs.length)) {
      const model = chainVerdict(specs, verdicts);
      for (let i = 0; i < model.reached; i++) reachedCount[i]!++;
      const got = tcVerdict(progRun(chain.head, packet(verdicts.map(byte)), dir));
      seen.add(got);
      if (got !== model.verdict) mismatches.push(`verdicts ${verdicts.join(',')}: kernel ${got}, model ${model.verdict}`);
    }
    expect(mismatches).toEqual([]);
    // The corpus reached every kind of end: UNSPEC and OK continued to the end, SHOT and PIPE left, REDIRECT remembered.
    expect([...seen].sort((a, b) => a - b)).toEqual([...VOCAB].sort((a, b) => a - b));
    expect(chain.hits.map((h) => readCounter(h))).toEqual(reachedCount);
  }

  for (const mode of ['inline', 'subprog'] as const) {
    it(`3 programs (tc, classifier, tc sections), ${mode} mode, the TC defaults`, () => {
      runCorpus([
        { obj: obj.v0!, mode, ...D },
        { obj: obj.v1!, mode, ...D },
        { obj: obj.v2!, mode, ...D },
      ]);
    });
  }

  it('3 programs, mixed modes with a bpf-to-bpf body and per-program TC sets (UNSPEC remembered, PIPE continuing)', () => {
    runCorpus([
      { obj: obj.v0!, mode: 'inline', success: [TC_ACTIONS.ok], redirect: [TC_ACTIONS.redirect, TC_ACTIONS.unspec] },
      { obj: obj.sub1!, mode: 'subprog', success: [TC_ACTIONS.ok, TC_ACTIONS.pipe], redirect: [TC_ACTIONS.redirect] },
      { obj: obj.v2!, mode: 'inline', success: [TC_ACTIONS.unspec], redirect: [] },
    ]);
  });

  for (const mode of ['inline', 'subprog'] as const) {
    it(`a remembered TC_ACT_REDIRECT does not leak into the next packet (${mode})`, () => {
      const specs: Spec[] = [
        { obj: obj.v0!, mode, ...D },
        { obj: obj.v1!, mode, ...D },
        { obj: obj.v2!, mode, ...D },
      ];
      const chain = buildChain(specs);
      const R = TC_ACTIONS.redirect;
      const leaving = [R, TC_ACTIONS.shot, TC_ACTIONS.ok];
      expect(tcVerdict(progRun(chain.head, packet(leaving.map(byte)), dir))).toBe(chainVerdict(specs, leaving).verdict);
      // Every program says OK: a leaked C would turn it into REDIRECT.
      expect(tcVerdict(progRun(chain.head, packet([0, 0, 0]), dir))).toBe(TC_ACTIONS.ok);
      // The control: C written by hand, as a chain that never clears it would leave it.
      bpftool('map', 'update', 'pinned', chain.verdictMap, 'key', '0', '0', '0', '0', 'value', String(R), '0', '0', '0');
      expect(tcVerdict(progRun(chain.head, packet([0, 0, 0]), dir))).toBe(chainVerdict(specs, [0, 0, 0], false, R).verdict);
      expect(tcVerdict(progRun(chain.head, packet([0, 0, 0]), dir))).toBe(TC_ACTIONS.ok);
    });
  }
});
