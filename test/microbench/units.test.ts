/**
 * The microbenchmark's pure parts, without root: the per-hop fit and its confidence interval, the
 * bpftool batch runner against a scripted target (results in order, failures named), input
 * validation before anything touches the target, the table, and the records' schema.
 */
import { describe, expect, it } from 'vitest';
import { LabError, isLabError } from '../../lab/errors.ts';
import type { CommandResult, RunOptions, Target } from '../../lab/target.ts';
import { RawRecord } from '../../lab/results/record.ts';
import { fitPerHop, t975 } from '../../lab/microbench/stats.ts';
import { progRunBatch, u32Words } from '../../lab/microbench/runner.ts';
import { runMicrobenchDetailed, scalingRow, unsupportedRecord, type MicrobenchResult } from '../../lab/microbench/index.ts';
import { formatMicrobench, targetVerdict } from '../../lab/microbench/table.ts';
import { shortChainSlope } from '../../lab/results/breakdown.ts';
import { openSandbox } from '../../lab/microbench/sandbox.ts';
import type { KernelFeatures } from '../../lab/features.ts';

/** A target that answers bpftool batches from a script and records every command. */
class ScriptedTarget implements Target {
  readonly name = 'scripted';
  readonly kernelRelease = '9.9.9-test';
  readonly accelerator = 'host' as const;
  readonly workDir = '/nonexistent/xt8-units';
  readonly calls: { argv: readonly string[]; input?: string }[] = [];
  constructor(private readonly answer: (argv: readonly string[], input?: string) => CommandResult) {}
  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    this.calls.push({ argv, input: options.input });
    return this.answer(argv, options.input);
  }
  sh(script: string, options?: RunOptions): Promise<CommandResult> {
    return this.run(['bash', '-c', script], options);
  }
  async putFile(): Promise<void> {}
  async [Symbol.asyncDispose](): Promise<void> {}
}

/** Deterministic pseudo-random noise (no Math.random in tests). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

describe('fitPerHop', () => {
  it('recovers a known slope and its CI covers it', () => {
    const noise = lcg(7);
    const pts: [number, number][] = [];
    for (const len of [1, 2, 4, 8, 16, 33]) for (let r = 0; r < 5; r++) pts.push([len, 10 + 21 * len + 4 * noise()]);
    const fit = fitPerHop(pts)!;
    expect(fit.n).toBe(30);
    expect(Math.abs(fit.slope - 21)).toBeLessThan(0.2);
    expect(fit.slopeCi95).not.toBeNull();
    expect(fit.slopeCi95!).toBeGreaterThan(0);
    expect(Math.abs(fit.slope - 21)).toBeLessThanOrEqual(fit.slopeCi95!);
    expect(fit.r2).toBeGreaterThan(0.99);
  });

  it('gives a wider CI to noisier data', () => {
    const mk = (amp: number): [number, number][] => {
      const noise = lcg(3);
      return [1, 2, 4, 8, 16, 33].flatMap((len) => [0, 1, 2].map(() => [len, 5 + 2 * len + amp * noise()] as [number, number]));
    };
    expect(fitPerHop(mk(20))!.slopeCi95!).toBeGreaterThan(fitPerHop(mk(1))!.slopeCi95!);
  });

  it('exact line: zero CI; one length: no fit; two points: no CI', () => {
    const exact = fitPerHop([[1, 3], [2, 5], [3, 7]])!;
    expect(exact.slope).toBeCloseTo(2, 12);
    expect(exact.intercept).toBeCloseTo(1, 12);
    expect(exact.slopeCi95).toBeCloseTo(0, 12);
    expect(fitPerHop([[4, 1], [4, 2], [4, 3]])).toBeNull();
    expect(fitPerHop([[1, 1], [2, 2]])!.slopeCi95).toBeNull();
  });

  it('t quantiles decrease towards the normal one', () => {
    expect(t975(1)).toBeCloseTo(12.706, 3);
    expect(t975(10)).toBeCloseTo(2.228, 3);
    expect(t975(1000)).toBeCloseTo(1.96, 2);
    for (let df = 1; df < 200; df++) expect(t975(df + 1)).toBeLessThanOrEqual(t975(df));
  });
});

describe('scalingRow', () => {
  it('takes the median per length and fits every repetition', () => {
    const row = scalingRow({
      variant: 'chain/x',
      hop: 'tail-call-constant',
      explains: '',
      byLength: new Map([
        [1, [10, 11, 30]],
        [2, [12, 13, 14]],
        [4, [16, 17, 18]],
      ]),
    });
    expect([...row.medians]).toEqual([
      [1, 11],
      [2, 13],
      [4, 17],
    ]);
    expect(row.fit!.n).toBe(9);
  });
});

describe('progRunBatch', () => {
  const ok = (out: unknown): CommandResult => ({ stdout: JSON.stringify(out), stderr: '', exitCode: 0 });

  it('sends one batch and returns the prog runs in order', async () => {
    const t = new ScriptedTarget((_argv, input) => {
      const lines = (input ?? '').trim().split('\n');
      return ok(
        lines.map((l, i) => {
          const command = l.split(' ');
          return { command, output: command[1] === 'run' ? { retval: 2, duration: 100 + i } : null };
        }),
      );
    });
    const runs = await progRunBatch(
      t,
      [
        ['map', 'delete', 'pinned', '/sys/fs/bpf/x/m', 'key', ...u32Words(3)],
        ['prog', 'run', 'pinned', '/sys/fs/bpf/x/p', 'data_in', '/tmp/pkt', 'repeat', '10'],
        ['prog', 'run', 'pinned', '/sys/fs/bpf/x/p', 'data_in', '/tmp/pkt', 'repeat', '10'],
      ],
      'test',
    );
    expect(t.calls).toHaveLength(1);
    expect(t.calls[0]!.argv).toEqual(['bpftool', '-j', 'batch', 'file', '-']);
    expect(t.calls[0]!.input).toContain('key hex 03 00 00 00');
    expect(runs).toEqual([
      { retval: 2, durationNs: 101 },
      { retval: 2, durationNs: 102 },
    ]);
  });

  it('names the failing command with bpftool\'s words', async () => {
    const t = new ScriptedTarget(() => ({
      stdout: JSON.stringify([{ command: ['prog', 'run', 'pinned', '/sys/fs/bpf/gone'], output: { error: 'bpf obj get (/sys/fs/bpf/gone): No such file or directory' } }]),
      stderr: '',
      exitCode: 255,
    }));
    const err = await progRunBatch(t, [['prog', 'run', 'pinned', '/sys/fs/bpf/gone', 'data_in', 'x', 'repeat', '1']], 'probing').catch((e: unknown) => e);
    expect(isLabError(err, 'BENCH')).toBe(true);
    expect((err as LabError).message).toContain('/sys/fs/bpf/gone');
    expect((err as LabError).message).toContain('No such file or directory');
  });

  it('rejects output that does not account for every command', async () => {
    const t = new ScriptedTarget(() => ({ stdout: 'garbage', stderr: 'Error: bad', exitCode: 0 }));
    const err = await progRunBatch(t, [['prog', 'run', 'pinned', '/p', 'data_in', 'x', 'repeat', '1']], 'x').catch((e: unknown) => e);
    expect(isLabError(err, 'BENCH')).toBe(true);
  });
});

describe('input validation', () => {
  const features: KernelFeatures = {
    target: 'scripted',
    kernelRelease: '9.9.9-test',
    features: {} as KernelFeatures['features'],
    maxChainPrograms: 34,
    patchMode: 'subprog',
    patchModeReason: 'test',
    probedAt: new Date(0).toISOString(),
  };
  const untouched = (): ScriptedTarget =>
    new ScriptedTarget((argv) => {
      throw new Error(`the target must not be used: ${argv.join(' ')}`);
    });
  const base = { runId: 'r', kernel: 'k', quick: true, features };

  it.each([
    ['repeat 0', { repeat: 0 }],
    ['fractional repetitions', { repetitions: 1.5 }],
    ['a chain longer than the kernel runs', { maxLength: 40 }],
    ['a zero length', { lengths: [0, 1] }],
    ['a length past the kernel limit', { lengths: [1, 35] }],
    ['11 dispatcher programs', { dispatcherLengths: [11] }],
  ])('refuses %s before touching the target', async (_name, extra) => {
    const t = untouched();
    const err = await runMicrobenchDetailed(t, { ...base, ...extra }).catch((e: unknown) => e);
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect(t.calls).toHaveLength(0);
  });

  it('refuses a resource prefix that cannot name an interface', async () => {
    const t = untouched();
    for (const p of ['', 'Xt8', 'toolongprefix', '8xt', 'a-b']) {
      const err = await openSandbox(t, p).catch((e: unknown) => e);
      expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    }
    expect(t.calls).toHaveLength(0);
  });
});

describe('sandbox cleanup', () => {
  /** A target whose `ip netns del` fails `failures` times; /run/netns/<name> stays until one succeeds. */
  function netnsTarget(failures: number): ScriptedTarget {
    let left = failures;
    let exists = false;
    return new ScriptedTarget((argv) => {
      const ok = { stdout: '', stderr: '', exitCode: 0 };
      if (argv[0] === 'stat') return { ...ok, stdout: 'bpf_fs\n' };
      if (argv.join(' ').startsWith('ip netns add')) exists = true;
      if (argv.join(' ').startsWith('ip netns del')) {
        if (left-- > 0) return { stdout: '', stderr: 'Cannot remove namespace file: Device or resource busy', exitCode: 1 };
        exists = false;
      }
      if (argv[0] === 'test' && argv[2]?.startsWith('/run/netns/')) return { ...ok, exitCode: exists ? 0 : 1 };
      return ok;
    });
  }

  it('tries a refused namespace deletion again and succeeds quietly', async () => {
    const t = netnsTarget(2);
    const sb = await openSandbox(t, 'xt8');
    await sb.netns();
    await sb.dispose();
    expect(t.calls.filter((c) => c.argv.join(' ').startsWith('ip netns del'))).toHaveLength(3);
  });

  it('names a namespace it could not delete, with what ip said, after cleaning up the rest', async () => {
    const t = netnsTarget(99);
    const sb = await openSandbox(t, 'xt8');
    const { netns } = await sb.netns();
    const err = await sb.dispose().catch((e: unknown) => e);
    expect(isLabError(err, 'COMMAND')).toBe(true);
    expect((err as LabError).message).toContain(netns);
    expect((err as LabError).message).toContain('Device or resource busy');
    expect((err as LabError).remedy).toContain(`ip netns del ${netns}`);
    // The pins and the work directory were still removed.
    expect(t.calls.some((c) => c.argv[0] === 'rm' && c.argv.includes(sb.workDir))).toBe(true);
  });
});

describe('records and table', () => {
  const t = new ScriptedTarget(() => ({ stdout: '', stderr: '', exitCode: 0 }));

  it('an unsupported variant is a schema-valid record with no measurement and its reason', () => {
    const rec = unsupportedRecord(t, { runId: 'r', kernel: 'k' }, { variant: 'chain/dispatcher', hop: 'freplace', status: 'unsupported', reason: 'no freplace' }, 1000);
    expect(RawRecord.safeParse(rec).success).toBe(true);
    expect(rec.nsPerPacket).toEqual([]);
    expect(rec.reason).toBe('unsupported: no freplace');
    expect(JSON.parse(JSON.stringify(rec)).reason).toBe('unsupported: no freplace');
  });

  it('the table shows each variant, its hop kind, its fit and what was not measured', () => {
    const row = scalingRow({ variant: 'chain/manual-indirect', hop: 'tail-call-indirect', explains: 'index from a map', byLength: new Map([[1, [30]], [2, [51]], [4, [93]]]) });
    const result: MicrobenchResult = {
      target: 'host',
      kernel: 'host',
      kernelRelease: '9.9.9-test',
      records: [],
      scaling: [row],
      approaches: [{ variant: 'fused', approach: 'fused', hop: 'none', chainLength: 1, nsPerPacket: [40, 41, 42], notes: [] }],
      interpreted: [{ variant: 'fused', approach: 'fused', hop: 'none', chainLength: 1, nsPerPacket: [300, 328, 350], notes: [] }],
      unsupported: [{ variant: 'chain/dispatcher', hop: 'freplace', status: 'unsupported', reason: 'no freplace here' }],
      maxChainPrograms: 34,
      repeat: 1000,
      repetitions: 1,
      notes: [],
    };
    const text = formatMicrobench(result);
    expect(text).toContain('manual-indirect');
    expect(text).toContain('tail-call-indirect');
    expect(text).toContain(row.fit!.slope.toFixed(2));
    expect(text).toContain('chain/dispatcher: unsupported: no freplace here');
    expect(text).toMatch(/fused\s+none\s+1\s+41\.0/);
    expect(text).toContain('34 programs');
    // The interpreter row against the JIT's median (328 / 41).
    expect(text).toMatch(/BPF interpreter[^\n]*\n[^\n]*\n[^\n]*\n\s*fused\s+328\.0\s+300\s+350\s+3\s+8\.00×/);
  });

  it('checks the targets on the run\'s own numbers: ratios, overlap with manual, tail calls over fused', () => {
    // A constant-index hop of exactly 2 ns per program.
    const hop = scalingRow({ variant: 'chain/manual-constant', hop: 'tail-call-constant', explains: 'immediate index', byLength: new Map([[1, [10]], [2, [12]], [3, [14]]]) });
    const rows = [
      { variant: 'fused', approach: 'fused' as const, hop: 'none' as const, chainLength: 1, nsPerPacket: [40, 41, 42], notes: [] },
      { variant: 'manual', approach: 'manual' as const, hop: 'tail-call-constant' as const, chainLength: 3, nsPerPacket: [43, 44, 45], notes: [] },
      // inline: ranges overlap with manual; 45 - 41 = 4 ns = 2 tail calls of 2 ns
      { variant: 'patched-inline', approach: 'patched' as const, hop: 'tail-call-constant' as const, chainLength: 3, nsPerPacket: [44, 45, 46], notes: [] },
      // subprog: no overlap; 61 - 41 = 20 ns = 10 tail calls
      { variant: 'patched-subprog', approach: 'patched' as const, hop: 'tail-call-constant' as const, chainLength: 3, nsPerPacket: [60, 61, 62], notes: [] },
    ];
    // Patched hops: inline 2.4 ns (0.4 over manual's 2: met), subprog 10 ns (missed).
    const inlineHop = scalingRow({ variant: 'chain/patched-inline', hop: 'tail-call-constant', explains: 'immediate index', byLength: new Map([[1, [11]], [2, [13.4]], [3, [15.8]]]) });
    const subprogHop = scalingRow({ variant: 'chain/patched-subprog', hop: 'tail-call-constant', explains: 'immediate index', byLength: new Map([[1, [20]], [2, [30]], [3, [40]]]) });
    const result: MicrobenchResult = { target: 'host', kernel: 'host', kernelRelease: 'x', records: [], scaling: [hop, inlineHop, subprogHop], approaches: rows, interpreted: [], unsupported: [], maxChainPrograms: 34, repeat: 1, repetitions: 3, notes: [] };
    const lines = targetVerdict(result);
    expect(lines).toEqual([
      'Target: patched within measurement error of manual, and within two tail calls of fused:',
      '  patched-inline / manual = 1.02 (+1.0 ns): within measurement error (ranges overlap)',
      '  patched-inline / fused = 1.10 (4.0 ns = 2.0 tail calls of 2.00 ns): within two tail calls',
      '  patched-subprog / manual = 1.39 (+17.0 ns): NOT within measurement error (ranges do not overlap)',
      '  patched-subprog / fused = 1.49 (20.0 ns = 10.0 tail calls of 2.00 ns): NOT within two tail calls',
      'Cost target: patched / manual ≤ 1.03 on the trio, per hop ≤ manual + 0.5 ns:',
      '  patched-inline / manual = 1.023 on the trio (target ≤ 1.03): met',
      '  patched-subprog / manual = 1.386 on the trio (target ≤ 1.03): MISSED — largest part: bpf-to-bpf call frame of the body (subprog mode), 7.60 ns per program',
      '  patched-inline: 2.40 ns per hop (≤8 programs) against manual\'s 2.00, +0.40 ns (target ≤ +0.5): met',
      '  patched-subprog: 10.00 ns per hop (≤8 programs) against manual\'s 2.00, +8.00 ns (target ≤ +0.5): MISSED — largest part: bpf-to-bpf call frame of the body (subprog mode), 7.60 ns per program',
    ]);
    expect(formatMicrobench(result)).toContain(lines[3]);
    // Nothing to say without a patched measurement.
    expect(targetVerdict({ ...result, approaches: rows.slice(0, 2) })).toEqual([]);
  });

  it('shows the short-chain slope beside the full fit: a knee after 8 programs does not hide the cheap regime', () => {
    // 1.5 ns per hop up to 8 programs, 8 ns per hop after.
    const medians = new Map<number, number>();
    for (let len = 1; len <= 33; len++) medians.set(len, len <= 8 ? 20 + 1.5 * len : 32 + 8 * (len - 8));
    expect(shortChainSlope(medians)).toBeCloseTo(1.5, 6);
    expect(shortChainSlope(new Map([[16, 100], [33, 200]]))).toBeNull();
    const row = scalingRow({ variant: 'chain/manual-constant', hop: 'tail-call-constant', explains: 'immediate', byLength: new Map([...medians].map(([l, ns]) => [l, [ns]])) });
    const text = formatMicrobench({ target: 'host', kernel: 'host', kernelRelease: 'x', records: [], scaling: [row], approaches: [], interpreted: [], unsupported: [], maxChainPrograms: 34, repeat: 1, repetitions: 1, notes: [] });
    expect(text).toMatch(/ns\/hop ≤8\s+1\.50/);
    expect(row.fit!.slope).toBeGreaterThan(5);
  });
});
