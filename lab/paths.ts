/**
 * Where the lab's own tree is on disk, found from this file's location so that every command works
 * whatever the current directory is. Every folder the lab reads or writes hangs off REPO_ROOT.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
