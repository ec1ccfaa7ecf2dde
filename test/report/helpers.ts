/** Shared by the report tests: fixtures copied to a scratch directory, a small CSV reader, PNG headers. */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = join(REPO, 'test', 'fixtures', 'report');
/** The thesis tables as the project received them (shared/ beside the repository). */
export const SHARED_REFERENCE = resolve(REPO, '..', 'shared', 'reference');

const scratch: string[] = [];

/** A fresh copy of a fixture run directory (renderReport writes into the run directory). */
export function fixtureCopy(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `h5-report-${name}-`));
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  scratch.push(dir);
  return dir;
}

export function scratchDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `h5-report-${tag}-`));
  scratch.push(dir);
  return dir;
}

export function cleanScratch(): void {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** RFC 4180 reader: enough for csv-stringify's output (quotes, doubled quotes, commas in fields). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Rows as objects keyed by the header. */
export function readCsv(path: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(readFileSync(path, 'utf8'));
  return rows.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])));
}

export interface PngInfo {
  width: number;
  height: number;
  bytes: number;
}

/** Width and height from the IHDR chunk, after checking the PNG signature. */
export function pngInfo(path: string): PngInfo {
  const b = readFileSync(path);
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((v, i) => b[i] === v)) throw new Error(`${path}: not a PNG`);
  if (b.subarray(12, 16).toString('ascii') !== 'IHDR') throw new Error(`${path}: first chunk is not IHDR`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bytes: b.length };
}
