/**
 * The test environment: two namespaces joined by a veth pair with the xdp-tutorial addressing,
 * commands entered with nsenter, pinned iperf3, and teardown on every path.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { isLabError } from '../../lab/errors.ts';
import { load, netAttachXdp, unpin } from '../../lab/bpftool/index.ts';
import { createTestEnv } from '../../lab/testenv/testenv.ts';
import { parseIperf3 } from '../../lab/testenv/iperf3.ts';
import { builtObjects, hostTarget, leftovers, removeScratch } from '../programs/support.ts';
import { RUN_TAG } from '../support/names.ts';

const need = requirements('root', 'iperf3');

async function namespaces(target: HostTarget, prefix: string): Promise<string[]> {
  const r = await target.run(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(prefix));
}

describe('parseIperf3', () => {
  it('reads throughput, bytes and retransmits from a client report', () => {
    const s = parseIperf3(JSON.stringify({ end: { sum_sent: { bytes: 2000, retransmits: 3, seconds: 2 }, sum_received: { bytes: 1900, bits_per_second: 7600, seconds: 2 } } }), 'test');
    expect(s).toMatchObject({ bitsPerSecond: 7600, bytesReceived: 1900, bytesSent: 2000, retransmits: 3, seconds: 2 });
  });
  it('turns an iperf3 error into a BENCH LabError with its words', () => {
    let err: unknown;
    try {
      parseIperf3(JSON.stringify({ error: 'unable to connect to server: Connection refused' }), 'client');
    } catch (e) {
      err = e;
    }
    expect(isLabError(err, 'BENCH')).toBe(true);
    expect((err as Error).message).toMatch(/Connection refused/);
  });
});

describe.skipIf(need.skip)('createTestEnv on the host', () => {
  let target: HostTarget;
  beforeAll(async () => {
    target = await hostTarget();
  });
  afterAll(async () => {
    await removeScratch();
    expect(await leftovers(target, `xt2env${RUN_TAG}`)).toEqual([]);
  });

  it('builds the veth pair with fc00:dead:cafe:1::1/64 and ::2/64 (nodad, usable at once) and IPv4', async () => {
    await using env = await createTestEnv(target, { name: `xt2env${RUN_TAG}`, xdpTutorialDir: '' });
    expect(await namespaces(target, `xt2env${RUN_TAG}`)).toEqual(expect.arrayContaining([`xt2env${RUN_TAG}a`, `xt2env${RUN_TAG}b`]));
    const a = await env.exec(env.a.netns, ['ip', '-6', 'addr', 'show', 'dev', env.a.ifname]);
    expect(a.stdout).toMatch(/inet6 fc00:dead:cafe:1::1\/64 scope global nodad/);
    expect(a.stdout).not.toMatch(/fc00:dead:cafe:1::1[^\n]*tentative/);
    const b = await env.exec(env.b.netns, ['ip', '-6', 'addr', 'show', 'dev', env.b.ifname]);
    expect(b.stdout).toMatch(/inet6 fc00:dead:cafe:1::2\/64 scope global nodad/);
    expect(await env.ping6(3)).toEqual({ transmitted: 3, received: 3 });
    const v4 = await env.exec(env.a.netns, ['ping', '-4', '-c', '1', '-W', '2', env.b.ip4!]);
    expect(v4.stdout).toMatch(/1 received/);
    // The veth pair crosses the namespaces: each side is absent from the other's namespace.
    expect((await env.exec(env.a.netns, ['ip', 'link', 'show', 'dev', env.b.ifname], { allowFailure: true })).exitCode).not.toBe(0);
  });

  it('runs a pinned iperf3 pair and returns the client report', async () => {
    await using env = await createTestEnv(target, { name: `xt2env${RUN_TAG}`, xdpTutorialDir: '' });
    const r = await env.iperf3({ seconds: 1, serverCpu: 1, clientCpu: 0 });
    expect(r.bitsPerSecond).toBeGreaterThan(0);
    expect(r.bytesReceived).toBeGreaterThan(0);
    const raw = r.raw as { start?: { connected?: { remote_host: string }[] } };
    expect(raw.start?.connected?.[0]?.remote_host).toBe('fc00:dead:cafe:1::2');
    // The one-off server is gone once the run is over.
    expect((await env.exec(env.b.netns, ['ss', '-Hltn', 'sport = :5201'])).stdout.trim()).toBe('');
  });

  it('tears down namespaces and XDP when the body throws', async () => {
    const { objectDir } = await builtObjects();
    const body = async (): Promise<void> => {
      await using env = await createTestEnv(target, { name: `xt2env${RUN_TAG}`, xdpTutorialDir: '' });
      await load(target, `${objectDir}/filter.o`, `/sys/fs/bpf/xt2env${RUN_TAG}_prog`);
      await netAttachXdp(target, { pinned: `/sys/fs/bpf/xt2env${RUN_TAG}_prog` }, env.b.ifname, { netns: env.b.netns });
      throw new Error('boom');
    };
    await expect(body()).rejects.toThrow('boom');
    expect(await namespaces(target, `xt2env${RUN_TAG}`)).toEqual([]);
    await unpin(target, `/sys/fs/bpf/xt2env${RUN_TAG}_prog`);
  });

  it('replaces namespaces a crashed run left with the same name', async () => {
    await target.run(['ip', 'netns', 'add', `xt2env${RUN_TAG}a`]);
    await using env = await createTestEnv(target, { name: `xt2env${RUN_TAG}`, xdpTutorialDir: '' });
    expect(await env.ping6(1)).toEqual({ transmitted: 1, received: 1 });
  });

  it('rejects a name that would make interface names too long', async () => {
    const err = await createTestEnv(target, { name: 'xt2-much-too-long' }).catch((e: unknown) => e);
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect(await namespaces(target, 'xt2-much')).toEqual([]);
  });
});

/**
 * The XDP_TUTORIAL_DIR path: a stand-in speaking testenv.sh's command line (test/fixtures), and a
 * real xdp-tutorial checkout when XDP_TUTORIAL_DIR names one.
 */
const FIXTURE_TUTORIAL = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'xdp-tutorial');
const realTutorial = process.env.XDP_TUTORIAL_DIR;
const tutorials: [string, string | undefined][] = [
  ['a stand-in testenv.sh (test/fixtures/xdp-tutorial)', FIXTURE_TUTORIAL],
  [`XDP_TUTORIAL_DIR (${realTutorial ?? 'unset: skipped'})`, realTutorial && existsSync(`${realTutorial}/testenv/testenv.sh`) ? realTutorial : undefined],
];
for (const [label, dir] of tutorials) {
  describe.skipIf(need.skip || !dir)(`with ${label}`, () => {
    it('uses testenv.sh: the receiver is the root-namespace veth, reached through a named handle; teardown removes both', async () => {
      const target = await hostTarget();
      {
        await using env = await createTestEnv(target, { name: `xt2tut${RUN_TAG}`, xdpTutorialDir: dir });
        expect(env.viaTutorial).toBe(true);
        expect(env.tutorialScript).toBe(`${dir}/testenv/testenv.sh`);
        expect(env.a).toMatchObject({ netns: `xt2tut${RUN_TAG}`, ifname: 'veth0' });
        expect(env.b.netns).toBe(`xt2tut${RUN_TAG}root`);
        expect(await env.ping6(2)).toEqual({ transmitted: 2, received: 2 });
      }
      expect(await namespaces(target, `xt2tut${RUN_TAG}`)).toEqual([]);
      await removeScratch();
    });
  });
}

it('a directory without testenv/testenv.sh is a clear MISSING_FILE error', { skip: need.skip }, async () => {
  const target = await hostTarget();
  const err = await createTestEnv(target, { name: `xt2tutx${RUN_TAG}`, xdpTutorialDir: '/nonexistent/xdp-tutorial' }).catch((e: unknown) => e);
  expect(isLabError(err, 'MISSING_FILE')).toBe(true);
  expect((err as Error).message).toContain('/nonexistent/xdp-tutorial/testenv/testenv.sh');
  expect(await namespaces(target, `xt2tutx${RUN_TAG}`)).toEqual([]);
});
