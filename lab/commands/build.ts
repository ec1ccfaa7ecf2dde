/**
 * `npm run build:bpf` (`lab build`): compiles programs/*.c into build/bpf/*.o, only what changed.
 */
import { Command } from 'commander';
import { buildPrograms } from '../programs/build.ts';

export function buildCommand(): Command {
  return new Command('build')
    .description('compile programs/*.c into build/bpf/*.o (only what changed)')
    .option('--force', 'rebuild everything')
    .action(async (o: { force?: boolean }) => {
      const built = await buildPrograms({ force: o.force ?? false });
      for (const [name, path] of Object.entries(built)) process.stdout.write(`${name.padEnd(24)} ${path}\n`);
    });
}
