/**
 * The native baseline in the report: each BPF variant's median over native's on the same kernel,
 * with a bootstrap CI around it (the trio per approach, whatever programs it runs); a kernel whose
 * native was not measured says why; insmod next to the object loads; interpreter rows never enter
 * the ratios.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeRows } from '../../lab/report/native.ts';
import { latencyGroups } from '../../lab/report/micro.ts';
import { renderReport } from '../../lab/report/index.ts';
import { RawRecord, SCHEMA_VERSION, type LatencyRecord, type MicroRecord } from '../../lab/results/record.ts';
import type { KernelInfo } from '../../lab/report/kernels.ts';
import { cleanScratch, scratchDir } from './helpers.ts';

afterAll(cleanScratch);

const base = { schema: SCHEMA_VERSION, runId: 'nat' } as const;
const accelerator = (kernel: string) => (kernel === 'host' ? 'host' : 'tcg');
function micro(kernel: string, variant: string, ns: number[], extra: Partial<MicroRecord> = {}): MicroRecord {
  return RawRecord.parse({ kind: 'micro', ...base, accelerator: accelerator(kernel), kernel, kernelRelease: `${kernel}.0-x`, variant, chainLength: 1, hop: 'none', repeat: 1000, nsPerPacket: ns, ...extra }) as MicroRecord;
}
function load(kernel: string, approach: LatencyRecord['approach'], ms: number[]): LatencyRecord {
  return RawRecord.parse({ kind: 'latency', ...base, accelerator: accelerator(kernel), kernel, approach, operation: 'object-load', ms }) as LatencyRecord;
}
const kernels = (labels: string[]): KernelInfo[] => labels.map((label) => ({ label, tcg: true }) as KernelInfo);

const records = [
  micro('6.1', 'native', [100, 98, 102], { insertMs: [230, 240] }),
  micro('6.1', 'fused', [590, 600, 610]),
  // The trio through three programs, as the bench records it.
  micro('6.1', 'manual', [700, 720, 710], { chainLength: 3, hop: 'tail-call-constant' }),
  // The interpreter's fused may not enter the ratios.
  micro('6.1', 'fused', [9000, 9100, 9200], { execution: 'interpreter' }),
  // The depth experiment: tail calls measured at 4 and 33 programs, native calls at 4, 33 and 64.
  micro('6.1', 'chain/manual-constant', [400, 410, 405], { chainLength: 4, hop: 'tail-call-constant' }),
  micro('6.1', 'chain/manual-constant', [3300, 3200, 3250], { chainLength: 33, hop: 'tail-call-constant' }),
  micro('6.1', 'chain/native-call', [40, 42, 41], { chainLength: 4, hop: 'native-call' }),
  micro('6.1', 'chain/native-call', [320, 330, 325], { chainLength: 33, hop: 'native-call' }),
  micro('6.1', 'chain/native-call', [640, 650, 645], { chainLength: 64, hop: 'native-call' }),
  micro('host', 'native', [], { reason: 'unsupported: kernel 6.18 on host has no module support' }),
  micro('host', 'fused', [90, 91, 92]),
];
const latency = [load('6.1', 'fused', [60, 70]), load('6.1', 'manual', [44, 45])];

describe('nativeRows', () => {
  it('ratios of medians to native with a CI around them, insmod and object loads; a kernel without native says why', () => {
    const rows = nativeRows(records, latencyGroups(latency, new Map(), 200), kernels(['6.1', 'host', '5.10']), 200);
    expect(rows.map((r) => r.kernel)).toEqual(['6.1', 'host']); // 5.10 recorded no native
    const [k61, host] = rows;
    expect(k61!.native!.median).toBe(100);
    expect(k61!.variants.map((v) => [v.variant, v.median, v.ratio])).toEqual([['fused', 600, 6], ['manual', 710, 7.1]]);
    for (const v of k61!.variants) {
      expect(v.ci).not.toBeNull();
      expect(v.ci![0]).toBeLessThanOrEqual(v.ratio);
      expect(v.ci![1]).toBeGreaterThanOrEqual(v.ratio);
    }
    expect(k61!.insertMs!.median).toBe(235);
    expect(k61!.objectLoadMs).toEqual([{ approach: 'manual', median: 44.5 }, { approach: 'fused', median: 65 }]);
    // At the longest length both chains have (33: the tail-call chain stops there).
    expect(k61!.chain).toMatchObject({ length: 33, tailCalls: 3250, nativeCalls: 325, ratio: 10 });
    expect(k61!.chain!.ci![0]).toBeLessThanOrEqual(10);
    expect(k61!.chain!.ci![1]).toBeGreaterThanOrEqual(10);
    expect(host).toMatchObject({ chain: null });
    expect(host).toMatchObject({ native: null, reason: 'unsupported: kernel 6.18 on host has no module support', variants: [], insertMs: null });
  });
});

describe('the report with native records', () => {
  it('has the native tables: ratios on a measured kernel, the reason on the other', async () => {
    const dir = scratchDir('native');
    mkdirSync(dir, { recursive: true });
    // A refusal of the interpreter's, beside the same variant measured with the JIT.
    const refused = micro('6.1', 'manual', [], { execution: 'interpreter', reason: 'failed: the verifier refused it without the JIT' });
    writeFileSync(join(dir, 'raw.jsonl'), [...records, refused, ...latency].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const s = await renderReport(dir, { resamples: 200 });
    const md = readFileSync(join(s.reportDir, 'report.md'), 'utf8');
    expect(md).toContain('Native baseline: the trio as a kernel module against BPF');
    expect(md).toMatch(/\| 6\.1 \| native \(kernel module\) \| 3 \| 100\.00 \| 1\.00 \|/);
    expect(md).toMatch(/\| 6\.1 \| manual \|\s*\| 710\.00 \| 7\.10 \| \[\d+\.\d\d, \d+\.\d\d\] \|/);
    expect(md).toMatch(/\| host \| native \| 0 \| — \|.*not measured: unsupported: kernel 6\.18 on host has no module support/);
    expect(md).toMatch(/\| 6\.1 \| chain of 33: nested native calls \|\s*\| 325\.00 \| 1\.00 \|/);
    expect(md).toMatch(/\| 6\.1 \| chain of 33: chain\/manual-constant \(tail calls\) \|\s*\| 3,?250(\.00)? \| 10\.00 \|/);
    // The native chain's cost per hop sits in the cost-per-hop table beside the tail calls'.
    expect(md).toMatch(/\| 6\.1 \| chain\/native-call \| native-call \| 4\.\.64 \(3\)/);
    expect(md).toMatch(/\| 6\.1 \| native: insmod \| 235\.00 \|/);
    expect(s.flags.map((f) => f.text)).toContain('6.1 / microbenchmark manual in the interpreter (length 1): not measured — failed: the verifier refused it without the JIT');
    const html = readFileSync(join(s.reportDir, 'index.html'), 'utf8');
    expect(html).toContain('Native baseline: inserting the module against loading the BPF objects');
  });
});
