/**
 * Which patch mode a chain uses. Inline costs less per packet (no bpf-to-bpf call frame around the
 * body: on the host 69 ns against 91 ns for the trio, chain hops 2.6 ns against 12 ns) and loads
 * on every kernel with tail calls, so it is the default; subprog only where a body itself calls
 * other functions (bpf-to-bpf calls or callbacks), which inline cannot keep, and the kernel lets
 * tail calls mix with bpf-to-bpf calls.
 */
import { LabError } from '../errors.ts';
import type { KernelFeatures } from '../features.ts';
import type { PatchMode } from './constants.ts';

export interface ModeBody {
  /** "file.o:program", for messages */
  where: string;
  hasSubprogCalls: boolean;
}

export interface ModeChoice {
  mode: PatchMode;
  reason: string;
}

export function choosePatchMode(features: Pick<KernelFeatures, 'features' | 'kernelRelease'>, bodies: readonly ModeBody[]): ModeChoice {
  const calling = bodies.filter((b) => b.hasSubprogCalls).map((b) => b.where);
  const mix = features.features.tailCallsWithBpf2bpf;
  if (calling.length === 0) {
    return { mode: 'inline', reason: 'inline: no body calls other functions, and inline has no call frame around the body (cheaper per packet)' };
  }
  if (mix.ok) return { mode: 'subprog', reason: `subprog: ${calling.join(', ')} call other functions, which inline cannot keep; ${mix.detail}` };
  throw new LabError('UNSUPPORTED', `${calling.join(', ')} call other functions (bpf-to-bpf calls or callbacks), which needs the subprog mode, and kernel ${features.kernelRelease} forbids tail calls mixed with bpf-to-bpf calls (${mix.detail})`, {
    remedy: 'Mark the called functions __always_inline and rebuild, or chain on a kernel that allows it (x86-64 5.10+).',
  });
}
