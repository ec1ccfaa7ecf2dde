/**
 * Time to patch each object (thesis Alg. 3.4), in both modes. Reported, never asserted.
 * A mode the object cannot take (inline with bpf-to-bpf calls, no free stack slot) is skipped.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isLabError, wrapError } from '../errors.ts';
import { listPrograms, patchObject } from '../chain/patch.ts';
import type { PatchMode } from '../chain/constants.ts';

export interface PatchTiming {
  file: string;
  mode: PatchMode;
  ms: number;
}

/** Median of `rounds` patches of each object's first XDP program, per mode. */
export async function benchPatch(objects: string[], rounds = 20): Promise<PatchTiming[]> {
  const out: PatchTiming[] = [];
  for (const file of objects) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(file));
    } catch (e) {
      throw wrapError('MISSING_FILE', `bench patch: ${file}`, e, 'Build the BPF objects first (npm run build:bpf).');
    }
    const progs = listPrograms(bytes, basename(file));
    const program = (progs.find((p) => p.section.startsWith('xdp')) ?? progs[0])?.name;
    for (const mode of ['subprog', 'inline'] as const) {
      const times: number[] = [];
      try {
        for (let k = 0; k < rounds; k++) {
          const t0 = performance.now();
          patchObject(bytes, { index: 1, success: [2], redirect: [3, 4], mode, program, fileName: basename(file) });
          times.push(performance.now() - t0);
        }
      } catch (e) {
        if (isLabError(e, 'PATCH')) continue;
        throw e;
      }
      times.sort((a, b) => a - b);
      out.push({ file, mode, ms: times[Math.floor(times.length / 2)]! });
    }
  }
  return out;
}
