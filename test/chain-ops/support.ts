/**
 * Shared pieces of the chain-ops tests: the host Target, the fixture programs, a reference patcher
 * (the fixture's own C version of Alg. 3.4) and a batched bpftool runner. Host resources use the
 * prefix xt6 (pins /sys/fs/bpf/xt6*, namespaces xt6-*).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostTarget, type Target } from '../../lab/target.ts';
import { compileBpfSource } from '../../lab/toolchain/bpf-source.ts';
import type { Patcher } from '../../lab/chain/ops/build.ts';
import type { PatchOptions, PatchResult } from '../../lab/chain/patch/types.ts';
import { bpftoolBatch as labBpftoolBatch, mapCreate as labMapCreate, unpin as labUnpin } from '../../lab/bpftool/index.ts';

/**
 * Per-process suffix for every host resource the tests create, so two test runs at once (a CI job
 * and a developer, say) never touch each other's pins, namespaces or interfaces.
 */
export const RUN_ID = (process.pid % 46656).toString(36);

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/chain-ops');
const COUNTER_SOURCE = readFileSync(join(FIXTURES, 'counter.c'), 'utf8');

export async function hostTarget(): Promise<Target> {
  return HostTarget.create(`/tmp/xt6-work-${RUN_ID}`);
}

function mask(vs: readonly number[]): number {
  return vs.reduce((m, v) => m | (1 << v), 0);
}

/** The plain (unpatched) counter program with identity `id`; constant verdict when given. */
export async function counterObject(id: number, verdict?: number): Promise<string> {
  const flags = [`-DPROG_ID=${id}`];
  if (verdict !== undefined) flags.push(`-DVERDICT=${verdict}`);
  return compileBpfSource(COUNTER_SOURCE, `xt6-counter-${id}${verdict === undefined ? '' : `-v${verdict}`}`, flags);
}

/**
 * A Patcher whose patchObject returns the fixture compiled with -DCHAIN_INDEX (the reference
 * patch in C). Objects must be announced with prepare() first, since compiling is asynchronous.
 */
export class ReferencePatcher implements Patcher {
  private ids = new Map<string, { id: number; verdict: number | undefined }>();
  private built = new Map<string, Uint8Array>();
  calls = 0;

  private static hash(b: Uint8Array): string {
    return createHash('sha256').update(b).digest('hex');
  }

  private static key(id: number, verdict: number | undefined, index: number, s: readonly number[], r: readonly number[]): string {
    return `${id}/${verdict ?? '-'}/${index}/${mask(s)}/${mask(r)}`;
  }

  /** Compiles the plain object and the patched variant for slot `index`; returns the plain path. */
  async prepare(id: number, index: number, success: readonly number[], redirect: readonly number[], verdict?: number): Promise<string> {
    const plain = await counterObject(id, verdict);
    this.ids.set(ReferencePatcher.hash(new Uint8Array(await readFile(plain))), { id, verdict });
    const flags = [`-DPROG_ID=${id}`, `-DCHAIN_INDEX=${index}`, `-DSMASK=${mask(success)}`, `-DRMASK=${mask(redirect)}`];
    if (verdict !== undefined) flags.push(`-DVERDICT=${verdict}`);
    const chained = await compileBpfSource(COUNTER_SOURCE, `xt6-ref-${id}-${index}`, flags);
    this.built.set(ReferencePatcher.key(id, verdict, index, success, redirect), new Uint8Array(await readFile(chained)));
    return plain;
  }

  patchObject(input: Uint8Array, o: PatchOptions): PatchResult {
    this.calls++;
    const who = this.ids.get(ReferencePatcher.hash(input));
    if (!who) throw new Error('ReferencePatcher: object not prepared');
    const object = this.built.get(ReferencePatcher.key(who.id, who.verdict, o.index, o.success, o.redirect));
    if (!object) throw new Error(`ReferencePatcher: slot ${o.index} of program ${who.id} not prepared`);
    return { object, program: 'xt_prog', section: 'xdp', mode: o.mode, hook: 'xdp', success: o.success, redirect: o.redirect, notes: ['reference patch (C)'] };
  }

  listPrograms(): { name: string; section: string; insns: number; hasSubprogCalls: boolean; hasTailCalls: boolean }[] {
    return [{ name: 'xt_prog', section: 'xdp', insns: 0, hasSubprogCalls: false, hasTailCalls: false }];
  }
}

/** Runs many bpftool commands (space-separated words) in one process; returns each output. */
export async function bpftoolBatch(target: Target, commands: readonly string[]): Promise<unknown[]> {
  const entries = await labBpftoolBatch(target, commands.map((c) => c.split(' ')), 'chain-ops test batch');
  return entries.map((e) => e.output);
}

/** Reads a u64 counter array dumped by bpftool -j. */
export function countsFrom(dump: unknown): Map<number, bigint> {
  const m = new Map<number, bigint>();
  for (const e of dump as { formatted?: { key: number; value: number } ; key: string[]; value: string[] }[]) {
    const key = parseInt(e.key[0]!, 16) | (parseInt(e.key[1]!, 16) << 8);
    let v = 0n;
    e.value.forEach((b, i) => (v |= BigInt(parseInt(b, 16)) << BigInt(8 * i)));
    m.set(key, v);
  }
  return m;
}

/** Two namespaces joined by a veth pair: traffic from `a` (10.206.N.1) enters the chain on `b`. */
export interface VethPair {
  nsA: string;
  nsB: string;
  devA: string;
  devB: string;
  ipA: string;
  ipB: string;
}

export async function createVethPair(target: Target, tag: string, subnet: number): Promise<VethPair> {
  const p: VethPair = {
    nsA: `xt6-${tag}-${RUN_ID}-a`,
    nsB: `xt6-${tag}-${RUN_ID}-b`,
    devA: `xt6${tag}${RUN_ID}a`,
    devB: `xt6${tag}${RUN_ID}b`,
    ipA: `10.206.${subnet}.1`,
    ipB: `10.206.${subnet}.2`,
  };
  await destroyVethPair(target, p);
  const inA = `nsenter --net=/run/netns/${p.nsA}`;
  const inB = `nsenter --net=/run/netns/${p.nsB}`;
  await target.sh(
    [
      `ip netns add ${p.nsA}`,
      `ip netns add ${p.nsB}`,
      `ip link add ${p.devA} netns ${p.nsA} type veth peer name ${p.devB} netns ${p.nsB}`,
      `${inA} ip addr add ${p.ipA}/24 dev ${p.devA}`,
      `${inB} ip addr add ${p.ipB}/24 dev ${p.devB}`,
      `${inA} ip link set ${p.devA} up`,
      `${inB} ip link set ${p.devB} up`,
      `${inA} ip link set lo up`,
      `${inB} ip link set lo up`,
    ].join(' && '),
  );
  return p;
}

export async function destroyVethPair(target: Target, p: VethPair): Promise<void> {
  await target.run(['ip', 'netns', 'del', p.nsA], { allowFailure: true });
  await target.run(['ip', 'netns', 'del', p.nsB], { allowFailure: true });
}

/**
 * A clean pin directory with the shared counter array `xt_counts` in it, and a 64-byte zero
 * packet at <workDir>/<packet>: what the counter chains of the chain-ops tests run on.
 */
export async function counterBench(target: Target, pinRoot: string, packet: string): Promise<{ counts: string; packet: string }> {
  const counts = `${pinRoot}/counts`;
  await labUnpin(target, pinRoot);
  await target.run(['mkdir', '-p', pinRoot]);
  await labMapCreate(target, counts, { type: 'array', keySize: 4, valueSize: 8, entries: 64, name: 'xt_counts' });
  await target.sh(`head -c 64 /dev/zero > ${target.workDir}/${packet}`);
  return { counts, packet: `${target.workDir}/${packet}` };
}
