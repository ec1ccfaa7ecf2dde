/**
 * BPF run-time statistics: the schema of RunRecord.bpfStats and the arithmetic from two snapshots
 * (no root); then on this machine's kernel for real (root, statistics present): ns per packet of
 * fused, manual and patched under iperf3, the entry program carrying the tail-called programs'
 * runs, statistics off again afterwards and kernel.bpf_stats_enabled as it was, in both the fd and
 * the sysctl mechanisms; and a small matrix that records them in every run with the overhead pair.
 *
 * The sysctl is set to known values here and put back to what it was at the end of the file.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApproachName } from '../../lab/results/record.ts';
import { BpfStatsSession, SYSCTL_PATH, beginStats, readStats, statsDelta, type StatsSnapshot } from '../../lab/bench/bpf-stats.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { BpfStats, Provenance, RawRecord, RunRecord } from '../../lab/results/record.ts';
import type { KernelSession } from '../../lab/bench/kernel-session.ts';
import { openKernelSession } from '../../lab/bench/open-session.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { silent } from '../../lab/progress.ts';
import { requirements } from '../support/requirements.ts';

const PREFIX = 'xst';
/** The matrix opens its own session: another prefix, so it does not replace this file's testbed. */
const MATRIX_PREFIX = 'xstx';

const baseRun = {
  kind: 'run',
  schema: 1,
  runId: 'x',
  kernel: 'host',
  kernelRelease: '6.18.0',
  accelerator: 'host',
  approach: 'manual',
  iteration: 0,
  startedAt: '2026-12-01T08:00:00.000Z',
  endedAt: '2026-12-01T08:00:02.000Z',
  iperf: { bitsPerSecond: 2e9, bytes: 5e8, seconds: 2, retransmits: 0 },
  probe: null,
  probeNullReason: 'kprobes unavailable',
  xdpMode: 'native',
} as const;

const stats = {
  mode: 'fd',
  programId: 15,
  programName: 'xdp_filter',
  runCnt: 1000,
  runTimeNs: 150_000,
  nsPerPacket: 150,
  programs: [
    { role: 'filter', id: 15, name: 'xdp_filter', runCnt: 1000, runTimeNs: 150_000 },
    { role: 'metrics', id: 16, name: 'xdp_metrics', runCnt: 0, runTimeNs: 0 },
  ],
} as const;

describe('RunRecord.bpfStats (schema)', () => {
  it('accepts a record written before the field existed, one with statistics and one with null and a reason', () => {
    expect(RunRecord.parse(baseRun).bpfStats).toBeUndefined();
    expect(RunRecord.parse({ ...baseRun, bpfStats: stats }).bpfStats).toEqual(stats);
    const none = RunRecord.parse({ ...baseRun, approach: 'none', bpfStats: null, bpfStatsNullReason: 'approach none attaches no XDP program' });
    expect(none.bpfStats).toBeNull();
    expect(none.bpfStatsNullReason).toMatch(/no XDP program/);
    expect(RawRecord.parse({ ...baseRun, bpfStats: stats }).kind).toBe('run');
  });

  it('refuses a zero run count, an unknown mechanism and a missing program list', () => {
    expect(BpfStats.safeParse({ ...stats, runCnt: 0 }).success).toBe(false);
    expect(BpfStats.safeParse({ ...stats, mode: 'kprobe' }).success).toBe(false);
    const { programs: _dropped, ...withoutPrograms } = stats;
    expect(BpfStats.safeParse(withoutPrograms).success).toBe(false);
    expect(RunRecord.safeParse({ ...baseRun, bpfStats: { ...stats, runTimeNs: -1 } }).success).toBe(false);
  });
});

describe('statsDelta', () => {
  const programs = [
    { role: 'filter', id: 15, name: 'xdp_filter' },
    { role: 'metrics', id: 16, name: 'xdp_metrics' },
  ];
  const snap = (e: [number, number, number][]): StatsSnapshot => new Map(e.map(([id, runCnt, runTimeNs]) => [id, { runCnt, runTimeNs }]));

  it('divides the entry program\'s Δrun_time_ns by its Δrun_cnt and keeps every program\'s deltas', () => {
    const r = statsDelta('fd', programs, snap([[15, 10, 1000], [16, 0, 0]]), snap([[15, 1010, 151_000], [16, 0, 0]]));
    expect(r).toEqual({ stats });
  });

  it('gives a reason, never a zero, when the entry did not run or a counter went backwards', () => {
    const idle = statsDelta('fd', programs, snap([[15, 10, 1000], [16, 0, 0]]), snap([[15, 10, 1000], [16, 0, 0]]));
    expect(idle).toEqual({ reason: expect.stringMatching(/did not run during the interval/) });
    const back = statsDelta('sysctl', programs, snap([[15, 10, 1000], [16, 5, 50]]), snap([[15, 20, 2000], [16, 0, 0]]));
    expect(back).toEqual({ reason: expect.stringMatching(/went backwards/) });
    expect(statsDelta('fd', programs, snap([[15, 1, 1]]), snap([[15, 2, 2]]))).toEqual({ reason: expect.stringMatching(/missing from a statistics snapshot/) });
  });
});

/** Whether any other process holds statistics on now (the sysctl, or a BPF_ENABLE_STATS descriptor). */
async function othersHoldStats(): Promise<boolean> {
  if ((await sysctl()) !== 0) return true;
  for (const p of await readdir('/proc')) {
    if (/^\d+$/.test(p) && Number(p) !== process.pid && (await holdsStatsFd(Number(p)))) return true;
  }
  return false;
}

const need = requirements('root', 'bpf', 'bpf-stats', 'veth', 'clang', 'bpftool', 'iperf3');

async function sysctl(): Promise<number> {
  return Number((await readFile(SYSCTL_PATH, 'utf8')).trim());
}
async function setSysctl(v: 0 | 1): Promise<void> {
  await execa('sh', ['-c', `echo ${v} > ${SYSCTL_PATH}`]);
}
/**
 * Whether a process holds a BPF_ENABLE_STATS file descriptor. Other sessions on this machine may
 * hold their own, so the test follows its own helper's descriptors rather than the counters.
 */
async function holdsStatsFd(pid: number): Promise<boolean> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return false; // gone, or a zombie: no descriptors left
  }
  for (const fd of fds) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (link === 'anon_inode:bpf-stats') return true;
  }
  return false;
}
/** A helper still running (a zombie left for a non-reaping init has exited). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z /.test(stat);
}
/** This file's helpers still running: the pid files their sessions leave until they are stopped. */
async function helperLeft(stateDir: string): Promise<string[]> {
  const pid = Number((await readFile(join(stateDir, 'stats.pid'), 'utf8').catch(() => '')).trim());
  return pid > 0 && (await running(pid)) ? [`bpf_stats helper pid ${pid}`] : [];
}
async function leftovers(prefix: string, stateDir: string): Promise<string[]> {
  const ns = (await execa('ip', ['netns', 'list'], { reject: false })).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
  const pins = existsSync('/sys/fs/bpf/xdp-chain-lab') ? (await readdir('/sys/fs/bpf/xdp-chain-lab')).filter((n) => n.startsWith(prefix)) : [];
  return [...ns, ...pins.map((p) => `pin ${p}`), ...(await helperLeft(stateDir))];
}

describe.skipIf(need.skip)('BPF run-time statistics on this kernel', () => {
  let original: number;
  let session: KernelSession;
  const dirs: string[] = [];

  beforeAll(async () => {
    original = await sysctl();
    await setSysctl(0);
    session = await openKernelSession('host', { prefix: PREFIX, progress: silent });
  }, 300_000);

  afterAll(async () => {
    await session?.dispose();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    if (original === 0 || original === 1) await setSysctl(original);
  }, 120_000);

  it('ns per packet of fused, manual and patched under iperf3, tail-called programs inside the entry\'s count, statistics off after', { timeout: 300_000 }, async () => {
    const stats = new BpfStatsSession(session.target, session.bpfStats!);
    const found: string[] = [];
    for (const name of ['fused', 'manual', 'patched'] as ApproachName[]) {
      const impl = session.approach(name)!;
      const support = await impl.supports(session.target);
      expect(support, `${name}: ${support.supported ? '' : support.reason}`).toMatchObject({ supported: true });
      const ctx = session.contextFor(name);
      await impl.detach(ctx);
      try {
        await impl.load(ctx);
        await impl.attach(ctx);
        const desc = await impl.describe(ctx);
        const begun = await beginStats(stats, ctx, desc.programs, { maxSeconds: 120 });
        if (!begun.ok) throw new Error(begun.reason);
        // The fd mechanism: statistics are on through the helper's descriptor, the sysctl unwritten.
        expect(begun.interval.mode).toBe('fd');
        const pid = stats.pid!;
        expect(await holdsStatsFd(pid)).toBe(true);
        expect(await sysctl()).toBe(0);
        await session.testbed.iperf(2);
        const ended = await begun.interval.end();
        if (!('stats' in ended)) throw new Error(ended.reason);
        const s = ended.stats;
        // The entry is the program on the veth: the head of the chain, the fused program itself.
        expect(s.programId).toBe(desc.programs[0]!.id);
        expect(s.runCnt).toBeGreaterThan(0);
        expect(s.runTimeNs).toBeGreaterThan(0);
        expect(s.nsPerPacket).toBeGreaterThan(0);
        expect(s.nsPerPacket).toBe(s.runTimeNs / s.runCnt);
        expect(s.programs.map((p) => p.role)).toEqual(desc.programs.map((p) => p.role));
        // Tail-called stages never enter the kernel's accounting of their own: their runs are the entry's.
        for (const p of s.programs.slice(1)) expect(p, `${name} ${p.role}`).toMatchObject({ runCnt: 0, runTimeNs: 0 });
        found.push(`${name}: ${s.nsPerPacket.toFixed(1)} ns per packet over ${s.runCnt} runs of ${s.programName} (id ${s.programId}); ${s.programs.slice(1).map((p) => `${p.role} run_cnt ${p.runCnt}`).join(', ') || 'no tail-called program'}`);

        // Off again: the helper's descriptor is closed, the sysctl as it was.
        expect(await holdsStatsFd(pid)).toBe(false);
        expect(await running(pid)).toBe(false);
        expect(await sysctl()).toBe(0);
        // Without anyone else holding statistics on, traffic now leaves the counters alone.
        if (!(await othersHoldStats())) {
          const frozen = await readStats(session.target, [s.programId]);
          await session.testbed.iperf(1);
          if (!(await othersHoldStats())) expect(await readStats(session.target, [s.programId])).toEqual(frozen);
        }
      } finally {
        await impl.detach(ctx);
      }
    }
    for (const f of found) console.log(`host ${f}`);
    expect(await helperLeft(session.bpfStats!.stateDir)).toEqual([]);
  });

  it('the sysctl mechanism sets kernel.bpf_stats_enabled only when it was 0 and puts it back, also when killed', { timeout: 120_000 }, async () => {
    const stats = new BpfStatsSession(session.target, session.bpfStats!);
    await setSysctl(0);
    const a = await stats.start(60, 'sysctl');
    expect(a).toMatchObject({ ok: true, mode: 'sysctl', sysctlBefore: 0 });
    expect(await sysctl()).toBe(1);
    expect(await stats.stop()).toEqual({ mode: 'sysctl', sysctlAfter: 0, restored: true });
    expect(await sysctl()).toBe(0);

    // On an error path the helper is stopped with SIGTERM first, so it restores the setting itself.
    expect(await stats.start(60, 'sysctl')).toMatchObject({ ok: true, mode: 'sysctl' });
    expect(await sysctl()).toBe(1);
    await stats.kill();
    expect(await sysctl()).toBe(0);

    // Someone else had it on: it stays on, with either mechanism.
    await setSysctl(1);
    expect(await stats.start(60, 'sysctl')).toMatchObject({ ok: true, mode: 'sysctl', sysctlBefore: 1 });
    expect(await stats.stop()).toEqual({ mode: 'sysctl', sysctlAfter: 1, restored: true });
    expect(await stats.start(60, 'auto')).toMatchObject({ ok: true, mode: 'fd', sysctlBefore: 1 });
    expect(await stats.stop()).toEqual({ mode: 'fd', sysctlAfter: 1, restored: true });
    expect(await sysctl()).toBe(1);
    await setSysctl(0);
    expect(await helperLeft(session.bpfStats!.stateDir)).toEqual([]);
  });

  it('a matrix on the host records them in every XDP run, null with the reason for none, and the overhead pair', { timeout: 900_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'xst-stats-'));
    dirs.push(out);
    await setSysctl(0);
    const approaches: ApproachName[] = ['none', 'fused', 'manual', 'patched'];
    const r = await runMatrix({
      kernels: ['host'],
      approaches,
      runs: 1,
      durationS: 1,
      quick: true,
      runId: 'stats',
      outDir: out,
      prefix: MATRIX_PREFIX,
      probeOverheadPairs: 0,
      statsOverheadPairs: 1,
      renderReport: false,
    });
    const runs = (await loadRecords(r.rawFile)).records.filter((x): x is RunRecord => x.kind === 'run');
    expect(runs.map((x) => x.approach).sort()).toEqual([...approaches].sort());
    for (const x of runs) {
      if (x.approach === 'none') {
        expect(x.bpfStats).toBeNull();
        expect(x.bpfStatsNullReason).toMatch(/no XDP program/);
      } else {
        expect(x.bpfStats, `${x.approach}: ${x.bpfStatsNullReason ?? ''}`).not.toBeNull();
        expect(x.bpfStats!.runCnt).toBeGreaterThan(0);
        expect(x.bpfStats!.nsPerPacket).toBeGreaterThan(0);
        expect(x.bpfStats!.mode).toBe('fd');
      }
    }
    const overhead = JSON.parse(await readFile(join(r.runDir, 'stats-overhead', 'host.json'), 'utf8')) as {
      approach: string;
      withStatsBps: number[];
      withoutStatsBps: number[];
      nsPerPacket: number[];
      testRun: { repeat: number; withStatsNs: number[]; withoutStatsNs: number[]; statsNsPerPacket: number[]; runCnt: number[][] };
      note: string;
    };
    expect(overhead.approach).toBe('fused');
    expect(overhead.withStatsBps).toHaveLength(1);
    expect(overhead.withoutStatsBps).toHaveLength(1);
    expect(overhead.nsPerPacket).toHaveLength(1);
    expect(overhead.nsPerPacket[0]).toBeGreaterThan(0);
    // Without traffic too: every test run with statistics on counted exactly its repetitions.
    const tr = overhead.testRun;
    expect(tr.withStatsNs).toHaveLength(5);
    expect(tr.withoutStatsNs).toHaveLength(5);
    expect(tr.runCnt).toEqual(tr.withStatsNs.map(() => [tr.repeat]));
    for (const v of tr.statsNsPerPacket) expect(v).toBeGreaterThan(0);
    const prov = Provenance.parse(JSON.parse(await readFile(join(r.runDir, 'provenance', 'host.json'), 'utf8')));
    expect(prov.tools['BPF run-time statistics']).toMatch(/^BPF_ENABLE_STATS/);
    expect(prov.warnings).toContain(overhead.note);
    console.log(`host: ${overhead.note}`);
    expect(await sysctl()).toBe(0);
    expect(await leftovers(MATRIX_PREFIX, join(REPO_ROOT, 'build', `target-${MATRIX_PREFIX}`, `stats-${MATRIX_PREFIX}`))).toEqual([]);
  });
});
