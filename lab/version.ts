/**
 * Dotted version numbers of kernels and tools ("6.1.0-13-amd64", "12.2.0", "2.40"): one parser, one
 * order and one format for the whole lab, so a kernel sorts in the report, matches a thesis row,
 * passes a "5.9+" check and selects a patch by the same rule.
 */

/** The major.minor[.patch] a kernel release or label carries ("6.1.0-13-amd64", "debian-6.1"). */
const RELEASE = /(\d+)\.(\d+)(?:\.(\d+))?/;
const RELEASE_AT_START = new RegExp(`^${RELEASE.source}`);
/** A tool's version, whole: digits separated by dots ("12.2.0", "2.40", "12"). */
const DOTTED = /^\d+(?:\.\d+)*$/;

export class Version {
  private constructor(readonly parts: readonly number[]) {}

  static of(...parts: number[]): Version {
    return new Version(parts);
  }

  /** A text that is a version and nothing else ("12.2.0", "2.40", "12"); null otherwise. */
  static parse(text: string): Version | null {
    return DOTTED.test(text) ? new Version(text.split('.').map(Number)) : null;
  }

  /** The major.minor[.patch] a kernel release starts with ("6.1.0-13-amd64" → 6.1.0); null without one. */
  static ofRelease(release: string): Version | null {
    return fromMatch(RELEASE_AT_START.exec(release));
  }

  /** The first major.minor[.patch] anywhere in a text ("debian-6.1" → 6.1); null without one. */
  static find(text: string): Version | null {
    return fromMatch(RELEASE.exec(text));
  }

  get major(): number {
    return this.parts[0] ?? 0;
  }
  get minor(): number {
    return this.parts[1] ?? 0;
  }
  get patch(): number {
    return this.parts[2] ?? 0;
  }

  /** "6.1": the kernel series (the thesis names its kernels so). */
  get series(): string {
    return `${this.major}.${this.minor}`;
  }

  /** Negative, zero or positive as this is older, equal or newer; a missing part counts as 0 (6.1 = 6.1.0). */
  compare(other: Version): number {
    for (let i = 0; i < Math.max(this.parts.length, other.parts.length); i++) {
      const d = (this.parts[i] ?? 0) - (other.parts[i] ?? 0);
      if (d !== 0) return d;
    }
    return 0;
  }

  atLeast(...parts: number[]): boolean {
    return this.compare(Version.of(...parts)) >= 0;
  }

  toString(): string {
    return this.parts.join('.');
  }
}

function fromMatch(m: RegExpExecArray | null): Version | null {
  if (!m) return null;
  return Version.of(...m.slice(1).filter((p): p is string => p !== undefined).map(Number));
}
