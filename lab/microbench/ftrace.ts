/**
 * Kernel function durations by ftrace's function_graph tracer, on a Target: only the named
 * functions are traced (set_ftrace_filter), so each call is one line with its duration, and the
 * tracer is put back to what it was on every path. Where the kernel has no tracefs, no
 * function_graph tracer or not the function, the answer is the reason, never a zero.
 */
import type { Target } from '../target.ts';

const TRACING = '/sys/kernel/tracing';

export type FtraceAvailability = { ok: true } | { ok: false; reason: string };

export async function ftraceAvailable(target: Target, functions: readonly string[]): Promise<FtraceAvailability> {
  const mounted = await target.sh(`[ -e ${TRACING}/available_tracers ] || mount -t tracefs nodev ${TRACING}`, { allowFailure: true });
  if (mounted.exitCode !== 0) return { ok: false, reason: `kernel ${target.kernelRelease}: no tracefs at ${TRACING} (${(mounted.stderr || mounted.stdout).trim() || `exit ${mounted.exitCode}`})` };
  const tracers = await target.run(['cat', `${TRACING}/available_tracers`], { allowFailure: true });
  if (!/\bfunction_graph\b/.test(tracers.stdout)) return { ok: false, reason: `kernel ${target.kernelRelease}: ftrace has no function_graph tracer (available: ${tracers.stdout.trim() || 'none'})` };
  for (const f of functions) {
    const has = await target.sh(`grep -qx '${f}' ${TRACING}/available_filter_functions`, { allowFailure: true });
    if (has.exitCode !== 0) return { ok: false, reason: `kernel ${target.kernelRelease}: ${f} cannot be traced (not in available_filter_functions${has.stderr.trim() ? `: ${has.stderr.trim()}` : ''})` };
  }
  return { ok: true };
}

/**
 * Durations (µs) of each traced function's calls, from function_graph output: a leaf call is
 * "  0)   5.123 us    |  bpf_int_jit_compile();", a call whose traced callees are shown ends with
 * "  0) ! 123.4 us    |  } /* bpf_check *\/". The markers (+ ! # * @ $) only flag long calls.
 */
export function parseFunctionGraph(text: string, functions: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>(functions.map((f) => [f, []]));
  for (const line of text.split('\n')) {
    const m = /([\d.]+) us\s*\|\s*(?:([\w.]+)\(\);|\}\s*\/\*\s*([\w.]+)\s*\*\/)/.exec(line);
    if (!m) continue;
    const name = m[2] ?? m[3]!;
    out.get(name)?.push(Number(m[1]));
  }
  return out;
}

/** Runs `work` with function_graph tracing `functions` only; returns its result and the durations. */
export async function traceDurations<T>(target: Target, functions: readonly string[], work: () => Promise<T>): Promise<{ result: T; durations: Map<string, number[]> }> {
  const previous = (await target.run(['cat', `${TRACING}/current_tracer`])).stdout.trim() || 'nop';
  const wasOn = (await target.run(['cat', `${TRACING}/tracing_on`])).stdout.trim() === '0' ? '0' : '1';
  const w = (file: string, value: string): Promise<unknown> => target.sh(`echo ${value} > ${TRACING}/${file}`);
  try {
    await w('tracing_on', '0');
    await w('current_tracer', 'nop');
    await w('set_ftrace_filter', `'${functions.join(' ')}'`);
    await w('trace', "''");
    await w('current_tracer', 'function_graph');
    await w('tracing_on', '1');
    const result = await work();
    await w('tracing_on', '0');
    const trace = (await target.run(['cat', `${TRACING}/trace`])).stdout;
    return { result, durations: parseFunctionGraph(trace, functions) };
  } finally {
    await target.sh(`echo 0 > ${TRACING}/tracing_on; echo nop > ${TRACING}/current_tracer; echo > ${TRACING}/set_ftrace_filter; echo ${previous} > ${TRACING}/current_tracer; echo ${wasOn} > ${TRACING}/tracing_on`, { allowFailure: true });
  }
}
