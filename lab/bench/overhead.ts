/**
 * The instruments' own cost on one kernel: paired iperf3 runs of one XDP approach with and without
 * the veth_poll probes, and with and without the BPF run-time statistics (plus the statistics'
 * cost without traffic, by BPF_PROG_TEST_RUN of one packet). Each result goes into
 * <kind>-overhead/<kernel>.json and the kernel's provenance warnings, once per run id.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from 'simple-statistics';
import type { Approach, ApproachContext } from '../approaches/approach.ts';
import { errorMessage, isLabError, LabError } from '../errors.ts';
import { buildCorpus } from '../packets/corpus.ts';
import { progRun } from '../bpftool/index.ts';
import type { Target } from '../target.ts';
import { hookOfApproach } from '../results/record.ts';
import { readStats, statsDelta, statsPrograms, statsUnavailableReason, type BpfStatsSession, type StatsMode, type StatsProgram, type StatsSnapshot } from './bpf-stats.ts';
import type { MatrixRun } from './context.ts';
import type { KernelSession } from './kernel-session.ts';
import { measure, type MeasureWith } from './measure.ts';
import { readProvenance, writeProvenance } from './provenance.ts';
import type { Runnable } from './support.ts';

const gbit = (bps: number): string => (bps / 1e9).toFixed(3);

/** The approach the pairs run: fused where it ran, else the first XDP approach. */
const pairApproach = (runnable: readonly Runnable[]): Runnable | undefined =>
  runnable.find((r) => r.name === 'fused') ?? runnable.find((r) => r.name !== 'none' && hookOfApproach(r.name) === 'xdp');

/** Records the note: log line, summary warning, <dir>/<kernel>.json, and the provenance's warnings. */
async function recordOverhead(run: MatrixRun, dir: string, file: string, provFile: string, detail: Record<string, unknown>, note: string): Promise<void> {
  detail.note = note;
  run.emit(note);
  run.warnings.push(note);
  await mkdir(join(run.settings.runDir, dir), { recursive: true });
  await writeFile(file, `${JSON.stringify(detail, null, 2)}\n`);
  const prov = await readProvenance(provFile);
  if (prov) await writeProvenance(provFile, { ...prov, warnings: [...prov.warnings, note] });
}

/** Paired runs with and without the probes attached, alternating which goes first. */
export async function measureProbeOverhead(run: MatrixRun, s: KernelSession, runnable: readonly Runnable[], w: MeasureWith, provFile: string): Promise<void> {
  const { probeOverheadPairs: pairs, durationS } = run.settings;
  if (pairs <= 0) return;
  const file = join(run.settings.runDir, 'probe-overhead', `${s.kernel}.json`);
  if (existsSync(file)) return;
  const { probe, probeNullReason } = w;
  const chosen = pairApproach(runnable);
  let note: string;
  const detail: Record<string, unknown> = { kernel: s.kernel, pairs, durationS };
  if (!probe || probeNullReason) {
    note = `probe overhead not measured on ${s.kernel}: ${probeNullReason ?? 'no probe helper'}`;
  } else if (!chosen) {
    note = `probe overhead not measured on ${s.kernel}: no XDP approach ran`;
  } else {
    const withP: number[] = [];
    const without: number[] = [];
    try {
      for (let i = 0; i < pairs; i++) {
        run.checkAbort();
        const order = i % 2 === 0 ? [true, false] : [false, true];
        for (const probed of order) {
          run.plan.note(`${s.kernel} probe overhead ${i + 1}/${pairs}`);
          const m = await measure(run, s, chosen.impl, chosen.ctx, durationS, 'probe overhead', { probe: probed ? probe : null, probeNullReason: null, stats: null, statsNullReason: null });
          (probed ? withP : without).push(m.iperf.bitsPerSecond);
        }
      }
      const a = median(withP);
      const b = median(without);
      const pct = ((a - b) / b) * 100;
      Object.assign(detail, { approach: chosen.name, withProbesBps: withP, withoutProbesBps: without, medianDeltaPct: pct });
      note = `probe overhead on ${s.kernel} (${chosen.name}, ${pairs} paired runs of ${durationS} s): median ${gbit(a)} Gbit/s with probes vs ${gbit(b)} without (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%)`;
    } catch (e) {
      if (isLabError(e, 'INTERRUPTED')) throw e;
      note = `probe overhead on ${s.kernel} not measured: ${errorMessage(e)}`;
    }
  }
  await recordOverhead(run, 'probe-overhead', file, provFile, detail, note);
}

/** Loads `impl`, test-runs its entry program on `packetCase` with and without statistics, detaches. */
async function statsTestRun(run: MatrixRun, s: KernelSession, impl: Approach, ctx: ApproachContext, stats: BpfStatsSession, pairs: number, packetCase: string): Promise<TestRunOverhead> {
  const c = buildCorpus().cases.find((x) => x.name === packetCase);
  if (!c) throw new LabError('BENCH', `packet corpus has no case "${packetCase}"`, { remedy: 'lab/packets/corpus.ts changed: pick another case that passes the trio.' });
  const dir = await mkdtemp(join(tmpdir(), 'xcl-stats-'));
  const packet = `${s.target.workDir}/stats-overhead-${c.name}.bin`;
  try {
    await writeFile(join(dir, 'packet.bin'), c.frame);
    await s.target.putFile(join(dir, 'packet.bin'), packet);
    await impl.load(ctx);
    await impl.attach(ctx);
    const programs = await statsPrograms(s.target, ctx.ifname, ctx.netns, (await impl.describe(ctx)).programs);
    return await testRunOverhead(stats, s.target, programs, packet, {
      pairs,
      repeat: run.settings.quick ? 50_000 : 200_000,
      mode: run.settings.statsMode,
      cpu: s.testbed.clientCpu,
    });
  } finally {
    await impl.detach(ctx).catch((e: unknown) => run.emit(`${s.kernel}: ${impl.name}: detach failed: ${errorMessage(e)}`, 'warn'));
    await rm(dir, { recursive: true, force: true });
    await s.target.run(['rm', '-f', packet], { allowFailure: true }).catch(() => undefined);
  }
}

/**
 * The run-time statistics' own cost, measured like the probes': paired runs with and without
 * statistics (no probes in either), alternating which goes first, with the ns per packet the
 * statistics gave in the runs that had them; then the same cost without traffic, test-running
 * the packet corpus case `packetCase`.
 */
export async function measureStatsOverhead(run: MatrixRun, s: KernelSession, runnable: readonly Runnable[], w: MeasureWith, provFile: string, packetCase: string): Promise<void> {
  const { statsOverheadPairs: pairs, durationS } = run.settings;
  if (pairs <= 0) return;
  const file = join(run.settings.runDir, 'stats-overhead', `${s.kernel}.json`);
  if (existsSync(file)) return;
  const { stats, statsNullReason } = w;
  const chosen = pairApproach(runnable);
  let note: string;
  const detail: Record<string, unknown> = { kernel: s.kernel, pairs, durationS };
  if (!stats || statsNullReason) {
    note = `BPF statistics overhead not measured on ${s.kernel}: ${statsNullReason ?? 'no bpf_stats helper'}`;
  } else if (!chosen) {
    note = `BPF statistics overhead not measured on ${s.kernel}: no XDP approach ran`;
  } else {
    const withS: number[] = [];
    const without: number[] = [];
    const nsPerPacket: number[] = [];
    try {
      for (let i = 0; i < pairs; i++) {
        run.checkAbort();
        const order = i % 2 === 0 ? [true, false] : [false, true];
        for (const on of order) {
          run.plan.note(`${s.kernel} BPF statistics overhead ${i + 1}/${pairs}`);
          const m = await measure(run, s, chosen.impl, chosen.ctx, durationS, 'statistics overhead', {
            probe: null,
            probeNullReason: null,
            stats: on ? stats : null,
            statsNullReason: on ? null : 'statistics off: the other half of an overhead pair',
          });
          if (on && m.bpfStats === null) throw new LabError('BENCH', `no statistics in a run that had them on: ${m.bpfStatsNullReason ?? 'no reason'}`);
          if (m.bpfStats) nsPerPacket.push(m.bpfStats.nsPerPacket);
          (on ? withS : without).push(m.iperf.bitsPerSecond);
        }
      }
      const a = median(withS);
      const b = median(without);
      const pct = ((a - b) / b) * 100;
      Object.assign(detail, { approach: chosen.name, withStatsBps: withS, withoutStatsBps: without, medianDeltaPct: pct, nsPerPacket });
      note = `BPF statistics overhead on ${s.kernel} (${chosen.name}, ${pairs} paired runs of ${durationS} s): median ${gbit(a)} Gbit/s with statistics vs ${gbit(b)} without (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%); ${median(nsPerPacket).toFixed(1)} ns per packet by the statistics`;
    } catch (e) {
      if (isLabError(e, 'INTERRUPTED')) throw e;
      note = `BPF statistics overhead on ${s.kernel} not measured: ${errorMessage(e)}`;
    }
    // The same cost without traffic, per packet and far less noisy than throughput.
    try {
      run.checkAbort();
      const pairsTr = Math.max(5, pairs);
      const tr = await statsTestRun(run, s, chosen.impl, chosen.ctx, stats, pairsTr, packetCase);
      const on = median(tr.withStatsNs);
      const off = median(tr.withoutStatsNs);
      detail.testRun = { approach: chosen.name, packet: packetCase, pairs: pairsTr, ...tr, medianOverheadNs: on - off };
      note += `; BPF_PROG_TEST_RUN of ${chosen.name} on ${packetCase} (${pairsTr} pairs of ${tr.repeat} repetitions): ${on.toFixed(0)} ns per packet with statistics vs ${off.toFixed(0)} without (${on - off >= 0 ? '+' : ''}${(on - off).toFixed(0)} ns), ${median(tr.statsNsPerPacket).toFixed(1)} ns by the statistics`;
    } catch (e) {
      if (isLabError(e, 'INTERRUPTED')) throw e;
      note += `; test-run overhead not measured: ${errorMessage(e)}`;
    }
  }
  await recordOverhead(run, 'stats-overhead', file, provFile, detail, note);
}

/** The statistics' cost per packet measured without traffic: BPF_PROG_TEST_RUN with and without them. */
export interface TestRunOverhead {
  repeat: number;
  /** ns per packet reported by BPF_PROG_TEST_RUN, one value per pair side. */
  withStatsNs: number[];
  withoutStatsNs: number[];
  /** run_time_ns / run_cnt of the entry over each run with statistics. */
  statsNsPerPacket: number[];
  /** Δrun_cnt of each program over each run with statistics (entry first): repeat, then zeros. */
  runCnt: number[][];
}

export interface TestRunOverheadOptions {
  pairs: number;
  repeat: number;
  mode?: StatsMode;
  /** CPU bpftool is pinned to (BPF_PROG_TEST_RUN runs on the caller's CPU). */
  cpu?: number;
}

/**
 * Paired BPF_PROG_TEST_RUNs of the entry program on one packet (`packet`, a file on the target),
 * with statistics on and off, alternating which goes first. The test run goes through the same
 * accounting as a real XDP run, so the difference is the statistics' own cost per packet.
 */
export async function testRunOverhead(
  session: BpfStatsSession,
  target: Target,
  programs: readonly StatsProgram[],
  packet: string,
  o: TestRunOverheadOptions,
): Promise<TestRunOverhead> {
  const entry = programs[0];
  if (!entry) throw new LabError('BENCH', `${target.name}: no program to test-run for the statistics' overhead`);
  const ids = programs.map((p) => p.id);
  const out: TestRunOverhead = { repeat: o.repeat, withStatsNs: [], withoutStatsNs: [], statsNsPerPacket: [], runCnt: [] };
  const run = () => progRun(target, { id: entry.id }, { dataIn: packet, repeat: o.repeat, ...(o.cpu !== undefined ? { cpu: o.cpu } : {}) });
  for (let i = 0; i < o.pairs; i++) {
    for (const on of i % 2 === 0 ? [true, false] : [false, true]) {
      if (!on) {
        out.withoutStatsNs.push((await run()).durationNs);
        continue;
      }
      const start = await session.start(120, o.mode ?? 'auto');
      if (!start.ok) throw new LabError('BENCH', statsUnavailableReason(target, start));
      let before: StatsSnapshot;
      let after: StatsSnapshot;
      let r: Awaited<ReturnType<typeof run>>;
      try {
        before = await readStats(target, ids);
        r = await run();
        after = await readStats(target, ids);
      } catch (e) {
        await session.kill();
        throw e;
      }
      await session.stop();
      const d = statsDelta(start.mode, programs, before, after);
      if (!('stats' in d)) throw new LabError('BENCH', `${target.name}: test run of ${entry.name || entry.id}: ${d.reason}`);
      out.withStatsNs.push(r.durationNs);
      out.statsNsPerPacket.push(d.stats.nsPerPacket);
      out.runCnt.push(d.stats.programs.map((p) => p.runCnt));
    }
  }
  return out;
}
