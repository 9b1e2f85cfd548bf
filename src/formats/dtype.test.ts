import { describe, expect, it } from 'vitest';
import { bf16ToF32, decodeIntoF32, decodeToF32 } from './dtype.ts';

/** Indices where `got` differs from bf16ToF32 of every pattern (NaN matches any NaN; -0 must stay -0). */
function mismatches(got: Float32Array): number[] {
  const bad: number[] = [];
  for (let b = 0; b < 65536; b++) {
    const want = bf16ToF32(b);
    if (!(Number.isNaN(want) ? Number.isNaN(got[b]!) : Object.is(got[b], want))) bad.push(b);
  }
  return bad;
}

describe('decodeToF32, BF16', () => {
  // Every bf16 bit pattern: zeros, subnormals, normals, ±Inf, NaNs.
  const all = new Uint8Array(2 * 65536);
  for (let b = 0; b < 65536; b++) [all[2 * b], all[2 * b + 1]] = [b & 0xff, b >> 8];

  it('decodes every bit pattern to the value bf16ToF32 gives (aligned input: the bit-shift path)', () => {
    const out = decodeToF32('BF16', all);
    expect(out).toHaveLength(65536);
    expect(mismatches(out)).toEqual([]);
  });

  it('gives the same values from an odd byte offset (the element-wise path) and from a view inside a larger buffer', () => {
    const odd = new Uint8Array(all.byteLength + 3);
    odd.set(all, 1);
    const even = new Uint8Array(all.byteLength + 4);
    even.set(all, 2);
    for (const view of [odd.subarray(1, 1 + all.byteLength), even.subarray(2, 2 + all.byteLength)]) {
      const got = decodeToF32('BF16', view);
      expect(got).toHaveLength(65536);
      expect(mismatches(got)).toEqual([]);
    }
  });

  it('decodes an odd count from an aligned start (two values per 32-bit word, the last one alone) into an offset', () => {
    const odd = all.subarray(4, 4 + 2 * 7);
    const out = new Float32Array(10).fill(9);
    expect(decodeIntoF32('BF16', odd, out, 2)).toBe(out);
    expect([...out.subarray(2, 9)]).toEqual([2, 3, 4, 5, 6, 7, 8].map((b) => bf16ToF32(b)));
    expect([out[0], out[1], out[9]]).toEqual([9, 9, 9]);
    const top = new Uint8Array(4);
    top.set(all.subarray(2 * 0xc0ff, 2 * 0xc0ff + 2));
    expect(decodeIntoF32('BF16', top.subarray(0, 2), new Float32Array(1))[0]).toBe(bf16ToF32(0xc0ff));
  });
});
