import { expect, it } from 'vitest';
import { describeGpu } from '../../../tests/gpu-harness.ts';
import { f32ToBf16, f8e4m3ToF32 } from '../../formats/dtype.ts';
import { readTensorF32, releaseTensor, uploadTensor } from '../tensor.ts';
import { unpack, unpackReference, type UnpackDType } from './unpack.ts';

/** Deterministic values spanning signs and magnitudes, including zero and f16 subnormals. */
function values(n: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(i * 12.9898) * 10 ** ((i % 9) - 4);
  v[0] = 0;
  if (n > 1) v[1] = -0;
  if (n > 2) v[2] = 3e-6; // subnormal in f16
  return v;
}

function f32ToF16Bits(x: number): number {
  // Exact for the test values' rounding check is not needed: the reference decodes these same bits.
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    return sign | ((mant | 0x800000) >> (14 - exp));
  }
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >> 13);
}

function encode(dtype: UnpackDType, v: Float32Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(v.buffer.slice(0));
  const out = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = dtype === 'BF16' ? f32ToBf16(v[i]!) : f32ToF16Bits(v[i]!);
  return new Uint8Array(out.buffer);
}

describeGpu('unpack kernel', (gpu) => {
  it('widens all 256 F8_E4M3 bytes bit for bit as f8e4m3ToF32 (lib/widen.wgsl DTYPE 3), split in parts', async () => {
    const ctx = gpu();
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const t = await uploadTensor(ctx, bytes, 'F8_E4M3', [32, 8], { maxBindingBytes: 40 });
    expect(t.parts.length).toBe(7);
    const out = await unpack(ctx, t);
    const got = await readTensorF32(ctx, out);
    const bits = new Uint32Array(got.buffer, got.byteOffset, 256);
    for (let b = 0; b < 256; b++) {
      const want = f8e4m3ToF32(b);
      if (Number.isNaN(want)) expect(Number.isNaN(got[b]!), `byte ${b}`).toBe(true);
      else expect(bits[b], `byte ${b}`).toBe(new Uint32Array(Float32Array.of(want).buffer)[0]);
    }
    releaseTensor(ctx, t);
    releaseTensor(ctx, out);
  });

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`widens ${dtype} [37, 1001] exactly like the CPU reference`, async () => {
      const ctx = gpu();
      const bytes = encode(dtype, values(37 * 1001));
      const t = await uploadTensor(ctx, bytes, dtype, [37, 1001]);
      const out = await unpack(ctx, t);
      const got = await readTensorF32(ctx, out);
      const want = unpackReference(dtype, bytes);
      expect(out.shape).toEqual([37, 1001]);
      expect(got.length).toBe(want.length);
      // Bit-exact: widening loses nothing.
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      expect(want.some((x) => x !== 0)).toBe(true);
      releaseTensor(ctx, t);
      releaseTensor(ctx, out);
    });
  }

  it('works across parts when the binding limit is tiny (odd BF16 rows split mid-word)', async () => {
    const ctx = gpu();
    const bytes = encode('BF16', values(37 * 1001));
    // 7 BF16 rows per input part; 3 F32 rows per output part, so outputs start at odd source elements (3003).
    const maxBindingBytes = 7 * 1001 * 2 + 2;
    const t = await uploadTensor(ctx, bytes, 'BF16', [37, 1001], { maxBindingBytes });
    expect(t.parts.map((p) => p.rows)).toEqual([7, 7, 7, 7, 7, 2]);
    const out = await unpack(ctx, t, { maxBindingBytes });
    expect(out.parts.map((p) => p.rows)).toEqual([3, 3, 1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 2]);
    for (const p of out.parts) expect(p.byteLength).toBeLessThanOrEqual(maxBindingBytes);
    const got = await readTensorF32(ctx, out);
    expect(Buffer.from(got.buffer).equals(Buffer.from(unpackReference('BF16', bytes).buffer))).toBe(true);
    releaseTensor(ctx, t);
    releaseTensor(ctx, out);
  });
});
