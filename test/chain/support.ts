/**
 * Test helpers: compile the fixtures, drive bpftool on the host (all pins under
 * /sys/fs/bpf/xcl-h1-*), build packets.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const FIXTURES = resolve(import.meta.dirname, '../fixtures/chain');
/** sched_cls fixtures: the same kinds of program on the TC hook. */
export const FIXTURES_TC = resolve(import.meta.dirname, '../fixtures/chain-tc');
export const LIBXDP_OBJECTS: string[] = (() => {
  try {
    return execFileSync('dpkg', ['-L', 'libxdp1'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.endsWith('.o'));
  } catch {
    return [];
  }
})();

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `xcl-h1-${tag}-`));
}

/** clang -O2 -g -target bpf; returns the object path. A string define is passed as a C string. */
export function compile(dir: string, name: string, defines: Record<string, number | string> = {}, suffix = '', debug = true, from = FIXTURES): string {
  const out = join(dir, `${name}${suffix}.o`);
  const args = ['-O2', ...(debug ? ['-g'] : []), '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu'];
  for (const [k, v] of Object.entries(defines)) args.push(`-D${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`);
  execFileSync('clang', [...args, '-c', join(from, `${name}.c`), '-o', out], { stdio: 'pipe' });
  return out;
}

export function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

export const bpftool = (...args: string[]): string => sh('bpftool', args);

/** A bpffs directory for one test file, removed (with everything pinned in it) by cleanup(). */
export class PinDir {
  readonly path: string;
  constructor(tag: string) {
    this.path = `/sys/fs/bpf/xcl-h1-${tag}`;
    rmSync(this.path, { recursive: true, force: true });
    mkdirSync(this.path, { recursive: true });
  }
  sub(name: string): string {
    const p = join(this.path, name);
    mkdirSync(p, { recursive: true });
    return p;
  }
  cleanup(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Runs the program once on the packet (pinned to CPU 0 so per-CPU state is shared). */
export function progRun(pin: string, packet: Uint8Array, dir: string): number {
  const f = join(dir, 'pkt.bin');
  writeFileSync(f, packet);
  const out = sh('taskset', ['-c', '0', 'bpftool', '-j', 'prog', 'run', 'pinned', pin, 'data_in', f, 'repeat', '1']);
  const j = JSON.parse(out) as { retval: number };
  return j.retval;
}

/** A 64-byte frame whose first bytes carry the test programs' verdicts. */
export function packet(verdictBytes: number[]): Uint8Array {
  const p = new Uint8Array(64);
  verdictBytes.forEach((v, i) => (p[i] = v));
  p[12] = 0x08; // ethertype IPv4, for programs that look
  return p;
}

/** Reads a one-entry u64 ARRAY map (the fixtures' `hits`). */
export function readCounter(pin: string): number {
  const out = JSON.parse(bpftool('-j', 'map', 'lookup', 'pinned', pin, 'key', '0', '0', '0', '0')) as {
    value: string[] | number;
    formatted?: { value: number };
  };
  if (out.formatted) return Number(out.formatted.value);
  if (Array.isArray(out.value)) return out.value.reduce((n, b, i) => n + parseInt(b, 16) * 2 ** (8 * i), 0);
  return Number(out.value);
}

export const readBytes = (p: string): Uint8Array => new Uint8Array(readFileSync(p));

/** Ethernet frames of a few kinds, for programs that parse headers. */
export function frameCorpus(): Uint8Array[] {
  const eth = (type: number, payload: number[]): Uint8Array =>
    new Uint8Array([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, type >> 8, type & 0xff, ...payload, ...new Array<number>(Math.max(0, 46 - payload.length)).fill(0)]);
  const ipv4 = (proto: number, l4: number[]): number[] => [
    0x45, 0, 0, 20 + l4.length, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, ...l4,
  ];
  const tcp = (sport: number, dport: number): number[] => [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
  const udp = (sport: number, dport: number): number[] => [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
  const ipv6udp = [0x60, 0, 0, 0, 0, 16, 17, 64, ...new Array<number>(15).fill(0), 1, ...new Array<number>(15).fill(0), 2, ...udp(53, 5353)];
  return [
    eth(0x0800, ipv4(6, tcp(1234, 80))),
    eth(0x0800, ipv4(6, tcp(22, 4000))),
    eth(0x0800, ipv4(17, udp(53, 53))),
    eth(0x0800, ipv4(1, [8, 0, 0, 0, 0, 1, 0, 1])),
    eth(0x86dd, ipv6udp),
    eth(0x0806, [0, 1, 8, 0, 6, 4, 0, 1]),
    new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0]), // 14-byte runt
  ];
}

/**
 * Loads each object into a private bpffs (own mount namespace, so pin-by-name maps of third-party
 * objects never reach the host's /sys/fs/bpf) and runs every packet through every program in it.
 * Returns, per object, the program names and their return values per packet, or the load error.
 */
export function runInPrivateBpffs(objects: string[], packets: Uint8Array[], dir: string): { programs: Record<string, number[]>; error?: string }[] {
  const pk = packets.map((p, i) => {
    const f = join(dir, `frame-${i}.bin`);
    writeFileSync(f, p);
    return f;
  });
  const script = [
    'set -u',
    'mount -t bpf bpf /sys/fs/bpf || exit 90',
    ...objects.flatMap((o, k) => [
      `mkdir -p /sys/fs/bpf/o${k}`,
      `if bpftool prog loadall '${o}' /sys/fs/bpf/o${k} 2>/tmp/xcl-h1-err-$$; then`,
      `  for p in /sys/fs/bpf/o${k}/*; do for f in ${pk.map((f) => `'${f}'`).join(' ')}; do`,
      `    r=$(bpftool -j prog run pinned "$p" data_in "$f" repeat 1 2>&1 | sed -n 's/.*"retval":\\([0-9]*\\).*/\\1/p'); echo "R ${k} $(basename $p) \${r:-ERR}"`,
      '  done; done',
      `else echo "E ${k} $(tr '\\n' ' ' </tmp/xcl-h1-err-$$ | tail -c 300)"; fi`,
    ]),
    'rm -f /tmp/xcl-h1-err-$$',
  ].join('\n');
  const out = sh('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
  const res = objects.map(() => ({ programs: {} as Record<string, number[]>, error: undefined as string | undefined }));
  for (const line of out.split('\n')) {
    const m = /^R (\d+) (\S+) (\S+)$/.exec(line);
    if (m) {
      const r = res[Number(m[1])]!;
      (r.programs[m[2]!] ??= []).push(m[3] === 'ERR' ? -1 : Number(m[3]));
    }
    const e = /^E (\d+) (.*)$/.exec(line);
    if (e) res[Number(e[1])]!.error = e[2];
  }
  return res;
}
