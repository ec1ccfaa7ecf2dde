/**
 * Published checksum lists: Ubuntu mainline's CHECKSUMS (sha1 and sha256 sections, paths may carry
 * an "amd64/" prefix) and kernel.org's sha256sums.asc (clearsigned "<sha256>  <file>" lines).
 */
import { rm } from 'node:fs/promises';
import { LabError } from '../errors.ts';
import { exists, sha256File } from './exec.ts';

export interface ChecksumEntry {
  /** File name (basename), the key files are looked up by. */
  name: string;
  /** Path as listed, relative to the list's directory (may be "amd64/x.deb"). */
  path: string;
  sha256: string;
}

/** sha256 entries of a checksum list, by file name; sha1 sections are ignored. */
export function parseChecksumEntries(text: string): Map<string, ChecksumEntry> {
  const entries = new Map<string, ChecksumEntry>();
  let section: 'sha256' | 'other' | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (/^#\s*Checksums-Sha256/i.test(line)) section = 'sha256';
    else if (/^#\s*Checksums-/i.test(line)) section = 'other';
    if (line.startsWith('#') || section === 'other') continue;
    const m = /^([0-9a-f]{64})\s+\*?(\S+)$/i.exec(line);
    if (!m?.[1] || !m[2]) continue;
    const name = m[2].split('/').pop() ?? m[2];
    entries.set(name, { name, path: m[2].replace(/^\.\//, ''), sha256: m[1].toLowerCase() });
  }
  return entries;
}

/** sha256 per file name from a checksum list. */
export function parseSha256List(text: string): Map<string, string> {
  return new Map([...parseChecksumEntries(text)].map(([k, e]) => [k, e.sha256]));
}

/** Throws CHECKSUM (and removes the file) when `path` does not hash to `expected`. */
export async function verifyFile(path: string, expected: string, source: string, actual?: string): Promise<void> {
  const got = actual ?? (await sha256File(path));
  if (got === expected) return;
  await rm(path, { force: true });
  throw new LabError('CHECKSUM', `${path.split('/').pop()}: sha256 ${got} does not match ${expected} from ${source}`, {
    remedy: 'The download is corrupt or was tampered with; it was deleted. Retry; if it persists, the mirror is bad.',
    details: { path, expected, got, source },
  });
}

/** A cached download that still matches its published checksum. */
export async function validCached(path: string, expected: string): Promise<boolean> {
  return (await exists(path)) && (await sha256File(path)) === expected;
}
