/**
 * Waits on conditions, not on time: "traffic is flowing" is a counter that moved, not a sleep that
 * was long enough on the machine where the test was written.
 */

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/** Polls `probe` until it returns something other than null/undefined/false; fails naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, opts: WaitOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const intervalMs = opts.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until a counter moves past its value at the call (by at least `by`), and returns the new
 * value: proof that packets are crossing right now.
 */
export async function counterMoves(what: string, read: () => Promise<number | bigint>, by = 1, opts: WaitOptions = {}): Promise<number> {
  const start = Number(await read());
  return waitFor(`${what} to move by ${by} (from ${start})`, async () => {
    const now = Number(await read());
    return now >= start + by ? now : null;
  }, opts);
}
