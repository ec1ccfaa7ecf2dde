/**
 * `bench chain` as the user runs it: options parsed, the table printed per kernel, every record
 * appended to <out>/raw.jsonl (one valid line each), bad options refused before anything runs.
 * Kept short (scaling only, lengths 1,2,4, small repeat); the full bench is host.test.ts.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Command } from 'commander';
import { requirements } from '../support/requirements.ts';
import { RawRecord, type MicroRecord } from '../../lab/results/record.ts';
import { benchChainCommand } from '../../lab/commands/bench-chain.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function runCli(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number | undefined }> {
  const out: string[] = [];
  const err: string[] = [];
  const so = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  const se = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  const before = process.exitCode;
  process.exitCode = undefined;
  let code: number | undefined;
  try {
    const program = new Command('bench').exitOverride().addCommand(benchChainCommand().exitOverride());
    await program.parseAsync(['chain', ...args], { from: 'user' });
    code = process.exitCode === undefined ? undefined : Number(process.exitCode);
  } catch (e) {
    code = (e as { exitCode?: number }).exitCode ?? 1;
  } finally {
    so.mockRestore();
    se.mockRestore();
    process.exitCode = before;
  }
  return { stdout: out.join(''), stderr: err.join(''), exitCode: code };
}

describe('bench chain: option errors', () => {
  it.each([['--repeat', '0'], ['--repetitions', 'many'], ['--max-length', '-3']])('refuses %s %s', async (opt, value) => {
    const dir = await mkdtemp(join(tmpdir(), 'xt8-cli-'));
    dirs.push(dir);
    const r = await runCli([opt, value, '--out', join(dir, 'run')]);
    expect(r.exitCode).not.toBe(0);
    expect(r.exitCode).not.toBeUndefined();
    expect(r.stderr).toMatch(/positive integer/);
    await expect(stat(join(dir, 'run'))).rejects.toThrow();
  });
});

const need = requirements('root', 'bpf', 'bpftool', 'clang');

describe.skipIf(need.skip)('bench chain on the host (scaling only)', () => {
  it('prints the table and appends valid records to <out>/raw.jsonl', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xt8-cli-'));
    dirs.push(dir);
    const out = join(dir, 'run-xt8');
    const r = await runCli(['--quick', '--no-approaches', '--no-latency', '--repeat', '2000', '--repetitions', '2', '--max-length', '4', '--out', out, '--plain']);
    expect(r.exitCode, r.stderr).toBeUndefined();
    expect(r.stdout).toContain('== host (');
    expect(r.stdout).toMatch(/manual-constant/);
    expect(r.stdout).toMatch(/manual-indirect/);
    expect(r.stdout).toMatch(/ns\/hop/);
    const lines = (await readFile(join(out, 'raw.jsonl'), 'utf8')).split('\n');
    expect(lines.at(-1)).toBe('');
    const recs = lines.filter(Boolean).map((l) => RawRecord.parse(JSON.parse(l)));
    const micro = recs.filter((x): x is MicroRecord => x.kind === 'micro');
    expect(micro.every((m) => m.runId === 'run-xt8')).toBe(true);
    for (const v of ['chain/manual-constant', 'chain/manual-indirect']) {
      expect(micro.filter((m) => m.variant === v).map((m) => m.chainLength).sort()).toEqual([1, 2, 4]);
    }
    expect(r.stdout).toContain(`${micro.length} micro and 0 latency records appended`);
  }, 600_000);
});
