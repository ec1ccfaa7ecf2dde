/**
 * bpffs: mounting it, the pin-name rule it enforces, and removing pins (never anything that is
 * not on a bpf filesystem).
 */
import type { Target } from '../target.ts';
import { shellQuote } from '../target.ts';
import { LabError } from '../errors.ts';

/** Mounts bpffs at `path` (default /sys/fs/bpf) when it is not a bpf filesystem yet. */
export async function ensureBpffs(target: Target, path = '/sys/fs/bpf'): Promise<void> {
  const fsType = await target.run(['stat', '-f', '-c', '%T', path], { allowFailure: true });
  if (fsType.exitCode === 0 && fsType.stdout.trim() === 'bpf_fs') return;
  const r = await target.sh(`mkdir -p ${shellQuote(path)} && mount -t bpf bpf ${shellQuote(path)}`, { allowFailure: true });
  if (r.exitCode !== 0) {
    const text = (r.stderr || r.stdout).trim();
    const notRoot = /permission denied|must be superuser|not permitted/i.test(text);
    throw new LabError(notRoot ? 'NOT_ROOT' : 'COMMAND', `${target.name}: cannot mount bpffs at ${path}: ${text}`, {
      remedy: notRoot ? 'Run the lab as root.' : 'Check that the kernel has CONFIG_BPF_SYSCALL=y and that the path is a directory.',
    });
  }
}

/**
 * Removes a pin file or a whole pin directory (bpffs allows rm / rm -r). Missing is fine. Refuses
 * any path that is not on a bpf filesystem, so a wrong argument can never delete ordinary files.
 */
export async function unpin(target: Target, path: string): Promise<void> {
  if (!path.startsWith('/') || path.split('/').includes('..')) {
    throw new LabError('BAD_INPUT', `unpin: ${path} is not an absolute bpffs path`);
  }
  const fs = await target.run(['stat', '-f', '-c', '%T', path], { allowFailure: true });
  if (fs.exitCode !== 0) return; // does not exist
  if (fs.stdout.trim() !== 'bpf_fs') {
    throw new LabError('BAD_INPUT', `unpin: refusing to remove ${path}: it is on ${fs.stdout.trim() || 'an unknown filesystem'}, not bpffs`, {
      remedy: 'Pass a path under a bpffs mount (e.g. /sys/fs/bpf/...).',
    });
  }
  await target.run(['rm', '-rf', '--', path], { allowFailure: true });
}

/** bpffs refuses names containing '.', which libbpf reports as a bare EPERM: say it plainly. */
export function checkPinPath(path: string): void {
  const bad = path.split('/').find((c) => c.includes('.'));
  if (bad !== undefined) {
    throw new LabError('BAD_INPUT', `bpffs path ${path}: component "${bad}" contains '.', which bpffs does not allow`, {
      remedy: "Use pin names without '.' (e.g. filter_manual instead of filter.manual).",
    });
  }
}
