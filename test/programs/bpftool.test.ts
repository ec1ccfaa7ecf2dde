/**
 * The bpftool wrapper on the running kernel: map round trips, missing keys, pin-name rules, the
 * refusal to delete outside bpffs, and event_pipe parsing.
 */
import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requirements } from '../support/requirements.ts';
import type { HostTarget } from '../../lab/target.ts';
import { isLabError } from '../../lab/errors.ts';
import * as bpftool from '../../lab/bpftool/index.ts';
import { readU64le, u32le } from '../../lab/bytes.ts';
import { hostTarget, leftovers, removeScratch, scratchDir } from './support.ts';
import { RUN_TAG } from '../support/names.ts';

describe('parseEventPipe', () => {
  it('reads records (numeric or hex bytes) and lost counts; tolerates an unclosed array', () => {
    const out = '[{"type":9,"cpu":1,"index":1,"timestamp":5,"data":[1,2,3]},{"type":2,"cpu":0,"lost":{"id":0,"lost":4}},{"type":9,"cpu":0,"index":0,"data":["0x0a","0xff"]}';
    const r = bpftool.parseEventPipe(out);
    expect(r.lost).toBe(4);
    expect(r.records.map((x) => [x.cpu, x.index, Array.from(x.data)])).toEqual([
      [1, 1, [1, 2, 3]],
      [0, 0, [10, 255]],
    ]);
    expect(bpftool.parseEventPipe('')).toEqual({ records: [], lost: 0 });
  });
});

describe('checkPinPath', () => {
  it("rejects '.' in bpffs names (bpffs answers a bare EPERM)", () => {
    expect(() => bpftool.checkPinPath('/sys/fs/bpf/xt2/filter.manual')).toThrow(/contains '\.'/);
    expect(() => bpftool.checkPinPath('/sys/fs/bpf/xt2/filter_manual')).not.toThrow();
  });
});

const need = requirements('root', 'bpf', 'bpftool');
describe.skipIf(need.skip)('bpftool on the host kernel', () => {
  let target: HostTarget;
  const dir = `/sys/fs/bpf/xt2tool${RUN_TAG}`;
  beforeAll(async () => {
    target = await hostTarget();
    await bpftool.ensureBpffs(target);
    await bpftool.unpin(target, dir);
    await target.run(['mkdir', '-p', dir]);
  });
  afterAll(async () => {
    await removeScratch();
    await bpftool.unpin(target, dir);
    expect(await leftovers(target, `xt2tool${RUN_TAG}`)).toEqual([]);
  });

  it('map create / update / lookup / dump / delete round trip; a missing key is null', async () => {
    const info = await bpftool.mapCreate(target, `${dir}/h`, { type: 'hash', keySize: 4, valueSize: 8, entries: 16, name: 'xt2_h' });
    expect(info).toMatchObject({ type: 'hash', name: 'xt2_h', keySize: 4, valueSize: 8, maxEntries: 16 });
    const ref = { pinned: `${dir}/h` };
    await bpftool.mapUpdate(target, ref, u32le(7), [1, 0, 0, 0, 0, 0, 0, 2]);
    const got = await bpftool.mapLookup(target, ref, u32le(7));
    expect(got && readU64le(got.value!)).toBe(0x0200000000000001n);
    expect(await bpftool.mapLookup(target, ref, u32le(8))).toBeNull();
    expect((await bpftool.mapDump(target, ref)).map((e) => Array.from(e.key))).toEqual([[7, 0, 0, 0]]);
    await bpftool.mapDelete(target, ref, u32le(7));
    expect(await bpftool.mapDump(target, ref)).toEqual([]);
    await bpftool.mapPin(target, { id: info.id }, `${dir}/h2`);
    expect((await bpftool.mapShow(target, { pinned: `${dir}/h2` })).id).toBe(info.id);
  });

  it('a batch gives one entry per command, also when it ends with a map command; a failing or missing command is an error', async () => {
    await bpftool.mapCreate(target, `${dir}/b`, { type: 'array', keySize: 4, valueSize: 8, entries: 2, name: 'xt2_b' });
    const show = ['map', 'show', 'pinned', `${dir}/b`];
    const dump = ['map', 'dump', 'pinned', `${dir}/b`];
    for (const cmds of [[show], [['prog', 'show'], dump], [show, dump, show]]) {
      const entries = await bpftool.bpftoolBatch(target, cmds, 'batch test');
      expect(entries.map((e) => e.command)).toEqual(cmds);
      expect(entries.every((e) => e.output !== null && !(typeof e.output === 'object' && 'error' in e.output))).toBe(true);
    }
    const err = await bpftool.bpftoolBatch(target, [show, ['map', 'show', 'pinned', `${dir}/missing`]], 'batch test').catch((e: unknown) => e);
    expect(isLabError(err, 'COMMAND')).toBe(true);
    expect((err as Error).message).toMatch(/missing.*No such file or directory/);
  });

  it('unpin refuses a path that is not on bpffs and leaves it alone', async () => {
    const scratch = await scratchDir('unpin');
    await writeFile(join(scratch, 'keep'), 'x');
    const err = await bpftool.unpin(target, scratch).catch((e: unknown) => e);
    expect(isLabError(err, 'BAD_INPUT')).toBe(true);
    expect(existsSync(join(scratch, 'keep'))).toBe(true);
    await bpftool.unpin(target, `${dir}/does-not-exist`);
  });

  it('a missing object is MISSING_FILE; a missing program pin names bpftool\'s error', async () => {
    const e1 = await bpftool.load(target, '/nonexistent/x.o', `${dir}/p`).catch((e: unknown) => e);
    expect(isLabError(e1, 'MISSING_FILE')).toBe(true);
    const e2 = await bpftool.progShow(target, { pinned: `${dir}/nope` }).catch((e: unknown) => e);
    expect(isLabError(e2, 'COMMAND')).toBe(true);
    expect((e2 as Error).message).toMatch(/bpf obj get .*No such file or directory/);
  });

  it('an event capture on a map that is not a PERF_EVENT_ARRAY fails with bpftool\'s words and its exit status, never running the work', async () => {
    await bpftool.mapCreate(target, `${dir}/not_perf`, { type: 'array', keySize: 4, valueSize: 4, entries: 1, name: 'xt2_np' });
    let worked = false;
    const err = await bpftool.captureEvents(target, { pinned: `${dir}/not_perf` }, async () => {
      worked = true;
    }).catch((e: unknown) => e);
    expect(isLabError(err, 'COMMAND')).toBe(true);
    expect((err as Error).message).toMatch(/event_pipe .* exited with status [1-9]\d* before opening its perf buffers \(attempt 1\):\n.*\S/);
    expect(worked).toBe(false);
  });
});
