/**
 * The trio built for the TC hook (sched_cls) on the running kernel, through BPF_PROG_TEST_RUN
 * (bpftool prog run): each stage alone, the continuing stages, the manual chain and the fused
 * program, over the whole packet corpus. Expected verdicts are the corpus's, read through the
 * XDP → TC mapping (lab/programs/hook.ts, programs/hook.h), never from the programs; the XDP trio
 * runs the same corpus beside them and must agree on every verdict, counter and log record. The
 * patched chain (the standalone TC objects patched with TC's verdict sets and loaded through the
 * chain operations, as the tc-patched approach does) runs the same corpus and must agree too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { isLabError } from '../../lab/errors.ts';
import { loadAllShared, mapUpdate, progRun, unpin } from '../../lab/bpftool/index.ts';
import { u32le } from '../../lab/bytes.ts';
import { applyTrioConfig, MAP_NAMES, OBJECTS, PROGRAM_NAMES, STAGES, TC_OBJECTS, TC_PROGRAM_NAMES, type Stage } from '../../lab/programs/trio.ts';
import { BPFTOOL_PROG_TYPE, hookVerdict, testRunRetval, type Hook, type TcPass } from '../../lab/programs/hook.ts';
import { type Corpus, type CorpusCase } from '../../lab/packets/corpus.ts';
import { TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, XDP_DROP, XDP_PASS } from '../../lab/bpf/uapi.ts';
import { builtObjects, corpusFiles, expectedMetrics, expectRecordsMatch, hostTarget, leftovers, runCorpus, type CorpusRun, removeScratch } from './support.ts';
import { RUN_TAG } from '../support/names.ts';
import { chainDetach } from '../../lab/chain/ops/detach.ts';
import { chainInit } from '../../lab/chain/ops/init.ts';
import { pinProgramMaps } from '../../lab/approaches/patched.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool');
const PREFIX = `xt2tctrio${RUN_TAG}`;
const PIN = `/sys/fs/bpf/${PREFIX}`;

/** What the corpus says each runnable frame's verdict is, as a program of `hook` returns it. */
function expectedVerdicts(cases: readonly CorpusCase[], hook: Hook, pass: TcPass = 'final'): Record<string, number> {
  return Object.fromEntries(cases.map((c) => [c.name, testRunRetval(hookVerdict(hook, c.verdict, pass))]));
}

describe.skipIf(need.skip)('the trio on the TC hook under BPF_PROG_TEST_RUN', () => {
  let target: HostTarget;
  let corpus: Corpus;
  let files: Record<string, string>;
  let objectDir: string;
  let runnable: CorpusCase[];

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    ({ corpus, files } = await corpusFiles());
    // The frames both hooks' test runs accept, so the XDP trio here runs exactly what the TC one does.
    runnable = corpus.cases.filter((c) => c.tcTestRunnable);
    await unpin(target, PIN);
  });

  afterAll(async () => {
    await removeScratch();
    await chainDetach(target, `${PIN}/tc-patched/chain`).catch(() => undefined);
    await unpin(target, PIN);
    expect(await leftovers(target, PREFIX)).toEqual([]);
  });

  /**
   * Loads `objects` (in chain order) onto one set of maps under PIN/tag; with `slots`, fills
   * chain_jmp as the manual chain does. Returns the first program's pin and the maps directory.
   */
  async function load(tag: string, hook: Hook, objects: readonly string[], logSampleN: number, slots = false): Promise<{ entry: string; maps: string; progs: string[] }> {
    const dir = `${PIN}/${tag}`;
    const maps = `${dir}/maps`;
    const progs: string[] = [];
    for (const [i, obj] of objects.entries()) {
      const loaded = await loadAllShared(target, `${objectDir}/${obj}.o`, `${dir}/progs${i}`, maps, { type: BPFTOOL_PROG_TYPE[hook] });
      const names = Object.keys(loaded);
      expect(names, obj).toHaveLength(1);
      expect(loaded[names[0]!]!.type, obj).toBe(hook === 'tc' ? 'sched_cls' : 'xdp');
      progs.push(`${dir}/progs${i}/${names[0]}`);
    }
    if (slots) {
      for (const [i, stage] of STAGES.entries()) {
        await mapUpdate(target, { pinned: `${maps}/${MAP_NAMES.chain}` }, u32le(OBJECTS.manualSlots[stage]), { prog: { pinned: progs[i]! } });
      }
    }
    const present = (await target.run(['ls', '-1', maps])).stdout.split('\n').filter(Boolean);
    await applyTrioConfig(target, maps, { denyPorts: [corpus.deniedPort], logSampleN }, present);
    return { entry: progs[0]!, maps, progs };
  }

  const stageProgram = async (tag: string, stage: Stage, logSampleN: number, object = TC_OBJECTS.standalone[stage]) => {
    const l = await load(tag, 'tc', [object], logSampleN);
    expect(l.entry.endsWith(`/${TC_PROGRAM_NAMES[stage]}`)).toBe(true);
    return l;
  };

  it('the mapping: pass is TC_ACT_OK (final) or TC_ACT_UNSPEC (continue), drop is TC_ACT_SHOT; XDP keeps its numbers', () => {
    expect([hookVerdict('tc', 'pass'), hookVerdict('tc', 'pass', 'continue'), hookVerdict('tc', 'drop'), hookVerdict('tc', 'drop', 'continue')]).toEqual([TC_ACT_OK, TC_ACT_UNSPEC, TC_ACT_SHOT, TC_ACT_SHOT]);
    expect([hookVerdict('xdp', 'pass'), hookVerdict('xdp', 'drop')]).toEqual([XDP_PASS, XDP_DROP]);
    expect(testRunRetval(TC_ACT_UNSPEC)).toBe(0xffffffff);
  });

  it('tc_filter alone: TC_ACT_SHOT for TCP to the denied port, TC_ACT_OK for everything else', async () => {
    const { entry, maps } = await stageProgram('filter', 'filter', 0);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: false, runnableFor: 'tc' });
    expect(run.verdicts).toEqual(expectedVerdicts(runnable, 'tc'));
    expect(Object.values(run.verdicts)).toContain(TC_ACT_SHOT);
  });

  it('tc_filter_next (continuing): TC_ACT_UNSPEC where the filter passes, TC_ACT_SHOT where it drops', async () => {
    const { entry, maps } = await load('filter_next', 'tc', [TC_OBJECTS.continuing.filter], 0);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: false, runnableFor: 'tc' });
    expect(run.verdicts).toEqual(expectedVerdicts(runnable, 'tc', 'continue'));
  });

  it('tc_filter alone: an empty deny list passes every frame', async () => {
    const { entry, maps } = await stageProgram('filter_empty', 'filter', 0);
    await applyTrioConfig(target, maps, { denyPorts: [], logSampleN: 0 }, [MAP_NAMES.denyPorts]);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: false, runnableFor: 'tc' });
    expect(new Set(Object.values(run.verdicts))).toEqual(new Set([TC_ACT_OK]));
  });

  it('tc_metrics alone and continuing: every frame passes (TC_ACT_OK, TC_ACT_UNSPEC) and is counted by class with its bytes', async () => {
    for (const [tag, object, retval] of [['metrics', TC_OBJECTS.standalone.metrics, TC_ACT_OK], ['metrics_next', TC_OBJECTS.continuing.metrics, TC_ACT_UNSPEC]] as const) {
      const { entry, maps } = await load(tag, 'tc', [object], 0);
      const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: true, runnableFor: 'tc' });
      expect(new Set(Object.values(run.verdicts)), tag).toEqual(new Set([testRunRetval(retval)]));
      expect(run.metrics, tag).toEqual(expectedMetrics(runnable));
    }
  });

  it('tc_logger alone, N=1: one record per frame with the frame\'s fields (the skb\'s whole length), in order', async () => {
    const { entry, maps } = await stageProgram('logger1', 'logger', 1);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: true, metrics: false, runnableFor: 'tc' });
    expect(new Set(Object.values(run.verdicts))).toEqual(new Set([TC_ACT_OK]));
    expectRecordsMatch(run, runnable, runnable.map((_, i) => i + 1));
  });

  it('tc_logger alone, N=3: exactly every third frame; N=0: none', async () => {
    const three = await stageProgram('logger3', 'logger', 3);
    const run = await runCorpus(target, three.entry, three.maps, corpus, files, { logger: true, metrics: false, runnableFor: 'tc' });
    const sampled = runnable.map((c, i) => ({ c, seq: i + 1 })).filter((x) => x.seq % 3 === 0);
    expectRecordsMatch(run, sampled.map((x) => x.c), sampled.map((x) => x.seq));
    const zero = await stageProgram('logger0', 'logger', 0);
    expect((await runCorpus(target, zero.entry, zero.maps, corpus, files, { logger: true, metrics: false, runnableFor: 'tc' })).records).toEqual([]);
  });

  it('the kernel refuses sched_cls test runs on every frame the corpus marks as not TC-runnable (shorter than Ethernet, or cut inside an announced IPv4/IPv6 header)', async () => {
    const { entry } = await stageProgram('short', 'filter', 0);
    const refused = corpus.cases.filter((c) => !c.tcTestRunnable);
    expect(refused.filter((c) => c.testRunnable).length).toBe(40 + 20);
    for (const c of refused) {
      const err = await progRun(target, { pinned: entry }, { dataIn: files[c.name]! }).catch((e: unknown) => e);
      expect(isLabError(err, 'COMMAND'), c.name).toBe(true);
      expect((err as Error).message, c.name).toMatch(/Invalid argument/);
    }
  });

  describe('chains', () => {
    type ChainName = 'tc-manual' | 'tc-fused' | 'tc-patched' | 'xdp-manual' | 'xdp-fused';
    const runs: Partial<Record<ChainName, CorpusRun>> = {};
    const chains: readonly [ChainName, Hook, readonly string[], boolean][] = [
      ['tc-manual', 'tc', STAGES.map((s) => TC_OBJECTS.manual[s]), true],
      ['tc-fused', 'tc', [TC_OBJECTS.fused], false],
      ['xdp-manual', 'xdp', STAGES.map((s) => OBJECTS.manual[s]), true],
      ['xdp-fused', 'xdp', [OBJECTS.fused], false],
    ];

    for (const [name, hook, objects, slots] of chains) {
      it(`${name}: verdicts as the corpus says on ${hook}; metrics and logger see exactly the frames the filter passed`, async () => {
        const { entry, maps } = await load(name, hook, objects, 1, slots);
        const first = hook === 'tc' ? TC_PROGRAM_NAMES : PROGRAM_NAMES;
        expect(entry.endsWith(`/${objects.length === 1 ? first.fused : first.filter}`)).toBe(true);
        const run = await runCorpus(target, entry, maps, corpus, files, { logger: true, metrics: true, runnableFor: 'tc' });
        runs[name] = run;
        expect(run.verdicts).toEqual(expectedVerdicts(runnable, hook));
        const passed = runnable.filter((c) => c.verdict === 'pass');
        expect(passed.length).toBeLessThan(runnable.length);
        expect(run.metrics).toEqual(expectedMetrics(passed));
        expectRecordsMatch(run, passed, passed.map((_, i) => i + 1));
      });
    }

    it('tc-patched (the standalone TC objects patched, S={ok,unspec} R={redirect}): verdicts as the corpus says on TC; metrics and logger see exactly the frames the filter passed', async () => {
      const dir = `${PIN}/tc-patched`;
      const maps = `${dir}/maps`;
      await target.run(['mkdir', '-p', maps]);
      const state = await chainInit(target, { pinDir: `${dir}/chain`, programs: STAGES.map((s) => ({ path: `${objectDir}/${TC_OBJECTS.standalone[s]}.o` })) });
      expect(state.hook).toBe('sched_cls');
      expect(state.attachment).toBeNull();
      expect(state.programs.map((p) => p.program)).toEqual(STAGES.map((s) => TC_PROGRAM_NAMES[s]));
      expect(state.programs.map((p) => [p.success, p.redirect])).toEqual(STAGES.map(() => [[TC_ACT_OK, TC_ACT_UNSPEC], [TC_ACT_REDIRECT]]));
      const present = await pinProgramMaps(target, maps, state.programs.map((p) => p.id));
      await applyTrioConfig(target, maps, { denyPorts: [corpus.deniedPort], logSampleN: 1 }, present);
      const run = await runCorpus(target, state.programs[0]!.pin, maps, corpus, files, { logger: true, metrics: true, runnableFor: 'tc' });
      runs['tc-patched'] = run;
      expect(run.verdicts).toEqual(expectedVerdicts(runnable, 'tc'));
      const passed = runnable.filter((c) => c.verdict === 'pass');
      expect(run.metrics).toEqual(expectedMetrics(passed));
      expectRecordsMatch(run, passed, passed.map((_, i) => i + 1));
    });

    it('tc-manual with an empty logger slot: the tail call falls through, metrics\' verdict (TC_ACT_OK) stands', async () => {
      const { entry, maps, progs } = await load('tc-manual-short', 'tc', STAGES.slice(0, 2).map((s) => TC_OBJECTS.manual[s]), 0);
      await mapUpdate(target, { pinned: `${maps}/${MAP_NAMES.chain}` }, u32le(OBJECTS.manualSlots.metrics), { prog: { pinned: progs[1]! } });
      const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: true, runnableFor: 'tc' });
      expect(run.verdicts).toEqual(expectedVerdicts(runnable, 'tc'));
      expect(run.metrics).toEqual(expectedMetrics(runnable.filter((c) => c.verdict === 'pass')));
    });

    it('every TC variant agrees with the others and with the XDP trio: verdicts through the mapping, counters and log records', () => {
      for (const n of ['tc-manual', 'tc-fused', 'tc-patched', 'xdp-manual', 'xdp-fused'] as const) expect(runs[n], n).toBeDefined();
      const tcM = runs['tc-manual']!;
      const tcF = runs['tc-fused']!;
      const xdpF = runs['xdp-fused']!;
      expect(tcM.verdicts).toEqual(tcF.verdicts);
      expect(tcM.metrics).toEqual(tcF.metrics);
      const strip = (r: CorpusRun) => r.records.map(({ tsNs: _ts, ...rest }) => rest);
      expect(strip(tcM)).toEqual(strip(tcF));
      const tcP = runs['tc-patched']!;
      expect(tcP.verdicts).toEqual(tcM.verdicts);
      expect(tcP.metrics).toEqual(tcM.metrics);
      expect(strip(tcP)).toEqual(strip(tcM));
      // Across hooks: the XDP verdict read through the mapping; ifindex is the hook's own (the
      // test run's loopback for XDP, the skb's ingress for TC), everything else identical.
      const tcOfXdp = Object.fromEntries(Object.entries(xdpF.verdicts).map(([k, v]) => [k, testRunRetval(hookVerdict('tc', v === XDP_DROP ? 'drop' : 'pass'))]));
      expect(new Set(Object.values(xdpF.verdicts))).toEqual(new Set([XDP_PASS, XDP_DROP]));
      expect(tcM.verdicts).toEqual(tcOfXdp);
      expect(tcM.metrics).toEqual(xdpF.metrics);
      const crossHook = (r: CorpusRun) => r.records.map(({ tsNs: _ts, ifindex: _if, ...rest }) => rest);
      expect(crossHook(tcM)).toEqual(crossHook(xdpF));
      expect(crossHook(runs['xdp-manual']!)).toEqual(crossHook(xdpF));
    });
  });
});
