/**
 * Microbenchmark records measured in the BPF interpreter are their own variant in the report:
 * never pooled with the JIT's numbers of the same approach, and records written before the field
 * existed read as JIT.
 */
import { describe, expect, it } from 'vitest';
import { microGroups } from '../../lab/report/micro.ts';
import { RawRecord, SCHEMA_VERSION, type MicroRecord } from '../../lab/results/record.ts';

function micro(variant: string, ns: number[], execution?: 'jit' | 'interpreter'): MicroRecord {
  const r = { kind: 'micro', schema: SCHEMA_VERSION, runId: 'r', kernel: '6.1', kernelRelease: '6.1.0-x', accelerator: 'tcg', variant, chainLength: 1, hop: 'none', repeat: 1000, nsPerPacket: ns, ...(execution ? { execution } : {}) };
  return RawRecord.parse(r) as MicroRecord;
}

describe('report: interpreter records', () => {
  it('groups them apart from the JIT rows of the same approach; an old record is JIT', () => {
    const jit = [micro('fused', [40, 42, 44]), micro('fused', [41], 'jit')];
    const interp = [micro('fused', [300, 320, 340], 'interpreter')];
    const groups = microGroups([...jit, ...interp], new Map(), 200);
    const byVariant = new Map(groups.map((g) => [g.variant, g]));
    expect([...byVariant.keys()].sort()).toEqual(['fused', 'fused (interpreter)']);
    expect(byVariant.get('fused')!.points[0]!.stats.n).toBe(4);
    expect(byVariant.get('fused')!.points[0]!.stats.median).toBe(41.5);
    expect(byVariant.get('fused (interpreter)')!.points[0]!.stats.median).toBe(320);
    // Without interpreter records the JIT group is what it was.
    expect(microGroups(jit, new Map(), 200).map((g) => [g.variant, g.points[0]!.stats.median])).toEqual([['fused', 41.5]]);
  });
});
