/**
 * The report's cost-breakdown table, from micro records whose medians are known by construction:
 * per length L, manual-constant 30 + 2L, manual-end-lookup 33 + 2L, patched-inline 31 + 2.5L,
 * patched-subprog 35 + 9L; trio medians manual 60, patched-inline 66, patched-subprog 90. Parts
 * worked out by hand: spill/test 0.5 ns per program, call frame 6.5, end read 3 per packet, rest
 * inline 66 − 60 − 1.5 − 3 = 1.5, rest subprog 90 − 60 − 21 − 3 = 6.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderReport } from '../../lab/report/index.ts';
import { cleanScratch, FIXTURES, scratchDir } from './helpers.ts';

afterAll(cleanScratch);

const LENGTHS = [1, 2, 4, 8];

function micro(variant: string, hop: string, chainLength: number, median: number): string {
  return JSON.stringify({
    kind: 'micro',
    schema: 1,
    runId: 'fixture-breakdown',
    kernel: 'host',
    kernelRelease: '6.18.0-1-amd64',
    accelerator: 'host',
    variant,
    chainLength,
    hop,
    repeat: 1_000_000,
    nsPerPacket: [median - 0.1, median, median + 0.1],
  });
}

describe('report: where the patched chain\'s cost goes', () => {
  it('renders the breakdown of this run\'s own variants, per kernel', async () => {
    const dir = scratchDir('breakdown');
    const lines: string[] = [];
    const lineOf = (variant: string, a: number, b: number): void => {
      for (const L of LENGTHS) lines.push(micro(variant, 'tail-call-constant', L, a + b * L));
    };
    lineOf('chain/manual-constant', 30, 2);
    lineOf('chain/manual-end-lookup', 33, 2);
    lineOf('chain/patched-inline', 31, 2.5);
    lineOf('chain/patched-subprog', 35, 9);
    lines.push(micro('manual', 'tail-call-constant', 3, 60), micro('patched-inline', 'tail-call-constant', 3, 66), micro('patched-subprog', 'tail-call-constant', 3, 90));
    writeFileSync(join(dir, 'raw.jsonl'), `${lines.join('\n')}\n`);
    mkdirSync(join(dir, 'provenance'));
    copyFileSync(join(FIXTURES, 'micro', 'provenance', 'host.json'), join(dir, 'provenance', 'host.json'));
    await renderReport(dir, { resamples: 200 });
    const md = readFileSync(join(dir, 'report', 'micro.md'), 'utf8');
    const section = md.slice(md.indexOf('where the patched chain'));
    const row = (part: string): string => section.split('\n').find((l) => l.includes(part)) ?? '';
    expect(row('ctx spill, verdict test')).toMatch(/\|\s*0\.50*\s*\|\s*program/);
    expect(row('bpf-to-bpf call frame')).toMatch(/\|\s*6\.50*\s*\|\s*program/);
    expect(row('end-of-chain read')).toMatch(/\|\s*3\.0*\s*\|\s*packet/);
    expect(row('the rest on the trio, inline')).toMatch(/\|\s*1\.50*\s*\|\s*packet/);
    expect(row('the rest on the trio, subprog')).toMatch(/\|\s*6\.0*\s*\|\s*packet/);
  });
});
