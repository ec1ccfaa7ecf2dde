/**
 * A real quick matrix on the host with --hook tc: every TC approach this checkout registers on
 * clsact ingress of the real veth pair, real iperf3. Its records carry the hook, no XDP mode, the
 * probe null with the reason (veth_poll does not run with a TC program alone), and BPF run-time
 * statistics of the sched_cls programs with run counts > 0, per skb, summed over the three filters
 * of tc-filters; tc-none is the baseline with neither. Nothing is left behind.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { approachesOfHook, type CellRecord, type RttRecord, type RunRecord } from '../../lab/results/record.ts';
import { summariseRtts } from '../../lab/results/rtt-summary.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { requirements } from '../support/requirements.ts';
import { RUN_TAG } from '../support/names.ts';

const PREFIX = `tb${RUN_TAG}`;
const need = requirements('root', 'bpf', 'clang', 'bpftool', 'iperf3', 'bpf-stats');

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function leftovers(): Promise<string[]> {
  const ns = (await execa('ip', ['netns', 'list'], { reject: false })).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(PREFIX));
  const pins = existsSync('/sys/fs/bpf/xdp-chain-lab') ? (await readdir('/sys/fs/bpf/xdp-chain-lab')).filter((n) => n.startsWith(PREFIX)) : [];
  return [...ns, ...pins.map((p) => `pin ${p}`)];
}

describe.skipIf(need.skip)('quick matrix on the host, TC hook', () => {
  it('measures every TC approach with BPF statistics per skb and the probe null with its reason', { timeout: 600_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), `${PREFIX}-tc-`));
    dirs.push(out);
    const r = await runMatrix({ kernels: ['host'], hook: 'tc', runs: 2, durationS: 2, quick: true, runId: 'host-tc', outDir: out, prefix: PREFIX, renderReport: false, probeOverheadPairs: 0, statsOverheadPairs: 0, latency: true });
    const { records } = await loadRecords(r.rawFile);
    const runs = records.filter((x): x is RunRecord => x.kind === 'run');
    const cells = records.filter((x): x is CellRecord => x.kind === 'cell');
    const tc = approachesOfHook('tc');
    expect(cells.map((c) => c.approach).sort()).toEqual([...tc].sort());
    // Round trips through every TC approach (tcx too: this kernel has it): 0 < p50 <= p99.
    for (const x of records.filter((y): y is RttRecord => y.kind === 'rtt')) {
      expect(x.hook).toBe('tc');
      expect(x.rttUs.length, `${x.approach}: ${x.reason ?? ''}`).toBe(x.sent);
      const s = summariseRtts(x.approach, x.sent, x.rttUs);
      expect(s.p50Us).toBeGreaterThan(0);
      expect(s.p99Us).toBeGreaterThanOrEqual(s.p50Us!);
      console.log(`host ${x.approach}: round trip p50 ${s.p50Us!.toFixed(1)} µs, p99 ${s.p99Us!.toFixed(1)} µs`);
    }
    expect(records.filter((y) => y.kind === 'rtt').map((y) => (y.kind === 'rtt' ? y.approach : '')).sort()).toEqual([...tc].sort());

    for (const a of ['tc-none', 'tc-fused', 'tc-manual', 'tc-filters'] as const) {
      const c = cells.find((x) => x.approach === a)!;
      expect(c, `${a}: ${c.reason ?? ''}`).toMatchObject({ status: 'done', runs: 2 });
      const mine = runs.filter((x) => x.approach === a);
      expect(mine).toHaveLength(2);
      for (const x of mine) {
        expect(x.hook).toBe('tc');
        expect(x.xdpMode).toBe('none');
        expect(x.iperf.bitsPerSecond).toBeGreaterThan(0);
        expect(x.probe).toBeNull();
        expect(x.probeNullReason).toMatch(/runs on TC ingress: .*veth_poll/);
        // The offloads the per-skb note refers to are recorded with the run.
        expect(Object.keys(x.offloads ?? {}).length).toBeGreaterThan(5);
        if (a === 'tc-none') {
          expect(x.bpfStats).toBeNull();
          expect(x.bpfStatsNullReason).toMatch(/tc-none attaches no program/);
          continue;
        }
        expect(x.bpfStats, x.bpfStatsNullReason).not.toBeNull();
        const s = x.bpfStats!;
        expect(s.unit).toBe('skb');
        expect(s.runCnt).toBeGreaterThan(0);
        expect(s.nsPerPacket).toBeGreaterThan(0);
        expect(s.accountingNote).toMatch(/skb/);
        if (a === 'tc-fused') {
          expect(s.programName).toBe('tc_fused');
          expect(s.summedPrograms).toBe(1);
        }
        if (a === 'tc-manual') {
          // Tail-called stages run inside the entry's accounting: their own counters stay still.
          expect(s.summedPrograms).toBe(1);
          expect(s.programs.slice(1).every((p) => p.runCnt === 0)).toBe(true);
        }
        if (a === 'tc-filters') {
          // Each filter is run by cls_bpf itself, so each has its own count (a later one sees no more skbs than the first).
          expect(s.summedPrograms).toBe(3);
          expect(s.programs).toHaveLength(3);
          for (const p of s.programs) {
            expect(p.runCnt).toBeGreaterThan(0);
            expect(p.runCnt).toBeLessThanOrEqual(s.runCnt);
          }
          expect(s.runTimeNs).toBeCloseTo(s.programs.reduce((t, p) => t + p.runTimeNs, 0), 6);
        }
      }
    }
    expect(await leftovers()).toEqual([]);
    for (const a of tc) {
      const xs = runs.filter((x) => x.approach === a);
      if (xs.length) console.log(`host ${a}: ${xs.map((x) => `${(x.iperf.bitsPerSecond / 1e9).toFixed(2)} Gbit/s${x.bpfStats ? `, ${x.bpfStats.nsPerPacket.toFixed(0)} ns/skb over ${x.bpfStats.runCnt} skbs` : ''}`).join('; ')}`);
    }
  });
});
