/**
 * The matrix's round trips on a session that boots nothing (its pings are the test's): one record
 * per approach with every reply kept, the hook of the approach, an approach the kernel cannot run
 * recorded as not measured with the reason, lost replies recorded as failed and warned about, all
 * of a kernel's records or none (a kill part way, then a resume), and the report's tables, CSV and
 * figures of both hooks from them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quantileSorted } from 'simple-statistics';
import { afterAll, describe, expect, it } from 'vitest';
import type { Approach, Description } from '../../lab/approaches/approach.ts';
import type { OpenKernel } from '../../lab/bench/kernel-session.ts';
import { rttSettings } from '../../lab/bench/rtt-stage.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { loadRecords } from '../../lab/results/jsonl.ts';
import type { ApproachName, RttRecord } from '../../lab/results/record.ts';
import { HostTarget } from '../../lab/target.ts';
import type { PingReplies } from '../../lab/testenv/ping.ts';
import { fakeKernelSession } from './fake-session.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const scratch = async (tag: string): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), `xt7-rtt-${tag}-`));
  dirs.push(d);
  return d;
};

/** Round trips that differ per approach: the attached approach's index in the list, plus the reply's jitter. */
const BASE_US: Partial<Record<ApproachName, number>> = { none: 20, fused: 23, manual: 26, 'tc-none': 30, 'tc-manual': 37 };

interface FakeOptions {
  /** Approaches whose support check says no. */
  unsupported?: ApproachName[];
  /** Replies lost under this approach. */
  lossy?: ApproachName;
  /** Called at every ping, with the approach attached. */
  onPing?: (approach: ApproachName) => void;
}

function fakeOpen(o: FakeOptions = {}): OpenKernel {
  return async (kernel) => {
    const target = await HostTarget.create(await scratch('target'));
    let attached: ApproachName | null = null;
    const approach = (name: ApproachName): Approach => ({
      name,
      summary: `fake ${name}`,
      supports: async () => (o.unsupported?.includes(name) ? { supported: false, reason: `${name} needs Linux 6.6 (this fake kernel is older)` } : { supported: true }),
      load: async () => {},
      attach: async () => {
        attached = name;
      },
      replace: async () => {},
      detach: async () => {
        attached = null;
      },
      describe: async (): Promise<Description> => ({ approach: name, attached: attached === name, xdpMode: name === 'none' ? 'none' : 'native', programs: [], maps: [], hop: 'none', notes: [] }),
    });
    const ping = async (count: number): Promise<PingReplies> => {
      const a = attached ?? 'none';
      o.onPing?.(a);
      const received = a === o.lossy ? count - 1 : count;
      const rttUs = Array.from({ length: received }, (_, i) => (BASE_US[a] ?? 50) + (i % 10) / 10);
      return { transmitted: count, received, rttUs };
    };
    return fakeKernelSession(kernel, target, approach, { ifname: 'xt7rtt0', netns: 'xt7rtt' }, ping);
  };
}

const base = { kernels: ['host'], runs: 1, durationS: 1, quick: true, probeOverheadPairs: 0, statsOverheadPairs: 0, latency: true };
const rttOf = async (rawFile: string): Promise<RttRecord[]> => (await loadRecords(rawFile)).records.filter((r): r is RttRecord => r.kind === 'rtt');

describe('round trips in the matrix', () => {
  it('records every reply per approach with its hook, an unsupported approach with the reason, and the report shows both hooks', async () => {
    const out = await scratch('out');
    const approaches: ApproachName[] = ['none', 'fused', 'manual', 'tc-none', 'tc-manual', 'tcx'];
    const r = await runMatrix({ ...base, approaches, runId: 'rtt-1', outDir: out, openKernel: fakeOpen({ unsupported: ['tcx'] }), renderReport: true });
    const recs = await rttOf(r.rawFile);
    expect(recs.map((x) => x.approach)).toEqual(approaches);
    const count = rttSettings(true).count;
    for (const x of recs.filter((y) => y.approach !== 'tcx')) {
      expect(x).toMatchObject({ kernel: 'host', sent: count, accelerator: 'host', clock: 'wall', hook: x.approach.startsWith('tc') ? 'tc' : 'xdp' });
      expect(x.rttUs).toHaveLength(count);
      expect(x.reason).toBeUndefined();
    }
    const tcx = recs.find((x) => x.approach === 'tcx')!;
    expect(tcx).toMatchObject({ hook: 'tc', sent: 0, rttUs: [] });
    expect(tcx.reason).toMatch(/^not measured: .*needs Linux 6\.6/);

    // The report: XDP rows against none, TC rows against tc-none, percentiles of the recorded replies.
    const csv = readFileSync(join(r.runDir, 'report', 'rtt.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('kernel,approach,sent,received,interval_s,min_us,p50_us,p99_us,p999_us,max_us,p50_minus_baseline_us,reason,flag');
    const row = (lines: string[], a: string) => lines.find((l) => l.startsWith(`host,${a},`))!.split(',');
    const fused = recs.find((x) => x.approach === 'fused')!;
    const sorted = [...fused.rttUs].sort((a, b) => a - b);
    const f = row(csv, 'fused');
    expect(Number(f[6])).toBeCloseTo(quantileSorted(sorted, 0.5), 9);
    expect(Number(f[7])).toBeCloseTo(quantileSorted(sorted, 0.99), 9);
    expect(f[8]).toBe(''); // 200 replies: no p99.9
    expect(Number(f[10])).toBeCloseTo(quantileSorted(sorted, 0.5) - quantileSorted([...recs[0]!.rttUs].sort((a, b) => a - b), 0.5), 9);
    expect(csv.some((l) => l.includes(',tc-'))).toBe(false);

    const tcCsv = readFileSync(join(r.runDir, 'report', 'tc-rtt.csv'), 'utf8').trim().split('\n');
    expect(Number(row(tcCsv, 'tc-manual')[10])).toBeCloseTo(7, 9);
    expect(row(tcCsv, 'tcx')[3]).toBe('');
    expect(tcCsv.find((l) => l.startsWith('host,tcx,'))).toMatch(/not measured/);

    expect(existsSync(join(r.runDir, 'report', 'figures', 'rtt-host.png'))).toBe(true);
    expect(existsSync(join(r.runDir, 'report', 'figures', 'tc-rtt-host.png'))).toBe(true);
    const html = readFileSync(join(r.runDir, 'report', 'index.html'), 'utf8');
    expect(html).toContain('id="rtt-host"');
    expect(html).toContain('id="tc-rtt-host"');
    const summary = JSON.parse(readFileSync(join(r.runDir, 'report', 'summary.json'), 'utf8')) as { rtt: { approach: string; p50Us?: number; reason: string | null }[] };
    expect(summary.rtt.map((x) => x.approach).sort()).toEqual([...approaches].sort());
    expect(summary.rtt.find((x) => x.approach === 'fused')?.p50Us).toBeCloseTo(quantileSorted(sorted, 0.5), 9);
    expect(readFileSync(join(r.runDir, 'report', 'tc.md'), 'utf8')).toMatch(/TC round trips[\s\S]*\(bpf_mprog\): not measured: .*needs Linux 6\.6/);
  });

  it('records lost replies as a failure with the reason, warns, and measures the other approaches', async () => {
    const out = await scratch('out');
    const r = await runMatrix({ ...base, approaches: ['none', 'fused', 'manual'], runId: 'rtt-2', outDir: out, openKernel: fakeOpen({ lossy: 'fused' }), renderReport: false });
    const recs = await rttOf(r.rawFile);
    const count = rttSettings(true).count;
    expect(recs.find((x) => x.approach === 'fused')).toMatchObject({ rttUs: [], reason: expect.stringMatching(new RegExp(`^failed: .*${count - 1} of ${count} pings answered`)) });
    expect(recs.find((x) => x.approach === 'manual')!.rttUs).toHaveLength(count);
    expect(r.warnings.join('\n')).toMatch(/round trips through fused failed/);
  });

  it('keeps all of a kernel\'s round trips or none: stopped part way it records none, and the resume measures them once', async () => {
    const out = await scratch('out');
    const ac = new AbortController();
    const approaches: ApproachName[] = ['none', 'fused', 'manual'];
    const opts = { ...base, approaches, runId: 'rtt-3', outDir: out, renderReport: false };
    await expect(runMatrix({ ...opts, signal: ac.signal, openKernel: fakeOpen({ onPing: (a) => a === 'fused' && ac.abort() }) })).rejects.toMatchObject({ code: 'INTERRUPTED' });
    const raw = join(out, 'rtt-3', 'raw.jsonl');
    expect(await rttOf(raw)).toEqual([]);
    const cellsBefore = (await loadRecords(raw)).records.filter((x) => x.kind === 'cell').length;
    expect(cellsBefore).toBe(3);

    const pinged: ApproachName[] = [];
    await runMatrix({ ...opts, openKernel: fakeOpen({ onPing: (a) => pinged.push(a) }) });
    expect(pinged).toEqual(approaches);
    expect((await rttOf(raw)).map((x) => x.approach)).toEqual(approaches);
    // Everything recorded: a third invocation pings nothing.
    pinged.length = 0;
    await runMatrix({ ...opts, openKernel: fakeOpen({ onPing: (a) => pinged.push(a) }) });
    expect(pinged).toEqual([]);
    expect(await rttOf(raw)).toHaveLength(3);
  });
});
