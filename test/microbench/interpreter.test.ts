/**
 * The trio in the BPF interpreter. On this host the kernel keeps the JIT always on: switching it
 * off is refused, the variant is recorded as not measured with the kernel's refusal, and the
 * setting is untouched. In a Debian 6.1 guest (built without CONFIG_BPF_JIT_ALWAYS_ON) the JIT
 * goes off, every approach is measured in the interpreter and recorded so, and the JIT is back on
 * afterwards. A target lost while the JIT is being switched off (Debian 6.12.117 oopsed under the
 * interpreter) gives failed records with the reason and keeps what was measured before. The
 * load-time split (object load, verifier) is recorded in the guest too. No timing is asserted; the
 * numbers are printed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HostTarget } from '../../lab/target.ts';
import { LabError } from '../../lab/errors.ts';
import { REPO_ROOT } from '../../lab/paths.ts';
import { join } from 'node:path';
import { RawRecord, type LatencyRecord, type MicroRecord } from '../../lab/results/record.ts';
import { MEASURED_APPROACHES } from '../../lab/microbench/approaches.ts';
import { runMicrobenchDetailed } from '../../lab/microbench/index.ts';
import { restoreJit, switchJitOff } from '../../lab/microbench/interpreter.ts';
import { bootVm } from '../../lab/vm/boot.ts';
import { requirements } from '../support/requirements.ts';
import { testKernel } from '../vm/kernels.ts';

const JIT = '/proc/sys/net/core/bpf_jit_enable';
const host = requirements('root', 'bpf', 'bpftool', 'clang');
const guest = requirements('root', 'bpf', 'clang', 'qemu', 'debootstrap');
const OPTS = { runId: 'interp', quick: true, repeat: 2000, repetitions: 2, parts: { approaches: false, scaling: false, latency: false, interpreter: true } };

function interpreted(records: readonly unknown[]): MicroRecord[] {
  return records.map((r) => RawRecord.parse(r)).filter((r): r is MicroRecord => r.kind === 'micro' && r.execution === 'interpreter');
}

describe.skipIf(host.skip)('interpreter variant on the host kernel', () => {
  it('follows what the kernel allows: refused (with the reason, setting untouched) or measured (setting put back)', { timeout: 300_000 }, async () => {
    const before = readFileSync(JIT, 'utf8').trim();
    const target = await HostTarget.create(join(REPO_ROOT, 'build', 'target-xt9i'));
    const sw = await switchJitOff(target);
    if (sw.ok) await restoreJit(target, sw.previous);
    expect(readFileSync(JIT, 'utf8').trim()).toBe(before);

    const r = await runMicrobenchDetailed(target, { ...OPTS, kernel: 'host', prefix: 'xt9i' });
    const recs = interpreted(r.records);
    expect(readFileSync(JIT, 'utf8').trim()).toBe(before);
    if (!sw.ok) {
      expect(sw.reason).toMatch(/cannot be switched off \(writing 0 to net\.core\.bpf_jit_enable: .+\).*CONFIG_BPF_JIT_ALWAYS_ON/);
      // Every approach asked for is marked not measured, with the kernel's refusal.
      expect(recs.map((x) => x.variant).sort()).toEqual([...MEASURED_APPROACHES].sort());
      for (const x of recs) {
        expect(x.nsPerPacket).toEqual([]);
        expect(x.reason).toBe(`unsupported: ${sw.reason}`);
      }
      expect(r.interpreted).toEqual([]);
    } else {
      expect(recs.filter((x) => x.nsPerPacket.length > 0).map((x) => x.variant)).toEqual(expect.arrayContaining(['fused', 'manual']));
    }
  });
});

describe.skipIf(host.skip)('interpreter variant: a target lost in it', () => {
  it('records every approach failed with the reason and keeps what was measured before it', { timeout: 300_000 }, async () => {
    const before = readFileSync(JIT, 'utf8').trim();
    const real = await HostTarget.create(join(REPO_ROOT, 'build', 'target-xt9k'));
    // The target "dies" when the JIT is switched off (as Debian 6.12.117 did, oopsing under the interpreter).
    const dying = new Proxy(real, {
      get(t, key, receiver) {
        if (key === 'sh') {
          return (script: string, o?: Parameters<HostTarget['sh']>[1]) => {
            if (script.includes('echo 0 >') && script.includes('bpf_jit_enable')) return Promise.reject(new LabError('VM_PANIC', 'lost the guest while switching the JIT off'));
            return t.sh(script, o);
          };
        }
        const v = Reflect.get(t, key, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const r = await runMicrobenchDetailed(dying, { ...OPTS, kernel: 'host', prefix: 'xt9k', latencyCycles: 1, approaches: ['fused', 'manual'], parts: { ...OPTS.parts, loadTime: true } });
    // Every kernel reaches the write that "kills" the target (the refusal comes from the write).
    expect(interpreted(r.records).map((x) => [x.variant, x.reason])).toEqual([
      ['fused', 'failed: lost the guest while switching the JIT off'],
      ['manual', 'failed: lost the guest while switching the JIT off'],
    ]);
    expect(readFileSync(JIT, 'utf8').trim()).toBe(before);
    // The load-time part ran before it, and its records are all there.
    const lat = r.records.map((x) => RawRecord.parse(x)).filter((x): x is LatencyRecord => x.kind === 'latency');
    expect(lat.filter((x) => x.operation === 'object-load').map((x) => x.approach).sort()).toEqual(['fused', 'manual']);
  });
});

describe.skipIf(guest.skip)('interpreter variant in a Debian 6.1 guest', () => {
  it('switches the JIT off, measures every approach interpreted, and switches it back on', { timeout: 1_200_000 }, async () => {
    await using vm = await bootVm({ kernel: await testKernel('6.1'), accel: 'tcg', cpus: 2, name: `xcl-test-${process.pid}-interp` });
    expect((await vm.run(['cat', JIT])).stdout.trim()).toBe('1');
    const r = await runMicrobenchDetailed(vm, { ...OPTS, kernel: '6.1', prefix: 'xt9i', latencyCycles: 1, approaches: ['fused', 'manual', 'patched'], parts: { ...OPTS.parts, loadTime: true } });
    expect((await vm.run(['cat', JIT])).stdout.trim()).toBe('1');
    const recs = interpreted(r.records);
    const measured = recs.filter((x) => x.nsPerPacket.length > 0);
    expect(measured.map((x) => x.variant)).toEqual(expect.arrayContaining(['fused', 'manual', 'patched-inline']));
    for (const x of measured) {
      expect(x.nsPerPacket).toHaveLength(2);
      for (const ns of x.nsPerPacket) expect(ns).toBeGreaterThan(0);
    }
    // What the interpreter cannot run is recorded with the kernel's reason, never dropped: the
    // verifier refuses tail calls mixed with bpf-to-bpf calls (patched-subprog) in programs it does
    // not JIT. (The dispatcher is left out here to keep the test short: freplace needs the JIT.)
    for (const x of recs.filter((y) => y.nsPerPacket.length === 0)) {
      expect(['patched-subprog']).toContain(x.variant);
      expect(x.reason).toMatch(/^(failed|unsupported): \S/);
    }
    // The load-time split in the same guest: the verifier's statistics are printed on 6.1.
    const lat = r.records.map((x) => RawRecord.parse(x)).filter((x): x is LatencyRecord => x.kind === 'latency');
    for (const a of ['fused', 'manual', 'patched'] as const) {
      const load = lat.find((x) => x.approach === a && x.operation === 'object-load')?.ms[0];
      const verify = lat.find((x) => x.approach === a && x.operation === 'verify')?.ms[0];
      expect(verify, a).toBeGreaterThan(0);
      expect(verify!).toBeLessThanOrEqual(load!);
      // Debian's 6.1 has function_graph: bpf_check and the JIT timed by ftrace in the same load.
      const check = lat.find((x) => x.approach === a && x.operation === 'bpf_check')?.ms[0];
      const jit = lat.find((x) => x.approach === a && x.operation === 'jit')?.ms[0];
      expect(check, `${a} bpf_check: ${r.notes.join(' | ')}`).toBeGreaterThan(0);
      expect(jit, `${a} jit`).toBeGreaterThan(0);
      console.log(`6.1 ${a}: object load ${load!.toFixed(1)} ms, verifier (its statistics) ${verify!.toFixed(1)} ms, bpf_check (ftrace) ${check!.toFixed(1)} ms, JIT (ftrace) ${jit!.toFixed(2)} ms`);
    }
    for (const x of measured) console.log(`6.1 interpreter ${x.variant}: ${x.nsPerPacket.map((n) => n.toFixed(0)).join(', ')} ns per packet`);
  });
});
