/**
 * One cell (kernel × approach) of the matrix: the session's discarded warm-up, a measured run with
 * its one retry and its record, and the cell's closing record (done, or why not with the runs it
 * has, taking its remaining runs out of the progress total).
 */
import type { ApproachName } from '../results/record.ts';
import { errorMessage, isLabError } from '../errors.ts';
import { measuredOnFields, type CellRecord, type RunRecord } from '../results/record.ts';
import type { MatrixRun } from './context.ts';
import type { KernelSession } from './kernel-session.ts';
import { measure, type Measured, type MeasureWith } from './measure.ts';
import type { Runnable } from './support.ts';

/** Closes a cell that will not get (all) its runs: its remaining runs leave the plan first. */
export async function closeCell(run: MatrixRun, kernel: string, name: ApproachName, status: Exclude<CellRecord['status'], 'done'>, reason: string): Promise<void> {
  run.plan.unplan(run.settings.runs - run.ledger.runsDone(kernel, name));
  await run.ledger.writeCell(kernel, name, status, reason);
}

/**
 * One discarded warm-up per kernel session, with the approach whose run comes first, so the
 * first recorded run is not the cold one (page cache, TCP state, iperf3 binaries). Every run
 * loads its approach afresh, so warming each approach separately would carry nothing over.
 */
export async function warmUp(run: MatrixRun, s: KernelSession, runnable: readonly Runnable[], w: MeasureWith): Promise<void> {
  const { settings } = run;
  const first = runnable.find((r) => run.ledger.runsDone(s.kernel, r.name) < settings.runs);
  if (!settings.warmup || !first) return;
  const warm = settings.quick ? 1 : settings.durationS;
  run.checkAbort();
  run.plan.note(`${s.kernel} warm-up (${first.name}, discarded)`);
  try {
    await measure(run, s, first.impl, first.ctx, warm, 'warm-up', { ...w, probe: null });
  } catch (e) {
    // Not the cell's verdict: its measured runs retry and record a failure properly.
    run.emit(`${s.kernel}: warm-up with ${first.name} failed: ${errorMessage(e)}`, 'warn');
  }
}

function runRecord(run: MatrixRun, s: KernelSession, approach: ApproachName, iteration: number, m: Measured): RunRecord {
  const rec: RunRecord = {
    kind: 'run',
    ...measuredOnFields(s.target, run.settings.runId, s.kernel),
    approach,
    hook: m.hook,
    iteration,
    startedAt: m.startedAt,
    endedAt: m.endedAt,
    iperf: m.iperf,
    probe: m.probe,
    xdpMode: m.xdpMode,
    offloads: m.offloads,
  };
  if (m.probe === null) rec.probeNullReason = m.probeNullReason ?? 'no probe data';
  rec.bpfStats = m.bpfStats;
  if (m.bpfStats === null) rec.bpfStatsNullReason = m.bpfStatsNullReason ?? 'no run-time statistics';
  if (m.patchMode) rec.patchMode = m.patchMode;
  if (m.patchModeReason) rec.patchModeReason = m.patchModeReason;
  return rec;
}

/**
 * Run `i` of one cell, retried once. Recorded (one step of the plan) and true, or the cell is
 * closed as failed and false: its later runs would fail the same way.
 */
export async function measuredRun(run: MatrixRun, s: KernelSession, r: Runnable, i: number, w: MeasureWith): Promise<boolean> {
  const { kernel } = s;
  const note = `${kernel} ${r.name} run ${i + 1}/${run.settings.runs}`;
  let m: Measured | null = null;
  let lastErr: unknown = null;
  for (let attempt = 0; attempt < 2 && m === null; attempt++) {
    try {
      m = await measure(run, s, r.impl, r.ctx, run.settings.durationS, note, w);
    } catch (e) {
      lastErr = e;
      if (isLabError(e, 'INTERRUPTED')) throw e;
      run.emit(`${note} failed${attempt === 0 ? ', retrying once' : ''}: ${errorMessage(e)}`, 'warn');
    }
  }
  if (m === null) {
    const reason = `run ${i} failed twice: ${errorMessage(lastErr)}`;
    run.emit(`${kernel}: ${r.name} failed: ${reason}`, 'warn');
    await closeCell(run, kernel, r.name, 'failed', reason);
    return false;
  }
  await run.ledger.appendRun(runRecord(run, s, r.name, i, m));
  run.plan.step(note);
  return true;
}
