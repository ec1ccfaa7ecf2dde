/**
 * A kernel the user already has: `--kernel-image PATH` (opts.localImage) or XCL_KERNEL_<ver>
 * (XCL_KERNEL_5_4=/path/bzImage). PATH is a bzImage/vmlinuz file, or a directory holding one
 * (vmlinuz, vmlinuz-*, bzImage, boot/vmlinuz-*, arch/x86/boot/bzImage) and optionally
 * lib/modules/<release> and a config. Nothing is copied; the image is used where it is.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LabError } from '../../errors.ts';
import { exists, sha256File } from '../exec.ts';
import { releaseMatchesSeries } from '../image.ts';
import { bootModulePlan } from '../modules.ts';
import type { KernelImage } from '../types.ts';
import type { Availability, Obtained, Provider, ProviderContext } from '../provider.ts';

/** XCL_KERNEL_5_4 for 5.4. */
export function localEnvName(version: string): string {
  return `XCL_KERNEL_${version.replace(/\./g, '_')}`;
}

function requested(ctx: ProviderContext): { path: string; from: string } | null {
  if (ctx.localImage) return { path: ctx.localImage, from: '--kernel-image' };
  const name = localEnvName(ctx.entry.version);
  const v = ctx.env[name];
  return v ? { path: v, from: name } : null;
}

/**
 * The release string of an x86 bzImage: the boot protocol header ("HdrS" at 0x202) points, at
 * 0x20e, to a NUL-terminated version string 0x200 bytes further ("6.1.0-27-amd64 (debian-kernel@...) #1 ...").
 */
export async function bzImageRelease(path: string): Promise<string | null> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(0x210);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < 0x210 || head.toString('latin1', 0x202, 0x206) !== 'HdrS') return null;
    const offset = head.readUInt16LE(0x20e);
    if (offset === 0) return null;
    const buf = Buffer.alloc(256);
    const r = await fh.read(buf, 0, buf.length, offset + 0x200);
    const text = buf.toString('latin1', 0, r.bytesRead);
    const release = text.split('\0')[0]?.split(' ')[0] ?? '';
    return /^\d+\.\d+/.test(release) ? release : null;
  } finally {
    await fh.close();
  }
}

const IMAGE_CANDIDATES = ['vmlinuz', 'bzImage', 'arch/x86/boot/bzImage'];

async function findInDir(dir: string): Promise<{ vmlinuz: string; config: string | null }> {
  let vmlinuz: string | null = null;
  for (const c of IMAGE_CANDIDATES) if (!vmlinuz && (await exists(join(dir, c)))) vmlinuz = join(dir, c);
  for (const sub of ['', 'boot']) {
    if (vmlinuz || !(await exists(join(dir, sub)))) continue;
    const f = (await readdir(join(dir, sub))).filter((n) => n.startsWith('vmlinuz-')).sort().pop();
    if (f) vmlinuz = join(dir, sub, f);
  }
  if (!vmlinuz) {
    throw new LabError('MISSING_FILE', `${dir}: no kernel image (looked for ${IMAGE_CANDIDATES.join(', ')}, vmlinuz-*, boot/vmlinuz-*)`, {
      remedy: 'Point to the bzImage itself, or to a directory holding vmlinuz and lib/modules/<release>.',
    });
  }
  let config: string | null = null;
  for (const c of ['.config', 'config']) if (!config && (await exists(join(dir, c)))) config = join(dir, c);
  for (const sub of ['', 'boot']) {
    if (config || !(await exists(join(dir, sub)))) continue;
    const f = (await readdir(join(dir, sub))).filter((n) => n.startsWith('config-')).sort().pop();
    if (f) config = join(dir, sub, f);
  }
  return { vmlinuz, config };
}

export const localProvider: Provider = {
  name: 'local',

  async available(ctx: ProviderContext): Promise<Availability> {
    const req = requested(ctx);
    if (!req) return { ok: false, reason: `no image given (set ${localEnvName(ctx.entry.version)}=/path/to/bzImage, or \`npm run kernel -- ${ctx.entry.version} --kernel-image PATH\`)` };
    if (!(await exists(req.path))) return { ok: false, reason: `${req.from}=${req.path}: no such file or directory` };
    return { ok: true, note: `${req.from}=${req.path}` };
  },

  async obtain(ctx: ProviderContext): Promise<Obtained> {
    const req = requested(ctx);
    const envName = localEnvName(ctx.entry.version);
    if (!req) throw new LabError('NO_PROVIDER', `no image given (set ${envName}=/path/to/bzImage, or \`npm run kernel -- ${ctx.entry.version} --kernel-image PATH\`)`);
    const path = resolve(req.path);
    if (!(await exists(path))) {
      throw new LabError('MISSING_FILE', `${req.from}=${req.path}: no such file or directory`, {
        remedy: `Point ${envName} to a bzImage or a directory holding vmlinuz and lib/modules/<release>.`,
      });
    }
    const isDir = (await stat(path)).isDirectory();
    const { vmlinuz, config } = isDir ? await findInDir(path) : { vmlinuz: path, config: null };
    const release = await bzImageRelease(vmlinuz);
    if (!release) {
      throw new LabError('IMAGE', `${vmlinuz}: not an x86 bzImage (no "HdrS" boot header or version string)`, {
        remedy: 'Use arch/x86/boot/bzImage from a kernel build or /boot/vmlinuz-* from a package, not vmlinux.',
      });
    }
    if (!releaseMatchesSeries(release, ctx.entry.series)) {
      throw new LabError('IMAGE', `${req.from}=${req.path}: kernel release ${release} is not in the ${ctx.entry.series} series`, {
        remedy: `Point ${envName} to a ${ctx.entry.series}.x kernel.`,
      });
    }
    let modulesRoot: string | null = null;
    let bootModules: string[] = [];
    if (isDir && (await exists(join(path, 'lib', 'modules', release)))) {
      const plan = await bootModulePlan(join(path, 'lib', 'modules', release));
      if (plan.missing.length > 0) {
        throw new LabError('IMAGE', `${req.path}: ${release} has neither module nor built-in ${plan.missing.join(', ')}`, {
          remedy: 'The VM needs virtio_pci, virtio_blk, ext4 and virtio_net built in or as modules.',
        });
      }
      modulesRoot = path;
      bootModules = plan.load.map((m) => m.name);
    }
    const image: KernelImage = {
      version: ctx.entry.version,
      release,
      vmlinuz,
      modulesRoot,
      configPath: config,
      sha256: await sha256File(vmlinuz),
      provider: 'local',
      bootModules,
    };
    return { image, cacheable: false, origin: { path: req.path, from: req.from } };
  },
};
