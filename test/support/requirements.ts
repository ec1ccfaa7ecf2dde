/**
 * What a test needs from the machine. A test that needs something this machine lacks is skipped
 * with the reason printed; one whose need is met always runs. Use as:
 *
 *   const need = await requirements('root', 'bpftool');
 *   describe.skipIf(need.skip)('...', () => { ... });   // need.reason printed once at load
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export type Requirement =
  | 'root'
  | 'bpf'          // bpf() syscall usable (root + bpffs mountable)
  | 'clang'
  | 'bpftool'
  | 'xdp-loader'
  | 'iperf3'
  | 'qemu'
  | 'debootstrap'
  | 'kvm'          // /dev/kvm opens read-write (nested KVM may still fail at boot)
  | 'kprobes'      // kprobe events (tracefs kprobe_events or perf kprobe PMU)
  | 'freplace';    // BPF_PROG_TYPE_EXT programs load (libxdp dispatcher)

function onPath(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const checks: Record<Requirement, () => string | null> = {
  root: () => (process.getuid?.() === 0 ? null : 'needs root'),
  bpf: () => {
    if (process.getuid?.() !== 0) return 'needs root for bpf()';
    return existsSync('/sys/fs/bpf') ? null : 'no /sys/fs/bpf';
  },
  clang: () => (onPath('clang') ? null : 'clang not installed (npm run setup)'),
  bpftool: () => (onPath('bpftool') ? null : 'bpftool not installed (npm run setup)'),
  'xdp-loader': () => (onPath('xdp-loader') ? null : 'xdp-loader not installed (npm run setup)'),
  iperf3: () => (onPath('iperf3') ? null : 'iperf3 not installed (npm run setup)'),
  qemu: () => (onPath('qemu-system-x86_64') ? null : 'qemu-system-x86_64 not installed (npm run setup)'),
  debootstrap: () => (onPath('debootstrap') ? null : 'debootstrap not installed (npm run setup)'),
  kvm: () => {
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
      return null;
    } catch {
      return '/dev/kvm not usable';
    }
  },
  kprobes: () => {
    for (const p of ['/sys/kernel/tracing/kprobe_events', '/sys/kernel/debug/tracing/kprobe_events']) {
      if (existsSync(p)) return null;
    }
    return existsSync('/sys/bus/event_source/devices/kprobe') ? null : 'kernel has no kprobe events';
  },
  freplace: () => {
    // The host kernel's config tells whether BPF trampolines exist; without them no freplace.
    try {
      const cfg = readFileSync(`/boot/config-${execFileSync('uname', ['-r']).toString().trim()}`, 'utf8');
      if (!/^CONFIG_BPF_JIT=y/m.test(cfg)) return 'kernel has no BPF JIT (no freplace)';
    } catch {
      /* no config file: decided by the probe in the test itself */
    }
    return null;
  },
};

export interface Need {
  skip: boolean;
  reason: string;
}

const printed = new Set<string>();

/** Checks each requirement; prints "skipped: <reason>" once per distinct reason. */
export function requirements(...needs: Requirement[]): Need {
  const missing = needs.map((n) => checks[n]()).filter((r): r is string => r !== null);
  const reason = missing.join('; ');
  if (missing.length > 0 && !printed.has(reason)) {
    printed.add(reason);
    console.warn(`[skip] ${reason}`);
  }
  return { skip: missing.length > 0, reason };
}
