/**
 * tcx in a booted guest: Debian's 6.12 kernel under QEMU with the lab's image, whose bpftool,
 * iproute2 and libbpf1 come from bookworm-backports (vm-images/recipe.json). The guest passes the
 * support check, runs the three programs in stage order on tcx ingress of the testbed's veth, and
 * counts ping traffic through metrics and the logger alike while metrics is replaced in place;
 * detach leaves the hook empty. The image records the backports' versions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import { RUN_TAG } from '../support/names.ts';
import { silent } from '../../lab/progress.ts';
import { mapDump, tcxIngress } from '../../lab/bpftool/index.ts';
import { readU64le } from '../../lab/bytes.ts';
import { applyTrioConfig, MAP_NAMES, readMetrics, TC_OBJECTS, totalPackets } from '../../lab/programs/trio.ts';
import { openKernelSession } from '../../lab/bench/open-session.ts';
import type { KernelSession } from '../../lab/bench/kernel-session.ts';
import type { ApproachContext } from '../../lab/approaches/approach.ts';
import { parseBpftoolVersion, TCX_MIN_BPFTOOL, tcx } from '../../lab/approaches/tcx.ts';

const need = requirements('root', 'qemu', 'debootstrap', 'clang');
const REPLACES = 5;

describe.skipIf(need.skip)('tcx in the Debian 6.12 guest (bookworm-backports tools)', () => {
  let session: KernelSession;
  let ctx: ApproachContext;

  beforeAll(async () => {
    session = await openKernelSession('6.12', { prefix: `tx${RUN_TAG}`, progress: silent });
    ctx = session.contextFor('tcx');
  }, 1_800_000);

  afterAll(async () => {
    if (ctx) await tcx.detach(ctx).catch(() => undefined);
    await session?.dispose();
  });

  async function counts(): Promise<{ metrics: number; logger: number }> {
    let logger = 0;
    for (const e of await mapDump(ctx.target, { pinned: `${ctx.pinDir}/maps/${MAP_NAMES.logState}` })) for (const v of e.values ?? []) logger += Number(readU64le(v.value));
    return { metrics: totalPackets(await readMetrics(ctx.target, `${ctx.pinDir}/maps`)), logger };
  }

  it('the guest has backports\' bpftool (7.4+) and passes the support check', async () => {
    const v = parseBpftoolVersion((await ctx.target.run(['bpftool', 'version'])).stdout);
    expect(v).not.toBeNull();
    expect(v!.compare(TCX_MIN_BPFTOOL)).toBeGreaterThanOrEqual(0);
    expect(await tcx.supports(ctx.target)).toMatchObject({ supported: true });
    console.info(`[tcx guest] ${ctx.target.kernelRelease}: bpftool ${v!.toString()}, ${(await ctx.target.run(['tc', '-V'])).stdout.trim()}`);
  }, 300_000);

  it(`stage order on tcx ingress; ping counted by metrics and the logger alike through ${REPLACES} replaces of metrics; detach empties the hook`, async () => {
    await tcx.load(ctx);
    await tcx.attach(ctx);
    const d = await tcx.describe(ctx);
    expect(d).toMatchObject({ attached: true, hop: 'tcx-next' });
    expect((await tcxIngress(ctx.target, ctx.ifname, ctx.netns)).map((p) => p.id)).toEqual(d.programs.map((p) => p.id));
    await applyTrioConfig(ctx.target, `${ctx.pinDir}/maps`, { denyPorts: [23], logSampleN: 0x7fffffff });
    const before = await counts();
    // Settled as a value so a failing ping cannot be an unhandled rejection while the replaces run.
    const pinging = session.testbed.ping(200, 0.02).then((r) => ({ r }), (e: unknown) => ({ e }));
    const ids = new Set<number>();
    for (let i = 0; i < REPLACES; i++) {
      await tcx.replace(ctx, 'metrics', `${ctx.objectDir}/${TC_OBJECTS.continuing.metrics}.o`);
      ids.add((await tcx.describe(ctx)).programs[1]!.id);
    }
    const during = await counts();
    const settled = await pinging;
    if ('e' in settled) throw settled.e;
    const ping = settled.r;
    const after = await counts();
    expect(ids.size).toBe(REPLACES);
    expect(ping.received).toBe(ping.transmitted);
    // Packets crossed while the replaces ran, and every one the logger saw metrics counted once.
    expect(during.logger).toBeGreaterThan(before.logger);
    expect(after.logger - before.logger).toBeGreaterThanOrEqual(ping.transmitted);
    expect(after.metrics - before.metrics).toBe(after.logger - before.logger);
    console.info(`[tcx guest] ${REPLACES} replaces; ping ${ping.transmitted}/${ping.received}; packets metrics ${after.metrics - before.metrics}, logger ${after.logger - before.logger}`);
    await tcx.detach(ctx);
    expect(await tcxIngress(ctx.target, ctx.ifname, ctx.netns)).toEqual([]);
  }, 900_000);
});
