/**
 * The matrix runner's bookkeeping with a scripted kernel session (no root, no traffic): interleaving,
 * unsupported and skipped cells, abort + resume without duplicates, torn last line on resume,
 * refusal to resume with other options, schema validation of everything written.
 */
import type { KernelOrigin } from '../../lab/kernels/origin.ts';
import { mkdtemp, readFile, rm, truncate, stat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Approach, ApproachContext, Description } from '../../lab/approaches/approach.ts';
import type { ApproachName } from '../../lab/results/record.ts';
import { LabError } from '../../lab/errors.ts';
import type { ProgressEvent } from '../../lab/progress.ts';
import { HostTarget } from '../../lab/target.ts';
import { RawRecord, Provenance, type CellRecord, type RunRecord } from '../../lab/results/record.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import type { KernelSession, OpenKernel, Testbed } from '../../lab/bench/kernel-session.ts';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xt7-matrix-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const DISPATCHER_MSG = "Can't fall back to legacy load with 3 programs";

/** A scripted approach: records what happened to it in `log`. */
function fakeApproach(name: ApproachName, log: string[], opts: { unsupported?: string; failLoad?: boolean } = {}): Approach {
  let attached = false;
  return {
    name,
    summary: `fake ${name}`,
    async supports() {
      return opts.unsupported ? { supported: false, reason: opts.unsupported } : { supported: true };
    },
    async load() {
      if (opts.failLoad) throw new LabError('LOAD', `fake ${name}: verifier said no`);
      log.push(`load ${name}`);
    },
    async attach() {
      attached = true;
    },
    async replace() {},
    async detach() {
      attached = false;
    },
    async describe(): Promise<Description> {
      return {
        approach: name,
        attached: name !== 'none' && attached,
        xdpMode: name === 'none' ? 'none' : 'native',
        programs: [],
        maps: [],
        hop: 'none',
        notes: name === 'patched' ? ['patch mode: subprog'] : [],
      };
    },
  };
}

interface Script {
  log: string[];
  iperfCalls: number;
  /** Called before each iperf run with the call number (1-based). */
  beforeIperf?: (n: number) => void;
  unsupported?: Partial<Record<ApproachName, string>>;
  failLoad?: ApproachName[];
  openError?: LabError;
  kernelOrigin?: KernelOrigin;
}

function fakeOpen(script: Script): OpenKernel {
  return async (kernel) => {
    if (script.openError) throw script.openError;
    const target = await HostTarget.create(await tempDir());
    const testbed: Testbed = {
      ifname: 'xt7fake0',
      netns: 'xt7fake',
      objectDir: '/nonexistent',
      serverCpu: 0,
      clientCpu: 1,
      async ping() {
        throw new Error('the matrix does not ping');
      },
      async iperf(durationS) {
        script.iperfCalls++;
        script.beforeIperf?.(script.iperfCalls);
        script.log.push(`iperf ${durationS}`);
        // Distinct, increasing values so the test can tell runs apart (not a performance claim).
        return { bitsPerSecond: 1e9 + script.iperfCalls, bytes: 1e6, seconds: durationS, retransmits: 0 };
      },
      async offloads() {
        return { 'generic-receive-offload': true };
      },
      async dispose() {
        script.log.push('dispose');
      },
    };
    const impls = new Map<ApproachName, Approach>();
    for (const n of ['none', 'fused', 'manual', 'dispatcher', 'patched'] as ApproachName[]) {
      impls.set(n, fakeApproach(n, script.log, { unsupported: script.unsupported?.[n], failLoad: script.failLoad?.includes(n) }));
    }
    const session: KernelSession = {
      kernel,
      target,
      configPath: null,
      kernelOrigin: script.kernelOrigin ?? null,
      testbed,
      probe: null,
      warnings: [],
      approach: (n) => impls.get(n) ?? null,
      contextFor: (n): ApproachContext => ({ target, ifname: 'xt7fake0', netns: 'xt7fake', pinDir: `/nonexistent/${n}`, objectDir: '/nonexistent' }),
      async dispose() {
        await testbed.dispose();
      },
    };
    return session;
  };
}

async function rawLines(file: string): Promise<RawRecord[]> {
  const text = await readFile(file, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .trimEnd()
    .split('\n')
    .map((l) => RawRecord.parse(JSON.parse(l)));
}

const base = { kernels: ['host'], runs: 3, durationS: 1, quick: false, renderReport: false, probeOverheadPairs: 0 };

describe('matrix bookkeeping (scripted session)', () => {
  it('interleaves approaches, records unsupported cells with the tool message, validates every line', async () => {
    const out = await tempDir();
    const kernelOrigin: KernelOrigin = {
      provider: 'source',
      from: 'source tree /src/linux-4.19.108 (4.19.108), built with gcc-11 11.3.0 -fcommon, binutils 2.40',
      source: { kind: 'tree', path: '/src/linux-4.19.108', fingerprint: `tree:${'a'.repeat(64)}`, sourceVersion: '4.19.108' },
      toolchain: { cc: 'gcc-11', ccVersion: '11.3.0', binutils: '2.40', flags: ['-fcommon'] },
      patches: [{ file: '4.19/smpboot-no-tail-call.patch', sha256: 'b'.repeat(64), why: 'secondary CPUs panic at boot' }],
      headers: 'root/usr/src/linux-headers-4.19.108',
    };
    const script: Script = { log: [], iperfCalls: 0, unsupported: { dispatcher: DISPATCHER_MSG }, kernelOrigin };
    const events: ProgressEvent[] = [];
    const r = await runMatrix({
      ...base,
      approaches: ['none', 'fused', 'manual', 'dispatcher'],
      runId: 'logic-1',
      outDir: out,
      openKernel: fakeOpen(script),
      progress: (e) => events.push(e),
    });
    const recs = await rawLines(r.rawFile);
    const runs = recs.filter((x): x is RunRecord => x.kind === 'run');
    const cells = recs.filter((x): x is CellRecord => x.kind === 'cell');
    expect(runs).toHaveLength(9);
    // Run i of every approach before run i+1.
    expect(runs.map((x) => `${x.iteration}:${x.approach}`)).toEqual(
      [0, 1, 2].flatMap((i) => ['none', 'fused', 'manual'].map((a) => `${i}:${a}`)),
    );
    const disp = cells.find((c) => c.approach === 'dispatcher');
    expect(disp).toMatchObject({ status: 'unsupported', runs: 0, reason: DISPATCHER_MSG });
    expect(cells.filter((c) => c.status === 'done').map((c) => [c.approach, c.runs])).toEqual([
      ['none', 3],
      ['fused', 3],
      ['manual', 3],
    ]);
    // No probe helper in this session: null with a reason, never zeros.
    for (const x of runs) {
      expect(x.probe).toBeNull();
      expect(x.probeNullReason).toMatch(x.approach === 'none' ? /veth_poll does not run/ : /probe helper not available/);
      expect(x.xdpMode).toBe(x.approach === 'none' ? 'none' : 'native');
    }
    // One warm-up for the kernel session + 9 measured runs.
    expect(script.iperfCalls).toBe(10);
    const prov = Provenance.parse(JSON.parse(await readFile(join(r.runDir, 'provenance', 'host.json'), 'utf8')));
    expect(prov.options).toEqual({ runs: 3, durationS: 1, warmup: true });
    expect(prov.kernelRelease).toBe((await HostTarget.create(out)).kernelRelease);
    // Where the kernel came from, and the fix-up as a change to the kernel under test.
    expect(prov.kernelOrigin).toEqual(kernelOrigin);
    expect(prov.warnings).toContain('kernel under test differs from its source by the fix-up 4.19/smpboot-no-tail-call.patch: secondary CPUs panic at boot');
    // ETA information: a phase with a total and progress that reaches it.
    const start = events.find((e) => e.kind === 'phase-start' && e.id === 'matrix');
    expect(start).toMatchObject({ total: 12 });
    const last = events.filter((e) => e.kind === 'phase-progress' && e.id === 'matrix').at(-1);
    expect(last).toMatchObject({ done: 9, total: 9 });
  });

  it('resumes after an abort mid-cell without duplicating runs', async () => {
    const out = await tempDir();
    const ac = new AbortController();
    const s1: Script = { log: [], iperfCalls: 0, beforeIperf: (n) => n === 1 + 4 && ac.abort() };
    const opts = { ...base, approaches: ['none', 'fused'] as ApproachName[], runId: 'logic-2', outDir: out };
    await expect(runMatrix({ ...opts, openKernel: fakeOpen(s1), signal: ac.signal })).rejects.toMatchObject({ code: 'INTERRUPTED' });
    const partial = (await rawLines(join(out, 'logic-2', 'raw.jsonl'))).filter((x) => x.kind === 'run');
    expect(partial.length).toBe(4); // 1 warm-up, then 4 runs; the abort is seen before run 5
    expect(s1.log.filter((l) => l === 'dispose')).toHaveLength(1);

    const s2: Script = { log: [], iperfCalls: 0 };
    const r = await runMatrix({ ...opts, openKernel: fakeOpen(s2) });
    const runs = (await rawLines(r.rawFile)).filter((x): x is RunRecord => x.kind === 'run');
    const keys = runs.map((x) => `${x.approach}:${x.iteration}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.sort()).toEqual(['fused:0', 'fused:1', 'fused:2', 'none:0', 'none:1', 'none:2']);
    expect(s2.iperfCalls).toBe(1 + 2); // a warm-up again (new session) + the 2 missing runs
    expect(r.appended).toEqual({ runs: 2, cells: 2 });
  });

  it('drops a torn last line on resume, with a message, and redoes that run', async () => {
    const out = await tempDir();
    const opts = { ...base, approaches: ['fused'] as ApproachName[], runs: 2, runId: 'logic-3', outDir: out };
    const first = await runMatrix({ ...opts, openKernel: fakeOpen({ log: [], iperfCalls: 0 }) });
    // Simulate kill -9 during the write of the second run: drop the cell record, cut run 2 mid-line.
    const text = await readFile(first.rawFile, 'utf8');
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const keep = `${lines[0]}\n${lines[1]!.slice(0, 40)}`;
    await truncate(first.rawFile, Buffer.byteLength(keep));
    expect((await stat(first.rawFile)).size).toBe(Buffer.byteLength(keep));

    const events: ProgressEvent[] = [];
    const s: Script = { log: [], iperfCalls: 0 };
    const r = await runMatrix({ ...opts, openKernel: fakeOpen(s), progress: (e) => events.push(e) });
    expect(events.some((e) => e.kind === 'log' && e.level === 'warn' && /torn last line/.test(e.message))).toBe(true);
    expect(r.warnings.some((w) => /torn last line/.test(w))).toBe(true);
    const recs = await rawLines(r.rawFile);
    expect(recs.map((x) => (x.kind === 'run' ? `run ${x.iteration}` : x.kind))).toEqual(['run 0', 'run 1', 'cell']);
    expect(s.iperfCalls).toBe(1 + 1);
    const torn = (await readdir(r.runDir)).filter((f) => f.startsWith('raw.torn-'));
    expect(torn).toHaveLength(1);
    expect(await readFile(join(r.runDir, torn[0]!), 'utf8')).toBe(lines[1]!.slice(0, 40));
  });

  it('skips a finished run id entirely and refuses to resume with other options', async () => {
    const out = await tempDir();
    const opts = { ...base, approaches: ['fused'] as ApproachName[], runs: 2, runId: 'logic-4', outDir: out };
    await runMatrix({ ...opts, openKernel: fakeOpen({ log: [], iperfCalls: 0 }) });
    const again: Script = { log: [], iperfCalls: 0 };
    const r = await runMatrix({ ...opts, openKernel: fakeOpen(again) });
    expect(again.iperfCalls).toBe(0);
    expect(again.log).toEqual([]); // not even opened
    expect(r.appended).toEqual({ runs: 0, cells: 0 });

    // Same run id, a new approach but other run count: the kernel's provenance says otherwise.
    const err = await runMatrix({ ...opts, runs: 3, approaches: ['fused', 'manual'], openKernel: fakeOpen({ log: [], iperfCalls: 0 }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).code).toBe('BAD_INPUT');
    expect((err as LabError).remedy).toMatch(/--runs 2/);
  });

  it('records a kernel it cannot obtain as skipped cells with the reason, and a failing approach as failed', async () => {
    const out = await tempDir();
    const noProvider = new LabError('NO_PROVIDER', 'kernel 4.19: no provider could supply it (debian: not packaged)');
    const r1 = await runMatrix({
      ...base,
      kernels: ['4.19'],
      approaches: ['none', 'fused'],
      runId: 'logic-5',
      outDir: out,
      openKernel: fakeOpen({ log: [], iperfCalls: 0, openError: noProvider }),
    });
    expect(r1.cells.map((c) => [c.kernel, c.approach, c.status])).toEqual([
      ['4.19', 'none', 'skipped'],
      ['4.19', 'fused', 'skipped'],
    ]);
    expect(r1.cells[0]!.reason).toMatch(/no provider could supply it/);

    const r2 = await runMatrix({
      ...base,
      approaches: ['fused', 'manual'],
      runId: 'logic-6',
      outDir: out,
      openKernel: fakeOpen({ log: [], iperfCalls: 0, failLoad: ['manual'] }),
    });
    const manual = r2.cells.find((c) => c.approach === 'manual');
    expect(manual).toMatchObject({ status: 'failed', runs: 0 });
    expect(manual!.reason).toMatch(/verifier said no/);
    expect(r2.cells.find((c) => c.approach === 'fused')).toMatchObject({ status: 'done', runs: 3 });
  });

  it('rejects bad options with BAD_INPUT / UNKNOWN_KERNEL before touching anything', async () => {
    const out = await tempDir();
    const open = fakeOpen({ log: [], iperfCalls: 0 });
    await expect(runMatrix({ ...base, kernels: ['3.2'], approaches: ['fused'], outDir: out, openKernel: open })).rejects.toMatchObject({ code: 'UNKNOWN_KERNEL' });
    await expect(runMatrix({ ...base, runs: 0, approaches: ['fused'], outDir: out, openKernel: open })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(runMatrix({ ...base, runId: '../x', approaches: ['fused'], outDir: out, openKernel: open })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(await readdir(out)).toEqual([]);
  });
});

describe('raw.jsonl reader', () => {
  it('names file and line of a corrupt record in the middle', async () => {
    const d = await tempDir();
    const f = join(d, 'raw.jsonl');
    const { writeFile } = await import('node:fs/promises');
    const cell = { kind: 'cell', schema: 1, runId: 'x', kernel: 'host', approach: 'fused', status: 'done', runs: 1 };
    await writeFile(f, `${JSON.stringify(cell)}\n{"kind":"run"}\n${JSON.stringify(cell)}\n`);
    const err = await loadRecords(f).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).message).toContain(`${f}:2:`);
  });
});
