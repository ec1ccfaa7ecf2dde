/**
 * The patch on sched_cls (TC) programs, without a kernel: the hook read from the section as libbpf
 * names it, the TC defaults, the output re-parsed in both modes, the verdict names parsed per hook,
 * and the refusals (TC_ACT_OK in R, another hook's verdict names, a chain mixing hooks), through
 * the library and through `npm run chain -- patch`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { requirements } from '../support/requirements.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { type LabErrorCode, isLabError } from '../../lab/errors.ts';
import { patchObject } from '../../lab/chain/patch.ts';
import type { PatchOptions, PatchResult } from '../../lab/chain/patch/types.ts';
import { hookOfSection, parseVerdictList } from '../../lab/chain/hook.ts';
import { checkChainHook } from '../../lab/chain/ops/build.ts';
import { HELPER_TAIL_CALL, isHelperCall } from '../../lab/bpf/insn.ts';
import { checkObject, functionInsns, programSymbols, readObject } from '../../lab/bpf/object.ts';
import { FIXTURES_TC, compile, readBytes, tempDir } from './support.ts';
import { MODEL_DEFAULTS } from './model.ts';

const needClang = requirements('clang');
let dir = '';
const o: Record<string, string> = {};

beforeAll(() => {
  dir = tempDir('tcpatch');
  if (needClang.skip) return;
  o.tc = compile(dir, 'verdict_tc', {}, '-tc', true, FIXTURES_TC);
  o.classifier = compile(dir, 'verdict_tc', { SECNAME: 'classifier' }, '-classifier', true, FIXTURES_TC);
  o.tcx = compile(dir, 'verdict_tc', { SECNAME: 'tcx/ingress' }, '-tcx', true, FIXTURES_TC);
  o.egress = compile(dir, 'verdict_tc', { SECNAME: 'tc/egress' }, '-egress', true, FIXTURES_TC);
  o.sub = compile(dir, 'tc_subprog', {}, '', true, FIXTURES_TC);
  o.both = compile(dir, 'both_hooks', {}, '', true, FIXTURES_TC);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The patch with no verdict sets, as a JavaScript caller may call it: the hook's defaults apply. */
const withDefaults = (input: Uint8Array, options: Omit<PatchOptions, 'success' | 'redirect'>): PatchResult => patchObject(input, options as PatchOptions);

function errorOf(f: () => unknown): { code: LabErrorCode; message: string; remedy?: string } {
  try {
    f();
  } catch (e) {
    if (isLabError(e)) return { code: e.code, message: e.message, remedy: e.remedy };
    throw e;
  }
  throw new Error('expected a LabError, got success');
}

describe('the hook, from the section as libbpf names it', () => {
  it('xdp* is XDP; tc, classifier, tc/tcx ingress|egress, netkit are sched_cls; others neither', () => {
    for (const s of ['xdp', 'xdp.frags', 'xdp/devmap', 'xdp.frags/cpumap']) expect(hookOfSection(s), s).toBe('xdp');
    for (const s of ['tc', 'classifier', 'classifier/x', 'tc/ingress', 'tc/egress', 'tcx/ingress', 'tcx/egress', 'netkit/primary', 'netkit/peer']) expect(hookOfSection(s), s).toBe('sched_cls');
    for (const s of ['action', 'kprobe/veth_poll', 'tcx', 'tc/sideways', 'socket', '.text']) expect(hookOfSection(s), s).toBeNull();
  });
});

describe.skipIf(needClang.skip)('patching TC programs', () => {
  for (const mode of ['inline', 'subprog'] as const) {
    it(`${mode}: every TC section is patched as sched_cls with the TC defaults; the output re-parses with the program in its section`, () => {
      for (const [obj, section] of [[o.tc!, 'tc'], [o.classifier!, 'classifier'], [o.tcx!, 'tcx/ingress'], [o.egress!, 'tc/egress']] as const) {
        for (const index of [0, 1, 5]) {
          const r = withDefaults(readBytes(obj), { index, mode, fileName: obj });
          expect(r.hook).toBe('sched_cls');
          expect(r.section).toBe(section);
          expect([...r.success].sort()).toEqual([...MODEL_DEFAULTS.sched_cls.success].sort());
          expect(r.redirect).toEqual([...MODEL_DEFAULTS.sched_cls.redirect]);
          expect(r.notes.join('\n')).not.toMatch(/verdict semantics assume/);
          const out = readObject(r.object, 'patched');
          checkObject(out);
          const prog = programSymbols(out);
          expect(prog.map((p) => [p.name, p.section!.name])).toEqual([['verdict_tc', section]]);
          const { insns } = functionInsns(out, prog[0]!);
          // One tail call per continuing verdict (OK, UNSPEC, REDIRECT), each with the next index.
          const calls = insns.map((i, k) => (isHelperCall(i, HELPER_TAIL_CALL) ? k : -1)).filter((k) => k >= 0);
          expect(calls).toHaveLength(3);
          for (const k of calls) expect(insns[k - 1]).toMatchObject({ code: 0xb7, dst: 3, imm: index + 1 });
          // TC_ACT_UNSPEC is compared through a zero-extended register, not a sign-extended immediate.
          expect(insns.some((i) => i.code === 0x15 && i.imm === -1)).toBe(false);
          expect(insns.some((i) => i.code === 0xb4 && i.dst === 1 && i.imm === -1)).toBe(true);
        }
      }
    });
  }

  it('subprog: a TC body with a bpf-to-bpf call moves to .text', () => {
    const r = patchObject(readBytes(o.sub!), { index: 1, mode: 'subprog', success: [0, -1], redirect: [7], fileName: 'tc_subprog.o' });
    expect(r.hook).toBe('sched_cls');
    const out = readObject(r.object);
    expect(out.elf.symbols.some((s) => s.name === 'tc_subprog__body')).toBe(true);
  });

  it('an object with an XDP and a TC program: each picked by name gets its own hook', () => {
    const both = readBytes(o.both!);
    expect(withDefaults(both, { index: 1, mode: 'inline', program: 'on_tc' }).hook).toBe('sched_cls');
    const x = withDefaults(both, { index: 1, mode: 'inline', program: 'on_xdp' });
    expect(x.hook).toBe('xdp');
    expect(x.success).toEqual([...MODEL_DEFAULTS.xdp.success]);
  });
});

describe.skipIf(needClang.skip)('TC refusals → one clear LabError each', () => {
  it('TC_ACT_OK (0) in R: it is the verdict map\'s "nothing remembered"', () => {
    for (const mode of ['inline', 'subprog'] as const) {
      const e = errorOf(() => patchObject(readBytes(o.tc!), { index: 1, mode, success: [-1], redirect: [0, 7], fileName: 'tc.o' }));
      expect(e.code).toBe('BAD_INPUT');
      expect(e.message).toMatch(/^tc\.o: redirect verdicts cannot include 0 \(TC_ACT_OK\)/);
      expect(e.remedy).toMatch(/TC_ACT_OK is 0/);
      expect(e.remedy).toMatch(/success set/);
    }
    // The same set is fine once OK continues instead of being remembered.
    expect(patchObject(readBytes(o.tc!), { index: 1, mode: 'inline', success: [0, -1], redirect: [7] }).hook).toBe('sched_cls');
  });

  it('a TC program patched for an XDP chain, and an XDP one for a TC chain', () => {
    const e = errorOf(() => patchObject(readBytes(o.tc!), { index: 1, mode: 'inline', success: [2], redirect: [4], hook: 'xdp', fileName: 'tc.o' }));
    expect(e).toMatchObject({ code: 'PATCH', message: expect.stringContaining('is a TC (sched_cls) program and the chain is on XDP (xdp)') });
    const x = errorOf(() => patchObject(readBytes(o.both!), { index: 1, mode: 'inline', success: [0], redirect: [7], program: 'on_xdp', hook: 'sched_cls', fileName: 'both.o' }));
    expect(x).toMatchObject({ code: 'PATCH', message: expect.stringContaining('is an XDP (xdp) program and the chain is on TC (sched_cls)') });
  });

  it('verdicts out of the hook\'s range', () => {
    // -1 is a TC verdict (UNSPEC) but no XDP verdict.
    const e = errorOf(() => patchObject(readBytes(o.both!), { index: 1, mode: 'inline', success: [-1], redirect: [], program: 'on_xdp' }));
    expect(e).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('success verdict -1 is not an integer in 0..2^31-1') });
    expect(errorOf(() => patchObject(readBytes(o.tc!), { index: 1, mode: 'inline', success: [2 ** 31], redirect: [] })).code).toBe('BAD_INPUT');
  });

  it('verdict names are the hook\'s: an XDP name for a TC program is refused with the reason', () => {
    expect(parseVerdictList('ok,unspec', 'sched_cls', '--success')).toEqual([0, -1]);
    expect(parseVerdictList('TC_ACT_REDIRECT, 8,-1', 'sched_cls', '--redirect')).toEqual([7, 8, -1]);
    expect(parseVerdictList('redirect', 'sched_cls', '--redirect')).toEqual([7]);
    expect(parseVerdictList('redirect', 'xdp', '--redirect')).toEqual([4]);
    expect(parseVerdictList('none', 'sched_cls', '--redirect')).toEqual([]);
    for (const [text, hook, why] of [
      ['pass', 'sched_cls', 'an XDP verdict name, and this program\'s hook is TC (sched_cls)'],
      ['xdp_drop', 'sched_cls', 'an XDP verdict name'],
      ['shot', 'xdp', 'a TC verdict name, and this program\'s hook is XDP (xdp)'],
      ['maybe', 'sched_cls', 'not a TC verdict'],
    ] as const) {
      const e = errorOf(() => parseVerdictList(text, hook, '--success'));
      expect(e.code).toBe('BAD_INPUT');
      expect(e.message).toContain(why);
      expect(e.remedy).toContain(hook === 'xdp' ? 'pass=2' : 'ok=0');
    }
    expect(errorOf(() => parseVerdictList('-1', 'xdp', '--success')).message).toContain('out of the XDP verdict range');
  });

  it('a chain mixing XDP and TC programs is refused naming both sides; a chain of one hook is that hook\'s', () => {
    const e = errorOf(() => checkChainHook([{ where: 'a.o:x', section: 'xdp' }, { where: 'b.o:t', section: 'tc' }, { where: 'c.o:y', section: 'xdp.frags' }]));
    expect(e.code).toBe('CHAIN');
    expect(e.message).toMatch(/cannot mix hooks: XDP \(xdp\): a\.o:x \(section xdp\), c\.o:y \(section xdp\.frags\); TC \(sched_cls\): b\.o:t \(section tc\)/);
    expect(e.remedy).toBeTruthy();
    expect(checkChainHook([{ where: 'b.o:t', section: 'classifier' }, { where: 'c.o:u', section: 'tc' }])).toBe('sched_cls');
    expect(checkChainHook([{ where: 'a.o:x', section: 'xdp' }, { where: 'b.o:y', section: 'xdp/devmap' }])).toBe('xdp');
  });
});

describe.skipIf(needClang.skip)('npm run chain -- patch on TC objects', () => {
  const tsx = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const cli = (...args: string[]) => execa(tsx, [join(REPO_ROOT, 'lab', 'cli.ts'), 'chain', 'patch', ...args], { reject: false, cwd: REPO_ROOT, env: { NO_COLOR: '1' } });

  it('patches with TC names and defaults, refuses XDP names and TC_ACT_OK in R; --help says so', async () => {
    const out = join(dir, 'cli-out.o');
    const ok = await cli(o.tc!, '-o', out, '--index', '1', '--success', 'ok,unspec,pipe', '--redirect', 'redirect');
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('(section tc, TC) patched for slot 1');
    expect(ok.stdout).toContain('S=ok,unspec,pipe R=redirect');
    expect(readObject(readBytes(out)).elf.symbols.some((s) => s.name === 'xcl_chain')).toBe(true);
    const def = await cli(o.classifier!, '-o', out, '--index', '0');
    expect(def.exitCode, def.stderr).toBe(0);
    expect(def.stdout).toMatch(/S=ok,unspec R=redirect/);
    const xdpName = await cli(o.tc!, '-o', out, '--index', '1', '--success', 'pass');
    expect(xdpName.exitCode).not.toBe(0);
    expect(xdpName.stderr).toContain('"pass" is an XDP verdict name, and this program\'s hook is TC (sched_cls)');
    const zero = await cli(o.tc!, '-o', out, '--index', '1', '--redirect', 'ok');
    expect(zero.exitCode).not.toBe(0);
    expect(zero.stderr).toContain('redirect verdicts cannot include 0 (TC_ACT_OK)');
    const help = await execa(tsx, [join(REPO_ROOT, 'lab', 'cli.ts'), 'chain', 'patch', '--help'], { reject: false, cwd: REPO_ROOT });
    expect(help.stdout).toMatch(/XDP or TC \(sched_cls/);
    expect(help.stdout).toMatch(/TC\s+ok,unspec/);
  }, 60_000);
});
