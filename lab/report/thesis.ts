/**
 * The thesis's published numbers (Brodeur 2023, Tables 5.1 and 5.2, copied into results/reference/)
 * and the "thesis pseudo-run": those numbers written as a run directory, one pseudo-run per cell, so
 * that the report pipeline can be checked against the thesis itself. The thesis gives medians of 50
 * runs, not the runs: a pseudo-run has n = 1 and no spread, and says so in its marker and provenance.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { SCHEMA_VERSION, type CellRecord, type Provenance, type RunRecord } from '../results/record.ts';
import { PSEUDO_RUN_FILE, type PseudoRunMarker } from './load.ts';
import { REPO_ROOT } from '../paths.ts';

export const THESIS_RUN_ID = 'thesis-brodeur-2023';
export const TABLE_51_FILE = 'brodeur-2023-table-5.1.csv';
export const TABLE_52_FILE = 'brodeur-2023-table-5.2.csv';
export const TABLE_51_HEADER = ['approach', 'kernel', 'packets_total', 'time_total_ns', 'cycles_total', 'throughput_gbps'] as const;
export const TABLE_52_HEADER = ['approach', 'kernel', 'time_per_packet_ns', 'cycles_per_packet'] as const;

/** results/reference/ of this checkout. */
export const DEFAULT_REFERENCE_DIR = join(REPO_ROOT, 'results', 'reference');

export type ThesisApproach = 'manual' | 'dispatcher' | 'patched';

export interface Reference51Row {
  approach: ThesisApproach;
  kernel: string;
  /** What the thesis called packets: the number of veth_poll calls (thesis §4.1.2.1). */
  packetsTotal: number;
  timeTotalNs: number;
  cyclesTotal: number;
  throughputGbps: number;
  /** The cells as written in the CSV, for exact comparisons. */
  text: Record<(typeof TABLE_51_HEADER)[number], string>;
}
export interface Reference52Row {
  approach: ThesisApproach;
  kernel: string;
  timePerPacketNs: number;
  cyclesPerPacket: number;
  text: Record<(typeof TABLE_52_HEADER)[number], string>;
}
export interface Reference {
  dir: string;
  table51: Reference51Row[];
  table52: Reference52Row[];
}

const THESIS_APPROACHES: readonly string[] = ['manual', 'dispatcher', 'patched'];

/**
 * The reference files are plain comma-separated numbers without quoting; anything else is refused
 * rather than half-parsed.
 */
function parsePlainCsv<H extends readonly string[]>(path: string, header: H): Record<H[number], string>[] {
  if (!existsSync(path)) {
    throw new LabError('MISSING_FILE', `${path}: thesis reference table not found`, {
      remedy: 'Restore results/reference/ from the repository (copies of the thesis Tables 5.1 and 5.2).',
    });
  }
  const lines = readFileSync(path, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  const head = lines[0]?.split(',') ?? [];
  if (head.join(',') !== header.join(',')) {
    throw new LabError('BAD_INPUT', `${path}:1: header is "${head.join(',')}", expected "${header.join(',')}"`, {
      remedy: 'Restore the reference file from the repository; its columns are fixed.',
    });
  }
  return lines.slice(1).map((line, i) => {
    const cells = line.split(',');
    if (line.includes('"') || cells.length !== header.length) {
      throw new LabError('BAD_INPUT', `${path}:${i + 2}: expected ${header.length} unquoted fields, got "${line}"`, {
        remedy: 'Restore the reference file from the repository.',
      });
    }
    const row = {} as Record<H[number], string>;
    header.forEach((h: H[number], k) => {
      row[h] = cells[k]!;
    });
    return row;
  });
}

function num(path: string, line: number, field: string, text: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) {
    throw new LabError('BAD_INPUT', `${path}:${line}: ${field} "${text}" is not a number`, {
      remedy: 'Restore the reference file from the repository.',
    });
  }
  return v;
}

function approachOf(path: string, line: number, text: string): ThesisApproach {
  if (!THESIS_APPROACHES.includes(text)) {
    throw new LabError('BAD_INPUT', `${path}:${line}: approach "${text}" is not one of ${THESIS_APPROACHES.join(', ')}`, {
      remedy: 'Restore the reference file from the repository.',
    });
  }
  return text as ThesisApproach;
}

export function readReference(dir: string = DEFAULT_REFERENCE_DIR): Reference {
  const p51 = join(dir, TABLE_51_FILE);
  const p52 = join(dir, TABLE_52_FILE);
  const table51 = parsePlainCsv(p51, TABLE_51_HEADER).map((t, i) => ({
    approach: approachOf(p51, i + 2, t.approach),
    kernel: t.kernel,
    packetsTotal: num(p51, i + 2, 'packets_total', t.packets_total),
    timeTotalNs: num(p51, i + 2, 'time_total_ns', t.time_total_ns),
    cyclesTotal: num(p51, i + 2, 'cycles_total', t.cycles_total),
    throughputGbps: num(p51, i + 2, 'throughput_gbps', t.throughput_gbps),
    text: t,
  }));
  const table52 = parsePlainCsv(p52, TABLE_52_HEADER).map((t, i) => ({
    approach: approachOf(p52, i + 2, t.approach),
    kernel: t.kernel,
    timePerPacketNs: num(p52, i + 2, 'time_per_packet_ns', t.time_per_packet_ns),
    cyclesPerPacket: num(p52, i + 2, 'cycles_per_packet', t.cycles_per_packet),
    text: t,
  }));
  return { dir, table51, table52 };
}

/** The thesis's machine (§4.1): i9-10850K, userspace governor pinned at 3.9 GHz, iperf3 (default 10 s). */
const THESIS_CPU = 'Intel Core i9-10850K (thesis §4.1)';
const THESIS_MHZ = 3900;
const IPERF_DEFAULT_SECONDS = 10;
const NOT_RECORDED = 'not recorded (thesis pseudo-run)';

/**
 * Writes the thesis's Table 5.1 as a run directory (raw.jsonl, provenance/<kernel>.json,
 * pseudo-run.json) and returns the directory. Refuses to write over a directory holding other results.
 */
export function writeThesisPseudoRun(outDir: string, opts: { referenceDir?: string } = {}): string {
  const ref = readReference(opts.referenceDir ?? DEFAULT_REFERENCE_DIR);
  const rawPath = join(outDir, 'raw.jsonl');
  const markerPath = join(outDir, PSEUDO_RUN_FILE);
  if (existsSync(rawPath) && !existsSync(markerPath)) {
    throw new LabError('REPORT', `${outDir}: already holds raw results that are not a thesis pseudo-run`, {
      remedy: 'Choose another output directory for --thesis (default results/thesis-brodeur-2023).',
    });
  }
  const lines: string[] = [];
  const kernels: string[] = [];
  for (const row of ref.table51) {
    if (!kernels.includes(row.kernel)) kernels.push(row.kernel);
    const bits = row.throughputGbps * 1e9;
    const run: RunRecord = {
      kind: 'run',
      schema: SCHEMA_VERSION,
      runId: THESIS_RUN_ID,
      kernel: row.kernel,
      kernelRelease: row.kernel,
      accelerator: 'host',
      approach: row.approach,
      iteration: 0,
      startedAt: NOT_RECORDED,
      endedAt: NOT_RECORDED,
      iperf: { bitsPerSecond: bits, bytes: (bits * IPERF_DEFAULT_SECONDS) / 8, seconds: IPERF_DEFAULT_SECONDS, retransmits: null },
      // The thesis's "packets" are veth_poll calls; packets repeats them only because the schema
      // needs a number, and the marker tells the report to treat the true packet count as unknown.
      probe: { calls: row.packetsTotal, packets: row.packetsTotal, ns: row.timeTotalNs, cycles: row.cyclesTotal },
      xdpMode: 'native',
    };
    const cell: CellRecord = {
      kind: 'cell',
      schema: SCHEMA_VERSION,
      runId: THESIS_RUN_ID,
      kernel: row.kernel,
      approach: row.approach,
      status: 'done',
      reason: 'thesis pseudo-run: the published median of 50 runs, as one record',
      runs: 1,
    };
    lines.push(JSON.stringify(run), JSON.stringify(cell));
  }
  mkdirSync(join(outDir, 'provenance'), { recursive: true });
  writeFileSync(rawPath, `${lines.join('\n')}\n`);
  for (const kernel of kernels) {
    const prov: Provenance = {
      schema: SCHEMA_VERSION,
      runId: THESIS_RUN_ID,
      kernel,
      kernelRelease: kernel,
      kernelConfigSha256: null,
      accelerator: 'host',
      hostCpuModel: THESIS_CPU,
      cpuFrequency: {
        governor: 'userspace',
        mhz: THESIS_MHZ,
        note: 'frequency the thesis says it pinned (§4.1), not a measurement',
      },
      isolcpus: '2 physical cores (thesis §4.1; its example: isolcpus=0,1,2,3)',
      pinning: null,
      tools: {},
      labCommit: null,
      options: { runs: 50, durationS: IPERF_DEFAULT_SECONDS, warmup: false },
      warnings: [
        'Thesis pseudo-run: one record per cell holding the published median of 50 runs; no distribution.',
        'The thesis does not state the iperf3 duration; iperf3\'s default of 10 s is assumed for bytes.',
        'The thesis\'s "packets" are veth_poll calls; the true packet count is unknown.',
      ],
      startedAt: NOT_RECORDED,
    };
    writeFileSync(join(outDir, 'provenance', `${kernel}.json`), `${JSON.stringify(prov, null, 2)}\n`);
  }
  const marker: PseudoRunMarker = {
    kind: 'thesis-pseudo-run',
    source: 'Brodeur (2023), Tables 5.1 and 5.2',
    referenceFiles: [TABLE_51_FILE, TABLE_52_FILE],
    packetsAreCalls: true,
    note: 'Each cell is one pseudo-run holding the thesis\'s published median of 50 runs: n = 1, no IQR, no CI, no significance test.',
  };
  writeFileSync(markerPath, `${JSON.stringify(marker, null, 2)}\n`);
  return outDir;
}
