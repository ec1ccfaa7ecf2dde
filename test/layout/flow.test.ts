/**
 * The layout holds what docs/ARCHITECTURE.md promises: every import in lab/ runs along an allowed
 * layer → layer edge of its "Allowed imports" table, the declared flow has no cycle, every layer is
 * declared, no import points at a file that is gone, and a file longer than 400 lines says why.
 * The checker is first run on made-up trees, so a test that passes on the real tree is known to be
 * able to fail.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lab/paths.ts';
import { danglingEdges, declaredCycle, forbiddenEdges, importEdges, layerOf, parseAllowedEdges, readTree } from './imports.ts';

const ARCHITECTURE = readFileSync(join(REPO_ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
const LINE_LIMIT = 400;

describe('the import checker on made-up trees', () => {
  const allowed = parseAllowedEdges(['## Allowed imports', '| layer | may import |', '| --- | --- |', '| `core` | — |', '| `bpf` | `core` |', '| `chain` | `bpf`, `core` |', '| `report` | `core` |'].join('\n'));

  it('reads the table', () => {
    expect([...allowed.get('chain')!].sort()).toEqual(['bpf', 'core']);
    expect(allowed.get('core')!.size).toBe(0);
  });

  it('reports an import against the flow, static or dynamic, and accepts the allowed ones', () => {
    const tree = new Map([
      ['errors.ts', ''],
      ['bpf/elf.ts', "import { LabError } from '../errors.ts';"],
      ['chain/patch.ts', "import { readElf } from '../bpf/elf.ts';\nimport { x } from './local.ts';"],
      ['chain/local.ts', ''],
      ['bpf/insn.ts', "const m = await import('../chain/patch.ts');"],
      ['report/model.ts', "import type { Patch } from '../chain/patch.js';"],
    ]);
    const bad = forbiddenEdges(importEdges(tree), allowed).map((e) => `${e.from} -> ${e.to}`);
    expect(bad.sort()).toEqual(['bpf/insn.ts -> chain/patch.ts', 'report/model.ts -> chain/patch.ts']);
  });

  it('reports a layer the table does not declare', () => {
    const tree = new Map([['errors.ts', ''], ['newthing/a.ts', "import { LabError } from '../errors.ts';"]]);
    expect(forbiddenEdges(importEdges(tree), allowed)).toHaveLength(1);
  });

  it('reports an import of a file that does not exist', () => {
    const tree = new Map([['chain/patch.ts', "import { readElf } from '../bpf/gone.ts';"]]);
    expect(danglingEdges(importEdges(tree), tree).map((e) => e.to)).toEqual(['bpf/gone.ts']);
  });

  it('finds a cycle in a declaration and none in a one-way one', () => {
    expect(declaredCycle(allowed)).toBeNull();
    const cyclic = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]]);
    expect(declaredCycle(cyclic)).toEqual(['a', 'b', 'c', 'a']);
  });
});

describe('the lab/ tree against docs/ARCHITECTURE.md', () => {
  const tree = readTree(join(REPO_ROOT, 'lab'));
  const allowed = parseAllowedEdges(ARCHITECTURE);
  const edges = importEdges(tree);

  it('declares a one-way flow', () => {
    expect(declaredCycle(allowed)).toBeNull();
  });

  it('declares every layer that exists', () => {
    const layers = new Set([...tree.keys()].map(layerOf));
    expect([...layers].filter((l) => !allowed.has(l)).sort()).toEqual([]);
  });

  it('has no import against the flow', () => {
    expect(forbiddenEdges(edges, allowed).map((e) => `${e.from} -> ${e.to} (${e.fromLayer} may not import ${e.toLayer})`)).toEqual([]);
  });

  it('has no import of a missing file', () => {
    expect(danglingEdges(edges, tree).map((e) => `${e.from} -> ${e.to}`)).toEqual([]);
  });

  it(`keeps files under ${LINE_LIMIT} lines, or says in the header why one is longer`, () => {
    const long = [...tree].filter(([, src]) => src.split('\n').length > LINE_LIMIT);
    const unexplained = long.filter(([, src]) => !/Longer than 400 lines because/.test(src.slice(0, src.indexOf('*/') + 2)));
    expect(unexplained.map(([path, src]) => `${path}: ${src.split('\n').length} lines`)).toEqual([]);
  });
});
