/**
 * Fixtures for the kernel tests: fake bzImages with a real boot header, tiny .debs built with
 * dpkg-deb, fake kernel source tarballs, and a loopback HTTP server with directory indexes.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { cp, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'kernels');

/** A file an x86 boot loader would accept as far as the header goes: "HdrS" and a version string. */
export function fakeBzImage(release: string): Buffer {
  const buf = Buffer.alloc(0x1000, 0);
  buf.write('HdrS', 0x202, 'latin1');
  buf.writeUInt16LE(0x300, 0x20e);
  buf.write(`${release} (test@xcl) #1 SMP PREEMPT_DYNAMIC\0`, 0x500, 'latin1');
  buf.write('fake kernel body', 0x800, 'latin1');
  return buf;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes `files` (path → content) under a package root and builds it into `out` with dpkg-deb. */
export async function buildDeb(work: string, pkg: string, files: Record<string, Buffer | string>, out: string): Promise<void> {
  const root = join(work, `pkg-${pkg}`);
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  await writeFile(
    join(root, 'DEBIAN', 'control'),
    `Package: ${pkg}\nVersion: 1.0\nArchitecture: amd64\nMaintainer: xcl tests <test@invalid>\nDescription: fake kernel package for tests\n`,
  );
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  await mkdir(dirname(out), { recursive: true });
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, out], { stdio: 'ignore' });
}

/** The module tree of a fake kernel: virtio_pci and ext4 built in, the rest modules. */
export function fakeModules(release: string): Record<string, string> {
  const m = `lib/modules/${release}`;
  return {
    [`${m}/kernel/drivers/virtio/virtio.ko`]: 'ko',
    [`${m}/kernel/drivers/virtio/virtio_ring.ko`]: 'ko',
    [`${m}/kernel/drivers/block/virtio_blk.ko`]: 'ko',
    [`${m}/kernel/net/core/failover.ko`]: 'ko',
    [`${m}/kernel/drivers/net/net_failover.ko`]: 'ko',
    [`${m}/kernel/drivers/net/virtio_net.ko`]: 'ko',
    [`${m}/kernel/drivers/net/veth.ko`]: 'ko',
    // Shipped with modules.dep so depmod is not run on fake .ko files.
    [`${m}/modules.dep`]: [
      'kernel/drivers/virtio/virtio.ko:',
      'kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
      'kernel/net/core/failover.ko:',
      'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
      'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/net/veth.ko:',
      '',
    ].join('\n'),
    [`${m}/modules.builtin`]: 'kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n',
  };
}

export const LAB_CONFIG_LINES =
  'CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\nCONFIG_XDP_SOCKETS=y\nCONFIG_VETH=m\nCONFIG_NET_NS=y\nCONFIG_IPV6=y\n' +
  'CONFIG_KPROBES=y\nCONFIG_KPROBE_EVENTS=y\nCONFIG_PERF_EVENTS=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_VIRTIO=y\n' +
  'CONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_VIRTIO_NET=m\nCONFIG_EXT4_FS=y\n';

export interface FakeServer {
  url: string;
  /** Every path requested, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `root` on 127.0.0.1 (random port): files as is, directories as an HTML index (unless index: false), else 404. */
export async function serveDir(root: string, opts: { index?: boolean } = {}): Promise<FakeServer> {
  const index = opts.index ?? true;
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const full = normalize(join(root, path));
    if (!full.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    stat(full)
      .then(async (s) => {
        if (s.isDirectory() && !index) {
          res.writeHead(404).end('no index');
        } else if (s.isDirectory()) {
          const names = await readdir(full);
          const links = names.map((n) => `<a href="${encodeURIComponent(n)}">${n}</a>`).join('\n');
          res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body><pre>\n${links}\n</pre></body></html>`);
        } else {
          const data = await readFile(full);
          res.writeHead(200, { 'content-length': data.length }).end(data);
        }
      })
      .catch(() => res.writeHead(404).end('not found'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on (bound then released). */
export async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * A fake kernel source tarball (test/fixtures/kernels/fake-linux plus a generated Kconfig naming
 * `symbols`, a fake bzImage, and drop.txt listing options olddefconfig must drop).
 */
export async function fakeSourceTarball(
  work: string,
  opts: { name: string; symbols: Iterable<string>; drop?: string[]; release?: string },
): Promise<string> {
  const top = opts.name.replace(/\.tar\.xz$/, '');
  const tree = join(work, 'src', top);
  await cp(join(FIXTURES, 'fake-linux'), tree, { recursive: true });
  const kconfig = [...opts.symbols].map((s) => `config ${s.replace(/^CONFIG_/, '')}\n\tbool "${s}"\n`).join('\n');
  await writeFile(join(tree, 'Kconfig'), kconfig);
  await writeFile(join(tree, 'drop.txt'), (opts.drop ?? []).join('\n'));
  if (opts.release) await writeFile(join(tree, 'release.txt'), `${opts.release}\n`);
  const release = (await readFile(join(tree, 'release.txt'), 'utf8')).trim();
  await writeFile(join(tree, 'fake-bzImage'), fakeBzImage(release));
  const out = join(work, 'tarballs', opts.name);
  await mkdir(dirname(out), { recursive: true });
  execFileSync('tar', ['-cJf', out, '-C', join(work, 'src'), top]);
  return out;
}
