/**
 * String tables as ELF and BTF write them: "" at offset 0, each distinct string once, NUL
 * terminated. The ELF writer and the BTF/BTF.ext encoders re-intern every name through one.
 */
import { LabError } from '../errors.ts';

const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Builds a string table: "" at offset 0, each distinct string once. */
export class StringTableBuilder {
  private readonly offsets = new Map<string, number>();
  private readonly parts: Uint8Array[] = [];
  private length = 0;
  constructor() {
    this.add('');
  }
  add(s: string): number {
    const known = this.offsets.get(s);
    if (known !== undefined) return known;
    // Either would be written as something else (a NUL ends the string early, TextEncoder turns an
    // unpaired surrogate into U+FFFD): refuse rather than write a name that reads back changed.
    if (s.includes('\0') || UNPAIRED_SURROGATE.test(s)) {
      throw new LabError('BAD_ELF', `writer: name ${JSON.stringify(s)} cannot go into a string table (it contains NUL or an unpaired surrogate)`, {
        remedy: 'A pass produced an invalid name; report this object.',
      });
    }
    const enc = new TextEncoder().encode(s);
    const off = this.length;
    this.parts.push(enc, new Uint8Array([0]));
    this.length += enc.length + 1;
    this.offsets.set(s, off);
    return off;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let p = 0;
    for (const part of this.parts) {
      out.set(part, p);
      p += part.length;
    }
    return out;
  }
}
