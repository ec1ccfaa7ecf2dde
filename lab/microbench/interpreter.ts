/**
 * The trio per approach with the JIT switched off: the kernel decides at load time whether a
 * program runs as JIT-compiled code or in the BPF interpreter (`net.core.bpf_jit_enable`), so the
 * approaches are loaded afresh while the sysctl is 0, measured with BPF_PROG_TEST_RUN as the JIT
 * variant is, and the sysctl is put back on every path. A kernel built with
 * CONFIG_BPF_JIT_ALWAYS_ON refuses the 0 (EINVAL): the variant is then "not measured" with the
 * kernel's words, never left out. Before anything is measured, one program loaded under the switch
 * must show no JIT image (bpftool's bytes_jited), so a row is recorded as interpreted only when the
 * kernel says it is.
 */
import { LabError } from '../errors.ts';
import type { Target } from '../target.ts';
import { load, progShow, unpin } from '../bpftool/index.ts';
import { DEFAULT_OUT_DIR, buildPrograms } from '../programs/build.ts';
import type { KernelFeatures } from '../features.ts';
import { measureApproaches, type ApproachMeasureOptions, type ApproachMeasurement } from './approaches.ts';
import type { Sandbox } from './sandbox.ts';
import type { ApproachName, MicroRecord } from '../results/record.ts';
import { microRecord, unsupportedRecord, type RecordStamp } from './records.ts';

const JIT_SYSCTL = '/proc/sys/net/core/bpf_jit_enable';

export type JitSwitch = { ok: true; previous: string } | { ok: false; reason: string };

/** Reads the JIT setting and writes 0; the reason quotes the kernel when it refuses. */
export async function switchJitOff(target: Target): Promise<JitSwitch> {
  const read = await target.run(['cat', JIT_SYSCTL], { allowFailure: true });
  if (read.exitCode !== 0) return { ok: false, reason: `kernel ${target.kernelRelease}: ${JIT_SYSCTL} cannot be read (${(read.stderr || read.stdout).trim() || `exit ${read.exitCode}`}): no BPF JIT setting` };
  const previous = read.stdout.trim();
  if (previous === '0') return { ok: true, previous };
  const w = await target.sh(`echo 0 > ${JIT_SYSCTL}`, { allowFailure: true });
  const now = (await target.run(['cat', JIT_SYSCTL], { allowFailure: true })).stdout.trim();
  if (w.exitCode !== 0 || now !== '0') {
    const said = (w.stderr || w.stdout).trim().replace(/^.*: /, '') || `the value stayed ${now}`;
    return { ok: false, reason: `kernel ${target.kernelRelease}: the JIT cannot be switched off (writing 0 to net.core.bpf_jit_enable: ${said}); the kernel is built with CONFIG_BPF_JIT_ALWAYS_ON` };
  }
  return { ok: true, previous };
}

export async function restoreJit(target: Target, previous: string): Promise<void> {
  const w = await target.sh(`echo ${previous} > ${JIT_SYSCTL}`, { allowFailure: true });
  if (w.exitCode !== 0) {
    throw new LabError('BENCH', `${target.name}: could not put net.core.bpf_jit_enable back to ${previous}: ${(w.stderr || w.stdout).trim()}`, {
      remedy: `Run \`sysctl -w net.core.bpf_jit_enable=${previous}\` on ${target.name}: programs loaded now run in the interpreter.`,
    });
  }
}

/** Loads fused.o once under the switch: it must have no JIT image, else nothing is called interpreted. */
async function checkInterpreted(sb: Sandbox): Promise<void> {
  const pin = `${sb.pinRoot}/jit-check`;
  const objectPath = `${sb.workDir}/jit-check.o`;
  await buildPrograms();
  await sb.target.putFile(`${DEFAULT_OUT_DIR}/fused.o`, objectPath);
  try {
    await load(sb.target, objectPath, pin);
    const p = await progShow(sb.target, { pinned: pin });
    if (p.jited || p.bytesJited > 0) {
      throw new LabError('BENCH', `${sb.target.name}: net.core.bpf_jit_enable is 0 but ${p.name} (id ${p.id}) was JIT-compiled (${p.bytesJited} bytes): the interpreter variant would be the JIT's`, {
        remedy: 'The kernel ignores the sysctl for this program type; the interpreter variant cannot be measured here.',
      });
    }
  } finally {
    await unpin(sb.target, pin);
  }
}

export type InterpreterOutcome = { measured: ApproachMeasurement } | { notMeasured: string };

/**
 * ns per packet of each approach in the interpreter: the same measurement as the JIT rows (no
 * latency cycles), loaded while the JIT is off. The trio objects must already be built.
 */
export async function measureInterpreted(sb: Sandbox, features: KernelFeatures, o: Omit<ApproachMeasureOptions, 'latencyCycles' | 'perPacket'>): Promise<InterpreterOutcome> {
  const sw = await switchJitOff(sb.target);
  if (!sw.ok) return { notMeasured: sw.reason };
  let measured: ApproachMeasurement;
  try {
    await checkInterpreted(sb);
    measured = await measureApproaches(sb, features, { ...o, latencyCycles: 0, perPacket: true });
  } finally {
    await restoreJit(sb.target, sw.previous);
  }
  return { measured };
}

/**
 * The outcome as raw records, each marked interpreted: the rows measured, what the interpreter
 * could not run with its reason, or, where the JIT cannot be switched off, every approach asked
 * for as not measured with the kernel's refusal.
 */
export function interpreterRecords(target: Target, stamp: RecordStamp, out: InterpreterOutcome, repeat: number, approaches: readonly ApproachName[]): { records: MicroRecord[]; notes: string[] } {
  const interpreted = (r: MicroRecord): MicroRecord => ({ ...r, execution: 'interpreter' });
  if ('notMeasured' in out) {
    return {
      records: approaches.map((a) => interpreted(unsupportedRecord(target, stamp, { variant: a, hop: 'none', status: 'unsupported', reason: out.notMeasured }, repeat))),
      notes: [`interpreter: not measured: ${out.notMeasured}`],
    };
  }
  return {
    records: [
      ...out.measured.rows.map((row) => interpreted(microRecord(target, stamp, row.variant, row.hop, row.chainLength, repeat, row.nsPerPacket))),
      ...out.measured.unsupported.map((u) => interpreted(unsupportedRecord(target, stamp, u, repeat, u.variant === 'fused' ? 1 : 3))),
    ],
    notes: [],
  };
}
