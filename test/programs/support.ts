/**
 * Helpers shared by the trio, approach and testenv tests: the host target, the built objects,
 * running the packet corpus through a loaded entry program with BPF_PROG_TEST_RUN, and what the
 * corpus says the trio must count and log.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { expect } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostTarget, type CommandResult, type RunOptions, type Target } from '../../lab/target.ts';
import { captureEvents, progRunMany } from '../../lab/bpftool/index.ts';
import { buildPrograms, DEFAULT_OUT_DIR } from '../../lab/programs/build.ts';
import { emptyMetrics, MAP_NAMES, parseLogRecord, readMetrics, type LogRecord, type MetricsSnapshot } from '../../lab/programs/trio.ts';
import { buildCorpus, writeCorpus, type Corpus, type CorpusCase } from '../../lab/packets/corpus.ts';

const scratchDirs: string[] = [];

/** A temporary directory removed by removeScratch() (call it in afterAll). */
export async function scratchDir(tag: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `xt2-${tag}-`));
  scratchDirs.push(d);
  return d;
}

export async function removeScratch(): Promise<void> {
  for (const d of scratchDirs.splice(0)) await rm(d, { recursive: true, force: true });
}

export async function hostTarget(): Promise<HostTarget> {
  return HostTarget.create(await scratchDir('work'));
}

export async function builtObjects(): Promise<{ objects: Record<string, string>; objectDir: string }> {
  const objects = await buildPrograms();
  return { objects, objectDir: DEFAULT_OUT_DIR };
}

export async function corpusFiles(): Promise<{ corpus: Corpus; files: Record<string, string> }> {
  const corpus = buildCorpus();
  const files = await writeCorpus(corpus, await scratchDir('corpus'));
  return { corpus, files };
}

/** The metrics the trio must count for `cases`: one packet and its frame's bytes per case, by class. */
export function expectedMetrics(cases: readonly CorpusCase[]): MetricsSnapshot {
  const m = emptyMetrics();
  for (const c of cases) {
    m[c.klass].packets += 1;
    m[c.klass].bytes += c.frame.length;
  }
  return m;
}

/** Each log record is its case's expected one, in corpus order, with the sequence numbers `seqs`; none lost. */
export function expectRecordsMatch(run: CorpusRun, cases: readonly CorpusCase[], seqs: readonly number[]): void {
  expect(run.lost).toBe(0);
  expect(run.records.length).toBe(cases.length);
  run.records.forEach((r, i) => {
    const c = cases[i]!;
    expect({ name: c.name, len: r.len, ethertype: r.ethertype, sport: r.sport, dport: r.dport, l4proto: r.l4proto, klass: r.klass }).toEqual({ name: c.name, ...c.log });
    expect(r.seq).toBe(seqs[i]);
  });
}

export interface CorpusRun {
  /** XDP action per runnable case. */
  verdicts: Record<string, number>;
  metrics: MetricsSnapshot | null;
  records: LogRecord[];
  lost: number;
}

/**
 * Runs every corpus frame the hook's test run accepts (`runnableFor`, default XDP), in corpus order,
 * through the program pinned at `entry`, all on CPU 0 (per-CPU counters and the logger's per-CPU sampling then follow corpus order exactly).
 */
export async function runCorpus(
  target: HostTarget,
  entry: string,
  mapsDir: string,
  corpus: Corpus,
  files: Record<string, string>,
  opts: { logger: boolean; metrics: boolean; runnableFor?: 'xdp' | 'tc' },
): Promise<CorpusRun> {
  const verdicts: Record<string, number> = {};
  const work = async (): Promise<void> => {
    const cases = corpus.cases.filter((c) => (opts.runnableFor === 'tc' ? c.tcTestRunnable : c.testRunnable));
    const results = await progRunMany(target, { pinned: entry }, cases.map((c) => files[c.name] as string), { cpu: 0 });
    cases.forEach((c, i) => {
      verdicts[c.name] = results[i]!.retval;
    });
  };
  let records: LogRecord[] = [];
  let lost = 0;
  if (opts.logger) {
    const cap = await captureEvents(target, { pinned: `${mapsDir}/${MAP_NAMES.logEvents}` }, work);
    records = cap.records.map((r) => parseLogRecord(r.data));
    lost = cap.lost;
  } else {
    await work();
  }
  const metrics = opts.metrics ? await readMetrics(target, mapsDir) : null;
  return { verdicts, metrics, records, lost };
}

/** Lists bpffs entries and namespaces with a prefix (to assert nothing of ours is left). */
export async function leftovers(target: HostTarget, prefix: string): Promise<string[]> {
  const r = await target.sh(`ls -1 /sys/fs/bpf | grep '^${prefix}' ; ip netns list | grep '^${prefix}' ; true`, { allowFailure: true });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}


/**
 * The host, but every command runs as nobody with no capabilities (setpriv): how the lab behaves
 * when not run as root, without needing a second account.
 */
export class UnprivilegedTarget implements Target {
  readonly name = 'host(nobody)';
  readonly accelerator = 'host' as const;
  readonly kernelRelease: string;
  readonly workDir: string;
  private readonly host: HostTarget;

  constructor(host: HostTarget) {
    this.host = host;
    this.kernelRelease = host.kernelRelease;
    this.workDir = host.workDir;
  }

  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult> {
    return this.host.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--', ...argv], options);
  }

  sh(script: string, options?: RunOptions): Promise<CommandResult> {
    return this.run(['bash', '-c', script], options);
  }

  putFile(localPath: string, remotePath: string): Promise<void> {
    return this.host.putFile(localPath, remotePath);
  }

  async [Symbol.asyncDispose](): Promise<void> {}
}
