/**
 * The veth_poll probe pieces on this machine: veth_probe.o builds with the lab's flags, the helper
 * builds once per content hash, and on a kernel without kprobe events the probe says why instead of
 * reporting zeros.
 */
import { cp, mkdtemp, rm, appendFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { agree, requirements } from '../support/requirements.ts';
import { buildProbeHelper } from '../../lab/programs/user.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { ProbeSession, probeUnavailableReason, toProbeTotals } from '../../lab/bench/probe.ts';
import { buildPrograms } from '../../lab/programs/build.ts';
import { HostTarget } from '../../lab/target.ts';
import { ProbeTotals } from '../../lab/results/record.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'xt7-probe-'));
  dirs.push(d);
  return d;
}

describe('probe helper build', () => {
  const need = requirements('clang');
  it.skipIf(need.skip)('rebuilds only when the sources change', async () => {
    const src = await tempDir();
    const out = await tempDir();
    await cp(join(REPO_ROOT, 'programs', 'user'), src, { recursive: true });
    const a = await buildProbeHelper({ sourceDir: src, outDir: out });
    expect(a.built).toBe(true);
    expect(existsSync(a.path)).toBe(true);
    const b = await buildProbeHelper({ sourceDir: src, outDir: out });
    expect(b).toEqual({ ...a, built: false });
    await appendFile(join(src, 'veth_probe_user.c'), '\n/* changed */\n');
    const c = await buildProbeHelper({ sourceDir: src, outDir: out });
    expect(c.built).toBe(true);
    expect(c.hash).not.toBe(a.hash);
    expect(existsSync(a.path)).toBe(false); // the stale binary is gone
  });

  it.skipIf(need.skip)('reports a compile error as COMPILE with the compiler output', async () => {
    const src = await tempDir();
    const out = await tempDir();
    await cp(join(REPO_ROOT, 'programs', 'user'), src, { recursive: true });
    await appendFile(join(src, 'veth_probe_user.c'), '\nthis is not C;\n');
    await expect(buildProbeHelper({ sourceDir: src, outDir: out })).rejects.toMatchObject({ code: 'COMPILE' });
  });

  it('converts totals and keeps the null-cycles reason', () => {
    const t = toProbeTotals({ event: 'totals', calls: 3, packets: 40, ns: 900, cycles: null, cyclesNullReason: 'no PMU', cycleCalls: 0 }, 'x');
    expect(ProbeTotals.parse(t)).toEqual({ calls: 3, packets: 40, ns: 900, cycles: null, cyclesNullReason: 'no PMU' });
    expect(() => toProbeTotals({ event: 'totals', calls: 'x' }, 'x')).toThrow(/malformed totals/);
    const sized = toProbeTotals({ event: 'totals', calls: 3, packets: 4, ns: 900, cycles: 7, pollSizes: [[1, 2, 500], [2, 1, 400]] }, 'x');
    expect(ProbeTotals.parse(sized).pollSizes).toEqual([{ packets: 1, calls: 2, ns: 500 }, { packets: 2, calls: 1, ns: 400 }]);
    expect(() => toProbeTotals({ event: 'totals', calls: 3, packets: 4, ns: 900, cycles: 7, pollSizes: [[1, 0, 5]] }, 'vm')).toThrow(/vm: .*malformed poll size \[1,0,5\]/);
    expect(() => toProbeTotals({ event: 'totals', calls: 3, packets: 4, ns: 900, cycles: 7, pollSizes: [[1, 2]] }, 'vm')).toThrow(/malformed poll size/);
  });
});

describe('probe on the host kernel', () => {
  const need = requirements('root', 'bpf', 'clang');
  // The inverse of requirements('kprobes'): this test is about a kernel without them.
  const hasKprobes = agree('kprobes', ['/sys/kernel/tracing/kprobe_events', '/sys/kernel/debug/tracing/kprobe_events', '/sys/bus/event_source/devices/kprobe'].some(existsSync));
  if (hasKprobes) console.warn('[skip] this kernel has kprobes: the test of their absence does not apply');
  it.skipIf(need.skip || hasKprobes)('says kprobes are unavailable instead of recording zeros', async () => {
    const work = await tempDir();
    const target = await HostTarget.create(work);
    const objs = await buildPrograms();
    const helper = await buildProbeHelper();
    const veth = objs.veth_probe;
    expect(veth).toBeDefined();
    // veth_poll lives in the veth module; make sure it is loaded so only kprobes can be missing.
    await execa('modprobe', ['veth'], { reject: false });
    const session = new ProbeSession(target, { helper: helper.path, object: veth!, stateDir: join(work, 'probe') });
    const start = await session.start(20);
    expect(start.ok).toBe(false);
    if (start.ok) return;
    expect(start.stage).toBe('attach');
    const reason = probeUnavailableReason(target, start);
    expect(reason).toMatch(/kprobes unavailable/);
    expect(reason).toContain(target.kernelRelease);
    expect(reason).toMatch(/veth_poll/);
  });

  it.skipIf(need.skip)('the helper refuses a file that is not veth_probe.o, naming it', async () => {
    const helper = await buildProbeHelper();
    const r = await execa(helper.path, [join(REPO_ROOT, 'package.json')], { reject: false });
    expect(r.exitCode).toBe(2);
    const line = JSON.parse(String(r.stdout).trim().split('\n')[0]!) as { event: string; stage: string; message: string };
    expect(line).toMatchObject({ event: 'error', stage: 'open' });
    expect(line.message).toContain('package.json');
  });
});
