/**
 * What every stage of one matrix invocation shares: its checked settings, the resume ledger, the
 * progress plan, the warnings that end up in the summary, log lines, and the abort check between
 * runs (a stop there is resumable).
 */
import { LabError } from '../errors.ts';
import type { Ledger } from './ledger.ts';
import type { MatrixSettings, StepPlan } from './plan.ts';

export class MatrixRun {
  constructor(
    readonly settings: MatrixSettings,
    readonly ledger: Ledger,
    readonly plan: StepPlan,
    /** The invocation's warnings, in the order they arose (the summary's notes). */
    readonly warnings: string[],
  ) {}

  emit(message: string, level: 'info' | 'warn' = 'info'): void {
    this.settings.progress({ kind: 'log', level, message });
  }

  /** A warning for the summary, also logged. */
  warn(message: string): void {
    this.warnings.push(message);
    this.emit(message, 'warn');
  }

  /** Throws INTERRUPTED once the caller's signal is aborted; the run id can then be resumed. */
  checkAbort(): void {
    if (this.settings.signal?.aborted) {
      throw new LabError('INTERRUPTED', `matrix ${this.settings.runId} interrupted; ${this.ledger.appended.runs} run(s) recorded this time`, {
        remedy: `Rerun with --run-id ${this.settings.runId} to resume where it stopped.`,
      });
    }
  }
}
