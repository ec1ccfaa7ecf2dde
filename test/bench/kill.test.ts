/**
 * Whatever kills the lab, nothing it started outlives it for long, no measured run is lost, and the
 * next run says what it cleaned up:
 * - SIGKILL of the outer `npm run matrix` (what `timeout -s KILL` or a CI runner does): the real
 *   worker notices its launcher is gone, stops at the next safe point and tears down.
 * - SIGKILL of the worker itself: its iperf3 processes die with it (pdeathsig); the namespaces stay
 *   until the resumed run removes them and says so; the resumed run completes the cell.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lab/paths.ts';
import { RawRecord, type RunRecord } from '../../lab/results/record.ts';
import { HostTarget } from '../../lab/target.ts';
import { createTestEnv, removeStaleNamespace } from '../../lab/testenv/testenv.ts';
import { readProc } from '../../lab/ui/launcher.ts';
import { RUN_TAG } from '../support/names.ts';
import { requirements } from '../support/requirements.ts';
import { waitFor } from '../support/wait.ts';

const need = requirements('root', 'bpf', 'veth', 'clang', 'bpftool', 'iperf3');
const PREFIX = `xk${RUN_TAG}`;
const out = mkdtempSync(join(tmpdir(), 'xcl-kill-'));
const started: ChildProcess[] = [];

afterAll(async () => {
  for (const c of started) if (c.pid && c.exitCode === null && c.signalCode === null) try { process.kill(-c.pid, 'SIGKILL'); } catch { /* already gone */ }
  const target = await HostTarget.create(join(out, 'work'));
  for (const ns of ['ma', 'mb', 'ia', 'ib']) await removeStaleNamespace(target, `${PREFIX}${ns}`);
  rmSync(out, { recursive: true, force: true });
});

/** `npm run matrix` on the host, one cell, in its own process group; output to a log file. */
function matrix(runId: string, runs: number): { child: ChildProcess; log: string } {
  const log = join(out, `${runId}-${started.length}.log`);
  const fd = openSync(log, 'w');
  const args = ['run', '--silent', 'matrix', '--', '--kernels', 'host', '--approaches', 'fused', '--runs', String(runs), '--duration', '1',
    '--no-micro', '--no-latency', '--plain', '--prefix', PREFIX, '--out', out, '--run-id', runId];
  const child = spawn('npm', args, { cwd: REPO_ROOT, detached: true, stdio: ['ignore', fd, fd] });
  started.push(child);
  return { child, log };
}

function runRecords(runId: string): RunRecord[] {
  const f = join(out, runId, 'raw.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').split('\n').filter((l) => l.trim().startsWith('{')).map((l) => RawRecord.parse(JSON.parse(l)))
    .filter((r): r is RunRecord => r.kind === 'run');
}

/** Every live descendant of `pid`, from /proc. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const info = readProc(Number(e));
    if (info) children.set(info.ppid, [...(children.get(info.ppid) ?? []), Number(e)]);
  }
  const outPids: number[] = [];
  const todo = [pid];
  while (todo.length) for (const c of children.get(todo.pop()!) ?? []) (outPids.push(c), todo.push(c));
  return outPids;
}

const alive = (pids: readonly number[]): number[] => pids.filter((p) => readProc(p) !== null);
const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
};
/** The process doing the work: the innermost of sh → tsx → node, all with lab/cli.ts on their command line. */
function workerOf(tree: readonly number[]): number | undefined {
  const lab = tree.filter((p) => cmdline(p).includes('lab/cli.ts matrix'));
  return lab.find((p) => !lab.some((q) => readProc(q)?.ppid === p));
}

async function pidsIn(netns: string): Promise<number[]> {
  const r = await execa('ip', ['netns', 'pids', netns], { reject: false });
  return r.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
}

describe.skipIf(need.skip)('killing the lab', () => {
  it('iperf3 started by the lab dies with it, and the next testenv removes what was left and says so', async () => {
    const name = `${PREFIX}i`;
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'fixtures', 'kill', 'iperf3-forever.ts'), name], { cwd: REPO_ROOT, stdio: 'ignore' });
    started.push(child);
    const both = await waitFor('iperf3 server and client running', async () => {
      const s = (await pidsIn(`${name}b`)).filter((p) => readProc(p)?.comm === 'iperf3');
      const c = (await pidsIn(`${name}a`)).filter((p) => readProc(p)?.comm === 'iperf3');
      return s.length > 0 && c.length > 0 ? [...s, ...c] : null;
    }, { timeoutMs: 60_000 });
    child.kill('SIGKILL');
    // Both would run on for the rest of their 60 s (the server until its client ends) without pdeathsig.
    await waitFor(`iperf3 ${both.join(', ')} to die with the lab`, async () => alive(both).length === 0, { timeoutMs: 5_000 });
    const target = await HostTarget.create(join(out, 'work'));
    const env = await createTestEnv(target, { name });
    expect(env.staleCleaned).toEqual([`deleted namespace ${name}a left by an earlier run`, `deleted namespace ${name}b left by an earlier run`]);
    await env[Symbol.asyncDispose]();
  }, 120_000);

  it('SIGKILL of the outer npm: the worker stops by itself, tears down, keeps every measured run', async () => {
    const { child, log } = matrix('outer', 30);
    await waitFor('the first measured run', async () => runRecords('outer').length >= 1, { timeoutMs: 300_000, intervalMs: 200 });
    const tree = descendants(child.pid!);
    expect(workerOf(tree), `no worker among ${tree.map((p) => `${p}: ${cmdline(p)}`).join('\n')}`).toBeDefined();
    process.kill(child.pid!, 'SIGKILL');
    await waitFor(`every process npm had started to exit (${tree.join(', ')})`, async () => alive(tree).length === 0, { timeoutMs: 120_000, intervalMs: 200 });
    const text = readFileSync(log, 'utf8');
    expect(text).toMatch(/the process that launched the lab is gone \(npm/);
    // It stopped long before its 30 runs, and what it measured is intact.
    const runs = runRecords('outer');
    expect(runs.length).toBeGreaterThanOrEqual(1);
    expect(runs.length).toBeLessThan(30);
    expect(runs.map((r) => r.iteration)).toEqual(runs.map((_, i) => i));
    for (const ns of ['ma', 'mb']) expect(existsSync(`/run/netns/${PREFIX}${ns}`), `${PREFIX}${ns} torn down`).toBe(false);
  }, 600_000);

  it('SIGKILL of the worker: its iperf3 dies with it; the resumed run cleans up, says so, and loses no run', async () => {
    const { child } = matrix('worker', 3);
    const recv = `${PREFIX}mb`;
    // Kill it while an iperf3 server is running in the receiver's namespace.
    const iperf = await waitFor('an iperf3 process in the receiver namespace', async () => {
      for (const p of await pidsIn(recv)) if (readProc(p)?.comm === 'iperf3') return p;
      return null;
    }, { timeoutMs: 300_000, intervalMs: 50 });
    const before = runRecords('worker').length;
    const worker = workerOf(descendants(child.pid!));
    expect(worker).toBeDefined();
    process.kill(worker!, 'SIGKILL');
    await waitFor(`iperf3 (pid ${iperf}) to die with the worker`, async () => readProc(iperf) === null, { timeoutMs: 10_000 });
    await waitFor('npm and tsx to exit after their child', async () => child.exitCode !== null || child.signalCode !== null, { timeoutMs: 60_000 });
    expect(await pidsIn(recv)).toEqual([]);
    // The namespaces of the killed run are still there: nobody tore them down.
    expect(existsSync(`/run/netns/${recv}`)).toBe(true);

    const resumed = matrix('worker', 3);
    const code = await new Promise<number | null>((res) => resumed.child.on('exit', (c) => res(c)));
    const text = readFileSync(resumed.log, 'utf8');
    expect(code, text).toBe(0);
    expect(text).toMatch(new RegExp(`cleaned up: deleted namespace ${recv} left by an earlier run`));
    const runs = runRecords('worker');
    expect(runs.length).toBe(3);
    expect(runs.map((r) => r.iteration).sort()).toEqual([0, 1, 2]);
    expect(before).toBeLessThanOrEqual(3);
    for (const ns of ['ma', 'mb']) expect(existsSync(`/run/netns/${PREFIX}${ns}`)).toBe(false);
  }, 900_000);
});
