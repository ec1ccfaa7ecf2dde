/**
 * The resume ledger: results/<run-id>/raw.jsonl is the matrix's only state. Loading it tells which
 * runs and cells are already recorded (a torn last line, the trace of a kill, is set aside); every
 * run and cell record goes through here so the ledger and the file never disagree. A resume with
 * other run lengths is refused before anything boots: mixing them would make the medians meaningless.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApproachName } from '../results/record.ts';
import { LabError } from '../errors.ts';
import { appendRecord, loadRecords } from '../results/jsonl.ts';
import { SCHEMA_VERSION, type CellRecord, type RawRecord, type RunRecord } from '../results/record.ts';
import { readProvenance } from './provenance.ts';

const cellKey = (kernel: string, approach: ApproachName): string => `${kernel}|${approach}`;
const runKey = (kernel: string, approach: ApproachName, i: number): string => `${kernel}|${approach}|${i}`;

export class Ledger {
  readonly rawFile: string;
  /** Records appended by this invocation. */
  readonly appended = { runs: 0, cells: 0 };
  private readonly doneRuns = new Set<string>();
  private readonly cells = new Map<string, CellRecord>();
  /** Record kinds raw.jsonl held per kernel when loaded (what a per-kernel stage has already done). */
  private readonly kinds = new Map<string, Set<RawRecord['kind']>>();

  constructor(
    readonly runId: string,
    readonly runDir: string,
    /** Measured runs per cell. */
    private readonly runs: number,
  ) {
    this.rawFile = join(runDir, 'raw.jsonl');
  }

  /**
   * Reads raw.jsonl back (creating the run directory). `onTorn` hears about a torn last line
   * before the records are checked; returns how many records the file held.
   */
  async load(onTorn: (message: string) => void): Promise<number> {
    await mkdir(this.runDir, { recursive: true });
    const loaded = await loadRecords(this.rawFile, { repair: true });
    if (loaded.torn) {
      onTorn(`${this.rawFile}: ignored a torn last line (${loaded.torn.bytes} bytes, an interrupted write); saved to ${loaded.torn.savedTo}`);
    }
    for (const r of loaded.records) {
      if (r.runId !== this.runId) {
        throw new LabError('RESULTS', `${this.rawFile}: holds records of run id "${r.runId}", not "${this.runId}"`, {
          remedy: 'Each run id has its own directory: pick another --run-id or --out.',
        });
      }
      if (r.kind === 'run') this.doneRuns.add(runKey(r.kernel, r.approach, r.iteration));
      if (r.kind === 'cell') this.cells.set(cellKey(r.kernel, r.approach), r);
      const seen = this.kinds.get(r.kernel) ?? new Set<RawRecord['kind']>();
      seen.add(r.kind);
      this.kinds.set(r.kernel, seen);
    }
    return loaded.records.length;
  }

  /** Refuses to resume a kernel whose provenance says it was started with other run lengths. */
  async refuseOtherRunLengths(kernels: readonly string[], durationS: number): Promise<void> {
    for (const k of kernels) {
      const prev = await readProvenance(join(this.runDir, 'provenance', `${k}.json`));
      if (prev && (prev.options.runs !== this.runs || prev.options.durationS !== durationS)) {
        throw new LabError(
          'BAD_INPUT',
          `run ${this.runId}, kernel ${k}: started with ${prev.options.runs} runs of ${prev.options.durationS} s, resumed with ${this.runs} of ${durationS} s`,
          { remedy: `Resume with --runs ${prev.options.runs} --duration ${prev.options.durationS}, or start a new --run-id.` },
        );
      }
    }
  }

  get runsRecorded(): number {
    return this.doneRuns.size;
  }

  get cellsRecorded(): number {
    return this.cells.size;
  }

  hasCell(kernel: string, approach: ApproachName): boolean {
    return this.cells.has(cellKey(kernel, approach));
  }

  cell(kernel: string, approach: ApproachName): CellRecord | undefined {
    return this.cells.get(cellKey(kernel, approach));
  }

  hasRun(kernel: string, approach: ApproachName, iteration: number): boolean {
    return this.doneRuns.has(runKey(kernel, approach, iteration));
  }

  runsDone(kernel: string, approach: ApproachName): number {
    let n = 0;
    for (let i = 0; i < this.runs; i++) if (this.hasRun(kernel, approach, i)) n++;
    return n;
  }

  /** The record kinds raw.jsonl held for `kernel` when it was loaded. */
  recordedKinds(kernel: string): ReadonlySet<RawRecord['kind']> {
    return this.kinds.get(kernel) ?? new Set();
  }

  async appendRun(rec: RunRecord): Promise<void> {
    await appendRecord(this.rawFile, rec);
    this.doneRuns.add(runKey(rec.kernel, rec.approach, rec.iteration));
    this.appended.runs++;
  }

  /** Closes a cell: done, or why not (unsupported, skipped, failed) with the runs it has. */
  async writeCell(kernel: string, approach: ApproachName, status: CellRecord['status'], reason?: string): Promise<void> {
    const rec: CellRecord = { kind: 'cell', schema: SCHEMA_VERSION, runId: this.runId, kernel, approach, status, runs: this.runsDone(kernel, approach) };
    if (reason !== undefined) rec.reason = reason;
    await appendRecord(this.rawFile, rec);
    this.cells.set(cellKey(kernel, approach), rec);
    this.appended.cells++;
  }
}
