/**
 * The only place that turns progress events into terminal output. On a TTY each phase with a
 * known total gets a progress bar with an ETA (cli-progress); elsewhere (CI, pipes) one plain,
 * timestamped line per event, so logs stay readable.
 */
import cliProgress from 'cli-progress';
import type { ProgressEvent, ProgressSink } from '../progress.ts';

export interface RenderOptions {
  /** Force plain lines even on a TTY. */
  plain?: boolean;
  stream?: NodeJS.WriteStream;
  verbose?: boolean;
}

function stamp(): string {
  return new Date().toISOString().slice(11, 19);
}

function fmtSeconds(ms: number): string {
  const s = ms / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function consoleSink(options: RenderOptions = {}): ProgressSink & { stop(): void } {
  const stream = options.stream ?? process.stderr;
  const fancy = !options.plain && stream.isTTY === true && process.env.CI === undefined;
  const labels = new Map<string, { label: string; started: number }>();
  const multibar = fancy
    ? new cliProgress.MultiBar(
        {
          stream,
          clearOnComplete: false,
          hideCursor: true,
          format: ' {bar} {percentage}% | {value}/{total} | ETA {eta_formatted} | {label} {note}',
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const bars = new Map<string, cliProgress.SingleBar>();

  const line = (text: string): void => {
    if (multibar) multibar.log(`${text}\n`);
    else stream.write(`[${stamp()}] ${text}\n`);
  };

  const sink = (event: ProgressEvent): void => {
    switch (event.kind) {
      case 'phase-start': {
        labels.set(event.id, { label: event.label, started: Date.now() });
        if (multibar && event.total !== undefined) {
          bars.set(event.id, multibar.create(event.total, 0, { label: event.label, note: '' }));
        } else {
          line(`${event.label} ...`);
        }
        break;
      }
      case 'phase-progress': {
        const bar = bars.get(event.id);
        if (bar) {
          if (event.total !== undefined) bar.setTotal(event.total);
          bar.update(event.done, { note: event.note ?? '' });
        } else {
          const l = labels.get(event.id);
          const total = event.total !== undefined ? `/${event.total}` : '';
          let eta = '';
          if (l && event.total !== undefined && event.done > 0) {
            const elapsed = Date.now() - l.started;
            eta = `, ETA ${fmtSeconds((elapsed / event.done) * (event.total - event.done))}`;
          }
          line(`${l?.label ?? event.id}: ${event.done}${total}${eta}${event.note ? ` — ${event.note}` : ''}`);
        }
        break;
      }
      case 'phase-end': {
        const l = labels.get(event.id);
        const took = l ? ` (${fmtSeconds(Date.now() - l.started)})` : '';
        const bar = bars.get(event.id);
        if (bar) {
          bar.stop();
          bars.delete(event.id);
        }
        line(`${event.ok ? 'done' : 'FAILED'}: ${l?.label ?? event.id}${took}${event.message ? ` — ${event.message}` : ''}`);
        labels.delete(event.id);
        break;
      }
      case 'log': {
        const prefix = event.level === 'info' ? '' : `${event.level.toUpperCase()}: `;
        line(`${prefix}${event.message}`);
        break;
      }
    }
  };
  return Object.assign(sink, {
    stop(): void {
      multibar?.stop();
    },
  });
}
