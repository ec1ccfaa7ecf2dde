/**
 * What the reader must be warned of, as flags: TCG kernels, missing provenance, skipped or
 * incomplete cells, too few runs, missing metrics and why, an effective frequency off the pinned
 * one, unmeasured microbenchmarks, bad raw lines; and flags of one cause grouped on one line.
 */
import type { Cell } from './cells.ts';
import { isBaseline } from './hooks.ts';
import { ICOUNT_WARNING, TCG_WARNING, type KernelInfo } from './kernels.ts';
import type { LoadedRun } from './load.ts';
import { APPROACH_LABEL, MIN_RUNS } from './metrics.ts';
import { hookOfApproach, type ApproachName } from '../results/record.ts';

export interface Flag {
  level: 'warn' | 'info';
  kernel?: string;
  approach?: ApproachName;
  text: string;
  /**
   * The text with what varies from one cell to the next taken out, so flags of one cause can be
   * shown as one line; `cell` names what it affects and `detail` what is particular to it there.
   * Absent: the text is its own cause.
   */
  cause?: string;
  cell?: string;
  detail?: string;
}

/** Flags of one cause (level and cause text), with every cell they affect. */
export interface FlagGroup {
  level: Flag['level'];
  cause: string;
  cells: { cell: string; detail?: string }[];
  /** The group in one line: the flag's own text for one cell, else the cause then the cells. */
  text: string;
}

/** How far the effective GHz (cycles / ns) may be from the pinned frequency before it is flagged. */
export const GHZ_TOLERANCE = 0.02;

/**
 * Every flag of a run, in the order the warnings list shows them: the pseudo-run's note, kernels,
 * cells, the thesis reference, microbenchmarks, provenance, bad raw lines, the loader's warnings.
 */
export function modelFlags(run: LoadedRun, kernels: readonly KernelInfo[], cells: readonly Cell[], hasReference: boolean): Flag[] {
  const flags: Flag[] = [];
  if (run.pseudoRun) {
    flags.push({ level: 'info', text: `Thesis pseudo-run (${run.pseudoRun.source}): ${run.pseudoRun.note}` });
  }
  const kernelInfo = new Map(kernels.map((k) => [k.label, k]));
  for (const k of kernels) {
    const kw = { kernel: k.label, cell: k.label };
    if (k.tcg) {
      const cause =
        k.measurement === 'tcg-icount'
          ? `${ICOUNT_WARNING} (QEMU's instruction counter, no KVM); every table and figure row for this kernel is marked.`
          : `${TCG_WARNING} (QEMU without KVM); every table and figure row for this kernel is marked.`;
      flags.push({ level: 'warn', ...kw, cause, text: `${k.label}: ${cause}` });
    }
    if (!k.provenance && (run.runs.some((r) => r.kernel === k.label) || run.micro.some((r) => r.kernel === k.label))) {
      flags.push({ level: 'warn', ...kw, cause: 'no provenance/<kernel>.json: CPU, frequency and tool versions unknown.', text: `${k.label}: no provenance/${k.label}.json: CPU, frequency and tool versions unknown.` });
    }
    if (k.provenance?.accelerator && run.runs.some((r) => r.kernel === k.label && r.accelerator !== k.provenance!.accelerator)) {
      flags.push({ level: 'warn', ...kw, cause: "runs name an accelerator other than the provenance's.", detail: `provenance: ${k.provenance.accelerator}`, text: `${k.label}: runs name an accelerator other than the provenance's (${k.provenance.accelerator}).` });
    }
  }
  // A kernel the machine could not obtain skips every approach for one reason: say it once.
  const wholeKernelSkipped = new Set<string>();
  for (const k of kernels) {
    const mine = cells.filter((c) => c.kernel === k.label);
    if (mine.length > 0 && mine.every((c) => c.record?.status === 'skipped' && c.runs.length === 0)) {
      wholeKernelSkipped.add(k.label);
      const reason = mine[0]!.record?.reason;
      const cause = `every approach skipped${reason ? ` — ${reason}` : ' (no reason recorded)'}`;
      flags.push({ level: 'warn', kernel: k.label, cell: k.label, cause, text: `${k.label}: ${cause}` });
    }
  }
  for (const cell of cells) {
    if (!wholeKernelSkipped.has(cell.kernel)) cellFlags(cell, kernelInfo.get(cell.kernel) ?? null, flags, run.pseudoRun !== null);
  }
  if (!hasReference) flags.push({ level: 'info', text: 'thesis reference tables not found: no side-by-side comparison.' });
  for (const m of run.microReasons) {
    // The interpreter's refusals are not the JIT's: a variant measured with the JIT may fail without it.
    const where = m.execution === 'interpreter' ? ' in the interpreter' : '';
    flags.push({
      level: 'info',
      kernel: m.kernel,
      cell: `${m.kernel} / ${m.variant}${where} (length ${m.chainLength})`,
      cause: `microbenchmark${where} not measured — ${m.reason}`,
      text: `${m.kernel} / microbenchmark ${m.variant}${where} (length ${m.chainLength}): not measured — ${m.reason}`,
    });
  }
  for (const r of run.micro) {
    if (r.nsPerPacket.length === 0 && !run.microReasons.some((m) => m.kernel === r.kernel && m.variant === r.variant && m.chainLength === r.chainLength)) {
      flags.push({
        level: 'warn',
        kernel: r.kernel,
        cell: `${r.kernel} / ${r.variant} (length ${r.chainLength})`,
        cause: 'microbenchmark record without repetitions and without a reason',
        text: `${r.kernel} / microbenchmark ${r.variant} (length ${r.chainLength}): record without repetitions and without a reason`,
      });
    }
  }
  // Provenance warnings (probe overhead, frequency notes...) belong in the warnings list too; one
  // line per distinct text, naming the kernels it applies to.
  const provWarnings = new Map<string, string[]>();
  for (const k of kernels) for (const w of k.provenance?.warnings ?? []) provWarnings.set(w, [...(provWarnings.get(w) ?? []), k.label]);
  for (const [w, ks] of provWarnings) flags.push({ level: 'info', text: `provenance (${ks.join(', ')}): ${w}` });
  for (const b of run.badLines) flags.push({ level: 'warn', cell: `${b.file}:${b.line}`, cause: `raw line skipped: ${b.error}`, text: `${b.file}:${b.line}: skipped: ${b.error}` });
  for (const w of run.warnings) flags.push({ level: 'warn', text: w });
  return flags;
}

function cellFlags(cell: Cell, k: KernelInfo | null, flags: Flag[], pseudoRun: boolean): void {
  const name = `${cell.kernel} / ${APPROACH_LABEL[cell.approach]}`;
  // text: the flag as one line (what summary.json's readers and tests see); cause: the same with
  // the cell's particulars (counts, measured values) moved to detail, so cells can share one line.
  const add = (level: Flag['level'], text: string, cause: string, detail?: string) =>
    flags.push({ level, kernel: cell.kernel, approach: cell.approach, cell: name, cause, ...(detail !== undefined ? { detail } : {}), text: `${name}: ${text}` });
  const rec = cell.record;
  if (rec && rec.status !== 'done') {
    const t = `${rec.status}${rec.reason ? ` — ${rec.reason}` : ' (no reason recorded)'}`;
    add('warn', t, t);
  } else if (!rec && cell.runs.length > 0) {
    add(
      'warn',
      `no cell record: the cell did not finish (matrix interrupted or still running); ${cell.runs.length} run(s) used.`,
      'no cell record: the cell did not finish (matrix interrupted or still running); its runs are used.',
      `${cell.runs.length} run(s)`,
    );
  } else if (rec && rec.runs !== cell.runs.length) {
    add(
      'warn',
      `the cell record says ${rec.runs} run(s), ${cell.runs.length} valid run record(s) found.`,
      'the cell record names another number of runs than the valid run records found.',
      `record ${rec.runs}, found ${cell.runs.length}`,
    );
  }
  // A pseudo-run has n = 1 everywhere and says so once in its banner.
  if (!pseudoRun && cell.runs.length > 0 && cell.runs.length < MIN_RUNS) {
    add(
      'warn',
      `only ${cell.runs.length} run(s) (fewer than ${MIN_RUNS}): medians, IQR and CI are fragile.`,
      `fewer than ${MIN_RUNS} runs: medians, IQR and CI are fragile.`,
      `n=${cell.runs.length}`,
    );
  }
  // On TC the veth_poll probe is not used at all: its absence is the hook's, said once in the TC section.
  const probed = hookOfApproach(cell.approach) === 'xdp';
  if (probed && cell.approach === 'none' && cell.runs.length > 0 && cell.values.ns.length === 0) {
    const t = `no probe data — ${(cell.nullReasons.ns ?? []).join('; ')}. Only throughput is shown.`;
    add('info', t, t);
  } else if (probed && cell.runs.length > 0 && cell.values.ns.length === 0) {
    const t = `no probe data — ${(cell.nullReasons.ns ?? ['no reason recorded']).join('; ')}.`;
    add('warn', t, t);
  }
  const statsNull = cell.runs.filter((r) => r.bpfStats === null);
  if (!isBaseline(cell.approach) && statsNull.length > 0) {
    const why = `${(cell.nullReasons.statsNsPerPacket ?? ['no reason recorded']).join('; ')} (shown as empty, never 0).`;
    add('info', `BPF run-time statistics missing in ${statsNull.length} of ${cell.runs.length} run(s) — ${why}`, `BPF run-time statistics missing — ${why}`, `${statsNull.length} of ${cell.runs.length} run(s)`);
  }
  if (cell.values.calls.length > 0 && cell.values.cycles.length < cell.values.calls.length) {
    const why = `${(cell.nullReasons.cycles ?? []).join('; ')} (shown as empty, never 0).`;
    const missing = `${cell.values.calls.length - cell.values.cycles.length} of ${cell.values.calls.length} run(s)`;
    add('info', `cycles missing in ${missing} — ${why}`, `cycles missing — ${why}`, missing);
  }
  const ghz = cell.stats.effectiveGhz;
  if (ghz) {
    const mhz = k?.provenance?.cpuFrequency.mhz ?? null;
    const measured = `${ghz.median.toFixed(3)} GHz`;
    if (mhz === null) {
      const note = k?.provenance?.cpuFrequency.note ? ` (${k.provenance.cpuFrequency.note})` : '';
      add(
        'info',
        `effective ${measured} (cycles/ns) cannot be checked: no pinned frequency recorded${note}.`,
        `effective GHz (cycles/ns) cannot be checked: no pinned frequency recorded${note}.`,
        `measured ${measured}`,
      );
    } else {
      const expected = mhz / 1000;
      const rel = (ghz.median - expected) / expected;
      if (Math.abs(rel) > GHZ_TOLERANCE) {
        const why = 'the frequency was not what was pinned, or cycles and ns do not cover the same interval.';
        add(
          'warn',
          `effective ${measured} (cycles/ns) differs from the recorded ${expected.toFixed(3)} GHz by ${(rel * 100).toFixed(1)}% (> ${GHZ_TOLERANCE * 100}%): ${why}`,
          `effective GHz (cycles/ns) differs from the recorded frequency by more than ${GHZ_TOLERANCE * 100}%: ${why}`,
          `${measured} vs ${expected.toFixed(3)}, ${rel >= 0 ? '+' : '−'}${Math.abs(rel * 100).toFixed(1)}%`,
        );
      }
    }
  }
}

/**
 * Flags of one cause on one line each, in order of first appearance. Where every cell shares the
 * same detail it joins the cause ("fewer than 5 runs (n=2)") instead of being repeated per cell.
 */
export function groupFlags(flags: readonly Flag[]): FlagGroup[] {
  const groups = new Map<string, { level: Flag['level']; cause: string; first: string; cells: { cell: string; detail?: string }[] }>();
  for (const f of flags) {
    const cause = f.cause ?? f.text;
    const key = `${f.level}\u0000${cause}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { level: f.level, cause, first: f.text, cells: [] }));
    if (f.cause !== undefined && f.cell !== undefined) g.cells.push(f.detail !== undefined ? { cell: f.cell, detail: f.detail } : { cell: f.cell });
  }
  return [...groups.values()].map((g) => {
    // A cause of one cell reads best as the flag itself ("6.1 / Manual: unsupported — …").
    if (g.cells.length <= 1) return { level: g.level, cause: g.cause, cells: g.cells, text: g.first };
    const details = new Set(g.cells.map((c) => c.detail));
    const shared = details.size === 1 ? [...details][0] : undefined;
    const cause = shared !== undefined ? `${g.cause.replace(/[.:]$/, '')} (${shared}).` : g.cause;
    const cells = shared !== undefined ? g.cells.map((c) => ({ cell: c.cell })) : g.cells;
    return { level: g.level, cause, cells, text: `${cause} — ${cells.length}: ${flagCellsText(cells)}` };
  });
}

export function flagCellsText(cells: readonly { cell: string; detail?: string }[]): string {
  return cells.map((c) => (c.detail !== undefined ? `${c.cell} (${c.detail})` : c.cell)).join(', ');
}
