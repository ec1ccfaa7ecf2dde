/**
 * `npm run bench -- coverage [--trials N] [--n 5,10,20,50] [--resamples R] [--seed S]
 * [--distribution lognormal|exponential|all]`: the coverage of the report's 95% bootstrap CI of the
 * median, per sample size. A benchmark of the statistics, not a test: it prints, never judges.
 */
import { Command, InvalidArgumentError } from 'commander';
import { nonNegativeInt, positiveInt } from '../ui/cli.ts';
import { COVERAGE_DISTRIBUTIONS, bootstrapCoverage, type CoverageDistribution, type CoverageResult } from '../report/coverage.ts';
import { BOOTSTRAP_RESAMPLES, CONFIDENCE } from '../report/stats.ts';

export const DEFAULT_TRIALS = 1000;
export const DEFAULT_SIZES: readonly number[] = [5, 10, 20, 50];

function sizes(value: string): number[] {
  return value.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 2) throw new InvalidArgumentError(`expected sample sizes ≥ 2 separated by commas, got "${value}"`);
    return n;
  });
}

function distributions(value: string): CoverageDistribution[] {
  if (value === 'all') return [...COVERAGE_DISTRIBUTIONS];
  const d = COVERAGE_DISTRIBUTIONS.find((x) => x === value);
  if (d === undefined) throw new InvalidArgumentError(`expected ${COVERAGE_DISTRIBUTIONS.join(', ')} or all, got "${value}"`);
  return [d];
}

export function formatCoverage(rows: readonly CoverageResult[]): string[] {
  const head = ['distribution', 'n', 'coverage', '± s.e.', 'nominal', 'mean width', 'trials', 'resamples'];
  const body = rows.map((r) => [
    r.distribution,
    String(r.n),
    r.coverage.toFixed(3),
    r.standardError.toFixed(3),
    CONFIDENCE.toFixed(3),
    r.meanWidth.toFixed(3),
    String(r.trials),
    String(r.resamples),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...body.map(line)];
}

interface CoverageBenchOptions {
  trials: number;
  n: number[];
  resamples: number;
  seed: number;
  distribution: CoverageDistribution[];
}

export function coverageBenchCommand(print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Command {
  return new Command('coverage')
    .description(`coverage of the report's ${CONFIDENCE * 100}% percentile-bootstrap CI of the median on samples with a known median`)
    .option('--trials <n>', 'samples per size, one CI each', positiveInt, DEFAULT_TRIALS)
    .option('--n <list>', 'sample sizes, separated by commas', sizes, [...DEFAULT_SIZES])
    .option('--resamples <n>', "bootstrap resamples per CI (the default is the report's)", positiveInt, BOOTSTRAP_RESAMPLES)
    .option('--seed <n>', 'seed of the samples and of their bootstraps', nonNegativeInt, 1)
    .option('--distribution <name>', `${COVERAGE_DISTRIBUTIONS.join(', ')} or all`, distributions, ['lognormal'] as CoverageDistribution[])
    .action((o: CoverageBenchOptions) => {
      const rows: CoverageResult[] = [];
      const started = performance.now();
      for (const distribution of o.distribution) {
        for (const n of o.n) rows.push(bootstrapCoverage({ trials: o.trials, n, resamples: o.resamples, seed: o.seed, distribution }));
      }
      for (const l of formatCoverage(rows)) print(l);
      print(`seed ${o.seed}; ${((performance.now() - started) / 1000).toFixed(1)} s`);
    });
}
