/**
 * Runs fuzz mutants in a worker thread, so that the parent's watchdog can stop a mutant that never
 * finishes (a synchronous loop in the test's own thread could not be interrupted by anything).
 *
 * Before each mutant the worker writes its batch and mutant index into shared memory: the parent
 * reads them without needing this thread's event loop, which a hang blocks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readObject } from '../../lab/bpf/object.ts';
import { type Failure, type FuzzBase, type PreparedBase, type Reader, type Sample, regionsOf, replayHint, runMutant } from './fuzz-mutants.ts';

export interface WorkerInit {
  bases: (FuzzBase & { sampleable: boolean })[];
  /** Int32Array view: [batch id, mutant index started, mutants started (ever increasing), busy]. */
  progress: SharedArrayBuffer;
  /** Test-only: this mutant runs a reader that never returns, to prove the watchdog works. */
  hang?: { seed: number; object: string; index: number };
}

export interface BatchRequest {
  type: 'batch';
  id: number;
  seed: number;
  object: string;
  start: number;
  count: number;
  /** Date.now() after which no further mutant is started. */
  deadline: number;
}

export interface KindStats {
  total: number;
  parsed: number;
  roundTrips: number;
  patched: number;
}

export interface BatchReport {
  type: 'done';
  id: number;
  ran: number;
  /** Set when the deadline stopped the batch before its end: the first mutant not run. */
  stoppedAt?: number;
  bytes: KindStats;
  model: KindStats;
  codes: Record<string, number>;
  internal: string[];
  failures: Failure[];
  samples: Sample[];
}

export type WorkerMessage = { type: 'ready' } | BatchReport;

const init = workerData as WorkerInit;
const progress = new Int32Array(init.progress);
const bases = new Map<string, PreparedBase & { sampleable: boolean }>();
for (const b of init.bases) bases.set(b.name, { ...b, regions: regionsOf(b.bytes) });

/** A reader that parses, then loops forever: what a real hang in a reader would look like. */
const hangingReader: Reader = (bytes, fileName) => {
  try {
    readObject(bytes, fileName);
  } catch {
    // Whether this mutant parses does not matter: the hook must hang on every mutant it is given.
  }
  let spins = 0;
  for (;;) {
    // Touch shared memory now and then so no optimiser can prove the loop empty.
    spins = (spins + 1) | 0;
    if (spins === 0) Atomics.load(progress, 0);
  }
};

const emptyKind = (): KindStats => ({ total: 0, parsed: 0, roundTrips: 0, patched: 0 });
const MAX_FAILURES = 20;

function runBatch(req: BatchRequest): BatchReport {
  const base = bases.get(req.object);
  const rep: BatchReport = { type: 'done', id: req.id, ran: 0, bytes: emptyKind(), model: emptyKind(), codes: {}, internal: [], failures: [], samples: [] };
  if (!base) throw new Error(`fuzz worker: unknown object ${req.object}`);
  Atomics.store(progress, 0, req.id);
  Atomics.store(progress, 3, 1);
  for (let n = req.start; n < req.start + req.count; n++) {
    if (Date.now() > req.deadline) {
      rep.stoppedAt = n;
      break;
    }
    Atomics.store(progress, 1, n);
    Atomics.add(progress, 2, 1);
    const h = init.hang;
    const read = h && h.seed === req.seed && h.object === req.object && h.index === n ? hangingReader : readObject;
    const res = runMutant(base, req.seed, n, read);
    rep.ran++;
    const k = rep[res.kind];
    k.total++;
    if (res.parsed) k.parsed++;
    k.roundTrips += res.roundTrips;
    k.patched += res.patched;
    for (const c of res.codes) rep.codes[c] = (rep.codes[c] ?? 0) + 1;
    for (const m of res.internal) {
      if (rep.internal.length < MAX_FAILURES) rep.internal.push(`seed ${req.seed}, object ${req.object}, mutant ${n} (${res.kind}; ${res.ops.join(', ')}): ${m}\n  replay: ${replayHint(req.seed, req.object, n)}`);
    }
    if (res.failure && rep.failures.length < MAX_FAILURES) rep.failures.push({ seed: req.seed, object: req.object, index: n, ...res.failure });
    if (res.sample && base.sampleable && rep.samples.length === 0) rep.samples.push({ seed: req.seed, object: req.object, index: n, ...res.sample });
  }
  Atomics.store(progress, 3, 0);
  return rep;
}

const port = parentPort!;
port.on('message', (req: BatchRequest) => {
  const rep = runBatch(req);
  port.postMessage(rep satisfies WorkerMessage);
});
port.postMessage({ type: 'ready' } satisfies WorkerMessage);
