/**
 * The report's TC section with the chains the kernel walks, measured under live traffic and timed
 * in-band: chain/tc-filters at 100 + 50L ns per skb, beside chain/tc-manual-constant test-run at
 * 18 + 1L ns. Their rows are marked, the caption says what in-band timing is, and the fitted cost
 * per added program is the construction's 50 ns. With no XDP cell, the answer points to the TC one.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderReport } from '../../lab/report/index.ts';
import { cleanScratch, FIXTURES, scratchDir } from './helpers.ts';

afterAll(cleanScratch);

const LENGTHS = [1, 2, 4, 8];

function micro(variant: string, hop: string, chainLength: number, median: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind: 'micro', schema: 1, runId: 'fixture-tc-live', kernel: 'host', kernelRelease: '6.18.0-1-amd64', accelerator: 'host',
    variant, chainLength, hop, repeat: 20_000, nsPerPacket: [median - 1, median, median + 1], ...extra,
  });
}

describe('report: TC chains timed in-band under live traffic', () => {
  it('marks their rows, says how they were timed and fits their cost per program', async () => {
    const dir = scratchDir('tc-live');
    const lines = LENGTHS.flatMap((L) => [
      micro('chain/tc-filters', 'tc-next', L, 100 + 50 * L, { timing: 'in-band' }),
      micro('chain/tc-manual-constant', 'tail-call-constant', L, 18 + L),
      micro('chain/manual-constant', 'tail-call-constant', L, 6 + L),
    ]);
    writeFileSync(join(dir, 'raw.jsonl'), `${lines.join('\n')}\n`);
    mkdirSync(join(dir, 'provenance'));
    copyFileSync(join(FIXTURES, 'micro', 'provenance', 'host.json'), join(dir, 'provenance', 'host.json'));
    await renderReport(dir, { resamples: 200 });
    const files = readdirSync(join(dir, 'report'), { recursive: true }).map(String).filter((f) => f.endsWith('.md'));
    const md = files.map((f) => readFileSync(join(dir, 'report', f), 'utf8')).find((t) => t.includes('chain/tc-filters')) ?? '';
    const fitTable = md.slice(md.indexOf('cost per hop'));
    const row = (variant: string): string => fitTable.split('\n').find((l) => l.includes(`| ${variant} `)) ?? '';
    expect(row('chain/tc-filters')).toMatch(/tc-next \(live, in-band\)\s*\|[^|]*\|\s*50(\.0*)?\s*\|/);
    expect(row('chain/tc-manual-constant')).toMatch(/\| tail-call-constant\s*\|[^|]*\|\s*1(\.0*)?\s*\|/);
    expect(fitTable).toMatch(/not BPF_PROG_TEST_RUN, which runs one program and never the kernel's walk between programs/);
    // The CSV keeps the kernel's hop word and says the timing in a column of its own.
    const csv = readFileSync(join(dir, 'report', 'tc-micro.csv'), 'utf8').split('\n');
    expect(csv[0]).toMatch(/^kernel,variant,hop,timing,chain_length,/);
    expect(csv.filter((l) => l.startsWith('host,chain/tc-filters,'))).toHaveLength(LENGTHS.length);
    for (const l of csv.filter((x) => x.startsWith('host,chain/tc-filters,'))) expect(l).toMatch(/^host,chain\/tc-filters,tc-next,in-band,/);
    for (const l of csv.filter((x) => x.startsWith('host,chain/tc-manual-constant,'))) expect(l).toMatch(/,tail-call-constant,test-run,/);
    // The XDP section has no in-band row: its caption does not explain them.
    const xdp = readFileSync(join(dir, 'report', 'micro.md'), 'utf8');
    expect(xdp).not.toMatch(/live, in-band/);
    // No XDP cell ran: the answer says where a TC run's answer is rather than only "no data".
    const page = readFileSync(join(dir, 'report', 'report.md'), 'utf8');
    const answer = page.slice(page.indexOf('## The answer'), page.indexOf('\n## ', page.indexOf('## The answer') + 3));
    expect(answer).toMatch(/No XDP approach has a per-packet figure in this run; a run of the TC hook \(--hook tc\) gives its answer under "TC ingress"/);
  });
});
