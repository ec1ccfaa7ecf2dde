/**
 * A real quick matrix on the host target (2 runs of 2 s): every approach this checkout has, real
 * veth pair, real iperf3. On this machine's kernel there are no kprobe events (probe: null with the
 * reason) and no freplace (dispatcher unsupported with libxdp's own message). Also a real abort after
 * a few runs and a resume that finishes without duplicates.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { summariseRtts } from '../../lab/results/rtt-summary.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { Provenance, type ApproachName, type CellRecord, type RttRecord, type RunRecord } from '../../lab/results/record.ts';
import { probeFeatures } from '../../lab/features.ts';
import { HostTarget } from '../../lab/target.ts';
import { requirements } from '../support/requirements.ts';

const PREFIX = 'xt7';
const need = requirements('root', 'bpf', 'clang', 'bpftool', 'iperf3', 'xdp-loader');
const approaches: ApproachName[] = ['none', 'fused', 'manual', 'dispatcher', 'patched'];

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Probe helpers this test started: their stdout is a file under one of this test's directories. */
async function ourProbeHelpers(): Promise<string> {
  const pids = (await execa('pgrep', ['-f', 'veth_probe-'], { reject: false })).stdout.split('\n').filter(Boolean);
  const ours = [];
  for (const pid of pids) {
    const out = await readlink(`/proc/${pid}/fd/1`).catch(() => '');
    if (dirs.some((d) => out.startsWith(d))) ours.push(pid);
  }
  return ours.join(' ');
}

async function leftovers(): Promise<string[]> {
  const ns = (await execa('ip', ['netns', 'list'], { reject: false })).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${PREFIX}m`));
  const pins = existsSync('/sys/fs/bpf/xdp-chain-lab')
    ? (await readdir('/sys/fs/bpf/xdp-chain-lab')).filter((n) => n.startsWith(`${PREFIX}m`))
    : [];
  const probes = await ourProbeHelpers();
  return [...ns, ...pins.map((p) => `pin ${p}`), ...(probes ? [`probe helper pids ${probes}`] : [])];
}

describe.skipIf(need.skip)('quick matrix on the host target', () => {
  it('runs every approach it supports and records the rest with the reason', { timeout: 900_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'xt7-host-'));
    dirs.push(out);
    const target = await HostTarget.create(join(out, 'work'));
    const features = await probeFeatures(target, { prefix: `${PREFIX}f` });

    const r = await runMatrix({ kernels: ['host'], approaches, runs: 2, durationS: 2, quick: true, runId: 'host-quick', outDir: out, prefix: PREFIX, micro: true, latency: true });
    const { records } = await loadRecords(r.rawFile); // validates every line against the schema
    const runs = records.filter((x): x is RunRecord => x.kind === 'run');
    const cells = records.filter((x): x is CellRecord => x.kind === 'cell');
    expect(cells).toHaveLength(approaches.length);

    const cell = (a: ApproachName): CellRecord => cells.find((c) => c.approach === a)!;
    for (const a of ['none', 'fused', 'manual'] as ApproachName[]) {
      expect(cell(a), `${a}: ${cell(a).reason ?? ''}`).toMatchObject({ status: 'done', runs: 2 });
      const mine = runs.filter((x) => x.approach === a);
      expect(mine.map((x) => x.iteration).sort()).toEqual([0, 1]);
      for (const x of mine) {
        expect(x.iperf.bitsPerSecond).toBeGreaterThan(0);
        expect(x.kernelRelease).toBe(target.kernelRelease);
        expect(x.accelerator).toBe('host');
        expect(x.xdpMode).toBe(a === 'none' ? 'none' : 'native');
        expect(Object.keys(x.offloads ?? {}).length).toBeGreaterThan(5);
        // No kprobes here: null with the reason, never zeros.
        expect(x.probe).toBeNull();
        if (a === 'none') expect(x.probeNullReason).toMatch(/veth_poll does not run/);
        else expect(x.probeNullReason).toMatch(features.features.kprobes.ok ? /./ : /kprobes unavailable/);
      }
    }
    // Interleaved: every approach's run 0 before any run 1.
    const order = runs.map((x) => x.iteration);
    expect(order).toEqual([...order].sort((a, b) => a - b));

    if (features.features.freplace.ok) {
      expect(cell('dispatcher').status).toBe('done');
    } else {
      expect(cell('dispatcher')).toMatchObject({ status: 'unsupported', runs: 0 });
      expect(cell('dispatcher').reason).toContain("Can't fall back to legacy load with 3 programs");
    }
    // The trio's bodies call no other function, so the chain takes the inline mode (the cheaper
    // one) even though this kernel would also load the thesis's subprog mode.
    expect(cell('patched'), cell('patched').reason ?? '').toMatchObject({ status: 'done', runs: 2 });
    expect(runs.filter((x) => x.approach === 'patched').map((x) => x.patchMode)).toEqual(['inline', 'inline']);
    expect(runs.find((x) => x.approach === 'patched')?.patchModeReason).toMatch(/no body calls other functions/);

    // The microbenchmarks ran on the same kernel, once, into the same raw file.
    const micro = records.filter((x) => x.kind === 'micro' && x.kernel === 'host');
    const measured = new Set(micro.filter((x) => x.kind === 'micro' && x.nsPerPacket.length > 0).map((x) => (x.kind === 'micro' ? x.variant : '')));
    for (const v of ['fused', 'manual']) expect(measured, [...measured].join(', ')).toContain(v);
    expect([...measured].some((v) => v.startsWith('patched'))).toBe(true);
    expect(records.filter((x) => x.kind === 'latency' && x.kernel === 'host').length).toBeGreaterThan(0);
    // The native baseline beside them: this host has no module support, so not measured, saying why.
    const native = micro.filter((x) => x.kind === 'micro' && x.variant === 'native');
    expect(native).toHaveLength(1);
    expect(native[0]).toMatchObject({ nsPerPacket: [], reason: expect.stringMatching(/^unsupported: .*(no module support|no module build headers)/) });
    // Round trips through every approach this kernel runs: every ping answered, 0 < p50 <= p99.
    const rtt = records.filter((x): x is RttRecord => x.kind === 'rtt');
    expect(rtt.map((x) => x.approach)).toEqual(approaches);
    for (const x of rtt) {
      if (cell(x.approach).status !== 'done') {
        expect(x.rttUs, x.approach).toEqual([]);
        expect(x.reason).toMatch(/^not measured: /);
        continue;
      }
      expect(x.rttUs.length, `${x.approach}: ${x.reason ?? ''}`).toBe(x.sent);
      const s = summariseRtts(x.approach, x.sent, x.rttUs);
      expect(s.p50Us).toBeGreaterThan(0);
      expect(s.p99Us).toBeGreaterThanOrEqual(s.p50Us!);
      console.log(`host ${x.approach}: round trip p50 ${s.p50Us!.toFixed(1)} µs, p99 ${s.p99Us!.toFixed(1)} µs`);
    }
    expect(existsSync(join(r.runDir, 'report', 'rtt.csv'))).toBe(true);
    // And the report was rendered from all of it.
    expect(r.report).toBe(join(r.runDir, 'report', 'index.html'));
    expect(existsSync(join(r.runDir, 'report', 'table-5.1.csv'))).toBe(true);
    expect(existsSync(join(r.runDir, 'report', 'micro.csv'))).toBe(true);
    // The bench's own tables for this kernel, as `npm run bench -- chain` prints them.
    expect(await readFile(join(r.runDir, 'micro', 'host.txt'), 'utf8')).toMatch(/^== host .*BPF_PROG_TEST_RUN/);

    const prov = Provenance.parse(JSON.parse(await readFile(join(r.runDir, 'provenance', 'host.json'), 'utf8')));
    expect(prov.kernelRelease).toBe(target.kernelRelease);
    expect(prov.tools.iperf3).toMatch(/iperf 3/);
    expect(prov.pinning?.iperfServerCpu).not.toBe(prov.pinning?.iperfClientCpu);
    if (!features.features.kprobes.ok) expect(prov.warnings.join('\n')).toMatch(/probes unavailable/);
    expect(await leftovers()).toEqual([]);

    // Print the numbers measured (not asserted): median receiver throughput per approach.
    for (const a of approaches) {
      const bps = runs.filter((x) => x.approach === a).map((x) => x.iperf.bitsPerSecond);
      if (bps.length) console.log(`host ${a}: ${bps.map((b) => (b / 1e9).toFixed(2)).join(', ')} Gbit/s`);
    }
  });

  it('resumes after an abort mid-cell and finishes without duplicates', { timeout: 900_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'xt7-host-'));
    dirs.push(out);
    const ac = new AbortController();
    let recorded = 0;
    const opts = { kernels: ['host'], approaches: ['none', 'fused'] as ApproachName[], runs: 2, durationS: 1, quick: true, runId: 'host-resume', outDir: out, prefix: PREFIX, renderReport: false, probeOverheadPairs: 0 };
    const first = await runMatrix({
      ...opts,
      signal: ac.signal,
      progress: (e) => {
        if (e.kind === 'phase-progress' && e.id === 'matrix' && /run \d/.test(e.note ?? '') && ++recorded === 3) ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'INTERRUPTED' });
    expect(await leftovers()).toEqual([]);
    const file = join(out, 'host-resume', 'raw.jsonl');
    expect((await loadRecords(file)).records.filter((x) => x.kind === 'run')).toHaveLength(3);

    const r = await runMatrix(opts);
    expect(r.appended).toEqual({ runs: 1, cells: 2 });
    const runs = (await loadRecords(file)).records.filter((x): x is RunRecord => x.kind === 'run');
    expect(runs.map((x) => `${x.approach}:${x.iteration}`).sort()).toEqual(['fused:0', 'fused:1', 'none:0', 'none:1']);
    expect(await leftovers()).toEqual([]);
  });
});
