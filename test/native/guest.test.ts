/**
 * The native trio in a Debian 6.1 guest (booted as test/microbench/interpreter.test.ts does): the
 * module built against the guest's own headers, inserted (its insertion time measured), run over
 * the whole packet corpus, and compared with the BPF fused program run by BPF_PROG_TEST_RUN in the
 * same guest on the same config: the same verdict for every frame, the same counters, the same log
 * records. Every frame, the short ones BPF_PROG_TEST_RUN refuses included, is also checked against
 * what the corpus says the trio must do. ns per packet is measured, not asserted beyond > 0.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootVm } from '../../lab/vm/boot.ts';
import type { Target } from '../../lab/target.ts';
import { captureEvents, ensureBpffs, loadAllShared, progRunMany, unpin } from '../../lab/bpftool/index.ts';
import { buildPrograms, DEFAULT_OUT_DIR } from '../../lab/programs/build.ts';
import { applyTrioConfig, MAP_NAMES, OBJECTS, parseLogRecord, PROGRAM_NAMES, readMetrics, type TrioConfig } from '../../lab/programs/trio.ts';
import { buildCorpus, type CorpusCase } from '../../lab/packets/corpus.ts';
import { XDP_ACTIONS } from '../../lab/bpf/uapi.ts';
import { REPRESENTATIVE_CASE } from '../../lab/microbench/approaches.ts';
import { imageFacts, moduleHeaders } from '../../lab/native/headers.ts';
import { buildNativeModule } from '../../lab/native/build.ts';
import { insertModule, moduleSupport, nativeDepthNs, nativeNsPerPacket, parseDepthLine, PROC_FILE, removeModule, runCorpusNative, runScript, TEST_RUN_IFINDEX } from '../../lab/native/run.ts';
import { requirements } from '../support/requirements.ts';
import { expectedMetrics } from '../programs/support.ts';
import { testKernel } from '../vm/kernels.ts';

const need = requirements('root', 'bpf', 'clang', 'qemu', 'debootstrap');

/** The BPF fused program over `cases` on CPU 0 with `cfg`, as test/programs/trio.test.ts runs it. */
async function bpfFused(vm: Target, cases: readonly CorpusCase[], cfg: TrioConfig) {
  await buildPrograms();
  const work = `${vm.workDir}/native-test`;
  const pin = '/sys/fs/bpf/xtnat';
  const local = await mkdtemp(join(tmpdir(), 'xtnat-'));
  try {
    await ensureBpffs(vm);
    await unpin(vm, pin);
    const files: string[] = [];
    for (const c of cases) {
      await writeFile(join(local, `${c.name}.bin`), c.frame);
      files.push(`${work}/${c.name}.bin`);
      await vm.putFile(join(local, `${c.name}.bin`), files[files.length - 1]!);
    }
    await vm.putFile(join(DEFAULT_OUT_DIR, `${OBJECTS.fused}.o`), `${work}/fused.o`);
    await loadAllShared(vm, `${work}/fused.o`, `${pin}/progs`, `${pin}/maps`);
    await applyTrioConfig(vm, `${pin}/maps`, cfg);
    const entry = { pinned: `${pin}/progs/${PROGRAM_NAMES.fused}` };
    const cap = await captureEvents(vm, { pinned: `${pin}/maps/${MAP_NAMES.logEvents}` }, () => progRunMany(vm, entry, files, { cpu: 0 }));
    const verdicts = Object.fromEntries(cases.map((c, i) => [c.name, cap.result[i]!.retval]));
    return { verdicts, metrics: await readMetrics(vm, `${pin}/maps`), records: cap.records.map((r) => parseLogRecord(r.data)), lost: cap.lost };
  } finally {
    await unpin(vm, pin).catch(() => undefined);
    await rm(local, { recursive: true, force: true });
  }
}

describe.skipIf(need.skip)('the native trio in a Debian 6.1 guest', () => {
  it('gives the BPF fused program\'s verdicts, counters and log records on the whole corpus', { timeout: 1_500_000 }, async () => {
    const image = await testKernel('6.1');
    const ko = await buildNativeModule(await moduleHeaders(await imageFacts(image)));
    await using vm = await bootVm({ kernel: image, accel: 'tcg', cpus: 2, name: `xcl-test-${process.pid}-native` });
    expect(await moduleSupport(vm)).toEqual({ ok: true });
    const corpus = buildCorpus();
    const cfg: TrioConfig = { denyPorts: [corpus.deniedPort], logSampleN: 1 };
    const runnable = corpus.cases.filter((c) => c.testRunnable);

    const bpf = await bpfFused(vm, runnable, cfg);
    const inserted = await insertModule(vm, ko);
    try {
      expect(inserted.insertMs).toBeGreaterThan(0);
      // The same frames the test run takes, from fresh counters: equal to the BPF program's.
      const native = await runCorpusNative(vm, runnable, cfg);
      expect(native.verdicts).toEqual(bpf.verdicts);
      expect(native.metrics).toEqual(bpf.metrics);
      expect(bpf.lost).toBe(0);
      const logged = runnable.filter((c) => native.records[c.name] !== null);
      expect(logged.map((c) => c.name)).toEqual(runnable.filter((c) => c.verdict === 'pass').map((c) => c.name));
      expect(logged.map((c) => native.records[c.name])).toEqual(bpf.records.map(({ tsNs: _ts, ...rest }) => rest));
      expect(bpf.records.every((r) => r.ifindex === TEST_RUN_IFINDEX)).toBe(true);

      // The whole corpus, the frames shorter than Ethernet too: what the corpus says.
      const all = await runCorpusNative(vm, corpus.cases, cfg);
      for (const c of corpus.cases) expect({ name: c.name, verdict: all.verdicts[c.name] }).toEqual({ name: c.name, verdict: XDP_ACTIONS[c.verdict] });
      const passed = corpus.cases.filter((c) => c.verdict === 'pass');
      expect(all.metrics).toEqual(expectedMetrics(passed));
      passed.forEach((c, i) => {
        const { klass, len, ethertype, sport, dport, l4proto, seq } = all.records[c.name]!;
        expect({ name: c.name, klass, len, ethertype, sport, dport, l4proto, seq }).toEqual({ name: c.name, ...c.log, seq: i + 1 });
      });

      const rep = corpus.cases.find((c) => c.name === REPRESENTATIVE_CASE)!;
      const ns = await nativeNsPerPacket(vm, rep.frame, cfg, 2000, 2);
      expect(ns).toHaveLength(2);
      for (const n of ns) expect(n).toBeGreaterThan(0);
      console.log(`6.1 native: insmod ${inserted.insertMs.toFixed(1)} ms; ${REPRESENTATIVE_CASE}: ${ns.map((n) => n.toFixed(1)).join(', ')} ns per packet (TCG)`);

      // The depth experiment's native chain: every depth asked for, each repetition, passing the packet.
      const depths = await nativeDepthNs(vm, [1, 8, 33], 500, 2);
      expect([...depths.keys()]).toEqual([1, 8, 33]);
      for (const [d, xs] of depths) {
        expect(xs, `depth ${d}`).toHaveLength(2);
        for (const x of xs) expect(x).toBeGreaterThan(0);
      }
      const passed33 = await runScript(vm, ['depth 33 10']);
      expect(parseDepthLine(passed33[0]!)).toMatchObject({ depth: 33, repeat: 10, verdict: XDP_ACTIONS.pass });
      // Outside 1..64 the module refuses the script (EINVAL), and the lab before it.
      await expect(runScript(vm, ['depth 65 10'])).rejects.toThrow();
      await expect(nativeDepthNs(vm, [0], 10, 1)).rejects.toThrow(/outside 1\.\.64/);
      console.log(`6.1 native chain: ${[...depths].map(([d, xs]) => `depth ${d} ${xs.map((x) => x.toFixed(1)).join('/')} ns`).join(', ')} (TCG)`);
    } finally {
      await removeModule(vm);
    }
    expect((await vm.run(['test', '-e', PROC_FILE], { allowFailure: true })).exitCode).not.toBe(0);
  });
});
