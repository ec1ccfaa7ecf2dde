/**
 * Bytes of map keys and values: little-endian integers as the kernel lays them out on the lab's
 * targets (x86_64, arm64), and the two-digit hex words bpftool prints and takes.
 */

/** A key or value: bytes, or plain numbers 0-255 (each taken modulo 256). */
export type Bytes = Uint8Array | readonly number[];

export function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

export function u16le(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n & 0xffff, true);
  return b;
}

export function readU64le(b: Uint8Array, offset = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(offset, true);
}

/** Each byte as two lower-case hex digits ("0a"), the form of bpftool's `hex` arguments. */
export function hexBytes(b: Bytes): string[] {
  return Array.from(b, (x) => (x & 0xff).toString(16).padStart(2, '0'));
}

/** bpftool's JSON bytes ("0x0a" or "0a" strings) back into bytes. */
export function bytesFromHex(a: readonly string[]): Uint8Array {
  return Uint8Array.from(a.map((s) => parseInt(s, 16)));
}
