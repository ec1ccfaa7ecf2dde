/**
 * --deterministic on real guests (Debian 6.1 and 5.10 under TCG with QEMU's instruction counter):
 * provenance and every record say the clock is 'icount', the warning says what that means, and the
 * BPF run-time statistics give a per-packet figure inside the guest. Whether two runs agree is a
 * benchmark's question (npm run bench -- deterministic), not a pass/fail one.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecords } from '../../lab/results/jsonl.ts';
import { runMatrix } from '../../lab/commands/matrix.ts';
import { Provenance, type RunRecord } from '../../lab/results/record.ts';
import { RUN_TAG } from '../support/names.ts';
import { requirements } from '../support/requirements.ts';

const need = requirements('root', 'qemu', 'clang', 'debootstrap');
const KERNELS = ['6.1', '5.10'];
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.skipIf(need.skip)('instruction-timed guests (--deterministic)', () => {
  it(`records clock icount on ${KERNELS.join(' and ')}, with per-packet BPF statistics`, { timeout: 3_600_000 }, async () => {
    const out = await mkdtemp(join(tmpdir(), 'xt9-icount-'));
    dirs.push(out);
    const r = await runMatrix({ kernels: KERNELS, approaches: ['fused', 'manual'], runs: 1, durationS: 1, quick: true, runId: 'icount', outDir: out, prefix: `xt9${RUN_TAG}`, micro: false, clock: 'icount', renderReport: false, probeOverheadPairs: 0, statsOverheadPairs: 0 });
    const { records } = await loadRecords(r.rawFile);
    for (const k of KERNELS) {
      const prov = Provenance.parse(JSON.parse(await readFile(join(r.runDir, 'provenance', `${k}.json`), 'utf8')));
      expect(prov.accelerator).toBe('tcg');
      expect(prov.clock).toBe('icount');
      expect(prov.warnings.join('\n')).toMatch(/instruction-timed, reproducible, not wall-clock/);
      const runs = records.filter((x): x is RunRecord => x.kind === 'run' && x.kernel === k);
      expect(runs.map((x) => x.approach).sort()).toEqual(['fused', 'manual']);
      for (const x of runs) {
        expect(x.clock).toBe('icount');
        expect(x.bpfStats, `${k} ${x.approach}: ${x.bpfStatsNullReason ?? ''}`).toBeTruthy();
        expect(x.bpfStats!.nsPerPacket).toBeGreaterThan(0);
        console.log(`${k} ${x.approach}: ${x.bpfStats!.nsPerPacket.toFixed(1)} instruction-timed ns per packet`);
      }
    }
  });
});
