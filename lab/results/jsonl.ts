/**
 * results/<run-id>/raw.jsonl: the append-only raw results. Each record is written as one complete
 * line with a single write followed by fsync, so a kill -9 can at worst leave a torn last line
 * (no trailing newline). Reading on resume detects that tail, moves it aside into a
 * `raw.torn-<time>.txt` file and truncates it away, so the next append starts on a line boundary
 * and the torn bytes are never counted.
 */
import { open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LabError, describeIssues } from '../errors.ts';
import { RawRecord } from './record.ts';

export interface LoadedRaw {
  records: RawRecord[];
  /** Set when a torn last line was found and removed. */
  torn?: { bytes: number; savedTo: string };
}

/** Appends one record as one line: a single write of the whole line, then fsync. */
export async function appendRecord(file: string, record: RawRecord): Promise<void> {
  const parsed = RawRecord.safeParse(record);
  if (!parsed.success) {
    throw new LabError('RESULTS', `${file}: refusing to write a record that does not match the schema: ${parsed.error.message}`, {
      remedy: 'This is a bug in the bench: report it with the record shown.',
      details: { record },
    });
  }
  const line = `${JSON.stringify(record)}\n`;
  let fh;
  try {
    fh = await open(file, 'a');
    await fh.appendFile(line, 'utf8');
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LabError(code === 'ENOSPC' ? 'DISK_FULL' : 'RESULTS', `${file}: cannot append a record: ${(e as Error).message}`, {
      cause: e,
      remedy: code === 'ENOSPC' ? 'Free disk space, then rerun with the same --run-id to resume.' : 'Check the results directory is writable.',
    });
  } finally {
    await fh?.close();
  }
}

/**
 * Reads every record. A last line without its newline is a torn write: it is saved aside and
 * truncated away (when `repair`), and reported in `torn`. Any other line that does not parse is an
 * error naming file and line, never silently skipped.
 */
export async function loadRecords(file: string, options: { repair?: boolean } = {}): Promise<LoadedRaw> {
  if (!existsSync(file)) return { records: [] };
  const buf = await readFile(file);
  const text = buf.toString('utf8');
  const lastNl = text.lastIndexOf('\n');
  const complete = lastNl < 0 ? '' : text.slice(0, lastNl + 1);
  const tail = text.slice(lastNl + 1);
  const result: LoadedRaw = { records: [] };
  if (tail.length > 0) {
    const tailBytes = Buffer.byteLength(tail, 'utf8');
    const savedTo = join(dirname(file), `${basename(file, '.jsonl')}.torn-${new Date().toISOString().replace(/[:.]/g, '-')}.txt`);
    if (options.repair !== false) {
      await writeFile(savedTo, tail);
      await truncate(file, (await stat(file)).size - tailBytes);
    }
    result.torn = { bytes: tailBytes, savedTo };
  }
  const lines = complete.split('\n');
  lines.pop(); // the empty string after the final newline
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new LabError('RESULTS', `${file}:${i + 1}: not JSON (${(e as Error).message})`, {
        remedy: 'The file was edited or corrupted: fix or delete that line, or start a new --run-id.',
      });
    }
    const parsed = RawRecord.safeParse(json);
    if (!parsed.success) {
      throw new LabError('RESULTS', `${file}:${i + 1}: record does not match the raw-results schema: ${describeIssues(parsed.error.issues)}`, {
        remedy: 'The file was written by another version of the lab or edited: start a new --run-id.',
      });
    }
    result.records.push(parsed.data);
  });
  return result;
}
