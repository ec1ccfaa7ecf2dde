/**
 * Builds the microbenchmark's own trivial programs (programs/micro/*.c) into build/micro/ with
 * clang through the toolchain. Objects are named by the toolchain's content hash (source, headers,
 * flags, clang and its version), so a rebuild happens only when one of those changes, a stale object
 * is never reused, and older objects of the same name are removed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { REPO_ROOT } from '../paths.ts';
import { BPF_FLAGS, bpfIncludeFlags, compile } from '../toolchain/clang.ts';

export const MICRO_SOURCE_DIR = join(REPO_ROOT, 'programs', 'micro');
export const MICRO_BUILD_DIR = join(REPO_ROOT, 'build', 'micro');

/** The objects the bench uses, each one source compiled with its own defines. */
export const MICRO_OBJECTS = {
  /** 35 programs, tail call with an immediate index (direct jump). */
  chainConstant: { source: 'chain.c', defines: [] as string[] },
  /** 35 programs, constant index, the patched chain's end-of-chain verdict read where the chain ends. */
  chainEndLookup: { source: 'chain.c', defines: ['END_LOOKUP'] },
  /** 35 programs, tail call with the index read from a map (indirect jump). */
  chainIndirect: { source: 'chain.c', defines: ['INDIRECT'] },
  /** 35 programs, constant index, each counting its run: finds the longest chain. */
  chainCount: { source: 'chain.c', defines: ['COUNT'] },
  /** 35 programs, index from a map, each counting its run (tests only). */
  chainCountIndirect: { source: 'chain.c', defines: ['INDIRECT', 'COUNT'] },
  /** chainConstant as sched_cls programs ending in TC_ACT_OK: the TC manual chain's hop. */
  tcChainConstant: { source: 'chain.c', defines: ['XCL_HOOK_TC'] },
  /** tcChainConstant ending in TC_ACT_UNSPEC: a tail-call chain the next filter follows (live TC scaling). */
  tcChainContinue: { source: 'chain.c', defines: ['XCL_HOOK_TC', 'XCL_TC_CONTINUE'] },
  /** The clock filters around a live TC chain: stamp_start, stamp_end and their per-CPU sum. */
  tcStamp: { source: 'tc_stamp.c', defines: [] as string[] },
  /** One sched_cls program returning TC_ACT_UNSPEC: a link of a cls_bpf or tcx chain. */
  tcNext: { source: 'tc_stamp.c', defines: ['NEXT_ONLY'] },
  /** One program returning XDP_PASS: what the patched chain and the dispatcher chain. */
  pass: { source: 'pass.c', defines: [] as string[] },
  /** XDP_PASS and a run counter: the tests' proof that a patched chain of length L runs L programs. */
  count: { source: 'count.c', defines: [] as string[] },
} as const;
export type MicroObjectName = keyof typeof MICRO_OBJECTS;
export type MicroObjects = Record<MicroObjectName, string>;

/** Compiles one micro object (or reuses the cached one) and returns its local path. */
export async function buildMicroObject(name: MicroObjectName, buildDir = MICRO_BUILD_DIR): Promise<string> {
  const spec = MICRO_OBJECTS[name];
  const src = join(MICRO_SOURCE_DIR, spec.source);
  if (!existsSync(src)) {
    throw new LabError('MISSING_FILE', `${src}: not found`, { remedy: 'Restore programs/micro/ from the repository.' });
  }
  const flags = [...BPF_FLAGS, ...spec.defines.map((d) => `-D${d}`), ...bpfIncludeFlags()];
  const built = await compile(
    {
      compiler: 'clang',
      flags,
      source: src,
      output: 'object',
      what: `programs/micro/${spec.source} (${name}.o)`,
      remedy: 'Check that clang and libbpf-dev (bpf/bpf_helpers.h) are installed (npm run setup).',
    },
    { dir: buildDir, name, ext: '.o', layout: 'hashed-latest' },
  );
  return built.path;
}

/** Builds every micro object; returns name → local path. */
export async function buildMicroObjects(buildDir = MICRO_BUILD_DIR): Promise<MicroObjects> {
  const out = {} as MicroObjects;
  for (const name of Object.keys(MICRO_OBJECTS) as MicroObjectName[]) out[name] = await buildMicroObject(name, buildDir);
  return out;
}
