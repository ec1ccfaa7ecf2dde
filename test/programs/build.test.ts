/**
 * The build: every programs/*.c and every variant compiles with BTF and without the sections or
 * helpers 4.19 lacks; rebuilds follow the content hash; a compile error is one COMPILE LabError
 * carrying clang's message.
 */
import { cp, mkdtemp, readFile, rm, stat, writeFile, appendFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { buildPrograms, PROGRAMS_DIR, VARIANTS } from '../../lab/programs/build.ts';
import { isLabError } from '../../lab/errors.ts';

const need = requirements('clang');

async function sections(obj: string): Promise<string[]> {
  const r = await execa('llvm-objdump', ['-h', obj]);
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[1] ?? '').filter(Boolean);
}

describe.skipIf(need.skip)('buildPrograms', () => {
  let scratch: string;
  let srcCopy: string;
  let out: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'xt2-build-'));
    srcCopy = join(scratch, 'programs');
    out = join(scratch, 'bpf');
    // Only the trio's sources (other helpers' programs are not this test's business), plus an
    // unregistered program to show that every programs/*.c is built.
    await cp(PROGRAMS_DIR, srcCopy, { recursive: true, filter: (p) => !p.endsWith('.c') || /\/(filter|metrics|logger|fused)\.c$/.test(p) });
    await writeFile(join(srcCopy, 'extra.c'), '#include "common.h"\nSEC("xdp") int xdp_extra(struct xdp_md *ctx) { return XDP_PASS; }\nchar _license[] SEC("license") = "GPL";\n');
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('builds one object per programs/*.c plus every variant', async () => {
    const objs = await buildPrograms({ programsDir: srcCopy, outDir: out });
    const sources = (await readdir(srcCopy)).filter((f) => f.endsWith('.c')).map((f) => f.slice(0, -2));
    expect(sources.sort()).toEqual(['extra', 'filter', 'fused', 'logger', 'metrics']);
    expect(Object.keys(objs).sort()).toEqual([...sources, ...VARIANTS.map((v) => v.name)].sort());
    for (const name of ['filter', 'metrics', 'logger', 'fused', 'filter_manual', 'metrics_manual']) expect(objs[name]).toBe(join(out, `${name}.o`));
  });

  it('objects carry BTF and no .data/.bss/.rodata (global data needs 5.2)', async () => {
    for (const name of ['filter', 'metrics', 'logger', 'fused', 'filter_manual', 'metrics_manual']) {
      const s = await sections(join(out, `${name}.o`));
      expect(s, name).toContain('.BTF');
      expect(s, name).toContain('.maps');
      expect(s.filter((x) => /^\.(data|bss|rodata)/.test(x)), name).toEqual([]);
    }
  });

  it('uses only helpers that exist on 4.19, and the manual stages tail-call a constant slot', async () => {
    const helpersOf = async (name: string): Promise<{ calls: number[]; text: string }> => {
      const r = await execa('llvm-objdump', ['-d', '--no-show-raw-insn', join(out, `${name}.o`)]);
      const calls = [...r.stdout.matchAll(/\bcall (\d+)/g)].map((m) => Number(m[1]));
      return { calls, text: r.stdout };
    };
    // 4.19's last helper is BPF_FUNC_skb_ancestor_cgroup_id (83).
    for (const name of ['filter', 'metrics', 'logger', 'fused']) {
      const { calls } = await helpersOf(name);
      expect(calls.every((c) => c <= 83), `${name}: ${calls}`).toBe(true);
      expect(calls.includes(12), `${name} has no tail call`).toBe(false);
    }
    for (const [name, slot] of [['filter_manual', 1], ['metrics_manual', 2]] as const) {
      const { text } = await helpersOf(name);
      // The index register (r3) is loaded with the constant just before call 12 (bpf_tail_call).
      expect(text, name).toMatch(new RegExp(`r3 = ${slot}\\n(?:.*\\n){0,3}.*call 12`));
    }
  });

  it('TC builds (-DXCL_HOOK_TC) come from the same sources: section tc, tc_ program names, no libxdp run config; the XDP builds keep theirs', async () => {
    const symbols = async (name: string): Promise<string> => (await execa('llvm-objdump', ['-t', join(out, `${name}.o`)])).stdout;
    const tc = VARIANTS.filter((v) => v.defines?.XCL_HOOK_TC !== undefined).map((v) => v.name);
    expect(tc.sort()).toEqual(['tc_filter', 'tc_filter_manual', 'tc_filter_next', 'tc_fused', 'tc_logger', 'tc_metrics', 'tc_metrics_manual', 'tc_metrics_next']);
    for (const name of tc) {
      const s = await sections(join(out, `${name}.o`));
      expect(s, name).toContain('tc');
      expect(s, name).not.toContain('xdp');
      expect(s, name).not.toContain('.xdp_run_config');
      expect(s, name).toContain('.BTF');
      const job = name.replace(/^tc_/, '').replace(/_(manual|next)$/, '');
      expect(await symbols(name), name).toMatch(new RegExp(`\\btc_${job}$`, 'm'));
    }
    for (const name of ['filter', 'metrics', 'logger']) {
      const s = await sections(join(out, `${name}.o`));
      expect(s, name).toContain('xdp');
      expect(s, name).toContain('.xdp_run_config');
      expect(await symbols(name), name).toMatch(new RegExp(`\\b_xdp_${name}$`, 'm'));
    }
    for (const [name, slot] of [['tc_filter_manual', 1], ['tc_metrics_manual', 2]] as const) {
      const r = await execa('llvm-objdump', ['-d', '--no-show-raw-insn', join(out, `${name}.o`)]);
      expect(r.stdout, name).toMatch(new RegExp(`r3 = ${slot}\\n(?:.*\\n){0,3}.*call 12`));
    }
  });

  it('rebuilds only what changed: a header edit rebuilds, an unchanged tree does not', async () => {
    const before = (await stat(join(out, 'filter.o'))).mtimeMs;
    await buildPrograms({ programsDir: srcCopy, outDir: out });
    expect((await stat(join(out, 'filter.o'))).mtimeMs).toBe(before);
    await appendFile(join(srcCopy, 'common.h'), '\n/* touched by the build test */\n');
    await new Promise((r) => setTimeout(r, 20));
    await buildPrograms({ programsDir: srcCopy, outDir: out });
    expect((await stat(join(out, 'filter.o'))).mtimeMs).toBeGreaterThan(before);
    const again = (await stat(join(out, 'fused.o'))).mtimeMs;
    await buildPrograms({ programsDir: srcCopy, outDir: out, force: true });
    expect((await stat(join(out, 'fused.o'))).mtimeMs).toBeGreaterThan(again);
  });

  it('a compile error is one COMPILE LabError with clang\'s message and leaves no object', async () => {
    const bad = join(scratch, 'bad');
    await cp(srcCopy, bad, { recursive: true });
    const src = await readFile(join(bad, 'metrics.c'), 'utf8');
    await writeFile(join(bad, 'metrics.c'), src.replace('return chain_next(ctx, job_metrics(ctx));', 'return chain_next(ctx, job_metrics(ctx)) +;'));
    const badOut = join(scratch, 'bad-out');
    const err = await buildPrograms({ programsDir: bad, outDir: badOut }).catch((e: unknown) => e);
    expect(isLabError(err, 'COMPILE')).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toMatch(/programs\/metrics\.c/);
    expect(msg).toMatch(/error: expected expression/);
    expect((err as { remedy?: string }).remedy).toMatch(/metrics\.c/);
    const left = await readdir(badOut);
    expect(left.filter((f) => f.startsWith('metrics.o'))).toEqual([]);
    expect(left.filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
