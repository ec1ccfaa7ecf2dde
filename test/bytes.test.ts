// lab/bytes.ts: the little-endian layout and the hex words of map keys and values.
import { describe, expect, it } from 'vitest';
import { bytesFromHex, hexBytes, readU64le, u16le, u32le } from '../lab/bytes.ts';

describe('bytes', () => {
  it('encodes u16/u32 little-endian, wrapping out-of-range values as the kernel types would', () => {
    expect([...u16le(0x1234)]).toEqual([0x34, 0x12]);
    expect([...u16le(0x12345)]).toEqual([0x45, 0x23]);
    expect([...u32le(0x01020304)]).toEqual([4, 3, 2, 1]);
    expect([...u32le(-1)]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  it('reads a u64 at an offset of a sub-array', () => {
    const buf = new Uint8Array([9, 9, 1, 0, 0, 0, 0, 0, 0, 2]);
    expect(readU64le(buf.subarray(2))).toBe(0x0200000000000001n);
    expect(readU64le(buf, 2)).toBe(0x0200000000000001n);
  });

  it('round-trips bytes through the hex words bpftool takes and prints', () => {
    const b = [0, 10, 255, 256 + 7];
    expect(hexBytes(b)).toEqual(['00', '0a', 'ff', '07']);
    expect([...bytesFromHex(hexBytes(b))]).toEqual([0, 10, 255, 7]);
    expect([...bytesFromHex(['0x0a', '0xff'])]).toEqual([10, 255]);
  });
});
