import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { reportCommand } from '../../lab/commands/report.ts';
import { cleanScratch, fixtureCopy, scratchDir } from './helpers.ts';

afterAll(cleanScratch);

async function run(args: string[]): Promise<{ lines: string[]; error: unknown }> {
  const lines: string[] = [];
  const cmd = reportCommand({ print: (l) => lines.push(l), progress: () => {} }).exitOverride();
  cmd.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  try {
    await cmd.parseAsync(args, { from: 'user' });
    return { lines, error: null };
  } catch (e) {
    return { lines, error: e };
  }
}

describe('npm run report', () => {
  it('results/<run-id>: renders and prints where the files went', async () => {
    const dir = fixtureCopy('small');
    const { lines, error } = await run([dir]);
    expect(error).toBeNull();
    expect(lines[0]).toBe(`report of ${dir}: 20 runs in 6 cells, kernels 6.1, 5.10`);
    expect(lines).toContain(`  html:     ${join(dir, 'report', 'index.html')}`);
    expect(lines).toContain(`  figures:  8 PNG in ${join(dir, 'report')}/figures`);
    expect(lines).toContain('  TCG kernels present: their numbers are not a performance measurement');
    expect(existsSync(join(dir, 'report', 'index.html'))).toBe(true);
  });

  it('--thesis outDir: writes the pseudo-run and reports on it', async () => {
    const dir = join(scratchDir('cli-thesis'), 'thesis');
    const { lines, error } = await run(['--thesis', dir]);
    expect(error).toBeNull();
    expect(lines[0]).toBe(`thesis pseudo-run written to ${dir}`);
    expect(lines[1]).toBe(`report of ${dir} (thesis pseudo-run): 15 runs in 15 cells, kernels 6.1, 5.15, 5.10, 5.4, 4.19`);
    expect(existsSync(join(dir, 'report', 'table-5.1.csv'))).toBe(true);
  });

  it('bad usage is a LabError with a remedy', async () => {
    const none = await run([]);
    expect(isLabError(none.error, 'BAD_INPUT')).toBe(true);
    const both = await run(['x', '--thesis', 'y']);
    expect(isLabError(both.error, 'BAD_INPUT')).toBe(true);
    const bars = await run(['x', '--error-bars', 'sd']);
    expect(isLabError(bars.error, 'BAD_INPUT')).toBe(true);
    expect((bars.error as Error).message).toBe('--error-bars sd: expected iqr or ci');
    const missing = await run(['/nonexistent/h5-report-cli']);
    expect(isLabError(missing.error, 'REPORT')).toBe(true);
  });
});
