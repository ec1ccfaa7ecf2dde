/**
 * A real quick matrix in a QEMU TCG guest (Debian 6.1, one run of 2 s per cell; several runs per
 * cell and resuming are the host matrix test's; 5.10 boots in the VM runner's test, and a second
 * guest here would cost CI minutes for the same code path), on the CLI's default clock ('auto':
 * emulated guests run under QEMU's instruction counter): provenance and every record say the clock is
 * 'icount' and the warning says what that means; the BPF run-time statistics give a per-packet
 * figure; the veth_poll kprobes work (probe data present: calls and packets counted); there is no
 * PMU (cycles null with the reason); and the libxdp dispatcher is supported. Whether two runs agree
 * is a benchmark's question (npm run bench -- deterministic), not a pass/fail one. Slow (boots a
 * kernel under emulation).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import type { ApproachName } from '../../lab/results/record.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { Provenance, type CellRecord, type RunRecord } from '../../lab/results/record.ts';
import { requirements } from '../support/requirements.ts';

const need = requirements('root', 'qemu', 'clang', 'debootstrap');
const KERNELS = ['6.1'];
const approaches: ApproachName[] = ['none', 'fused', 'manual', 'dispatcher', 'patched'];

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.skipIf(need.skip)('quick matrix in a TCG guest', () => {
  it(`runs on ${KERNELS.join(' and ')} with probe data, null cycles and the dispatcher`, { timeout: 3_600_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'xt7-guest-'));
    dirs.push(out);
    const r = await runMatrix({ kernels: KERNELS, approaches, runs: 1, durationS: 2, quick: true, runId: 'guest-quick', outDir: out, prefix: 'xt7', clock: 'auto', renderReport: false, statsOverheadPairs: 0 });
    const { records } = await loadRecords(r.rawFile);
    const runs = records.filter((x): x is RunRecord => x.kind === 'run');
    const cells = records.filter((x): x is CellRecord => x.kind === 'cell');

    for (const k of KERNELS) {
      const cell = (a: ApproachName): CellRecord | undefined => cells.find((c) => c.kernel === k && c.approach === a);
      for (const a of approaches) {
        expect(cell(a), `${k} ${a}: ${cell(a)?.reason ?? 'no cell record'}`).toMatchObject({ status: 'done', runs: 1 });
      }
      const prov = Provenance.parse(JSON.parse(await readFile(join(r.runDir, 'provenance', `${k}.json`), 'utf8')));
      expect(prov.accelerator).toBe('tcg');
      expect(prov.clock).toBe('icount');
      expect(prov.warnings.join('\n')).toMatch(/instruction-timed, reproducible, not wall-clock/);
      // The probes' own cost: measurable only where there are kprobes, so only here (the statistics' is the host's tests').
      const overhead = JSON.parse(await readFile(join(r.runDir, 'probe-overhead', `${k}.json`), 'utf8')) as { approach?: string; withProbesBps?: number[]; withoutProbesBps?: number[]; note: string };
      expect(overhead, overhead.note).toMatchObject({ approach: 'fused', withProbesBps: [expect.any(Number)], withoutProbesBps: [expect.any(Number)] });
      expect(prov.warnings).toContain(overhead.note);
      expect(prov.kernelConfigSha256).toMatch(/^[0-9a-f]{64}$/);
      // Under the instruction counter the guest has one vCPU: nothing to isolate.
      expect(prov.isolcpus).toBeNull();
      for (const x of runs.filter((y) => y.kernel === k)) {
        expect(x.accelerator).toBe('tcg');
        expect(x.clock).toBe('icount');
        if (x.approach === 'none') {
          expect(x.probe).toBeNull();
          expect(x.probeNullReason).toMatch(/veth_poll does not run/);
          continue;
        }
        expect(x.xdpMode).toBe('native');
        expect(x.bpfStats, `${k} ${x.approach}: ${x.bpfStatsNullReason ?? ''}`).toBeTruthy();
        expect(x.bpfStats!.nsPerPacket).toBeGreaterThan(0);
        expect(x.probe, `${k} ${x.approach}: ${x.probeNullReason ?? ''}`).not.toBeNull();
        expect(x.probe!.calls).toBeGreaterThan(0);
        expect(x.probe!.packets).toBeGreaterThan(0);
        expect(x.probe!.ns).toBeGreaterThan(0);
        // The calls by poll size are the same calls, split: they add up to the totals exactly.
        const sizes = x.probe!.pollSizes ?? [];
        expect(sizes.length, `${k} ${x.approach}: poll sizes`).toBeGreaterThan(0);
        expect(sizes.reduce((s, z) => s + z.calls, 0)).toBe(x.probe!.calls);
        expect(sizes.reduce((s, z) => s + z.calls * z.packets, 0)).toBe(x.probe!.packets);
        expect(sizes.reduce((s, z) => s + z.ns, 0)).toBe(x.probe!.ns);
        // TCG has no PMU: null with the reason, never zero.
        expect(x.probe!.cycles).toBeNull();
        expect(x.probe!.cyclesNullReason).toMatch(/perf_event_open|PMU/);
      }
    }
    // Only the QEMU processes this test started (their -name carries this process's pid).
    const qemu = await execa('pgrep', ['-af', `qemu-system.*-name xcl-(vm|kvm-probe)-${process.pid}-`], { reject: false });
    expect(qemu.stdout.trim()).toBe('');

    for (const k of KERNELS) {
      for (const a of approaches) {
        const mine = runs.filter((x) => x.kernel === k && x.approach === a);
        if (mine.length === 0) continue;
        const gb = mine.map((x) => (x.iperf.bitsPerSecond / 1e9).toFixed(3)).join(', ');
        const perCall = mine.map((x) => (x.probe ? (x.probe.ns / Math.max(1, x.probe.calls)).toFixed(0) : '-')).join(', ');
        const perPacket = mine.map((x) => (x.bpfStats ? x.bpfStats.nsPerPacket.toFixed(1) : '-')).join(', ');
        console.log(`${k} ${a}: ${gb} Gbit/s; ns per veth_poll call ${perCall}; instruction-timed ns per packet ${perPacket}`);
      }
    }
    for (const w of r.warnings) console.log(`note: ${w}`);
  });
});
