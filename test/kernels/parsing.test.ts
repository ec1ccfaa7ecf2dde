/** Small pieces the providers rely on: checksum lists, directory indexes, series matching, tool errors. */
import { describe, expect, it } from 'vitest';
import { isLabError } from '../../lab/errors.ts';
import { parseSha256List } from '../../lab/kernels/checksums.ts';
import { tool } from '../../lab/kernels/exec.ts';
import { releaseMatchesSeries } from '../../lab/kernels/image.ts';
import { debLinks, pickDebs } from '../../lab/kernels/providers/ubuntu-mainline.ts';

describe('checksum lists', () => {
  it('reads only the sha256 section of an Ubuntu CHECKSUMS file, keyed by file name', () => {
    const text = [
      '# Checksums-Sha1:',
      `${'1'.repeat(40)}  amd64/a.deb`,
      '# Checksums-Sha256:',
      `${'a'.repeat(64)}  amd64/a.deb`,
      `${'B'.repeat(64)}  b.deb`,
    ].join('\n');
    expect([...parseSha256List(text)]).toEqual([
      ['a.deb', 'a'.repeat(64)],
      ['b.deb', 'b'.repeat(64)],
    ]);
  });

  it('reads kernel.org sha256sums.asc lines inside the PGP armour', () => {
    const text = `-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${'c'.repeat(64)}  linux-5.4.293.tar.xz\n-----BEGIN PGP SIGNATURE-----\nxyz\n`;
    expect(parseSha256List(text).get('linux-5.4.293.tar.xz')).toBe('c'.repeat(64));
  });
});

describe('mainline directory index', () => {
  const html = [
    '<a href="linux-headers-5.4.293-0504293_5.4.293-0504293.202505_all.deb">',
    '<a href="linux-image-unsigned-5.4.293-0504293-lowlatency_5.4.293-0504293.202505_amd64.deb">',
    '<a href="linux-image-unsigned-5.4.293-0504293-generic_5.4.293-0504293.202505_amd64.deb">',
    '<a href="linux-modules-5.4.293-0504293-generic_5.4.293-0504293.202505_amd64.deb">',
    '<a href="CHECKSUMS">',
  ].join('\n');

  it('picks the generic image and modules packages, not lowlatency or headers', () => {
    const names = debLinks(html);
    expect(names).toHaveLength(4);
    expect(pickDebs(names)).toEqual({
      image: 'linux-image-unsigned-5.4.293-0504293-generic_5.4.293-0504293.202505_amd64.deb',
      modules: 'linux-modules-5.4.293-0504293-generic_5.4.293-0504293.202505_amd64.deb',
    });
  });

  it('accepts the pre-4.18 naming (linux-image-… without -unsigned, no modules package)', () => {
    expect(pickDebs(['linux-image-4.17.19-041719-generic_4.17.19-041719.201808240832_amd64.deb'])).toEqual({
      image: 'linux-image-4.17.19-041719-generic_4.17.19-041719.201808240832_amd64.deb',
      modules: null,
    });
  });
});

describe('series matching', () => {
  it('tells 6.1 from 6.12 and accepts distribution suffixes', () => {
    expect(releaseMatchesSeries('6.1.0-27-cloud-amd64', '6.1')).toBe(true);
    expect(releaseMatchesSeries('6.12.117+deb12-cloud-amd64', '6.12')).toBe(true);
    expect(releaseMatchesSeries('6.12.117+deb12-cloud-amd64', '6.1')).toBe(false);
    expect(releaseMatchesSeries('5.10.262-1', '5.10')).toBe(true);
    expect(releaseMatchesSeries('5.1.0', '5.10')).toBe(false);
  });
});

describe('running tools', () => {
  it('a missing tool is MISSING_TOOL with an install remedy', async () => {
    const err = await tool(['xcl-no-such-tool'], { what: 'test' }).catch((e: unknown) => e);
    expect(isLabError(err, 'MISSING_TOOL')).toBe(true);
    expect((err as { remedy?: string }).remedy).toContain('apt-get install');
  });

  it('a failing tool carries the code asked for, the command and its stderr tail', async () => {
    const err = await tool(['sh', '-c', 'echo first >&2; echo last >&2; exit 3'], { what: 'step', code: 'KERNEL_BUILD' }).catch((e: unknown) => e);
    expect(isLabError(err, 'KERNEL_BUILD')).toBe(true);
    expect((err as Error).message).toMatch(/^step: sh -c .* exited 3:\nfirst\nlast$/);
  });
});
