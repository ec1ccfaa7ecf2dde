/**
 * The lab's import graph, read from the sources: which lab/ file imports which, grouped by the
 * layer each file belongs to, checked against the allowed layer → layer edges that
 * docs/ARCHITECTURE.md declares. Pure functions over text, so the checker itself can be tested on
 * made-up trees.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';

/** One import of one lab file: who imports, what (both relative to lab/), and the layers of both. */
export interface ImportEdge {
  from: string;
  to: string;
  fromLayer: string;
  toLayer: string;
}

/** layer → the layers it may import (its own layer is always allowed). */
export type AllowedEdges = ReadonlyMap<string, ReadonlySet<string>>;

/** Root files that form the shared core; every other root file is a layer of its own, named by its file. */
export const CORE_FILES: ReadonlySet<string> = new Set(['errors.ts', 'progress.ts', 'random.ts', 'lock.ts', 'target.ts', 'paths.ts', 'bytes.ts', 'version.ts']);

/** The layer of a path relative to lab/: its first folder, `core` for the core root files, else the file. */
export function layerOf(labPath: string): string {
  const parts = labPath.split('/');
  if (parts.length > 1) return parts[0]!;
  return CORE_FILES.has(parts[0]!) ? 'core' : parts[0]!;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Every relative import specifier in a source text, static or dynamic. */
export function importSpecifiers(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((m) => m[1]!);
}

/** The edges of a tree given as file → source text (paths relative to lab/, '/' separated). */
export function importEdges(files: ReadonlyMap<string, string>): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const [from, source] of files) {
    for (const spec of importSpecifiers(source)) {
      const to = posix.normalize(posix.join(posix.dirname(from), spec)).replace(/\.js$/, '.ts');
      if (to.startsWith('..')) continue; // outside lab/: node_modules never appear as relative paths
      edges.push({ from, to, fromLayer: layerOf(from), toLayer: layerOf(to) });
    }
  }
  return edges;
}

/** Edges between two layers that the allowed list does not name. An unknown layer allows nothing. */
export function forbiddenEdges(edges: readonly ImportEdge[], allowed: AllowedEdges): ImportEdge[] {
  return edges.filter((e) => e.fromLayer !== e.toLayer && !allowed.get(e.fromLayer)?.has(e.toLayer));
}

/** Imports whose target file does not exist in the tree (a stale path after a move). */
export function danglingEdges(edges: readonly ImportEdge[], files: ReadonlyMap<string, string>): ImportEdge[] {
  return edges.filter((e) => !files.has(e.to));
}

/**
 * The allowed edges from the Markdown table under the "## Allowed imports" heading:
 * `| \`layer\` | \`a\`, \`b\` |` rows; "—" or an empty cell means nothing beyond itself.
 */
export function parseAllowedEdges(markdown: string): Map<string, Set<string>> {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Allowed imports'));
  if (!section) throw new Error('docs/ARCHITECTURE.md has no "## Allowed imports" section');
  const allowed = new Map<string, Set<string>>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !cells[1]!.startsWith('`')) continue;
    const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/^lab\//, '').replace(/\/$/, ''));
    const [layer] = names(cells[1]!);
    allowed.set(layer!, new Set(names(cells[2]!)));
  }
  return allowed;
}

/** A cycle among the declared layers, if the declaration has one (the flow must be one way). */
export function declaredCycle(allowed: AllowedEdges): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (layer: string): string[] | null => {
    if (state.get(layer) === 'done') return null;
    if (state.get(layer) === 'open') return [...path.slice(path.indexOf(layer)), layer];
    state.set(layer, 'open');
    path.push(layer);
    for (const next of allowed.get(layer) ?? []) {
      if (next === layer) continue;
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(layer, 'done');
    return null;
  };
  for (const layer of allowed.keys()) {
    const cycle = visit(layer);
    if (cycle) return cycle;
  }
  return null;
}

/** Reads every .ts file under a lab directory into path → source. */
export function readTree(labDir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith('.ts')) files.set(relative(labDir, p).split('\\').join('/'), readFileSync(p, 'utf8'));
    }
  };
  walk(resolve(labDir));
  return files;
}

