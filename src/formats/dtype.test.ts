import { describe, expect, it } from 'vitest';
import { bf16ToF32, decodeToF32 } from './dtype.ts';

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
});
