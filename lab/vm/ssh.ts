/**
 * SSH to a guest with ssh2: one connection per VM, one channel per command. The host key is
 * checked against the key generated with the image, so a stray process that grabbed the
 * forwarded port can never be mistaken for our guest.
 */
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { LabError } from '../errors.ts';
import type { CommandResult } from '../target.ts';

export interface SshEndpoint {
  host: string;
  port: number;
  username: string;
  privateKey: Buffer;
  /** "ssh-ed25519 AAAA... comment" of the guest. */
  hostPublicKey: string;
}

export class SshSession {
  private sftpP: Promise<SFTPWrapper> | null = null;
  private closedFlag = false;
  private closeReason: Error | null = null;

  private constructor(private readonly client: Client, readonly endpoint: SshEndpoint) {
    client.on('close', () => {
      this.closedFlag = true;
    });
    client.on('error', (e) => {
      this.closeReason = e;
      this.closedFlag = true;
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** One connection attempt; rejects with the reason (refused, reset, handshake timeout, bad key). */
  static connect(ep: SshEndpoint, timeoutMs: number): Promise<SshSession> {
    const expected = Buffer.from(ep.hostPublicKey.trim().split(/\s+/)[1] ?? '', 'base64');
    return new Promise((resolve, reject) => {
      const client = new Client();
      let settled = false;
      let hostKeyMismatch = false;
      const done = (e: Error | null): void => {
        if (settled) return;
        settled = true;
        if (e) {
          client.removeAllListeners('ready');
          client.on('error', () => undefined);
          client.end();
          reject(e);
        } else {
          resolve(new SshSession(client, ep));
        }
      };
      client.once('ready', () => done(null));
      client.once('error', (e) =>
        done(hostKeyMismatch ? new LabError('SSH', `${ep.host}:${ep.port} answered with a host key that is not our guest's`, {
          remedy: 'Another process may own that port; retry (a new port is chosen each boot).',
        }) : e),
      );
      client.once('close', () => done(new Error('connection closed before SSH was ready')));
      client.connect({
        host: ep.host,
        port: ep.port,
        username: ep.username,
        privateKey: ep.privateKey,
        readyTimeout: timeoutMs,
        hostVerifier: (key: Buffer) => {
          const ok = expected.length > 0 && key.equals(expected);
          if (!ok) hostKeyMismatch = true;
          return ok;
        },
      });
    });
  }

  /**
   * Runs one command line (already quoted for the guest's shell). Returns its exit status;
   * on timeout the remote process is sent SIGKILL and exitCode is -1 with timedOut set.
   */
  exec(command: string, opts: { input?: string; timeoutMs: number }): Promise<CommandResult & { timedOut: boolean; signal: string | null }> {
    return new Promise((resolve, reject) => {
      if (this.closedFlag) {
        reject(new LabError('SSH', `SSH connection to ${this.endpoint.host}:${this.endpoint.port} is closed${this.closeReason ? `: ${this.closeReason.message}` : ''}`));
        return;
      }
      this.client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
        if (err) {
          reject(new LabError('SSH', `cannot open an SSH channel: ${err.message}`, { cause: err }));
          return;
        }
        const out: Buffer[] = [];
        const errb: Buffer[] = [];
        let code: number | null = null;
        let signal: string | null = null;
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          try {
            stream.signal('KILL');
          } catch {
            /* channel already closing */
          }
          stream.close();
        }, opts.timeoutMs);
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errb.push(d));
        stream.on('exit', (c: number | null, sig?: string) => {
          code = c;
          signal = sig ?? null;
        });
        stream.on('close', () => {
          clearTimeout(timer);
          if (!timedOut && code === null && signal === null && this.closedFlag) {
            reject(new LabError('SSH', `SSH connection lost while running \`${command.slice(0, 200)}\``));
            return;
          }
          resolve({
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(errb).toString('utf8'),
            exitCode: timedOut ? -1 : code ?? (signal ? 128 + signalNumber(signal) : -1),
            timedOut,
            signal,
          });
        });
        if (opts.input !== undefined) stream.end(opts.input);
        else stream.end();
      });
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    if (!this.sftpP) {
      this.sftpP = new Promise((resolve, reject) => {
        this.client.sftp((err, s) => (err ? reject(err) : resolve(s)));
      });
      this.sftpP.catch(() => {
        this.sftpP = null;
      });
    }
    return this.sftpP;
  }

  async putFile(localPath: string, remotePath: string, mode: number): Promise<void> {
    const sftp = await this.sftp();
    await new Promise<void>((resolve, reject) => {
      sftp.fastPut(localPath, remotePath, { mode }, (err) => (err ? reject(err) : resolve()));
    });
    await new Promise<void>((resolve, reject) => {
      sftp.chmod(remotePath, mode, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.closedFlag = true;
    this.client.end();
  }
}

function signalNumber(name: string): number {
  const table: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, ILL: 4, ABRT: 6, FPE: 8, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 };
  return table[name.replace(/^SIG/, '')] ?? 0;
}
