/**
 * Turns an extracted kernel tree (<root>/boot/vmlinuz-<release>, <root>/boot/config-<release>,
 * <root>/lib/modules/<release>) into a KernelImage: release, checksum, depmod, boot modules.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import type { ProgressSink } from '../progress.ts';
import { exists, sha256File, tool } from './exec.ts';
import { readKconfig, checkConfig, describeChecks } from './kconfig.ts';
import { bootModulePlan, type BootModulePlan } from './modules.ts';
import type { KernelImage, KernelVersion } from './types.ts';

/**
 * What a distribution kernel must have for the lab. Drivers may be modules (=m): the VM layer
 * loads bootModules before mounting root.
 */
export const DISTRO_REQUIRED: ReadonlyArray<[string, string]> = [
  ['CONFIG_BPF_SYSCALL', 'y'],
  ['CONFIG_BPF_JIT', 'y'],
  ['CONFIG_XDP_SOCKETS', 'y'],
  ['CONFIG_VETH', 'y'],
  ['CONFIG_NET_NS', 'y'],
  ['CONFIG_IPV6', 'y'],
  ['CONFIG_KPROBES', 'y'],
  ['CONFIG_KPROBE_EVENTS', 'y'],
  ['CONFIG_PERF_EVENTS', 'y'],
  ['CONFIG_DEBUG_INFO_BTF', 'y'],
  ['CONFIG_VIRTIO', 'y'],
  ['CONFIG_VIRTIO_PCI', 'y'],
  ['CONFIG_VIRTIO_BLK', 'y'],
  ['CONFIG_VIRTIO_NET', 'y'],
  ['CONFIG_EXT4_FS', 'y'],
];
export const MODULE_OK: ReadonlySet<string> = new Set([
  'CONFIG_VETH',
  'CONFIG_VIRTIO',
  'CONFIG_VIRTIO_PCI',
  'CONFIG_VIRTIO_BLK',
  'CONFIG_VIRTIO_NET',
  'CONFIG_EXT4_FS',
  'CONFIG_IPV6',
]);

/** Which required options a distribution config lacks ("" when none). */
export async function distroConfigProblems(configPath: string): Promise<string> {
  const bad = checkConfig(await readKconfig(configPath), DISTRO_REQUIRED, { allowModule: MODULE_OK });
  return describeChecks(bad);
}

/** Does a `uname -r` belong to the catalog series? "6.1.0-27-cloud-amd64" is 6.1, "6.12.5" is not. */
export function releaseMatchesSeries(release: string, series: string): boolean {
  return new RegExp(`^${series.replace('.', '\\.')}(?:[.\\-+]|$)`).test(release);
}

async function single(dir: string, prefix: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  return (await readdir(dir)).filter((f) => f.startsWith(prefix)).sort();
}

/** depmod, when the package shipped no modules.dep (Debian runs it in postinst). */
export async function ensureDepmod(root: string, release: string): Promise<void> {
  if (await exists(join(root, 'lib', 'modules', release, 'modules.dep'))) return;
  const depmod = (await exists('/usr/sbin/depmod')) ? '/usr/sbin/depmod' : (await exists('/sbin/depmod')) ? '/sbin/depmod' : 'depmod';
  await tool([depmod, '-b', root, release], { what: `depmod for ${release}`, code: 'IMAGE' });
}

export interface RootImage {
  image: KernelImage;
  plan: BootModulePlan | null;
}

/** Describes an extracted tree laid out like a Debian image package. */
export async function imageFromRoot(
  root: string,
  version: KernelVersion,
  series: string,
  provider: string,
  progress?: ProgressSink,
): Promise<RootImage> {
  const kernels = (await single(join(root, 'boot'), 'vmlinuz-')).concat(await single(join(root, 'boot'), 'vmlinux-'));
  const vmlinuzName = kernels.find((k) => k.startsWith('vmlinuz-'));
  if (!vmlinuzName) throw new LabError('IMAGE', `${root}/boot: no vmlinuz-<release>`, { remedy: 'The package or tree holds no kernel image.' });
  const release = vmlinuzName.slice('vmlinuz-'.length);
  if (!releaseMatchesSeries(release, series)) {
    throw new LabError('IMAGE', `${root}: kernel release ${release} is not in the ${series} series`, {
      remedy: `Supply a ${series}.x kernel for catalog version ${version}.`,
    });
  }
  const vmlinuz = join(root, 'boot', vmlinuzName);
  const config = join(root, 'boot', `config-${release}`);
  const modulesDir = join(root, 'lib', 'modules', release);
  let plan: BootModulePlan | null = null;
  if (await exists(modulesDir)) {
    await ensureDepmod(root, release);
    plan = await bootModulePlan(modulesDir);
    if (plan.missing.length > 0) {
      throw new LabError('IMAGE', `${release}: has neither module nor built-in ${plan.missing.join(', ')}`, {
        remedy: 'The VM needs virtio_pci, virtio_blk, ext4 and virtio_net: use a kernel that has them.',
      });
    }
    progress?.({
      kind: 'log',
      level: 'info',
      message: `${release}: boot modules ${plan.load.map((m) => m.name).join(' ') || '(none)'}; built in: ${plan.builtin.join(' ') || '(none)'}`,
    });
  }
  const image: KernelImage = {
    version,
    release,
    vmlinuz,
    modulesRoot: plan ? root : null,
    configPath: (await exists(config)) ? config : null,
    sha256: await sha256File(vmlinuz),
    provider,
    bootModules: plan ? plan.load.map((m) => m.name) : [],
  };
  return { image, plan };
}
