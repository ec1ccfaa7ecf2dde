/**
 * Fix-ups applied to a kernel tree before it is built, where no compiler or flag choice can do
 * (kernels/patches/patches.json). Each is applied visibly (a progress message per patch) and
 * returned so the build records it in provenance: a patched tree is not the upstream kernel.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LabError, describeIssues, errorMessage } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import { REPO_ROOT } from '../paths.ts';
import { Version } from '../version.ts';
import { tool } from './exec.ts';
import type { ResolvedToolchain } from './toolchain.ts';

export const PATCHES_DIR = join(REPO_ROOT, 'kernels', 'patches');

const condition = z.string().regex(/^(>=|<)\d+(\.\d+)*$/);
const patchSchema = z.object({
  file: z.string().regex(/^[A-Za-z0-9_.\-/]+\.patch$/),
  series: z.string().regex(/^\d+\.\d+$/),
  when: z.object({ gcc: condition.optional(), binutils: condition.optional() }).default({}),
  why: z.string().min(1),
});
const listSchema = z.object({ patches: z.array(patchSchema) });
export type PatchSpec = z.infer<typeof patchSchema>;

export interface AppliedPatch {
  file: string;
  sha256: string;
  why: string;
  /** applied: changed the tree; present: the tree already had it; skipped: applies neither way. */
  status: 'applied' | 'present' | 'skipped';
}

export async function loadPatches(dir: string = PATCHES_DIR): Promise<PatchSpec[]> {
  const path = join(dir, 'patches.json');
  try {
    const parsed = listSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    if (!parsed.success) {
      const where = describeIssues(parsed.error.issues);
      throw new LabError('BAD_INPUT', `${path}: ${where}`, { remedy: 'Fix the named fields in kernels/patches/patches.json.' });
    }
    return parsed.data.patches;
  } catch (e) {
    if (e instanceof LabError) throw e;
    throw new LabError('MISSING_FILE', `${path}: ${errorMessage(e)}`, { remedy: 'Restore kernels/patches/ from git.' });
  }
}

function holds(cond: string | undefined, version: string): boolean {
  if (cond === undefined) return true;
  const v = Version.parse(version);
  if (!v) return false;
  const op = cond.startsWith('>=') ? '>=' : '<';
  const bound = Version.parse(cond.slice(op.length));
  if (!bound) return false;
  const c = v.compare(bound);
  return op === '>=' ? c >= 0 : c < 0;
}

/** The patches that apply to a `series` tree built with `t`. */
export function selectPatches(all: readonly PatchSpec[], series: string, t: Pick<ResolvedToolchain, 'ccVersion' | 'binutils'>): PatchSpec[] {
  return all.filter((p) => p.series === series && holds(p.when.gcc, t.ccVersion) && holds(p.when.binutils, t.binutils));
}

async function patchRuns(tree: string, file: string, args: string[]): Promise<boolean> {
  try {
    await tool(['patch', '-p1', '-s', '-f', '--dry-run', ...args, '-i', file], { cwd: tree, what: `patch --dry-run ${file}` });
    return true;
  } catch (e) {
    if (e instanceof LabError && e.code === 'MISSING_TOOL') throw e;
    return false;
  }
}

/** Applies `patches` (not already in `done`) to `tree`, saying so for each. */
export async function applyPatches(
  tree: string,
  patches: readonly PatchSpec[],
  opts: { dir?: string; progress: ProgressSink; what: string; done?: ReadonlySet<string> },
): Promise<AppliedPatch[]> {
  const dir = opts.dir ?? PATCHES_DIR;
  const out: AppliedPatch[] = [];
  for (const p of patches) {
    if (opts.done?.has(p.file)) continue;
    const file = join(dir, p.file);
    const sha256 = createHash('sha256').update(await readFile(file)).digest('hex');
    if (await patchRuns(tree, file, ['--forward'])) {
      await tool(['patch', '-p1', '-s', '-f', '--forward', '-i', file], { cwd: tree, what: `${opts.what}: applying ${p.file}`, code: 'KERNEL_BUILD' });
      opts.progress({ kind: 'log', level: 'warn', message: `${opts.what}: applied fix-up kernels/patches/${p.file} (the kernel under test is patched): ${p.why}` });
      out.push({ file: p.file, sha256, why: p.why, status: 'applied' });
    } else if (await patchRuns(tree, file, ['--reverse'])) {
      opts.progress({ kind: 'log', level: 'info', message: `${opts.what}: the tree already has kernels/patches/${p.file}` });
      out.push({ file: p.file, sha256, why: p.why, status: 'present' });
    } else {
      opts.progress({ kind: 'log', level: 'warn', message: `${opts.what}: kernels/patches/${p.file} does not apply to this tree (changed there); not applied` });
      out.push({ file: p.file, sha256, why: p.why, status: 'skipped' });
    }
  }
  return out;
}
