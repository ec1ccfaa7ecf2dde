/** Config fragments: parsing, merging over a base config, and the after-olddefconfig check. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAB_CONFIG_LINES } from './support.ts';
import { LAB_CONFIG_FRAGMENT } from '../../lab/kernels/catalog.ts';
import { distroConfigProblems } from '../../lab/kernels/image.ts';
import { checkConfig, describeChecks, mergeFragment, parseFragment, parseKconfig } from '../../lab/kernels/kconfig.ts';

describe('kconfig', () => {
  it('parses set, module, string and not-set options and ignores comments', () => {
    const v = parseKconfig('# comment\nCONFIG_A=y\nCONFIG_B=m\nCONFIG_C="x y"\n# CONFIG_D is not set\n\nCONFIG_E=0x10\n');
    expect([...v]).toEqual([
      ['CONFIG_A', 'y'],
      ['CONFIG_B', 'm'],
      ['CONFIG_C', '"x y"'],
      ['CONFIG_D', 'n'],
      ['CONFIG_E', '0x10'],
    ]);
  });

  it('merges a fragment: replaces existing lines in place, appends new ones, skips the skipped', () => {
    const base = 'CONFIG_A=m\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_KEEP=y\n';
    const frag = parseFragment('CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_NEW=y\nCONFIG_SKIP=y\n');
    expect(mergeFragment(base, frag, new Set(['CONFIG_SKIP']))).toBe(
      'CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_KEEP=y\nCONFIG_NEW=y\n',
    );
  });

  it('reports options that did not stick; "not set" is satisfied by absence; m satisfies y only where allowed', () => {
    const final = parseKconfig('CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=y\n');
    const wanted: [string, string][] = [
      ['CONFIG_A', 'y'],
      ['CONFIG_B', 'y'],
      ['CONFIG_C', 'n'],
      ['CONFIG_D', 'n'],
      ['CONFIG_E', 'y'],
    ];
    const bad = checkConfig(final, wanted);
    expect(bad.map((b) => b.option)).toEqual(['CONFIG_B', 'CONFIG_C', 'CONFIG_E']);
    expect(describeChecks(bad)).toBe('CONFIG_B (wanted y, got m), CONFIG_C (wanted n, got y), CONFIG_E (wanted y, got not set)');
    expect(checkConfig(final, wanted, { allowModule: new Set(['CONFIG_B']) }).map((b) => b.option)).toEqual(['CONFIG_C', 'CONFIG_E']);
  });

  it('the lab fragment asks for what the lab needs, all built in, and no debug options', async () => {
    const frag = parseFragment(await readFile(LAB_CONFIG_FRAGMENT, 'utf8'));
    for (const o of [
      'BPF', 'BPF_SYSCALL', 'BPF_JIT', 'BPF_JIT_ALWAYS_ON', 'XDP_SOCKETS', 'VETH', 'NET_NS', 'IPV6', 'KPROBES',
      'KPROBE_EVENTS', 'PERF_EVENTS', 'DEBUG_INFO_BTF', 'VIRTIO_PCI', 'VIRTIO_BLK', 'VIRTIO_NET', 'EXT4_FS',
      'NET_SCHED', 'NET_SCH_INGRESS', 'NET_CLS_ACT', 'NET_CLS_BPF',
    ]) {
      expect(frag.options.get(`CONFIG_${o}`), o).toBe('y');
    }
    for (const o of ['PROVE_LOCKING', 'DEBUG_LOCK_ALLOC', 'KASAN', 'KCSAN']) expect(frag.options.get(`CONFIG_${o}`), o).toBe('n');
    expect([...frag.options.values()]).not.toContain('m');
    // BTF did not exist before 5.2: optional, so 4.19 builds without it.
    expect(frag.optional.has('CONFIG_DEBUG_INFO_BTF')).toBe(true);
    expect(frag.optional.has('CONFIG_XDP_SOCKETS')).toBe(false);
  });
});

describe('distribution kernel check (flavour choice)', () => {
  it('accepts drivers as modules but names missing BPF features', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xcl-kconfig-'));
    try {
      const good = join(dir, 'good');
      await writeFile(good, LAB_CONFIG_LINES);
      expect(await distroConfigProblems(good)).toBe('');
      const lacking = join(dir, 'lacking');
      await writeFile(lacking, LAB_CONFIG_LINES.replace('CONFIG_DEBUG_INFO_BTF=y\n', '').replace('CONFIG_BPF_JIT=y', 'CONFIG_BPF_JIT=m'));
      expect(await distroConfigProblems(lacking)).toBe('CONFIG_BPF_JIT (wanted y, got m), CONFIG_DEBUG_INFO_BTF (wanted y, got not set)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
