/**
 * Loads a page in headless Chromium and collects what its console and log say, over the DevTools
 * protocol on --remote-debugging-pipe (fd 3: to Chromium, fd 4: from it; NUL-terminated JSON).
 * No port, no network: the browser is closed (or its own process group killed) on every path.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export function chromiumPath(): string | null {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`]).toString().trim() || null;
    } catch {
      /* try the next */
    }
  }
  return null;
}

export interface PageCheck {
  /** console.error / console.assert, uncaught exceptions, and browser log entries of level error. */
  errors: string[];
  images: { total: number; loaded: number };
  tables: number;
  title: string;
}

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export async function checkPage(url: string, timeoutMs = 60_000): Promise<PageCheck> {
  const exe = chromiumPath();
  if (!exe) throw new Error('chromium not installed');
  const profile = mkdtempSync(join(tmpdir(), 'h5-report-chromium-'));
  const child = spawn(
    exe,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-extensions',
      `--user-data-dir=${profile}`,
      '--remote-debugging-pipe',
      'about:blank',
    ],
    // Own process group, so the renderer and zygote children go with it if a clean close fails.
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'], detached: true },
  );
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  const pending = new Map<number, { resolve: (m: CdpMessage) => void; reject: (e: Error) => void }>();
  const listeners: ((m: CdpMessage) => void)[] = [];
  let nextId = 1;
  let buf = '';
  fromBrowser.setEncoding('utf8');
  fromBrowser.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i)) as CdpMessage;
      buf = buf.slice(i + 1);
      if (msg.id !== undefined && pending.has(msg.id)) {
        const p = pending.get(msg.id)!;
        pending.delete(msg.id);
        if (msg.error) p.reject(new Error(msg.error.message));
        else p.resolve(msg);
      } else {
        for (const l of listeners) l(msg);
      }
    }
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<CdpMessage> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) => reject(new Error(`chromium exited early (code ${code})`)));
    child.once('error', reject);
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`page did not load within ${timeoutMs} ms`)), timeoutMs);
  });
  const errors: string[] = [];
  try {
    const work = async (): Promise<PageCheck> => {
      const created = await send('Target.createTarget', { url: 'about:blank' });
      const targetId = created.result!.targetId as string;
      const attached = await send('Target.attachToTarget', { targetId, flatten: true });
      const sessionId = attached.result!.sessionId as string;
      let loaded!: () => void;
      const loadFired = new Promise<void>((r) => (loaded = r));
      listeners.push((m) => {
        if (m.sessionId !== sessionId) return;
        const p = m.params ?? {};
        if (m.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) {
          errors.push(`console.${String(p.type)}: ${JSON.stringify(p.args)}`);
        } else if (m.method === 'Runtime.exceptionThrown') {
          errors.push(`exception: ${JSON.stringify(p.exceptionDetails)}`);
        } else if (m.method === 'Log.entryAdded') {
          const e = p.entry as { level: string; text: string; url?: string };
          if (e.level === 'error') errors.push(`log: ${e.text}${e.url ? ` (${e.url})` : ''}`);
        } else if (m.method === 'Page.loadEventFired') {
          loaded();
        }
      });
      await send('Runtime.enable', {}, sessionId);
      await send('Log.enable', {}, sessionId);
      await send('Page.enable', {}, sessionId);
      await send('Page.navigate', { url }, sessionId);
      await loadFired;
      const probe = await send(
        'Runtime.evaluate',
        {
          expression:
            'JSON.stringify({ total: document.images.length, loaded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length, tables: document.querySelectorAll("table").length, title: document.title })',
          returnByValue: true,
        },
        sessionId,
      );
      const v = JSON.parse((probe.result!.result as { value: string }).value) as { total: number; loaded: number; tables: number; title: string };
      // Late console output (none expected: the page has no script) gets a moment to arrive.
      await new Promise((r) => setTimeout(r, 300));
      return { errors: [...errors], images: { total: v.total, loaded: v.loaded }, tables: v.tables, title: v.title };
    };
    return await Promise.race([work(), exited, timeout]);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      send('Browser.close').catch(() => {});
      const closed = await Promise.race([gone.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
      if (!closed && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await gone;
      }
    }
    rmSync(profile, { recursive: true, force: true });
  }
}
