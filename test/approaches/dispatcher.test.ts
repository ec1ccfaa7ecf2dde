/**
 * The libxdp dispatcher. Where the kernel lacks freplace (this host), supports() must say so in
 * libxdp's own words and attach() must fail with them, leaving nothing behind: never a silent
 * fall back to one program. Where the kernel has it, the three programs run in chain order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agree, requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { isLabError } from '../../lab/errors.ts';
import { xdpAttached } from '../../lab/bpftool/index.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import type { ApproachContext, Support } from '../../lab/approaches/approach.ts';
import { dispatcher } from '../../lab/approaches/dispatcher.ts';
import { builtObjects, hostTarget, leftovers, removeScratch } from '../programs/support.ts';
import { RUN_TAG } from '../support/names.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool', 'xdp-loader');

describe.skipIf(need.skip)('dispatcher (xdp-loader, libxdp)', () => {
  let target: HostTarget;
  let env: TestEnv;
  let objectDir: string;
  let support: Support;
  const ctx = (): ApproachContext => ({ target, ifname: env.b.ifname, netns: env.b.netns, pinDir: `/sys/fs/bpf/xt2disp${RUN_TAG}`, objectDir });

  async function libxdpPinsFor(ifname: string): Promise<string[]> {
    const link = await env.exec(env.b.netns, ['ip', '-j', 'link', 'show', 'dev', ifname]);
    const idx = (JSON.parse(link.stdout) as { ifindex: number }[])[0]?.ifindex;
    const r = await target.sh(`ls -1 /sys/fs/bpf/xdp 2>/dev/null | grep '^dispatch-${idx}-' ; true`);
    return r.stdout.split('\n').filter(Boolean);
  }

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    env = await createTestEnv(target, { name: `xt2disp${RUN_TAG}` });
    support = await dispatcher.supports(target);
  });
  afterAll(async () => {
    await removeScratch();
    await dispatcher.detach(ctx()).catch(() => undefined);
    await env?.[Symbol.asyncDispose]();
    expect(await leftovers(target, `xt2disp${RUN_TAG}`)).toEqual([]);
  });

  it('supports() answers from a real xdp-loader run and leaves its probe namespace behind it', async () => {
    expect(typeof support.supported).toBe('boolean');
    agree('freplace', support.supported, support.supported ? 'xdp-loader attached three programs' : support.reason);
    expect(await leftovers(target, 'xcldp')).toEqual([]);
    if (!support.supported) expect(support.reason).toMatch(/libxdp/);
  });

  it('libxdp reads each object\'s XDP_RUN_CONFIG: priorities 10, 20, 30 in chain order, chain call on XDP_PASS', async () => {
    const objs = ['filter', 'metrics', 'logger'].map((n) => `${objectDir}/${n}.o`);
    const r = await env.exec(env.b.netns, ['xdp-loader', 'load', '-vv', '-m', 'native', env.b.ifname, ...objs], { allowFailure: true });
    await dispatcher.detach(ctx());
    const got = [...`${r.stderr}\n${r.stdout}`.matchAll(/XDP program (\d+): Run prio: (\d+)\. Chain call actions: (\S+)/g)].map((m) => [Number(m[1]), Number(m[2]), m[3]]);
    expect(got).toEqual([
      [0, 10, 'XDP_PASS'],
      [1, 20, 'XDP_PASS'],
      [2, 30, 'XDP_PASS'],
    ]);
    expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
  });

  it('kernel without freplace: unsupported with libxdp\'s message; attach fails with it; nothing left attached', async (t) => {
    agree('freplace', support.supported);
    if (support.supported) return t.skip('this kernel has freplace: the test of its absence does not apply');
    expect(support.reason).toMatch(/Can't fall back to legacy load with 3 programs/);
    await dispatcher.load(ctx());
    const err = await dispatcher.attach(ctx()).catch((e: unknown) => e);
    expect(isLabError(err, 'UNSUPPORTED'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/Can't fall back to legacy load with 3 programs/);
    expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
    expect((await target.run(['test', '-e', ctx().pinDir], { allowFailure: true })).exitCode).not.toBe(0);
    expect(await libxdpPinsFor(env.b.ifname)).toEqual([]);
  });

  it('kernel with freplace: three programs behind the dispatcher in chain order; ping6 passes; detach is clean', async (t) => {
    agree('freplace', support.supported);
    if (!support.supported) return t.skip(`this kernel has no freplace: ${support.reason}`);
    await dispatcher.load(ctx());
    await dispatcher.attach(ctx());
    const d = await dispatcher.describe(ctx());
    expect(d.attached).toBe(true);
    expect(d.programs.map((p) => p.role)).toEqual(['dispatcher', 'filter', 'metrics', 'logger']);
    expect(await env.ping6(5)).toEqual({ transmitted: 5, received: 5 });
    await dispatcher.detach(ctx());
    expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
    expect(await libxdpPinsFor(env.b.ifname)).toEqual([]);
  });
});
