/**
 * What a test needs from the machine, and what the machine is declared to have.
 *
 * On a developer machine a test that needs something missing is skipped with the reason printed.
 * Under a machine expectation (XCL_MACHINE=<file>, set by .ci/run to .ci/machine.json) the machine
 * declares what it has and what it lacks; a requirement it declares but does not meet fails the
 * test file instead of skipping it, so a broken setup cannot pass green. Features only a probe can
 * tell (KVM that really runs a guest, freplace) are checked with `agree()`: the probe must give the
 * declared answer, so a wrong probe cannot send the test down the other branch unnoticed.
 *
 *   const need = requirements('root', 'bpftool');
 *   describe.skipIf(need.skip)('...', () => { ... });
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

/** Checked by looking at the machine, without the lab's code. */
export type StaticRequirement =
  | 'root'
  | 'bpf'            // bpf() usable: root and bpffs mounted
  | 'veth'           // the veth driver: built in or loaded (/sys/module/veth)
  | 'clang'
  | 'llvm'           // llvm-objdump and llvm-readelf
  | 'bpftool'
  | 'xdp-loader'
  | 'libxdp-objects' // the libxdp1 package's BPF objects (xdp-dispatcher.o ...)
  | 'iperf3'
  | 'qemu'
  | 'debootstrap'
  | 'chromium'
  | 'kprobes'        // kprobe events (tracefs kprobe_events or the perf kprobe PMU)
  | 'bpf-stats'      // BPF run-time statistics (kernel.bpf_stats_enabled)
  | 'gcc-10';        // Debian 11's kernel compiler, for modules of its 5.10 (lab/setup.sh: from bullseye)

/** Known only by probing with the lab's code: the test states the probe's answer with agree(). */
export type ProbedFeature =
  | 'kvm'            // QEMU boots a guest with KVM (not merely /dev/kvm present)
  | 'freplace'       // BPF_PROG_TYPE_EXT attaches: libxdp's dispatcher runs three programs
  | 'debian-mirror'  // the Debian archive answers (kernels, root filesystems)
  | 'kernel-build-tools' // what building a kernel from source needs (lab/kernels/build.ts)
  | 'tcx';           // tcx attach on the host: kernel 6.6+, bpftool 7.4+, libbpf 1.3+ (lab/approaches/tcx.ts)

export type Feature = StaticRequirement | ProbedFeature;
/** Kept for the tests that name the type. */
export type Requirement = StaticRequirement;

const STATIC: readonly StaticRequirement[] = [
  'root', 'bpf', 'veth', 'clang', 'llvm', 'bpftool', 'xdp-loader', 'libxdp-objects', 'iperf3', 'qemu',
  'debootstrap', 'chromium', 'kprobes', 'bpf-stats', 'gcc-10',
];
const PROBED: readonly ProbedFeature[] = ['kvm', 'freplace', 'debian-mirror', 'kernel-build-tools', 'tcx'];
const ALL_FEATURES: readonly Feature[] = [...STATIC, ...PROBED];

/** The executable's path on $PATH, read from the environment at each call (tests hide tools). */
export function onPath(tool: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not in this directory */
    }
  }
  return null;
}

const tool = (name: string, pkg: string) => (): string | null => (onPath(name) ? null : `${name} not on PATH (apt-get install ${pkg}, or bash lab/setup.sh)`);

const checks: Record<StaticRequirement, () => string | null> = {
  root: () => (process.getuid?.() === 0 ? null : 'needs root'),
  bpf: () => {
    if (process.getuid?.() !== 0) return 'needs root for bpf()';
    try {
      const mounted = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[2] === 'bpf');
      return mounted ? null : 'bpffs not mounted (mount -t bpf bpf /sys/fs/bpf, or bash lab/setup.sh)';
    } catch {
      return existsSync('/sys/fs/bpf') ? null : 'no /sys/fs/bpf';
    }
  },
  veth: () => {
    if (process.getuid?.() !== 0) return 'needs root to create a veth pair';
    // A pair in a throw-away namespace: nothing to clean up, nothing to collide with.
    try {
      execFileSync('unshare', ['-n', 'ip', 'link', 'add', 'name', 'xv0', 'type', 'veth', 'peer', 'name', 'xv1'], { stdio: 'pipe' });
      return null;
    } catch (e) {
      return `cannot create a veth pair (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}; modprobe veth)`;
    }
  },
  clang: tool('clang', 'clang'),
  llvm: () => (onPath('llvm-objdump') && onPath('llvm-readelf') ? null : 'llvm-objdump or llvm-readelf not on PATH (apt-get install llvm)'),
  bpftool: tool('bpftool', 'bpftool'),
  'xdp-loader': tool('xdp-loader', 'xdp-tools'),
  'libxdp-objects': () => (libxdpObjects().length > 0 ? null : 'no libxdp BPF objects (apt-get install libxdp1)'),
  iperf3: tool('iperf3', 'iperf3'),
  qemu: tool('qemu-system-x86_64', 'qemu-system-x86'),
  debootstrap: tool('debootstrap', 'debootstrap'),
  chromium: () => (onPath('chromium') || onPath('chromium-browser') ? null : 'chromium not on PATH (apt-get install chromium)'),
  kprobes: () => {
    for (const p of ['/sys/kernel/tracing/kprobe_events', '/sys/kernel/debug/tracing/kprobe_events', '/sys/bus/event_source/devices/kprobe']) {
      if (existsSync(p)) return null;
    }
    return 'kernel has no kprobe events';
  },
  'gcc-10': tool('gcc-10', '-t bullseye gcc-10 with bullseye in the apt sources'),
  'bpf-stats': () => (existsSync('/proc/sys/kernel/bpf_stats_enabled') ? null : 'kernel has no BPF run-time statistics (/proc/sys/kernel/bpf_stats_enabled absent)'),
};

/** The libxdp1 package's BPF objects (xdp-dispatcher.o ...), from its file list. */
export function libxdpObjects(): string[] {
  try {
    return execFileSync('dpkg', ['-L', 'libxdp1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => l.endsWith('.o') && existsSync(l));
  } catch {
    return [];
  }
}

/** What a machine declares: features it has and features it lacks. */
export interface MachineExpectation {
  file: string;
  has: ReadonlySet<Feature>;
  lacks: ReadonlySet<Feature>;
}

/** Thrown when the machine contradicts its declaration: the test file fails with this message. */
export class MachineExpectationError extends Error {
  override name = 'MachineExpectationError';
}

/** Parses an expectation file: {"has": [...], "lacks": [...]}; unknown features are errors. */
export function parseExpectation(text: string, file: string): MachineExpectation {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MachineExpectationError(`${file}: not JSON (${(e as Error).message})`);
  }
  const list = (key: 'has' | 'lacks'): Set<Feature> => {
    const v = (raw as Record<string, unknown>)[key];
    if (!Array.isArray(v)) throw new MachineExpectationError(`${file}: "${key}" must be an array of features`);
    const out = new Set<Feature>();
    for (const f of v) {
      if (typeof f !== 'string' || !(ALL_FEATURES as readonly string[]).includes(f)) {
        throw new MachineExpectationError(`${file}: unknown feature ${JSON.stringify(f)} in "${key}" (known: ${ALL_FEATURES.join(', ')})`);
      }
      out.add(f as Feature);
    }
    return out;
  };
  const has = list('has');
  const lacks = list('lacks');
  const both = [...has].filter((f) => lacks.has(f));
  if (both.length > 0) throw new MachineExpectationError(`${file}: ${both.join(', ')} both in "has" and "lacks"`);
  return { file, has, lacks };
}

let cached: { env: string | undefined; value: MachineExpectation | null } | null = null;

/** The expectation named by XCL_MACHINE, or null on a machine that declares nothing. */
export function machineExpectation(): MachineExpectation | null {
  const env = process.env.XCL_MACHINE;
  if (cached && cached.env === env) return cached.value;
  let value: MachineExpectation | null = null;
  if (env) {
    const file = resolve(env);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new MachineExpectationError(`XCL_MACHINE=${env}: cannot read ${file}`);
    }
    value = parseExpectation(text, env);
  }
  cached = { env, value };
  return value;
}

export interface Need {
  skip: boolean;
  reason: string;
}

const printed = new Set<string>();

function warnOnce(reason: string): void {
  if (printed.has(reason)) return;
  printed.add(reason);
  console.warn(`[skip] ${reason}`);
}

/**
 * Applies the expectation to one feature whose presence the caller found out itself (`missing` is
 * the reason it is absent, or null when present). Throws where the machine contradicts what it
 * declared; otherwise says whether to skip.
 */
export function checkFeature(feature: Feature, missing: string | null): Need {
  const exp = machineExpectation();
  if (exp && missing !== null && exp.has.has(feature)) {
    throw new MachineExpectationError(`machine expectation ${exp.file} says this machine has ${feature}, but: ${missing}`);
  }
  if (exp && missing === null && exp.lacks.has(feature)) {
    throw new MachineExpectationError(`machine expectation ${exp.file} says this machine lacks ${feature}, but it has it`);
  }
  if (missing !== null) warnOnce(missing);
  return { skip: missing !== null, reason: missing ?? '' };
}

/** Checks each requirement; prints "[skip] <reason>" once per distinct reason. */
export function requirements(...needs: StaticRequirement[]): Need {
  const found = needs.map((n) => ({ n, missing: checks[n]() }));
  const exp = machineExpectation();
  const contradicted = found.filter(({ n, missing }) => exp && missing !== null && exp.has.has(n));
  if (contradicted.length > 0) {
    throw new MachineExpectationError(
      `machine expectation ${exp!.file} says this machine has ${contradicted.map((c) => c.n).join(', ')}, but: ${contradicted.map((c) => c.missing).join('; ')}`,
    );
  }
  for (const { n, missing } of found) if (missing === null) checkFeature(n, null);
  const reason = found.map((f) => f.missing).filter((r): r is string => r !== null).join('; ');
  if (reason) warnOnce(reason);
  return { skip: reason !== '', reason };
}

/**
 * A probe's answer, checked against the declaration: returns `probed` where the machine declares
 * nothing about the feature, and throws where it declares the opposite.
 */
export function agree(feature: ProbedFeature | StaticRequirement, probed: boolean, detail = ''): boolean {
  const exp = machineExpectation();
  if (!exp) return probed;
  const declared = exp.has.has(feature) ? true : exp.lacks.has(feature) ? false : null;
  if (declared !== null && declared !== probed) {
    throw new MachineExpectationError(
      `machine expectation ${exp.file} says this machine ${declared ? 'has' : 'lacks'} ${feature}, but the lab's probe says it ${probed ? 'has' : 'lacks'} it${detail ? `: ${detail}` : ''}`,
    );
  }
  return probed;
}

/** Whether skipping a test for a missing optional input is allowed (not under an expectation). */
export function optional(what: string, missing: string | null): Need {
  if (missing !== null) warnOnce(`${what}: ${missing}`);
  return { skip: missing !== null, reason: missing ?? '' };
}
