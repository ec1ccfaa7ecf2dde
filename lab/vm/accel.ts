/**
 * Whether KVM really runs guests here: a probe boot that must reach the kernel's banner, and its
 * verdict, kept per process and cached for this host boot.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { KernelImage } from '../kernels/types.ts';
import { DEFAULT_IMAGE_CACHE } from './recipe.ts';
import { kvmProbeArgs } from './qemu-args.ts';
import { QEMU_BINARY, QemuProcess } from './qemu.ts';

export type AccelChoice = 'auto' | 'kvm' | 'tcg';

/** What QEMU prints on stderr when KVM accepts a VM but cannot run it. */
export const KVM_BROKEN_RE = /KVM internal error|kvm run failed|failed to initialize kvm|Could not access KVM kernel module|KVM_CREATE_VM/i;

const PROBE_TIMEOUT_MS = 10_000;
const BANNER_RE = /Linux version/;

export interface KvmVerdict {
  ok: boolean;
  reason: string;
}
let kvmVerdict: KvmVerdict | null = null;

function kvmDeviceUsable(): string | null {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return null;
  } catch {
    return existsSync('/dev/kvm') ? '/dev/kvm is not read-write for this user' : 'no /dev/kvm';
  }
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

async function savedVerdict(cacheFile: string, id: string): Promise<KvmVerdict | null> {
  try {
    const saved = JSON.parse(await readFile(cacheFile, 'utf8')) as { bootId?: string; ok?: boolean; reason?: string };
    if (saved.bootId === id && typeof saved.ok === 'boolean') return { ok: saved.ok, reason: saved.reason ?? '' };
  } catch {
    /* no verdict yet */
  }
  return null;
}

/** Boots `kernel` under KVM until its banner, a KVM error, QEMU's exit or the timeout. */
async function probeBoot(kernel: KernelImage, timeoutMs: number): Promise<KvmVerdict> {
  let out = '';
  let err = '';
  let settle: (v: KvmVerdict) => void = () => undefined;
  const settled = new Promise<KvmVerdict>((resolve) => (settle = resolve));
  const qemu = QemuProcess.start(kvmProbeArgs(kernel.vmlinuz, `xcl-kvm-probe-${process.pid}`), {
    onStdout: (d) => {
      out += d.toString();
      if (BANNER_RE.test(out)) settle({ ok: true, reason: 'probe boot reached the kernel banner' });
    },
    onStderr: (d) => {
      err += d.toString();
      const m = KVM_BROKEN_RE.exec(err);
      if (m) settle({ ok: false, reason: `QEMU: ${m[0]}` });
    },
  });
  void qemu.exited.then(() =>
    settle(
      qemu.spawnError
        ? { ok: false, reason: `cannot start ${QEMU_BINARY}: ${qemu.spawnError.message}` }
        : { ok: false, reason: `QEMU exited (${qemu.exit?.code ?? null}) during the KVM probe: ${err.trim().split('\n').slice(-3).join(' ')}` },
    ),
  );
  const timer = setTimeout(
    () => settle({ ok: false, reason: `a KVM probe boot printed no kernel banner in ${timeoutMs / 1000} s (nested KVM that does not run guests)` }),
    timeoutMs,
  );
  const verdict = await settled;
  clearTimeout(timer);
  await qemu.kill();
  return verdict;
}

/**
 * Whether KVM really works: /dev/kvm opening is not enough (nested KVM here opens fine, then the
 * guest stalls or QEMU reports "KVM internal error"). A tiny probe boot must print the kernel's
 * banner. The verdict is kept per process and in the cache for this host boot.
 */
export async function probeKvm(kernel: KernelImage, opts: { cacheDir?: string; timeoutMs?: number } = {}): Promise<KvmVerdict> {
  if (kvmVerdict) return kvmVerdict;
  const dev = kvmDeviceUsable();
  if (dev) return (kvmVerdict = { ok: false, reason: dev });
  const cacheFile = join(opts.cacheDir ?? DEFAULT_IMAGE_CACHE, 'kvm-probe.json');
  const id = bootId();
  const saved = await savedVerdict(cacheFile, id);
  if (saved) return (kvmVerdict = saved);
  const verdict = await probeBoot(kernel, opts.timeoutMs ?? PROBE_TIMEOUT_MS);
  kvmVerdict = verdict;
  await mkdir(dirname(cacheFile), { recursive: true }).catch(() => undefined);
  await writeFile(cacheFile, JSON.stringify({ bootId: id, ...verdict, at: new Date().toISOString() })).catch(() => undefined);
  return verdict;
}

/** Records, for the rest of this process, that KVM failed a real boot (the probe passed but a guest did not run). */
export function markKvmBroken(reason: string): void {
  kvmVerdict = { ok: false, reason };
}

/** For tests: forget the in-process KVM verdict. */
export function resetKvmVerdict(): void {
  kvmVerdict = null;
}
