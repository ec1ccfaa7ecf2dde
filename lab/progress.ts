/**
 * Long work (kernel downloads, image builds, boots, benchmark runs) reports typed events;
 * only lab/ui turns them into a progress bar or plain lines. Library code never prints.
 */
import { errorMessage } from './errors.ts';

export type ProgressEvent =
  | { kind: 'phase-start'; id: string; label: string; total?: number }
  | { kind: 'phase-progress'; id: string; done: number; total?: number; note?: string }
  | { kind: 'phase-end'; id: string; ok: boolean; message?: string }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string };

export type ProgressSink = (event: ProgressEvent) => void;

/** A sink that drops everything: the default for library calls and tests. */
export const silent: ProgressSink = () => {};

/** Runs `work` inside a phase, ending the phase with its outcome on every path. */
export async function phase<T>(
  sink: ProgressSink,
  id: string,
  label: string,
  work: () => Promise<T>,
): Promise<T> {
  sink({ kind: 'phase-start', id, label });
  try {
    const result = await work();
    sink({ kind: 'phase-end', id, ok: true });
    return result;
  } catch (e) {
    sink({ kind: 'phase-end', id, ok: false, message: errorMessage(e) });
    throw e;
  }
}
