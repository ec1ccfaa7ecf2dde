// The lab's one version parser and order: kernel releases, labels and tool versions.
import { describe, expect, it } from 'vitest';
import { Version } from '../lab/version.ts';

describe('Version', () => {
  it('reads the major.minor[.patch] a kernel release starts with', () => {
    expect(Version.ofRelease('6.1.0-13-amd64')?.parts).toEqual([6, 1, 0]);
    expect(Version.ofRelease('5.15')?.parts).toEqual([5, 15]);
    expect(Version.ofRelease('6.12.1.4')?.parts).toEqual([6, 12, 1]);
    expect(Version.ofRelease('6')).toBeNull();
    expect(Version.ofRelease('linux-6.1')).toBeNull();
  });

  it('finds the first major.minor[.patch] anywhere in a label', () => {
    expect(Version.find('debian-6.1')?.series).toBe('6.1');
    expect(Version.find('host')).toBeNull();
  });

  it('parses a tool version only when it is digits and dots, whole', () => {
    expect(Version.parse('12.2.0')?.parts).toEqual([12, 2, 0]);
    expect(Version.parse('12')?.major).toBe(12);
    expect(Version.parse('unknown')).toBeNull();
    expect(Version.parse('12.2.0-14')).toBeNull();
  });

  it('orders part by part, a missing part counting as 0', () => {
    const v = (t: string) => Version.parse(t)!;
    expect(v('2.40').compare(v('2.38'))).toBeGreaterThan(0);
    expect(v('6.1').compare(v('6.1.0'))).toBe(0);
    expect(v('5.10').compare(v('5.9'))).toBeGreaterThan(0);
    expect(v('2').compare(v('2.38'))).toBeLessThan(0);
    expect(Version.ofRelease('5.9.3-arch')!.atLeast(5, 9)).toBe(true);
    expect(Version.ofRelease('5.8.99')!.atLeast(5, 9)).toBe(false);
  });

  it('formats as the dotted parts and as the series', () => {
    expect(Version.of(6, 1, 7).toString()).toBe('6.1.7');
    expect(Version.of(6, 1, 7).series).toBe('6.1');
  });
});
