/** The reproducibility table's arithmetic (the benchmark itself boots guests and only reports). */
import { describe, expect, it } from 'vitest';
import { formatRepro, reproRows } from '../../lab/commands/bench-deterministic.ts';
import type { RunRecord } from '../../lab/results/record.ts';

function run(kernel: string, approach: RunRecord['approach'], statsNs: number | null, probe: { ns: number; packets: number; pollSizes?: { packets: number; calls: number; ns: number }[] } | null): RunRecord {
  return {
    kind: 'run', schema: 1, runId: 'r', kernel, kernelRelease: 'x', accelerator: 'tcg', clock: 'icount', approach, iteration: 0,
    startedAt: '', endedAt: '', iperf: { bitsPerSecond: 1, bytes: 1, seconds: 1, retransmits: 0 },
    probe: probe ? { calls: 1, packets: probe.packets, ns: probe.ns, cycles: null, ...(probe.pollSizes ? { pollSizes: probe.pollSizes } : {}) } : null,
    bpfStats: statsNs === null ? null : { mode: 'fd', entryProgramId: 1, runCnt: 10, runTimeNs: statsNs * 10, nsPerPacket: statsNs, programs: [] },
    xdpMode: 'native',
  } as RunRecord;
}

describe('reproRows', () => {
  it('medians per repeat and their relative difference, per metric; a metric absent in both is left out', () => {
    const first = [run('6.1', 'fused', 100, { ns: 2000, packets: 10 }), run('6.1', 'fused', 110, { ns: 2200, packets: 10 })];
    const second = [run('6.1', 'fused', 102, null), run('6.1', 'fused', 108, null)];
    const rows = reproRows(first, second);
    expect(rows).toEqual([
      { kernel: '6.1', approach: 'fused', metric: 'bpf-stats', first: 105, second: 105, relDiff: 0 },
      { kernel: '6.1', approach: 'fused', metric: 'probe', first: 210, second: null, relDiff: null },
    ]);
    expect(reproRows([run('5.10', 'manual', 200, null)], [run('5.10', 'manual', 204, null)])[0]!.relDiff).toBeCloseTo(0.02, 12);
    expect(reproRows([run('5.10', 'none', null, null)], [run('5.10', 'none', null, null)])).toEqual([]);
    // The slope over poll sizes: 100 ns a packet in both repeats, though their batching (and so ns / packets) differ.
    const polls = (a: number, b: number) => [{ packets: 1, calls: a, ns: a * 1100 }, { packets: 4, calls: b, ns: b * 1400 }];
    const slope = reproRows([run('6.1', 'manual', null, { ns: 0, packets: 0, pollSizes: polls(90, 10) })], [run('6.1', 'manual', null, { ns: 0, packets: 0, pollSizes: polls(10, 90) })]);
    expect(slope.find((r) => r.metric === 'probe-slope')).toMatchObject({ first: expect.closeTo(100, 9), second: expect.closeTo(100, 9), relDiff: expect.closeTo(0, 9) });
    expect(formatRepro(rows)[1]).toMatch(/6\.1\s+fused\s+bpf-stats\s+105\.0\s+105\.0\s+0\.00 %/);
  });
});
