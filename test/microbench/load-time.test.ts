/**
 * Load time per approach: the helper's lines read into objects and programs (an error line is a
 * LabError with the helper's words), and on this host each approach's objects loaded with the
 * verifier's statistics: object-load and verify records per approach, the verifier's time inside
 * the load's. No timing is compared with a constant.
 */
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HostTarget } from '../../lab/target.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { isLabError } from '../../lab/errors.ts';
import { RawRecord, type LatencyRecord } from '../../lab/results/record.ts';
import { runMicrobenchDetailed } from '../../lab/microbench/index.ts';
import { loadTimed, parseLoadStats } from '../../lab/microbench/load-time.ts';
import { MEASURED_APPROACHES } from '../../lab/microbench/approaches.ts';
import { ftraceAvailable, parseFunctionGraph } from '../../lab/microbench/ftrace.ts';
import { buildUserHelper } from '../../lab/programs/user.ts';
import { requirements } from '../support/requirements.ts';

describe('parseLoadStats', () => {
  it('groups programs under the object line that follows them; null statistics stay null', () => {
    const out = [
      '{"event":"program","object":"a.o","program":"p1","verificationUs":12,"insnsProcessed":30,"xlatedBytes":80,"jitedBytes":60}',
      '{"event":"program","object":"a.o","program":"p2","verificationUs":null,"insnsProcessed":null,"xlatedBytes":8,"jitedBytes":0}',
      '{"event":"object","object":"a.o","loadNs":5000,"logStats":false}',
      '{"event":"object","object":"b.o","loadNs":7,"logStats":true}',
    ].join('\n');
    const o = parseLoadStats(out);
    expect(o.map((x) => [x.object, x.loadNs, x.logStats, x.programs.map((p) => [p.program, p.verificationUs, p.insnsProcessed])])).toEqual([
      ['a.o', 5000, false, [['p1', 12, 30], ['p2', null, null]]],
      ['b.o', 7, true, []],
    ]);
    const err = (() => {
      try {
        parseLoadStats('{"event":"error","stage":"open","errno":4001,"message":"x.o: cannot open: Invalid format"}');
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(isLabError(err, 'LOAD')).toBe(true);
    expect((err as Error).message).toContain('x.o: cannot open: Invalid format');
  });
});

describe('parseFunctionGraph', () => {
  it('reads leaf calls and closing braces of the traced functions, whatever the long-call marker', () => {
    const trace = [
      '# tracer: function_graph',
      '#',
      '# CPU  DURATION                  FUNCTION CALLS',
      '# |     |   |                     |   |   |   |',
      ' 0) # 2416.021 us |  bpf_check();',
      ' 0)   5.100 us    |  bpf_int_jit_compile();',
      ' 1)               |  bpf_check() {',
      ' 1) + 12.500 us   |    bpf_int_jit_compile();',
      ' 1) ! 310.250 us  |  } /* bpf_check */',
      ' 1)   1.000 us    |  other_function();',
    ].join('\n');
    const d = parseFunctionGraph(trace, ['bpf_check', 'bpf_int_jit_compile']);
    expect(d.get('bpf_check')).toEqual([2416.021, 310.25]);
    expect(d.get('bpf_int_jit_compile')).toEqual([5.1, 12.5]);
    expect(parseFunctionGraph('', ['bpf_check']).get('bpf_check')).toEqual([]);
  });
});

const need = requirements('root', 'bpf', 'bpftool', 'clang');
describe.skipIf(need.skip)('load time on the host kernel', () => {
  it('a file that is not a BPF object is refused by name, with exit status 2', async () => {
    const h = await buildUserHelper('load_stats');
    let status = 0;
    let out = '';
    try {
      execFileSync(h.path, ['/etc/hostname'], { stdio: 'pipe' });
    } catch (e) {
      status = (e as { status: number }).status;
      out = String((e as { stdout: Buffer }).stdout);
    }
    expect(status).toBe(2);
    expect(out).toMatch(/"stage":"open".*\/etc\/hostname: cannot open: \S/);
  });

  it('records object-load and verify per approach; the verifier\'s time is part of the load\'s', { timeout: 300_000 }, async () => {
    const target = await HostTarget.create(join(REPO_ROOT, 'build', 'target-xt9l'));
    const r = await runMicrobenchDetailed(target, { runId: 'lt', kernel: 'host', quick: true, latencyCycles: 2, prefix: 'xt9l', parts: { approaches: false, scaling: false, latency: false, interpreter: false, loadTime: true } });
    const lat = r.records.map((x) => RawRecord.parse(x)).filter((x): x is LatencyRecord => x.kind === 'latency');
    const timed = loadTimed(MEASURED_APPROACHES);
    expect(timed).toEqual(expect.arrayContaining(['fused', 'manual', 'patched', 'tc-fused', 'tc-manual', 'tc-patched', 'tc-filters', 'tcx']));
    for (const a of timed) {
      const load = lat.find((x) => x.approach === a && x.operation === 'object-load');
      const verify = lat.find((x) => x.approach === a && x.operation === 'verify');
      expect(load?.ms, a).toHaveLength(2);
      expect(verify?.ms, a).toHaveLength(2);
      for (const [i, ms] of load!.ms.entries()) {
        expect(ms).toBeGreaterThan(0);
        expect(verify!.ms[i]!).toBeGreaterThan(0);
        expect(verify!.ms[i]!).toBeLessThanOrEqual(ms);
      }
      expect(r.notes.some((n) => new RegExp(`^${a}: the verifier processed [1-9]\\d* instructions`).test(n))).toBe(true);
    }
    // ftrace timing follows what this kernel has: records where function_graph exists, else the reason.
    const ft = await ftraceAvailable(target, ['bpf_check', 'bpf_int_jit_compile']);
    const traced = lat.filter((x) => x.operation === 'bpf_check' || x.operation === 'jit');
    if (ft.ok) expect(traced).toHaveLength(2 * timed.length);
    else {
      expect(traced).toEqual([]);
      expect(r.notes).toContain(`bpf_check and JIT time not measured: ${ft.reason}`);
    }
  });
});
