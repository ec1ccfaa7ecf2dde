#!/usr/bin/env -S npx tsx
/**
 * The lab's single entry point; `npm run <matrix|kernel|kernels|chain|report|bench|build>` land here.
 * Each command lives in lab/commands/; this file only mounts them and turns errors into one clear
 * message (code, what happened, how to fix it) and a non-zero exit.
 */
import { Command } from 'commander';
import { benchCommand } from './commands/bench.ts';
import { buildCommand } from './commands/build.ts';
import { chainCommand } from './commands/chain.ts';
import { kernelsCommand } from './commands/kernels.ts';
import { kernelCommand, matrixCommand } from './commands/matrix.ts';
import { reportCommand } from './commands/report.ts';
import { printError } from './ui/cli.ts';

// `npm run kernels | head` closes the pipe early: that ends the output, it is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const program = new Command('xdp-chain-lab')
  .description('What does it cost, on each Linux kernel, to chain several independent XDP programs?')
  .showHelpAfterError()
  .addCommand(matrixCommand())
  .addCommand(kernelCommand())
  .addCommand(kernelsCommand())
  .addCommand(chainCommand())
  .addCommand(reportCommand())
  .addCommand(benchCommand())
  .addCommand(buildCommand());

program.parseAsync(process.argv).catch(printError);
