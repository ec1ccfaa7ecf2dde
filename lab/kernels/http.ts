/**
 * Downloads for the network providers, with node:http(s) so errors keep their system codes
 * (ENOTFOUND, ECONNREFUSED, ENETUNREACH) and a connection that cannot be made fails within
 * a few seconds instead of hanging: machines without a route to the internet are common.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { errorMessage, LabError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';

/** Connect timeout in ms (env XCL_CONNECT_TIMEOUT_MS, default 4000). */
export function connectTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.XCL_CONNECT_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 4000;
}

/** A connected server must answer within this long. */
const HEADERS_TIMEOUT_MS = 30_000;

/** Stall timeout: a response that sends nothing for this long is abandoned. */
const IDLE_TIMEOUT_MS = 60_000;

export interface HttpOptions {
  connectTimeoutMs?: number;
  progress?: { sink: ProgressSink; id: string };
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** "cannot reach host: ENOTFOUND" — the shape every network failure message takes. */
function unreachable(url: string, e: unknown): LabError {
  const code = (e as { code?: string }).code ?? (errorMessage(e));
  return new LabError('DOWNLOAD', `cannot reach ${hostOf(url)}: ${code}`, {
    cause: e,
    remedy: 'Check the network connection or proxy, or supply a kernel image yourself (XCL_KERNEL_<ver>=path).',
    details: { url, code },
  });
}

function open(url: string, opts: HttpOptions, redirects = 5): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (e) {
      reject(new LabError('BAD_INPUT', `bad URL ${url}`, { cause: e, remedy: 'Fix the base URL (XCL_UBUNTU_MAINLINE_URL / XCL_KERNEL_ORG_URL).' }));
      return;
    }
    const request = parsed.protocol === 'https:' ? httpsRequest : parsed.protocol === 'http:' ? httpRequest : null;
    if (!request) {
      reject(new LabError('BAD_INPUT', `unsupported URL scheme in ${url}`, { remedy: 'Use an http:// or https:// URL.' }));
      return;
    }
    const limit = opts.connectTimeoutMs ?? connectTimeoutMs();
    const req = request(parsed, { method: 'GET', headers: { 'user-agent': 'xdp-chain-lab' } });
    const fail = (code: string) => () => req.destroy(Object.assign(new Error(code), { code }));
    // DNS + TCP connect must happen within the (short) connect timeout; a connected server then
    // gets longer to send its response headers.
    let timer = setTimeout(fail('ETIMEDOUT'), limit);
    const connected = (): void => {
      clearTimeout(timer);
      timer = setTimeout(fail('ETIMEDOUT (no response)'), HEADERS_TIMEOUT_MS);
    };
    req.once('socket', (socket) => {
      // A kept-alive socket is already connected and emits no 'connect'.
      if (socket.connecting) socket.once('connect', connected);
      else connected();
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(unreachable(url, e));
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects <= 0) {
          reject(new LabError('DOWNLOAD', `${url}: too many redirects`));
          return;
        }
        open(new URL(res.headers.location, url).toString(), opts, redirects - 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        reject(
          new LabError('DOWNLOAD', `${url}: HTTP ${status}${status === 404 ? ' (not found)' : ''}`, {
            remedy: status === 404 ? 'The catalog may name a release the server no longer has: update kernels/catalog.json.' : undefined,
            details: { url, status },
          }),
        );
        return;
      }
      res.setTimeout(IDLE_TIMEOUT_MS, () => res.destroy(Object.assign(new Error('stalled'), { code: 'ETIMEDOUT' })));
      resolve(res);
    });
    req.end();
  });
}

export async function fetchText(url: string, opts: HttpOptions = {}): Promise<string> {
  const res = await open(url, opts);
  const chunks: Buffer[] = [];
  try {
    for await (const c of res) chunks.push(c as Buffer);
  } catch (e) {
    throw unreachable(url, e);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Streams `url` to `dest`, returning its sha256; a partial file is removed on failure. */
export async function download(url: string, dest: string, opts: HttpOptions = {}): Promise<string> {
  const res = await open(url, opts);
  const total = Number(res.headers['content-length']) || undefined;
  const hash = createHash('sha256');
  let done = 0;
  let lastReport = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      done += chunk.length;
      if (opts.progress && done - lastReport > 4 << 20) {
        lastReport = done;
        opts.progress.sink({ kind: 'phase-progress', id: opts.progress.id, done, total });
      }
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res, tap, createWriteStream(dest));
  } catch (e) {
    await rm(dest, { force: true });
    throw e instanceof LabError ? e : unreachable(url, e);
  }
  return hash.digest('hex');
}

/**
 * Can a TCP connection to the URL's host be made within the connect timeout?
 * Returns null when it can, else the reason ("cannot reach host: ENOTFOUND").
 */
export function probe(url: string, timeoutMs: number = connectTimeoutMs()): Promise<string | null> {
  // Listings probe the same hosts for several kernels: one connection per host and port is enough.
  let key = url;
  try {
    const u = new URL(url);
    key = `${u.protocol}//${u.host}`;
  } catch {
    /* reported by probeOnce */
  }
  const hit = probes.get(key);
  if (hit && Date.now() - hit.at < PROBE_TTL_MS) return hit.result;
  const result = probeOnce(url, timeoutMs);
  probes.set(key, { at: Date.now(), result });
  return result;
}

const PROBE_TTL_MS = 10_000;
const probes = new Map<string, { at: number; result: Promise<string | null> }>();

function probeOnce(url: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      resolve(`bad URL ${url}`);
      return;
    }
    const port = Number(parsed.port) || (parsed.protocol === 'https:' ? 443 : 80);
    const socket = connect({ host: parsed.hostname, port });
    const done = (reason: string | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done(`cannot reach ${parsed.host}: ETIMEDOUT`), timeoutMs);
    socket.once('connect', () => done(null));
    socket.once('error', (e: NodeJS.ErrnoException) => done(`cannot reach ${parsed.host}: ${e.code ?? e.message}`));
  });
}
