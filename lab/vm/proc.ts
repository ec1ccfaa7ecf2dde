/**
 * Running host tools (debootstrap, mkfs.ext4, cpio, depmod, ssh-keygen, taskset) for the VM layer:
 * argv without a shell, bounded in time, and a LabError naming the step and the tail of stderr.
 */
import { execa } from 'execa';
import { LabError, type LabErrorCode } from '../errors.ts';

/** Debian package that provides each tool, for the "install it" remedy. */
const PACKAGE_OF: Record<string, string> = {
  debootstrap: 'debootstrap',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  cpio: 'cpio',
  depmod: 'kmod',
  'ssh-keygen': 'openssh-client',
  taskset: 'util-linux',
  setpriv: 'util-linux',
  xz: 'xz-utils',
  zstd: 'zstd',
  'qemu-system-x86_64': 'qemu-system-x86',
};

export interface ToolOptions {
  /** The step, for messages: "debootstrap bookworm into vm-images/cache/...". */
  what: string;
  code?: LabErrorCode;
  remedy?: string;
  cwd?: string;
  timeoutMs?: number;
  input?: string | Buffer;
  /** Called with each non-empty output line (stdout and stderr), for progress notes. */
  onLine?: (line: string) => void;
}

export interface ToolResult {
  stdout: string;
  stderr: string;
}

export async function runTool(argv: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new LabError('BAD_INPUT', `${opts.what}: empty command`);
  const child = execa(file, args, {
    cwd: opts.cwd,
    reject: false,
    timeout: opts.timeoutMs ?? 600_000,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : 'pipe',
    stripFinalNewline: false,
    // A killed parent must not leave this tool behind: execa kills it when we exit.
    cleanup: true,
  });
  if (opts.onLine) {
    const onLine = opts.onLine;
    const split = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') onLine(line.trim());
    };
    child.stdout?.on('data', split);
    child.stderr?.on('data', split);
  }
  const r = await child;
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  if (r.exitCode === undefined && (r as { code?: string }).code === 'ENOENT') {
    throw new LabError('MISSING_TOOL', `${opts.what}: ${file} is not installed`, {
      remedy: `apt-get install -y ${PACKAGE_OF[file] ?? file} (or npm run setup).`,
    });
  }
  if (r.timedOut) {
    throw new LabError(opts.code ?? 'COMMAND', `${opts.what}: \`${argv.join(' ')}\` timed out after ${opts.timeoutMs ?? 600_000} ms`, {
      remedy: opts.remedy,
    });
  }
  if (r.exitCode !== 0) {
    const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-12).join('\n');
    throw new LabError(
      opts.code ?? 'COMMAND',
      `${opts.what}: \`${argv.join(' ')}\` exited with ${r.exitCode ?? r.signal ?? 'an error'}${tail ? `:\n${tail}` : ''}`,
      { remedy: opts.remedy, details: { argv: [...argv], exitCode: r.exitCode, stderr } },
    );
  }
  return { stdout, stderr };
}
