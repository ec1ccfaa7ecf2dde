/**
 * The native measurement's bookkeeping: ratios to native taken from one kernel's records (JIT rows
 * only, medians), the terminal lines, and on this host (no module support) native recorded as not
 * measured with the kernel's reason rather than left out.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostTarget } from '../../lab/target.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { RawRecord, SCHEMA_VERSION, type LatencyRecord, type MicroRecord } from '../../lab/results/record.ts';
import { measureNative, nativeRatios } from '../../lab/native/measure.ts';
import { formatDepth, formatNative } from '../../lab/commands/bench-native.ts';
import { parseDepthLine } from '../../lab/native/run.ts';

const rec = (variant: string, ns: number[], over: Partial<MicroRecord> = {}): MicroRecord => ({
  kind: 'micro', schema: SCHEMA_VERSION, runId: 'r', kernel: '6.1', kernelRelease: '6.1.0-57-cloud-amd64', accelerator: 'tcg', clock: 'icount',
  variant, chainLength: 1, hop: 'none', repeat: 10, nsPerPacket: ns, ...over,
});

describe('ratios to native', () => {
  const records = [
    rec('native', [50, 40, 60]),
    rec('fused', [100, 120, 80]),
    rec('manual', [150]),
    rec('fused', [999], { kernel: 'host' }),
    rec('fused', [5000], { execution: 'interpreter' }),
    rec('patched-inline', []),
  ];

  it('divides each variant\'s median by native\'s, on the same kernel, JIT rows only, measured rows only', () => {
    expect(nativeRatios(records, '6.1')).toEqual([
      { variant: 'fused', ns: 100, nativeNs: 50, ratio: 2 },
      { variant: 'manual', ns: 150, nativeNs: 50, ratio: 3 },
    ]);
    expect(nativeRatios(records, 'host')).toEqual([]);
  });

  it('prints the ratios, or native not measured with its reason, and insmod next to the object loads', () => {
    const native = { ...rec('native', [50]), insertMs: [3, 5] };
    const lat: LatencyRecord[] = [{ kind: 'latency', schema: SCHEMA_VERSION, runId: 'r', kernel: '6.1', accelerator: 'tcg', approach: 'fused', operation: 'object-load', ms: [40, 44] }];
    const lines = formatNative('6.1', records, lat, native);
    expect(lines).toContain('  fused                100.0      2.00');
    expect(lines.some((l) => /native insmod\s+5\.00/.test(l))).toBe(true);
    expect(lines.some((l) => /fused object load\s+44\.00/.test(l))).toBe(true);
    const refused = formatNative('host', [], [], rec('native', [], { reason: 'unsupported: no modules' }));
    expect(refused).toContain('  native: not measured: unsupported: no modules');
  });
});

describe('the depth line of bench native', () => {
  it('sets n tail-called programs against n nested native calls, or says what was not measured', () => {
    const tail = rec('chain/manual-constant', [300, 330, 320], { chainLength: 32, hop: 'tail-call-constant' });
    const nested = rec('chain/native-call', [200, 160, 150], { chainLength: 32, hop: 'native-call' });
    expect(formatDepth([tail, nested], 32)).toEqual(['depth 32 (ns per packet, median): 32 programs joined by constant tail calls 320.0, 32 nested native calls 160.0, ratio 2.00']);
    expect(formatDepth([tail, { ...nested, nsPerPacket: [], reason: 'unsupported: no modules' }], 32)).toEqual([
      'depth 32: 320.0 ns through 32 programs joined by tail calls; nested native calls not measured: unsupported: no modules',
    ]);
    expect(formatDepth([nested], 32)).toEqual(['depth 32: tail-call chain not measured']);
  });
});

describe('native on this host', () => {
  it('is recorded as not measured with the reason when the kernel has no module support', async () => {
    const host = await HostTarget.create(join(REPO_ROOT, 'build', 'target-xtnm'));
    const m = await measureNative(host, null, { runId: 'r', kernel: 'host', caseName: 'ipv6_tcp_allowed', repeat: 10, repetitions: 1, insertCycles: 1 });
    const parsed = RawRecord.parse(m.record);
    expect(parsed).toMatchObject({ kind: 'micro', variant: 'native', nsPerPacket: [] });
    if (existsSync('/proc/modules')) {
      expect(m.record.reason).toBe(`unsupported: kernel ${host.kernelRelease} on host: no module build headers known for a kernel the lab did not provide`);
    } else {
      expect(m.record.reason).toBe(`unsupported: kernel ${host.kernelRelease} on host has no module support (no /proc/modules: CONFIG_MODULES is not set)`);
    }
    expect(m.record.insertMs).toBeUndefined();
  });
});

describe('the module\'s depth answer', () => {
  it('reads the depth, its runs and their time, and refuses another answer', () => {
    expect(parseDepthLine('depth 33 repeat 500 ns 37860 verdict 2')).toEqual({ depth: 33, repeat: 500, totalNs: 37860, verdict: 2 });
    expect(() => parseDepthLine('run verdict 2 repeat 500 ns 1 records 0')).toThrow(/expected a "depth" line/);
    expect(() => parseDepthLine('depth 3 repeat 5 verdict 2')).toThrow(/no number "ns"/);
  });
});
