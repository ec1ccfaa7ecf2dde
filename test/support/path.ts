/**
 * A $PATH with some tools hidden: each directory of the current PATH mirrored by symlinks, less the
 * named executables. Lets a test see what the suite does on a machine where setup failed to
 * install them.
 */
import { mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export function pathWithout(hidden: readonly string[], path = process.env.PATH ?? ''): { path: string; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'xcl-path-'));
  const dirs: string[] = [];
  for (const [i, dir] of path.split(delimiter).filter(Boolean).entries()) {
    const mirror = join(root, String(i));
    mkdirSync(mirror);
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const e of entries) if (!hidden.includes(e)) symlinkSync(join(dir, e), join(mirror, e));
    dirs.push(mirror);
  }
  return { path: dirs.join(delimiter), root };
}
