/**
 * Test-only helpers for the forward-pass kernel tests: deterministic data, uploads of f32/u32 arrays as
 * buffer views, read-back, weights encoded in a stored dtype, and error-bounded comparisons.
 */
import { expect } from 'vitest';
import { decodeToF32, encodeFromF32 } from '../../formats/dtype.ts';
import { dequantBlockFp8 } from '../../formats/fp8.ts';
import type { GpuContext } from '../device.ts';
import type { BufferView } from '../dispatch.ts';
import { readBuffer } from '../pool.ts';
import { uploadTensor, type GpuTensor } from '../tensor.ts';
import { uploadedBuffer, type WeightDType } from './kernel-args.ts';

/** Deterministic pseudo-random values in about [-amp, amp) (xorshift; no Math.random so failures reproduce). */
export function values(n: number, seed: number, amp = 1): Float32Array {
  let s = (seed * 2654435761 + 12345) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 0x100000000 - 0.5) * 2 * amp;
  }
  return out;
}

export async function uploadF32(ctx: GpuContext, data: Float32Array | Uint32Array): Promise<BufferView> {
  return uploadedBuffer(ctx, data, 'test data');
}

export async function readF32(ctx: GpuContext, v: BufferView, elems = v.byteLength / 4): Promise<Float32Array> {
  const b = await readBuffer(ctx, v.buffer, elems * 4);
  return new Float32Array(b.buffer, b.byteOffset, elems);
}

export async function readU32(ctx: GpuContext, v: BufferView, elems = v.byteLength / 4): Promise<Uint32Array> {
  const b = await readBuffer(ctx, v.buffer, elems * 4);
  return new Uint32Array(b.buffer, b.byteOffset, elems);
}

/**
 * Uploads `f32` values as a weight tensor in `dtype` (split into parts of at most `maxBindingBytes`) and
 * returns it with the exact f32 values the kernel must see: the stored values widened on the CPU.
 */
export async function uploadWeight(
  ctx: GpuContext, f32: Float32Array, dtype: WeightDType, shape: number[], maxBindingBytes?: number,
): Promise<{ t: GpuTensor; exact: Float32Array }> {
  const bytes = encodeFromF32(dtype, f32);
  const t = await uploadTensor(ctx, bytes, dtype, shape, maxBindingBytes ? { maxBindingBytes } : {});
  return { t, exact: decodeToF32(dtype, bytes) };
}

/**
 * A random F8_E4M3 weight [out, in] (no NaN bytes; split into parts of at most `maxBindingBytes`) with random
 * positive f32 block scales [ceil(out/b0), ceil(in/b1)], and the exact dequantised f32 values the kernel must see.
 */
export async function uploadFp8Weight(
  ctx: GpuContext, outDim: number, inDim: number, seed: number, block: readonly [number, number] = [128, 128], maxBindingBytes?: number,
): Promise<{ t: GpuTensor; bytes: Uint8Array; scale: Float32Array; exact: Float32Array }> {
  const r = values(outDim * inDim, seed);
  // Every byte but the two NaNs (0x7f, 0xff): all exponents, subnormals and ±0 occur.
  const bytes = Uint8Array.from(r, (v) => {
    const b = Math.floor((v + 1) * 127) & 0xff;
    return (b & 0x7f) === 0x7f ? b - 1 : b;
  });
  const scaleCols = Math.ceil(inDim / block[1]);
  const scale = Float32Array.from(values(Math.ceil(outDim / block[0]) * scaleCols, seed + 1), (v) => 2 ** Math.round(v * 6) * (1 + Math.abs(v)) * 0.01);
  const t = await uploadTensor(ctx, bytes, 'F8_E4M3', [outDim, inDim], maxBindingBytes ? { maxBindingBytes } : {});
  const exact = dequantBlockFp8(decodeToF32('F8_E4M3', bytes), inDim, scale, scaleCols, block);
  return { t, bytes, scale, exact };
}

/** Asserts |got − want| ≤ rel · scale[i] (scale defaults to max(1, |want|)) for every element. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, scale?: ArrayLike<number>): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const s = scale ? scale[i]! : Math.max(1, Math.abs(want[i]!));
    const err = Math.abs(got[i]! - want[i]!) / Math.max(s, 1e-30);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  expect(worst, `worst relative error at ${at}: got ${got[at]}, want ${want[at]}`).toBeLessThanOrEqual(rel);
}
