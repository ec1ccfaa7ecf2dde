/**
 * The chain-length scaling of the TC chains the kernel walks (cls_bpf priorities, tcx) and of a
 * tail-call chain on the same clock, under live traffic, timed in-band. Units: the clock's
 * arithmetic, the records and their schema, the report's label. On the host (6.18 has clsact and
 * tcx): every variant measured at each length, the attached chain checked against what was asked,
 * a run that fails part way keeps what it measured and says which variants failed, and nothing is
 * left behind. In a Debian 6.1 guest (TCG): filters and tail calls measured, tcx refused with the
 * kernel's reason. No timing is asserted.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFeature, requirements } from '../support/requirements.ts';
import { RUN_TAG } from '../support/names.ts';
import { isLabError } from '../../lab/errors.ts';
import type { ProgressEvent } from '../../lab/progress.ts';
import { HostTarget, type CommandResult, type RunOptions, type Target } from '../../lab/target.ts';
import { RawRecord } from '../../lab/results/record.ts';
import { tcx } from '../../lab/approaches/tcx.ts';
import { openSandbox } from '../../lab/microbench/sandbox.ts';
import { isLiveVariant, measureTcLiveScaling, nsPerSkb, tcLiveRecords, TC_LIVE_VARIANTS, type TcLiveOptions, type TcLiveResult } from '../../lab/microbench/tc-live.ts';
import { microGroups } from '../../lab/report/micro.ts';
import { bootVm } from '../../lab/vm/boot.ts';
import { testKernel } from '../vm/kernels.ts';

const need = requirements('root', 'bpf', 'bpftool', 'clang', 'iperf3');
const guest = requirements('root', 'bpf', 'clang', 'qemu', 'debootstrap');
const PREFIX = `tl${RUN_TAG}`;
const LENGTHS = [1, 3];

/** One quick sweep at LENGTHS, one 1 s run each, in a sandbox of its own removed afterwards. */
async function sweep(t: Target, extra: Partial<TcLiveOptions> = {}): Promise<TcLiveResult> {
  const sb = await openSandbox(t, PREFIX);
  try {
    return await measureTcLiveScaling(sb, { quick: true, lengths: LENGTHS, durationS: 1, repetitions: 1, envName: `${PREFIX}lv`, ...extra });
  } finally {
    await sb.dispose();
  }
}

function leftovers(): string[] {
  const pins = execFileSync('ls', ['/sys/fs/bpf']).toString().split('\n').filter((n) => n.startsWith(`${PREFIX}-micro-`));
  const ns = execFileSync('ip', ['netns', 'list']).toString().split('\n').filter((n) => n.startsWith(PREFIX));
  const links = execFileSync('ip', ['-o', 'link']).toString().split('\n').filter((l) => l.includes(`: ${PREFIX}`));
  return [...pins, ...ns, ...links];
}

describe('the in-band clock', () => {
  it('is the mean over the skbs between two readings', () => {
    expect(nsPerSkb({ ns: 1000n, skbs: 10n }, { ns: 4000n, skbs: 40n }, 'x')).toEqual({ ns: 100, skbs: 30 });
  });

  it('refuses a run no skb went through, naming it, rather than a zero', () => {
    let err: unknown;
    try {
      nsPerSkb({ ns: 5n, skbs: 7n }, { ns: 5n, skbs: 7n }, 'host: chain/tcx, 4 program(s)');
    } catch (e) {
      err = e;
    }
    expect(isLabError(err, 'BENCH')).toBe(true);
    expect((err as Error).message).toMatch(/chain\/tcx, 4 program\(s\): no skb reached the end/);
  });
});

describe('records of a live sweep', () => {
  const target = { name: 't', kernelRelease: '6.18.0', accelerator: 'host', clock: 'wall' } as unknown as Target;
  const live: TcLiveResult = {
    measurements: [{ ...TC_LIVE_VARIANTS.filters, byLength: new Map([[1, [150, 160]], [4, [320, 330]]]) }],
    skbs: new Map([[TC_LIVE_VARIANTS.filters.variant, new Map([[1, [900, 700]], [4, [800, 1000]]])]]),
    unsupported: [],
  };

  it('are valid raw records, timed in-band, repeat the fewest skbs of a repetition', () => {
    const recs = tcLiveRecords(target, { runId: 'r', kernel: 'host' }, live);
    expect(recs.map((r) => [r.variant, r.chainLength, r.repeat, r.nsPerPacket])).toEqual([
      ['chain/tc-filters', 1, 700, [150, 160]],
      ['chain/tc-filters', 4, 800, [320, 330]],
    ]);
    for (const r of recs) {
      expect(RawRecord.parse(r)).toMatchObject({ timing: 'in-band', hop: 'tc-next' });
    }
  });

  it('stay in-band in the report, whose groups say so', () => {
    const recs = tcLiveRecords(target, { runId: 'r', kernel: 'host' }, live);
    const [g] = microGroups(recs, new Map(), 200);
    expect(g).toMatchObject({ variant: 'chain/tc-filters', kind: 'scaling', timing: 'in-band' });
    expect(g!.fit!.slope).toBeCloseTo((325 - 155) / 3, 6);
  });

  it('name the variants apart from the test-run ones', () => {
    for (const v of Object.values(TC_LIVE_VARIANTS)) expect(isLiveVariant(v.variant)).toBe(true);
    expect(isLiveVariant('chain/tc-manual-constant')).toBe(false);
  });
});

/** The host, except that the iperf3 client fails from its `failFrom`-th run on. */
class FailingIperf implements Target {
  private clients = 0;
  constructor(private readonly inner: HostTarget, private readonly failFrom: number) {}
  get name() { return this.inner.name; }
  get kernelRelease() { return this.inner.kernelRelease; }
  get accelerator() { return this.inner.accelerator; }
  get workDir() { return this.inner.workDir; }
  run(argv: readonly string[], o?: RunOptions): Promise<CommandResult> {
    if (argv.includes('iperf3') && argv.includes('-c') && ++this.clients >= this.failFrom) {
      return Promise.resolve({ exitCode: 1, stdout: '', stderr: 'iperf3: error - injected' });
    }
    return this.inner.run(argv, o);
  }
  sh(script: string, o?: RunOptions): Promise<CommandResult> { return this.inner.sh(script, o); }
  putFile(local: string, remote: string): Promise<void> { return this.inner.putFile(local, remote); }
  [Symbol.asyncDispose](): Promise<void> { return this.inner[Symbol.asyncDispose](); }
}

describe.skipIf(need.skip)('TC chains under live traffic on the host kernel', () => {
  let dir: string;
  let target: HostTarget;
  let result: TcLiveResult;
  let withTcx: boolean;
  const events: ProgressEvent[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `${PREFIX}-`));
    target = await HostTarget.create(join(dir, 'work'));
    const s = await tcx.supports(target);
    withTcx = !checkFeature('tcx', s.supported ? null : s.reason).skip;
    result = await sweep(target, { phaseId: 'live', progress: (e) => events.push(e) });
  }, 600_000);

  it('reports progress against a total fixed from the start, one step per variant and length', () => {
    const steps = events.filter((e): e is Extract<ProgressEvent, { kind: 'phase-progress' }> => e.kind === 'phase-progress' && e.id === 'live');
    const cells = result.measurements.length * LENGTHS.length;
    expect(steps.map((e) => e.done)).toEqual(Array.from({ length: cells }, (_, i) => i + 1));
    expect(new Set(steps.map((e) => e.total))).toEqual(new Set([cells]));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('measures filters, tail calls and (where the host has it) tcx at every length', () => {
    const expected = [TC_LIVE_VARIANTS.filters.variant, ...(withTcx ? [TC_LIVE_VARIANTS.tcx.variant] : []), TC_LIVE_VARIANTS.tail.variant];
    expect(result.unsupported).toEqual([]);
    expect(result.measurements.map((m) => m.variant)).toEqual(expected);
    for (const m of result.measurements) {
      expect([...m.byLength.keys()], m.variant).toEqual(LENGTHS);
      for (const ns of [...m.byLength.values()].flat()) expect(ns, m.variant).toBeGreaterThan(0);
      for (const n of [...result.skbs.get(m.variant)!.values()].flat()) expect(n, m.variant).toBeGreaterThan(0);
    }
  });

  it('leaves no pin, namespace or interface behind', () => {
    expect(leftovers()).toEqual([]);
  });

  it('keeps what it measured when a later run fails, and says which variants failed', async () => {
    const failing = new FailingIperf(target, 3);
    const r = await sweep(failing);
    // Length 1 ran filters and one more variant before the third client failed.
    const measured = r.measurements.map((m) => [m.variant, [...m.byLength.keys()]]);
    expect(measured).toEqual([[TC_LIVE_VARIANTS.filters.variant, [1]], [withTcx ? TC_LIVE_VARIANTS.tcx.variant : TC_LIVE_VARIANTS.tail.variant, [1]]]);
    expect(r.unsupported.length).toBe(withTcx ? 3 : 2);
    for (const u of r.unsupported) {
      expect(u.status).toBe('failed');
      expect(u.reason).toMatch(/iperf3/);
    }
    expect(leftovers()).toEqual([]);
  }, 600_000);
});

describe.skipIf(guest.skip)('TC chains under live traffic in a Debian 6.1 guest', () => {
  it('measures filters and tail calls, and refuses tcx with the kernel\'s reason', { timeout: 1_200_000 }, async () => {
    await using vm = await bootVm({ kernel: await testKernel('6.1'), accel: 'tcg', cpus: 2, name: `xcl-test-${process.pid}-tclive` });
    const r = await sweep(vm);
    expect(r.measurements.map((m) => [m.variant, [...m.byLength.keys()]])).toEqual([
      [TC_LIVE_VARIANTS.filters.variant, LENGTHS],
      [TC_LIVE_VARIANTS.tail.variant, LENGTHS],
    ]);
    expect(r.unsupported).toHaveLength(1);
    expect(r.unsupported[0]).toMatchObject({ variant: TC_LIVE_VARIANTS.tcx.variant, status: 'unsupported' });
    expect(r.unsupported[0]!.reason).toMatch(/tcx \(bpf_mprog\) arrived in Linux 6\.6/);
    console.log(`6.1 guest, live TC: ${r.measurements.map((m) => `${m.variant} ${[...m.byLength].map(([l, v]) => `${l}:${v.map((x) => x.toFixed(0)).join('/')}`).join(' ')}`).join('; ')}`);
  });
});
