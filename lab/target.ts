/**
 * A Target is where BPF programs are loaded and traffic is generated: the host's own kernel,
 * or a guest kernel booted in QEMU and reached over SSH. Everything above the VM layer
 * (testenv, approaches, bench) talks to a Target and never knows which one it has.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import { LabError } from './errors.ts';

export type Accelerator = 'host' | 'kvm' | 'tcg';

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  /** Text written to the command's standard input. */
  input?: string;
  /** Kill the command after this long (default: 10 minutes). */
  timeoutMs?: number;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

export interface Target extends AsyncDisposable {
  /** "host" or "vm:<kernel>" — used in results and messages. */
  readonly name: string;
  readonly kernelRelease: string;
  readonly accelerator: Accelerator;
  /** What its clock counts; 'icount' only for a TCG guest under QEMU's instruction counter. */
  readonly clock?: 'wall' | 'icount';
  /** Absolute directory on the target where the lab's files (BPF objects, scripts) are put. */
  readonly workDir: string;
  /** Runs argv without a shell. Throws LabError('COMMAND') on non-zero exit unless allowFailure. */
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult>;
  /** Runs a POSIX shell script (bash -c). Same error rules as run(). */
  sh(script: string, options?: RunOptions): Promise<CommandResult>;
  /** Copies a local file onto the target (creating parent directories). */
  putFile(localPath: string, remotePath: string): Promise<void>;
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function commandFailed(where: string, argv: readonly string[], r: CommandResult): LabError {
  const cmd = argv.map(shellQuote).join(' ');
  const tail = (r.stderr || r.stdout).trim().split('\n').slice(-15).join('\n');
  return new LabError('COMMAND', `${where}: \`${cmd}\` exited with ${r.exitCode}${tail ? `:\n${tail}` : ''}`, {
    details: { argv, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr },
  });
}

/** Copies a local file (a BPF object, a helper) into `dir` on the target and returns its path there. */
export async function putObject(target: Target, localPath: string, dir: string, name = basename(localPath)): Promise<string> {
  const remote = `${dir}/${name}`;
  await target.putFile(localPath, remote);
  return remote;
}

/** Writes `bytes` (a frame, a patched object, a script) to `remotePath` on the target, through a local file. */
export async function putBytes(target: Target, bytes: Uint8Array | string, remotePath: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'xcl-put-'));
  try {
    const local = join(dir, basename(remotePath));
    await writeFile(local, bytes);
    await target.putFile(local, remotePath);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The machine's own kernel. Commands run as child processes of the lab. */
export class HostTarget implements Target {
  readonly name = 'host';
  readonly accelerator: Accelerator = 'host';
  readonly kernelRelease: string;
  readonly workDir: string;

  constructor(kernelRelease: string, workDir: string) {
    this.kernelRelease = kernelRelease;
    this.workDir = workDir;
  }

  static async create(workDir: string): Promise<HostTarget> {
    const { stdout } = await execa('uname', ['-r']);
    await mkdir(workDir, { recursive: true });
    return new HostTarget(stdout.trim(), workDir);
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const [file, ...args] = argv;
    if (file === undefined) throw new LabError('BAD_INPUT', 'HostTarget.run: empty argv');
    let r;
    try {
      r = await execa(file, args, {
        input: options.input,
        timeout: options.timeoutMs ?? 600_000,
        reject: false,
        stripFinalNewline: false,
      });
    } catch (e) {
      throw new LabError('COMMAND', `host: cannot run ${file}: ${(e as Error).message}`, { cause: e });
    }
    if (r.failed && r.exitCode === undefined) {
      const why = r.timedOut ? `timed out after ${options.timeoutMs ?? 600_000} ms` : (r.shortMessage ?? 'failed to start');
      if (!options.allowFailure || !r.timedOut) {
        const missing = (r as { code?: string }).code === 'ENOENT';
        throw new LabError(missing ? 'MISSING_TOOL' : 'COMMAND', `host: ${file}: ${why}`, {
          remedy: missing ? `Install ${file} (run \`npm run setup\`).` : undefined,
          details: { argv },
        });
      }
    }
    const result: CommandResult = {
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
      exitCode: r.exitCode ?? -1,
    };
    if (result.exitCode !== 0 && !options.allowFailure) throw commandFailed(this.name, argv, result);
    return result;
  }

  sh(script: string, options?: RunOptions): Promise<CommandResult> {
    return this.run(['bash', '-c', script], options);
  }

  async putFile(localPath: string, remotePath: string): Promise<void> {
    if (localPath === remotePath) return;
    await mkdir(dirname(remotePath), { recursive: true });
    await copyFile(localPath, remotePath);
  }

  async [Symbol.asyncDispose](): Promise<void> {}
}
