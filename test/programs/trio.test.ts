/**
 * The trio on the running kernel, through BPF_PROG_TEST_RUN (bpftool prog run): each program
 * alone, the manual chain and the fused program, over the whole packet corpus. Expected results
 * come from how the corpus frames were built (lab/packets/corpus.ts), never from the programs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { isLabError } from '../../lab/errors.ts';
import { loadAllShared, progRun, progRunMany, unpin } from '../../lab/bpftool/index.ts';
import { applyTrioConfig, MAP_NAMES, PROGRAM_NAMES } from '../../lab/programs/trio.ts';
import { type Corpus, type CorpusCase } from '../../lab/packets/corpus.ts';
import { XDP_ACTIONS as XDP_ACTION } from '../../lab/bpf/uapi.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import { manual } from '../../lab/approaches/manual.ts';
import { fused } from '../../lab/approaches/fused.ts';
import type { ApproachContext } from '../../lab/approaches/approach.ts';
import { builtObjects, corpusFiles, expectedMetrics, expectRecordsMatch, hostTarget, leftovers, runCorpus, type CorpusRun, removeScratch } from './support.ts';
import { RUN_TAG } from '../support/names.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool');
const PIN = `/sys/fs/bpf/xt2trio${RUN_TAG}`;

describe.skipIf(need.skip)('trio under BPF_PROG_TEST_RUN', () => {
  let target: HostTarget;
  let corpus: Corpus;
  let files: Record<string, string>;
  let objectDir: string;
  let runnable: CorpusCase[];

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    ({ corpus, files } = await corpusFiles());
    runnable = corpus.cases.filter((c) => c.testRunnable);
    await unpin(target, PIN);
  });

  afterAll(async () => {
    await removeScratch();
    await unpin(target, PIN);
    expect(await leftovers(target, `xt2trio${RUN_TAG}`)).toEqual([]);
  });

  async function loadStandalone(stage: 'filter' | 'metrics' | 'logger', tag: string, logSampleN: number): Promise<{ entry: string; maps: string }> {
    const dir = `${PIN}/${tag}`;
    await loadAllShared(target, `${objectDir}/${stage}.o`, `${dir}/progs`, `${dir}/maps`);
    const present = (await target.run(['ls', '-1', `${dir}/maps`])).stdout.split('\n').filter(Boolean);
    await applyTrioConfig(target, `${dir}/maps`, { denyPorts: [corpus.deniedPort], logSampleN }, present);
    return { entry: `${dir}/progs/${PROGRAM_NAMES[stage]}`, maps: `${dir}/maps` };
  }

  it('filter alone: drops TCP to the denied port, passes everything else (ND, UDP, truncated, VLAN...)', async () => {
    const { entry, maps } = await loadStandalone('filter', 'filter', 0);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: false });
    for (const c of runnable) expect({ name: c.name, verdict: run.verdicts[c.name] }).toEqual({ name: c.name, verdict: XDP_ACTION[c.verdict] });
  });

  it('filter alone: an empty deny list passes every frame', async () => {
    const { entry, maps } = await loadStandalone('filter', 'filter_empty', 0);
    await applyTrioConfig(target, maps, { denyPorts: [], logSampleN: 0 }, [MAP_NAMES.denyPorts]);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: false });
    expect(new Set(Object.values(run.verdicts))).toEqual(new Set([XDP_ACTION.pass]));
  });

  it('metrics alone: passes every frame and counts exactly the frames it saw, by class, with their bytes', async () => {
    const { entry, maps } = await loadStandalone('metrics', 'metrics', 0);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: false, metrics: true });
    expect(new Set(Object.values(run.verdicts))).toEqual(new Set([XDP_ACTION.pass]));
    expect(run.metrics).toEqual(expectedMetrics(runnable));
  });

  it('logger alone, N=1: one record per frame with the frame\'s fields, in order', async () => {
    const { entry, maps } = await loadStandalone('logger', 'logger1', 1);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: true, metrics: false });
    expect(new Set(Object.values(run.verdicts))).toEqual(new Set([XDP_ACTION.pass]));
    expectRecordsMatch(run, runnable, runnable.map((_, i) => i + 1));
  });

  it('logger alone, N=3: exactly every third frame', async () => {
    const { entry, maps } = await loadStandalone('logger', 'logger3', 3);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: true, metrics: false });
    const sampled = runnable.map((c, i) => ({ c, seq: i + 1 })).filter((x) => x.seq % 3 === 0);
    expectRecordsMatch(run, sampled.map((x) => x.c), sampled.map((x) => x.seq));
  });

  it('logger alone, N=0: logging off, no record', async () => {
    const { entry, maps } = await loadStandalone('logger', 'logger0', 0);
    const run = await runCorpus(target, entry, maps, corpus, files, { logger: true, metrics: false });
    expect(run.records).toEqual([]);
  });

  it('the kernel refuses frames shorter than an Ethernet header (so those corpus frames are not test-run)', async () => {
    const { entry } = await loadStandalone('filter', 'short', 0);
    const short = corpus.cases.filter((c) => !c.testRunnable);
    expect(short.length).toBe(3 * 14);
    const err = await progRun(target, { pinned: entry }, { dataIn: files[short[5]!.name]! }).catch((e: unknown) => e);
    expect(isLabError(err, 'COMMAND')).toBe(true);
    expect((err as Error).message).toMatch(/Invalid argument/);
    const many = await progRunMany(target, { pinned: entry }, [files.ipv6_tcp_allowed!, files[short[5]!.name]!]).catch((e: unknown) => e);
    expect(isLabError(many, 'COMMAND')).toBe(true);
    expect((many as Error).message).toContain(`${short[5]!.name}.bin failed: failed to run program: Invalid argument`);
  });

  describe('chains', () => {
    let env: TestEnv;
    const runs: Partial<Record<'manual' | 'fused', CorpusRun>> = {};
    const ctxOf = (name: string): ApproachContext => ({ target, ifname: env.b.ifname, netns: env.b.netns, pinDir: `${PIN}/${name}`, objectDir });

    beforeAll(async () => {
      env = await createTestEnv(target, { name: `xt2trio${RUN_TAG}` });
    });
    afterAll(async () => {
      await manual.detach(ctxOf('manual')).catch(() => undefined);
      await fused.detach(ctxOf('fused')).catch(() => undefined);
      await env[Symbol.asyncDispose]();
    });

    for (const [name, approach, entryOf] of [
      ['manual', manual, (ctx: ApproachContext) => `${ctx.pinDir}/progs/filter/${PROGRAM_NAMES.filter}`],
      ['fused', fused, (ctx: ApproachContext) => `${ctx.pinDir}/progs/fused/${PROGRAM_NAMES.fused}`],
    ] as const) {
      it(`${name}: verdicts as specified; metrics and logger see exactly the frames the filter passed`, async () => {
        const ctx = ctxOf(name);
        await approach.load(ctx);
        await applyTrioConfig(target, `${ctx.pinDir}/maps`, { denyPorts: [corpus.deniedPort], logSampleN: 1 });
        const run = await runCorpus(target, entryOf(ctx), `${ctx.pinDir}/maps`, corpus, files, { logger: true, metrics: true });
        runs[name] = run;
        for (const c of runnable) expect({ name: c.name, verdict: run.verdicts[c.name] }).toEqual({ name: c.name, verdict: XDP_ACTION[c.verdict] });
        const passed = runnable.filter((c) => c.verdict === 'pass');
        expect(run.metrics).toEqual(expectedMetrics(passed));
        expectRecordsMatch(run, passed, passed.map((_, i) => i + 1));
      });
    }

    it('manual: replace() swaps a stage in place (new program in the slot, same maps, same results)', async () => {
      const ctx = ctxOf('manual');
      const before = await manual.describe(ctx);
      await manual.replace(ctx, 'metrics', `${objectDir}/metrics_manual.o`);
      const after = await manual.describe(ctx);
      expect(after.programs.map((p) => p.role)).toEqual(['filter', 'metrics', 'logger']);
      expect(after.programs[1]!.id).not.toBe(before.programs[1]!.id);
      expect(after.programs[0]!.id).toBe(before.programs[0]!.id);
      expect(after.maps).toEqual(before.maps);
      const maps = `${ctx.pinDir}/maps`;
      const run = await runCorpus(target, `${ctx.pinDir}/progs/filter/${PROGRAM_NAMES.filter}`, maps, corpus, files, { logger: false, metrics: true });
      const passed = runnable.filter((c) => c.verdict === 'pass');
      const twice = expectedMetrics([...passed, ...passed]);
      // The counters kept counting across the swap: the new metrics program uses the same map.
      expect(run.metrics).toEqual(twice);
    });

    it('manual and fused: identical verdicts, counters and log records over the whole corpus', () => {
      const m = runs.manual;
      const f = runs.fused;
      expect(m, 'manual run').toBeDefined();
      expect(f, 'fused run').toBeDefined();
      expect(m!.verdicts).toEqual(f!.verdicts);
      expect(m!.metrics).toEqual(f!.metrics);
      const strip = (r: CorpusRun) => r.records.map(({ tsNs: _ts, ...rest }) => rest);
      expect(strip(m!)).toEqual(strip(f!));
    });
  });
});
