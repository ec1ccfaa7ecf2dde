/**
 * Bad input meets one clear LabError each, and never leaves an XDP program attached or pins behind:
 * missing object, missing interface / namespace, not root, a load that fails part way, an attach
 * that fails part way. (A compile error is covered by test/programs/build.test.ts.)
 */
import { chmod, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { isLabError, type LabErrorCode } from '../../lab/errors.ts';
import { load, loadAll, netAttachXdp, unpin, xdpAttached } from '../../lab/bpftool/index.ts';
import { createTestEnv, type TestEnv } from '../../lab/testenv/testenv.ts';
import type { Approach, ApproachContext } from '../../lab/approaches/approach.ts';
import { none } from '../../lab/approaches/none.ts';
import { fused } from '../../lab/approaches/fused.ts';
import { manual } from '../../lab/approaches/manual.ts';
import { PROGRAMS_DIR } from '../../lab/programs/build.ts';
import { builtObjects, hostTarget, leftovers, UnprivilegedTarget, removeScratch, scratchDir } from '../programs/support.ts';
import { RUN_TAG } from '../support/names.ts';

const need = requirements('root', 'bpf', 'clang', 'bpftool');

async function expectLabError(p: Promise<unknown>, code: LabErrorCode, message: RegExp): Promise<void> {
  const err = await p.then(
    () => new Error('expected a LabError, got success'),
    (e: unknown) => e,
  );
  expect(isLabError(err), String(err)).toBe(true);
  expect({ code: (err as { code: string }).code, message: (err as Error).message }).toMatchObject({ code, message: expect.stringMatching(message) });
}

describe.skipIf(need.skip)('bad input', () => {
  let target: HostTarget;
  let env: TestEnv;
  let objectDir: string;
  const ctxOf = (a: Approach, over: Partial<ApproachContext> = {}): ApproachContext => ({
    target,
    ifname: env.b.ifname,
    netns: env.b.netns,
    pinDir: `/sys/fs/bpf/xt2bad${RUN_TAG}_${a.name}`,
    objectDir,
    ...over,
  });

  async function expectClean(ctx: ApproachContext): Promise<void> {
    expect(await xdpAttached(target, env.b.ifname, env.b.netns)).toEqual([]);
    expect((await target.run(['test', '-e', ctx.pinDir], { allowFailure: true })).exitCode).not.toBe(0);
  }

  beforeAll(async () => {
    target = await hostTarget();
    ({ objectDir } = await builtObjects());
    env = await createTestEnv(target, { name: `xt2bad${RUN_TAG}` });
  });
  afterAll(async () => {
    await removeScratch();
    for (const a of [none, fused, manual]) await a.detach(ctxOf(a)).catch(() => undefined);
    await unpin(target, `/sys/fs/bpf/xt2bad${RUN_TAG}_foreign`);
    await env?.[Symbol.asyncDispose]();
    expect(await leftovers(target, `xt2bad${RUN_TAG}`)).toEqual([]);
  });

  it('missing object: MISSING_FILE naming the file, nothing loaded', async () => {
    const empty = await scratchDir('noobj');
    for (const a of [fused, manual]) {
      const ctx = ctxOf(a, { objectDir: empty });
      await expectLabError(a.load(ctx), 'MISSING_FILE', new RegExp(`${empty}/\\w+\\.o does not exist`));
      await expectClean(ctx);
    }
    await expectLabError(loadAll(target, join(empty, 'filter.o'), `/sys/fs/bpf/xt2bad${RUN_TAG}_x`), 'MISSING_FILE', /filter\.o does not exist/);
  });

  it('missing interface or namespace: NO_INTERFACE naming it', async () => {
    for (const a of [none, fused, manual]) {
      await expectLabError(a.load(ctxOf(a, { ifname: `xt2nosuch${RUN_TAG}` })), 'NO_INTERFACE', new RegExp(`no interface xt2nosuch${RUN_TAG} in network namespace xt2bad${RUN_TAG}b`));
      await expectLabError(a.load(ctxOf(a, { netns: `xt2nons${RUN_TAG}` })), 'NO_INTERFACE', new RegExp(`network namespace xt2nons${RUN_TAG} does not exist`));
      await expectClean(ctxOf(a));
    }
    await expectLabError(netAttachXdp(target, { pinned: '/sys/fs/bpf/whatever' }, `xt2nosuch${RUN_TAG}`, { netns: env.b.netns }), 'NO_INTERFACE', /no interface xt2nosuch/);
  });

  it('not root: NOT_ROOT from the approaches and from bpftool itself', async () => {
    const nobody = new UnprivilegedTarget(target);
    for (const a of [none, fused, manual]) {
      await expectLabError(a.load({ ...ctxOf(a), target: nobody }), 'NOT_ROOT', /needs root \(running as uid 65534\)/);
      await expectClean(ctxOf(a));
    }
    // The object must be readable by nobody, wherever the checkout lives (a CI clone may sit in a
    // 0700 directory): a copy in a world-readable temporary directory.
    const pub = await mkdtemp(join(tmpdir(), 'xt2pub-'));
    try {
      await chmod(pub, 0o755);
      await copyFile(`${objectDir}/filter.o`, join(pub, 'filter.o'));
      await chmod(join(pub, 'filter.o'), 0o644);
      await expectLabError(load(nobody, join(pub, 'filter.o'), `/sys/fs/bpf/xt2bad${RUN_TAG}_nobody`), 'NOT_ROOT', /Operation not permitted/);
    } finally {
      await rm(pub, { recursive: true, force: true });
    }
    await expectLabError(createTestEnv(nobody, { name: `xt2badn${RUN_TAG}` }), 'NOT_ROOT', /needs root/);
    expect(await leftovers(target, `xt2badn${RUN_TAG}`)).toEqual([]);
  });

  it('a load failing part way (manual chain, third object rejected by the verifier): LOAD with the verifier\'s words, nothing pinned or attached', async () => {
    const dir = await scratchDir('objs');
    await copyFile(`${objectDir}/filter_manual.o`, join(dir, 'filter_manual.o'));
    await copyFile(`${objectDir}/metrics_manual.o`, join(dir, 'metrics_manual.o'));
    // A "logger" reading the packet without a bounds check: the verifier rejects it, after the
    // first two stages are loaded and pinned.
    const src = join(dir, 'logger.c');
    await writeFile(
      src,
      '#include "common.h"\nSEC("xdp") int xdp_logger(struct xdp_md *ctx) { unsigned char *d = (void *)(long)ctx->data; return d[20] ? XDP_PASS : XDP_DROP; }\n' +
        'char _license[] SEC("license") = "GPL";\n',
    );
    await execa('clang', ['-O2', '-g', '-target', 'bpf', '-I', PROGRAMS_DIR, '-I', '/usr/include/x86_64-linux-gnu', '-c', src, '-o', join(dir, 'logger.o')]);
    const ctx = ctxOf(manual, { objectDir: dir });
    await expectLabError(manual.load(ctx), 'LOAD', /loading .*logger\.o[\s\S]*invalid access to packet/);
    await expectClean(ctx);
  });

  it('an attach failing part way (another program holds the interface): ATTACH, then nothing attached and no pins', async () => {
    await load(target, `${objectDir}/filter.o`, `/sys/fs/bpf/xt2bad${RUN_TAG}_foreign`);
    await netAttachXdp(target, { pinned: `/sys/fs/bpf/xt2bad${RUN_TAG}_foreign` }, env.b.ifname, { netns: env.b.netns });
    for (const a of [fused, manual]) {
      const ctx = ctxOf(a);
      await a.load(ctx);
      if ((await xdpAttached(target, env.b.ifname, env.b.netns)).length === 0) {
        await netAttachXdp(target, { pinned: `/sys/fs/bpf/xt2bad${RUN_TAG}_foreign` }, env.b.ifname, { netns: env.b.netns });
      }
      await expectLabError(a.attach(ctx), 'ATTACH', /Device or resource busy/);
      await expectClean(ctx);
    }
  });

  it('detach after a failed or partial load, or twice, is clean and does not throw', async () => {
    for (const a of [none, fused, manual]) {
      const ctx = ctxOf(a);
      await a.detach(ctx);
      await a.detach(ctx);
      await expectClean(ctx);
    }
    // Even when the namespace is gone.
    await fused.detach(ctxOf(fused, { netns: `xt2nons${RUN_TAG}` }));
  });

  it('replace is refused where the approach cannot do it', async () => {
    await expectLabError(fused.replace(ctxOf(fused), 'metrics', `${objectDir}/metrics.o`), 'UNSUPPORTED', /fused has no separate metrics/);
    await expectLabError(none.replace(ctxOf(none), 'filter', `${objectDir}/filter.o`), 'UNSUPPORTED', /none runs no program/);
  });
});
