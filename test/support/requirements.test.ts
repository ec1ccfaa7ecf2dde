/**
 * The machine expectation itself: a declared tool hidden from PATH fails the suite and names the
 * tool; without the declaration the same test is skipped with the reason; a probe that contradicts
 * the declaration fails; malformed declarations are refused.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lab/paths.ts';
import { pathWithout } from './path.ts';
import { MachineExpectationError, agree, checkFeature, onPath, parseExpectation } from './requirements.ts';

const run = promisify(execFile);
const scratch = mkdtempSync(join(tmpdir(), 'xcl-machine-'));
const cleanup: string[] = [scratch];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

const savedMachine = process.env.XCL_MACHINE;
afterEach(() => {
  if (savedMachine === undefined) delete process.env.XCL_MACHINE;
  else process.env.XCL_MACHINE = savedMachine;
});

function declare(has: string[], lacks: string[]): string {
  const f = join(scratch, `m-${has.join('_')}-${lacks.join('_')}.json`);
  writeFileSync(f, JSON.stringify({ has, lacks }));
  return f;
}

/** The fixture test file in a child vitest, with bpftool hidden from PATH. */
async function childRun(machine: string | null): Promise<{ code: number; out: string }> {
  const hidden = pathWithout(['bpftool']);
  cleanup.push(hidden.root);
  expect(onPath('bpftool', hidden.path)).toBeNull();
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: hidden.path, NO_COLOR: '1' };
  delete env.XCL_MACHINE;
  if (machine) env.XCL_MACHINE = machine;
  const vitest = join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs');
  const args = [vitest, 'run', '--root', REPO_ROOT, '--config', 'test/fixtures/machine/vitest.config.ts'];
  try {
    const r = await run(process.execPath, args, { cwd: REPO_ROOT, env, maxBuffer: 16 << 20 });
    return { code: 0, out: `${r.stdout}\n${r.stderr}` };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: `${x.stdout ?? ''}\n${x.stderr ?? ''}` };
  }
}

describe('machine expectation', () => {
  it('CI mode: a declared tool missing from PATH fails the file and names the tool', async () => {
    const r = await childRun(declare(['bpftool'], []));
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/says this machine has bpftool, but: bpftool not on PATH/);
    expect(r.out).toMatch(/failed/i);
  }, 120_000);

  it('without a declaration the same test is skipped, with the reason printed', async () => {
    const r = await childRun(null);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('[skip] bpftool not on PATH');
    expect(r.out).toMatch(/1 skipped/);
  }, 120_000);

  it('a feature declared absent but present fails too', () => {
    process.env.XCL_MACHINE = declare([], ['clang']);
    expect(() => checkFeature('clang', null)).toThrow(MachineExpectationError);
    expect(() => checkFeature('clang', null)).toThrow(/lacks clang, but it has it/);
  });

  it('a probe contradicting the declaration fails; one agreeing passes its answer through', () => {
    process.env.XCL_MACHINE = declare(['kvm'], ['freplace']);
    expect(() => agree('freplace', true, 'dispatcher attached')).toThrow(/lacks freplace, but the lab's probe says it has it: dispatcher attached/);
    expect(() => agree('kvm', false, 'failed to set MSR')).toThrow(/has kvm, but the lab's probe says it lacks it: failed to set MSR/);
    expect(agree('freplace', false)).toBe(false);
    expect(agree('kvm', true)).toBe(true);
    // Undeclared features: the probe decides.
    expect(agree('debian-mirror', false)).toBe(false);
    delete process.env.XCL_MACHINE;
    expect(agree('freplace', true)).toBe(true);
  });

  it('refuses unknown features, features in both lists and malformed files', () => {
    expect(() => parseExpectation('{"has":["bpftol"],"lacks":[]}', 'm.json')).toThrow(/unknown feature "bpftol" in "has"/);
    expect(() => parseExpectation('{"has":["kvm"],"lacks":["kvm"]}', 'm.json')).toThrow(/kvm both in "has" and "lacks"/);
    expect(() => parseExpectation('{"has":"root","lacks":[]}', 'm.json')).toThrow(/"has" must be an array/);
    expect(() => parseExpectation('not json', 'm.json')).toThrow(/m.json: not JSON/);
    const m = parseExpectation('{"about":"x","has":["root"],"lacks":["kvm"]}', 'm.json');
    expect([...m.has]).toEqual(['root']);
    expect([...m.lacks]).toEqual(['kvm']);
  });

  it('CI declaration parses and names only features the suite knows', async () => {
    const { readFile } = await import('node:fs/promises');
    const m = parseExpectation(await readFile(join(REPO_ROOT, '.ci', 'machine.json'), 'utf8'), '.ci/machine.json');
    expect(m.has.has('bpftool')).toBe(true);
    expect(m.lacks.has('kvm')).toBe(true);
  });
});
