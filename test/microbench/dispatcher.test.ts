/**
 * Dispatcher scaling against a scripted target that plays a kernel with freplace (this host has
 * none, so the real path runs only in guests): L copies loaded by xdp-loader for each length L,
 * the dispatcher found through `bpftool net show`, timed by one batch per length, the interface
 * always left empty; an xdp-loader refusal becomes a clear error, still cleaning up.
 */
import { describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import type { CommandResult, RunOptions, Target } from '../../lab/target.ts';
import { openSandbox } from '../../lab/microbench/sandbox.ts';
import { measureDispatcher } from '../../lab/microbench/scaling.ts';

class FakeKernel implements Target {
  readonly name = 'vm:fake';
  readonly kernelRelease = '6.1.0-fake';
  readonly accelerator = 'tcg' as const;
  readonly workDir = '/fake/work';
  readonly log: string[] = [];
  /** Programs behind the dispatcher currently attached (0 = none). */
  loaded = 0;
  constructor(private readonly refuseAt = Infinity) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const line = argv.join(' ');
    this.log.push(line);
    const ok = (stdout = ''): CommandResult => ({ stdout, stderr: '', exitCode: 0 });
    if (line.startsWith('stat -f')) return ok('bpf_fs\n');
    const loader = argv.indexOf('xdp-loader');
    if (loader >= 0 && argv[loader + 1] === 'load') {
      const n = argv.length - argv.indexOf('native') - 2;
      if (n >= this.refuseAt) return { stdout: '', stderr: `Couldn't attach ${n} programs: too many`, exitCode: 1 };
      this.loaded = n;
      return ok();
    }
    if (loader >= 0 && argv[loader + 1] === 'unload') {
      this.loaded = 0;
      return ok();
    }
    if (line.includes('bpftool -j net show')) {
      const dev = argv[argv.indexOf('dev') + 1]!;
      return ok(JSON.stringify([{ xdp: this.loaded ? [{ devname: dev, ifindex: 7, mode: 'driver', id: 1000 + this.loaded }] : [] }]));
    }
    if (line === 'bpftool -j batch file -') {
      const out = (options.input ?? '').trim().split('\n').map((l) => {
        const command = l.split(' ');
        return { command, output: command[1] === 'run' ? { retval: 2, duration: 10 + 7 * this.loaded } : null };
      });
      return ok(JSON.stringify(out));
    }
    return ok();
  }
  sh(script: string, options?: RunOptions): Promise<CommandResult> {
    return this.run(['bash', '-c', script], options);
  }
  async putFile(): Promise<void> {}
  async [Symbol.asyncDispose](): Promise<void> {}
}

describe('dispatcher scaling (scripted kernel with freplace)', () => {
  it('loads L copies per length and times the dispatcher', async () => {
    const t = new FakeKernel();
    const sb = await openSandbox(t, 'xt8');
    try {
      const m = await measureDispatcher(sb, '/local/pass.o', [1, 2, 5], '/fake/pkt.bin', 1000, 3);
      expect(m.variant).toBe('chain/dispatcher');
      expect(m.hop).toBe('freplace');
      expect([...m.byLength]).toEqual([
        [1, [17, 17, 17]],
        [2, [24, 24, 24]],
        [5, [45, 45, 45]],
      ]);
      const loads = t.log.filter((l) => l.includes('xdp-loader load'));
      expect(loads.map((l) => l.split(' ').filter((w) => w.endsWith('pass.o')).length)).toEqual([1, 2, 5]);
      const pins = t.log.filter((l) => l.includes('prog pin id'));
      expect(pins.map((l) => l.split(' ')[5])).toEqual(['1001', '1002', '1005']);
      expect(t.loaded).toBe(0);
      expect(t.log.at(-1)).toMatch(/xdp-loader unload --all/);
    } finally {
      await sb.dispose();
    }
    expect(t.log.some((l) => /^ip netns del xt8m/.test(l))).toBe(true);
  });

  it('turns an xdp-loader refusal into an error naming the length, and unloads', async () => {
    const t = new FakeKernel(3);
    const sb = await openSandbox(t, 'xt8');
    try {
      const err = await measureDispatcher(sb, '/local/pass.o', [1, 2, 3, 4], '/fake/pkt.bin', 1000, 1).catch((e: unknown) => e);
      expect(isLabError(err, 'UNSUPPORTED')).toBe(true);
      expect((err as Error).message).toContain('3 programs');
      expect((err as Error).message).toContain('too many');
      expect(t.loaded).toBe(0);
      expect(t.log.at(-1)).toMatch(/xdp-loader unload --all/);
    } finally {
      await sb.dispose();
    }
  });
});
