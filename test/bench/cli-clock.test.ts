/**
 * The matrix and kernel commands' clock options as the user types them: --deterministic and
 * --wall-clock together are refused before anything is booted, naming both and the default.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lab/paths.ts';

async function cli(args: string[]): Promise<{ exitCode: number; stderr: string }> {
  const r = await execa(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'lab', 'cli.ts'), ...args], { cwd: REPO_ROOT, reject: false, timeout: 60_000 });
  return { exitCode: r.exitCode ?? -1, stderr: String(r.stderr) };
}

describe('clock options', () => {
  for (const cmd of [['matrix', '--kernels', '6.1'], ['kernel', '6.1']]) {
    it(`${cmd[0]}: --deterministic with --wall-clock is a BAD_INPUT error, nothing run`, async () => {
      const r = await cli([...cmd, '--deterministic', '--wall-clock', '--plain', '--out', '/nonexistent-xcl-out']);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('error [BAD_INPUT]: --deterministic and --wall-clock contradict each other');
      expect(r.stderr).toMatch(/under TCG are instruction-timed/);
      expect(r.stderr).not.toMatch(/booting|boot /);
    });
  }
});
