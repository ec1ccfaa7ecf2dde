/**
 * The kernels of a run, newest first: gathered from every record and provenance file, how each was
 * measured (host, KVM, TCG, TCG icount), and the warning its numbers carry where they are not
 * wall-clock performance.
 */
import type { Clock, Provenance, RunRecord } from '../results/record.ts';
import { Version } from '../version.ts';
import type { LoadedRun } from './load.ts';

export type Accelerator = RunRecord['accelerator'];

export const TCG_WARNING = 'TCG emulation: not a performance measurement';
/** TCG under QEMU's instruction counter: guest time is a function of the instructions run. */
export const ICOUNT_WARNING = 'instruction-timed (TCG icount): reproducible, not wall-clock performance';

/**
 * How a kernel's numbers were measured. One TCG record makes the whole kernel emulated; it is
 * instruction-timed only when every record of it ran under the instruction counter.
 */
export type Measurement = 'host' | 'kvm' | 'tcg' | 'tcg-icount';
export const MEASUREMENT_LABEL: Record<Measurement, string> = {
  host: 'host (real)',
  kvm: 'KVM',
  tcg: 'TCG (emulated: shape only, not a performance measurement)',
  'tcg-icount': ICOUNT_WARNING,
};

export interface KernelInfo {
  label: string;
  release: string;
  accelerators: Accelerator[];
  tcg: boolean;
  /** Clocks named by its records and provenance ('wall' where absent). */
  clocks: Clock[];
  /** Null for a kernel with no measurement at all (only cell records, e.g. skipped). */
  measurement: Measurement | null;
  provenance: Provenance | null;
  /** From the label, else the release; null when neither names one. */
  version: Version | null;
}

/** The kernel's warning where its numbers are not wall-clock performance, else null. */
export function kernelWarning(k: Pick<KernelInfo, 'tcg' | 'measurement'> | null | undefined): string | null {
  if (!k?.tcg) return null;
  return k.measurement === 'tcg-icount' ? ICOUNT_WARNING : TCG_WARNING;
}

/** The kernels (of those named, default all) whose numbers are not wall-clock performance, by warning. */
export function kernelWarnings(kernels: readonly KernelInfo[], only?: readonly string[]): { text: string; kernels: string[] }[] {
  const out = new Map<string, string[]>();
  for (const k of kernels) {
    const w = kernelWarning(k);
    if (w && (!only || only.includes(k.label))) out.set(w, [...(out.get(w) ?? []), k.label]);
  }
  return [...out.entries()].map(([text, ks]) => ({ text, kernels: ks }));
}

export function measurementLabel(k: Pick<KernelInfo, 'measurement'>): string {
  return k.measurement ? MEASUREMENT_LABEL[k.measurement] : 'not measured';
}

/** Every kernel any record or provenance file names: from runs, cells, micro, latency and provenance. */
export function collectKernels(run: LoadedRun): KernelInfo[] {
  const kernelMap = new Map<string, { releases: Set<string>; accels: Set<Accelerator>; clocks: Set<Clock> }>();
  const touch = (k: string) => {
    let e = kernelMap.get(k);
    if (!e) kernelMap.set(k, (e = { releases: new Set(), accels: new Set(), clocks: new Set() }));
    return e;
  };
  for (const r of run.runs) {
    const e = touch(r.kernel);
    e.releases.add(r.kernelRelease);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const r of run.micro) {
    const e = touch(r.kernel);
    e.releases.add(r.kernelRelease);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const r of run.latency) {
    const e = touch(r.kernel);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const r of run.rtt) {
    const e = touch(r.kernel);
    e.releases.add(r.kernelRelease);
    e.accels.add(r.accelerator);
    e.clocks.add(r.clock ?? 'wall');
  }
  for (const c of run.cells) touch(c.kernel);
  for (const p of run.provenance.values()) {
    const e = touch(p.kernel);
    e.releases.add(p.kernelRelease);
    e.accels.add(p.accelerator);
    e.clocks.add(p.clock ?? 'wall');
  }
  const kernels: KernelInfo[] = [...kernelMap.entries()].map(([label, e]) => {
    const prov = run.provenance.get(label) ?? null;
    const release = prov?.kernelRelease ?? [...e.releases][0] ?? label;
    const accelerators = [...e.accels].sort();
    const clocks = [...e.clocks].sort();
    const measurement: Measurement | null = accelerators.includes('tcg')
      ? clocks.every((c) => c === 'icount')
        ? 'tcg-icount'
        : 'tcg'
      : accelerators.includes('kvm')
        ? 'kvm'
        : accelerators.includes('host')
          ? 'host'
          : null;
    return {
      label,
      release,
      accelerators,
      tcg: accelerators.includes('tcg'),
      clocks,
      measurement,
      provenance: prov,
      version: Version.find(label) ?? Version.find(release),
    };
  });
  return kernels.sort(compareVersionsDesc);
}

/** Newest kernel first; a kernel with no version in its label or release after every other. */
function compareVersionsDesc(a: KernelInfo, b: KernelInfo): number {
  if (a.version && b.version) return b.version.compare(a.version) || a.label.localeCompare(b.label);
  if (a.version || b.version) return a.version ? -1 : 1;
  return a.label.localeCompare(b.label);
}
