/**
 * Reads a run directory: every top-level *.jsonl file line by line against the raw-results schema,
 * the provenance files, and the pseudo-run marker. A line that does not parse is reported with its
 * file and line and skipped — never used, never dropped silently.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { LabError, describeIssues, errorMessage } from '../errors.ts';
import {
  CellRecord,
  LatencyRecord,
  RttRecord,
  MicroRecord,
  Provenance,
  RawRecord,
  RunRecord,
} from '../results/record.ts';

/** results/<run-id>/pseudo-run.json: written by lab/report/thesis.ts, absent for measured runs. */
export const PseudoRunMarker = z.object({
  kind: z.literal('thesis-pseudo-run'),
  source: z.string(),
  referenceFiles: z.array(z.string()),
  /**
   * The thesis counted veth_poll calls and called them packets; the pseudo-run stores its count in
   * probe.calls and (because the schema needs a number) in probe.packets. The report must then treat
   * the true packet count as unknown.
   */
  packetsAreCalls: z.boolean(),
  note: z.string(),
});
export type PseudoRunMarker = z.infer<typeof PseudoRunMarker>;
export const PSEUDO_RUN_FILE = 'pseudo-run.json';

export interface BadLine {
  /** The file as reached from the run directory given, e.g. "results/run-1/raw.jsonl". */
  file: string;
  line: number;
  error: string;
}

export interface LoadedRun {
  runDir: string;
  runs: RunRecord[];
  cells: CellRecord[];
  micro: MicroRecord[];
  latency: LatencyRecord[];
  /** Round trips through each approach (pings across the veth pair). */
  rtt: RttRecord[];
  provenance: Map<string, Provenance>;
  /**
   * Microbenchmark variants recorded as not measured: the bench writes them as MicroRecords with no
   * repetitions and a `reason` field the schema does not name (zod drops it, so it is kept here).
   */
  microReasons: { kernel: string; variant: string; chainLength: number; reason: string; execution?: 'jit' | 'interpreter' }[];
  pseudoRun: PseudoRunMarker | null;
  badLines: BadLine[];
  /** Problems with whole files (provenance, marker) and duplicates, in words. */
  warnings: string[];
  files: string[];
}

const describeZod = (e: z.ZodError): string => describeIssues(e.issues, { max: 3, whole: '(record)' });

export function loadRun(runDir: string): LoadedRun {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) {
    throw new LabError('REPORT', `${runDir}: no such run directory`, {
      remedy: 'Pass a directory written by `npm run matrix` (results/<run-id>), or `--thesis` for the thesis pseudo-run.',
      details: { runDir },
    });
  }
  const files = readdirSync(runDir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  const shown = (f: string) => join(runDir, f);
  const out: LoadedRun = {
    runDir,
    runs: [],
    cells: [],
    micro: [],
    latency: [],
    rtt: [],
    provenance: new Map(),
    microReasons: [],
    pseudoRun: null,
    badLines: [],
    warnings: [],
    files: files.map(shown),
  };
  let nonBlank = 0;
  for (const f of files) {
    const text = readFileSync(join(runDir, f), 'utf8');
    const lines = text.split('\n');
    lines.forEach((raw, i) => {
      if (raw.trim() === '') return;
      nonBlank++;
      const where = { file: shown(f), line: i + 1 };
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch (e) {
        const last = i === lines.length - 1 && !text.endsWith('\n');
        out.badLines.push({
          ...where,
          error: `bad JSON (${errorMessage(e)})${last ? '; last line without newline: a record cut by a kill?' : ''}`,
        });
        return;
      }
      const parsed = RawRecord.safeParse(json);
      if (!parsed.success) {
        out.badLines.push({ ...where, error: `schema mismatch: ${describeZod(parsed.error)}` });
        return;
      }
      const r = parsed.data;
      if (r.kind === 'run') out.runs.push(r);
      else if (r.kind === 'cell') out.cells.push(r);
      else if (r.kind === 'micro') {
        out.micro.push(r);
        const reason = (json as { reason?: unknown }).reason;
        if (typeof reason === 'string') out.microReasons.push({ kernel: r.kernel, variant: r.variant, chainLength: r.chainLength, reason, ...(r.execution ? { execution: r.execution } : {}) });
      }
      else if (r.kind === 'rtt') out.rtt.push(r);
      else out.latency.push(r);
    });
  }
  if (nonBlank === 0) {
    throw new LabError('REPORT', `${runDir}: no raw results (no *.jsonl file, or only empty ones)`, {
      remedy: 'Run `npm run matrix` (or `npm run kernel -- <version>`) into this directory first; a directory is reportable once it has raw.jsonl.',
      details: { runDir, files },
    });
  }
  if (out.runs.length + out.cells.length + out.micro.length + out.latency.length + out.rtt.length === 0) {
    const first = out.badLines.slice(0, 3).map((b) => `${b.file}:${b.line}: ${b.error}`);
    throw new LabError('REPORT', `${runDir}: none of ${out.badLines.length} raw lines is a valid record (${first.join(' | ')})`, {
      remedy: 'Check that the directory holds raw results of this lab version (lab/results/record.ts, schema 1).',
      details: { runDir, badLines: out.badLines },
    });
  }

  dedupeRuns(out);

  const provDir = join(runDir, 'provenance');
  if (existsSync(provDir)) {
    for (const f of readdirSync(provDir).filter((x) => x.endsWith('.json')).sort()) {
      const path = join(provDir, f);
      try {
        const p = Provenance.safeParse(JSON.parse(readFileSync(path, 'utf8')));
        if (!p.success) out.warnings.push(`${shown(join('provenance', f))}: provenance skipped, schema mismatch: ${describeZod(p.error)}`);
        else out.provenance.set(p.data.kernel, p.data);
      } catch (e) {
        out.warnings.push(`${shown(join('provenance', f))}: provenance skipped, bad JSON (${errorMessage(e)})`);
      }
    }
  }
  const marker = join(runDir, PSEUDO_RUN_FILE);
  if (existsSync(marker)) {
    try {
      const m = PseudoRunMarker.safeParse(JSON.parse(readFileSync(marker, 'utf8')));
      if (m.success) out.pseudoRun = m.data;
      else out.warnings.push(`${shown(PSEUDO_RUN_FILE)}: marker ignored, schema mismatch: ${describeZod(m.error)}`);
    } catch (e) {
      out.warnings.push(`${shown(PSEUDO_RUN_FILE)}: marker ignored, bad JSON (${errorMessage(e)})`);
    }
  }
  const runIds = new Set([...out.runs, ...out.cells, ...out.micro, ...out.latency, ...out.rtt].map((r) => r.runId));
  if (runIds.size > 1) out.warnings.push(`records from ${runIds.size} different run ids in one directory: ${[...runIds].join(', ')}`);
  return out;
}

/**
 * A resumed matrix must not count a run twice; if it did, the first record of a
 * (kernel, approach, iteration) is kept and the repeat is reported.
 */
function dedupeRuns(out: LoadedRun): void {
  const seen = new Set<string>();
  const kept: RunRecord[] = [];
  let dropped = 0;
  for (const r of out.runs) {
    const key = `${r.kernel}\u0000${r.approach}\u0000${r.iteration}`;
    if (seen.has(key)) {
      dropped++;
      out.warnings.push(`duplicate run record: kernel ${r.kernel}, approach ${r.approach}, iteration ${r.iteration} (second copy ignored)`);
      continue;
    }
    seen.add(key);
    kept.push(r);
  }
  if (dropped > 0) out.runs = kept;
  const cellSeen = new Map<string, CellRecord>();
  for (const c of out.cells) {
    const key = `${c.kernel}\u0000${c.approach}`;
    if (cellSeen.has(key)) out.warnings.push(`more than one cell record for kernel ${c.kernel}, approach ${c.approach}: the last one is used`);
    cellSeen.set(key, c);
  }
  out.cells = [...cellSeen.values()];
}
