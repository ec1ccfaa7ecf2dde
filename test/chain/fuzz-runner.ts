/**
 * The parent side of the fuzzer: splits the mutants into batches, runs them in at most two worker
 * threads (the machine has two cores), and watches them. A worker that has not started its next
 * mutant within the per-mutant limit is terminated, and the report names the seed, object and
 * mutant it was stuck on; one that runs past the time budget stops at the next mutant boundary.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import type { Failure, FuzzBase, MutantKind, Sample } from './fuzz-mutants.ts';
import { kindOf, replayHint } from './fuzz-mutants.ts';
import type { BatchReport, BatchRequest, KindStats, WorkerInit, WorkerMessage } from './fuzz-worker.ts';

export interface FuzzPlan {
  bases: (FuzzBase & { sampleable: boolean })[];
  seeds: number[];
  /** Mutants 0..perObject-1 of every (seed, object). */
  perObject: number;
  /** Replays one mutant instead (XCL_FUZZ_ONLY). */
  only?: { object: string; index: number };
  batchSize?: number;
  workers?: number;
  /** A mutant still running after this long is a hang. */
  mutantLimitMs?: number;
  /** No mutant is started after this long; the report then says how far it got. */
  budgetMs?: number;
  /** Test-only hook, passed to the workers (see fuzz-worker.ts). */
  hang?: WorkerInit['hang'];
}

export interface Hang {
  seed: number;
  object: string;
  index: number;
  kind: MutantKind;
  ms: number;
  message: string;
}

export interface FuzzReport {
  planned: number;
  ran: number;
  workers: number;
  wallMs: number;
  bytes: KindStats;
  model: KindStats;
  byObject: Record<string, { bytes: KindStats; model: KindStats }>;
  codes: Record<string, number>;
  internal: string[];
  failures: Failure[];
  samples: Sample[];
  hang?: Hang;
  /** Why the run ended early other than a hang: the budget ran out, or a worker died. */
  aborted?: string;
}

const emptyKind = (): KindStats => ({ total: 0, parsed: 0, roundTrips: 0, patched: 0 });
const addKind = (a: KindStats, b: KindStats): void => {
  a.total += b.total;
  a.parsed += b.parsed;
  a.roundTrips += b.roundTrips;
  a.patched += b.patched;
};

/**
 * tsx's ESM API, resolved through tsx's own package exports. A worker does not inherit the
 * parent's TypeScript loader (vitest's is not Node's, and Node 20 ignores --import in a worker's
 * execArgv), so each worker registers tsx itself before importing the .ts worker file.
 */
function tsxApiUrl(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import?: { default?: string } } | string> };
  const entry = pkg.exports['./esm/api'];
  const file = typeof entry === 'object' ? entry.import?.default : undefined;
  if (!file) throw new Error(`tsx at ${pkgPath} exports no ESM API (./esm/api); is tsx >= 4 installed?`);
  return pathToFileURL(join(dirname(pkgPath), file)).href;
}

export function startTsWorker(file: URL, workerData: unknown): Worker {
  const code = `import(${JSON.stringify(tsxApiUrl())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(file.href)}); });`;
  // A mutant that allocates without bound ends as ERR_WORKER_OUT_OF_MEMORY, not a dead test runner.
  return new Worker(code, { eval: true, workerData, resourceLimits: { maxOldGenerationSizeMb: 512 } });
}

export function describeFailure(f: Failure): string {
  return `seed ${f.seed}, object ${f.object}, mutant ${f.index} (${f.kind}; ${f.ops.join(', ') || 'no ops'}), stage ${f.stage}: ${f.message}\n  replay: ${replayHint(f.seed, f.object, f.index)}`;
}

export async function runFuzz(plan: FuzzPlan): Promise<FuzzReport> {
  const batchSize = plan.batchSize ?? 50;
  const limit = plan.mutantLimitMs ?? 2000;
  const budget = plan.budgetMs ?? 300_000;
  // Loading tsx and the lab's modules in a fresh worker takes well under a second; allow for a
  // loaded machine.
  const startupLimit = Math.max(30_000, limit);
  const queue: Omit<BatchRequest, 'id' | 'deadline' | 'type'>[] = [];
  for (const seed of plan.seeds) {
    for (const b of plan.bases) {
      if (plan.only) {
        if (plan.only.object === b.name) queue.push({ seed, object: b.name, start: plan.only.index, count: 1 });
        continue;
      }
      for (let s = 0; s < plan.perObject; s += batchSize) queue.push({ seed, object: b.name, start: s, count: Math.min(batchSize, plan.perObject - s) });
    }
  }
  const planned = queue.reduce((n, q) => n + q.count, 0);
  const report: FuzzReport = {
    planned,
    ran: 0,
    workers: 0,
    wallMs: 0,
    bytes: emptyKind(),
    model: emptyKind(),
    byObject: {},
    codes: {},
    internal: [],
    failures: [],
    samples: [],
  };
  if (queue.length === 0) return report;
  const t0 = Date.now();
  const deadline = t0 + budget;
  const nWorkers = Math.max(1, Math.min(plan.workers ?? 2, availableParallelism(), queue.length));
  report.workers = nWorkers;

  interface Slot {
    worker: Worker;
    progress: Int32Array;
    startedAt: number;
    ready: boolean;
    busy: BatchRequest | null;
    lastCount: number;
    lastChange: number;
  }
  let nextId = 1;
  const slots: Slot[] = [];

  return new Promise<FuzzReport>((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      report.wallMs = Date.now() - t0;
      void Promise.all(slots.map((s) => s.worker.terminate())).then(() => resolve(report));
    };
    const abort = (why: string): void => {
      report.aborted ??= why;
      finish();
    };
    const dispatch = (slot: Slot): void => {
      const q = report.aborted || report.hang ? undefined : queue.shift();
      if (!q) {
        slot.busy = null;
        if (slots.every((s) => s.busy === null)) finish();
        return;
      }
      const req: BatchRequest = { type: 'batch', id: nextId++, deadline, ...q };
      slot.busy = req;
      slot.lastCount = Atomics.load(slot.progress, 2);
      slot.lastChange = Date.now();
      slot.worker.postMessage(req);
    };
    const merge = (rep: BatchReport, req: BatchRequest): void => {
      report.ran += rep.ran;
      addKind(report.bytes, rep.bytes);
      addKind(report.model, rep.model);
      const o = (report.byObject[req.object] ??= { bytes: emptyKind(), model: emptyKind() });
      addKind(o.bytes, rep.bytes);
      addKind(o.model, rep.model);
      for (const [c, n] of Object.entries(rep.codes)) report.codes[c] = (report.codes[c] ?? 0) + n;
      report.internal.push(...rep.internal.slice(0, Math.max(0, 50 - report.internal.length)));
      report.failures.push(...rep.failures.slice(0, Math.max(0, 50 - report.failures.length)));
      report.samples.push(...rep.samples);
      if (rep.stoppedAt !== undefined) {
        abort(`the time budget of ${Math.round(budget / 1000)} s ran out after ${report.ran} of ${planned} mutants (stopped before seed ${req.seed}, object ${req.object}, mutant ${rep.stoppedAt}); raise XCL_FUZZ_BUDGET_S or lower XCL_FUZZ_MUTANTS`);
      }
    };

    for (let i = 0; i < nWorkers; i++) {
      const sab = new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT);
      const init: WorkerInit = { bases: plan.bases, progress: sab, hang: plan.hang };
      const slot: Slot = { worker: startTsWorker(new URL('./fuzz-worker.ts', import.meta.url), init), progress: new Int32Array(sab), startedAt: Date.now(), ready: false, busy: null, lastCount: 0, lastChange: 0 };
      slots.push(slot);
      slot.worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          slot.ready = true;
          dispatch(slot);
          return;
        }
        const req = slot.busy;
        if (!req || req.id !== m.id) return abort(`worker ${i} reported batch ${m.id}, which it was not running`);
        merge(m, req);
        dispatch(slot);
      });
      slot.worker.on('error', (e: Error) => {
        const b = slot.busy;
        const at = b ? ` while running seed ${b.seed}, object ${b.object}, mutant ${Atomics.load(slot.progress, 1)} (replay: ${replayHint(b.seed, b.object, Atomics.load(slot.progress, 1))})` : ' before running any batch';
        abort(`worker ${i} died${at}: ${e.stack ?? e.message}`);
      });
      slot.worker.on('exit', (code) => {
        if (!finished) abort(`worker ${i} exited with code ${code} unexpectedly`);
      });
    }

    const timer = setInterval(() => {
      const now = Date.now();
      for (const [i, s] of slots.entries()) {
        if (!s.ready) {
          if (now - s.startedAt > startupLimit) abort(`worker ${i} did not start within ${startupLimit} ms (tsx registration or module load stuck)`);
          continue;
        }
        if (!s.busy) continue;
        const count = Atomics.load(s.progress, 2);
        if (count !== s.lastCount) {
          s.lastCount = count;
          s.lastChange = now;
          continue;
        }
        if (now - s.lastChange > limit) {
          const index = Atomics.load(s.progress, 1);
          const b = s.busy;
          const ms = now - s.lastChange;
          report.hang = {
            seed: b.seed,
            object: b.object,
            index,
            kind: kindOf(index),
            ms,
            message: `seed ${b.seed}, object ${b.object}, mutant ${index} (${kindOf(index)}) did not finish within ${limit} ms (stopped after ${ms} ms); replay: ${replayHint(b.seed, b.object, index)}`,
          };
          finish();
          return;
        }
      }
      if (now > deadline + Math.max(limit, 5000)) abort(`the run exceeded its time budget of ${Math.round(budget / 1000)} s`);
    }, 100);
  });
}
