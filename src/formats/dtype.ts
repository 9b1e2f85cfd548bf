import { MoePruneError } from '../core/errors.ts';

/** Every dtype name the reference safetensors reader (0.8) knows, with its width in bits. */
export const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

export type DType = keyof typeof DTYPE_BITS;

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

export function dtypeBits(d: DType): number {
  return DTYPE_BITS[d];
}

/** Shape of a tensor, outermost dimension first (row-major). */
export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes of a tensor; throws for sub-byte dtypes whose element count does not fill whole bytes. */
export function byteSize(dtype: DType, shape: Shape): number {
  const bits = numel(shape) * dtypeBits(dtype);
  if (bits % 8 !== 0) throw new MoePruneError('MisalignedSlice', `${dtype}${JSON.stringify(shape)} is not a whole number of bytes`);
  return bits / 8;
}

/** dtypes we can widen to f32 (for GPU upload, statistics and checks). */
export type FloatDType = 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'F64';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function bf16ToF32(bits: number): number {
  u32buf[0] = (bits & 0xffff) << 16;
  return f32buf[0]!;
}

export function f16ToF32(h: number): number {
  const s = (h & 0x8000) >> 15;
  const e = (h & 0x7c00) >> 10;
  const f = h & 0x03ff;
  let v: number;
  if (e === 0) v = f * 2 ** -24;
  else if (e === 31) v = f ? NaN : Infinity;
  else v = (1 + f / 1024) * 2 ** (e - 15);
  return s ? -v : v;
}

/** OCP FP8 E4M3 "fn" variant (no infinities; S.1111.111 is NaN), as torch.float8_e4m3fn. */
export function f8e4m3ToF32(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 0x7;
  if (e === 0xf && m === 0x7) return NaN;
  if (e === 0) return s * m * 2 ** -9;
  return s * (1 + m / 8) * 2 ** (e - 7);
}

/** OCP FP8 E5M2 (IEEE-like, with infinities), as torch.float8_e5m2. */
export function f8e5m2ToF32(b: number): number {
  return f16ToF32((b & 0xff) << 8);
}

/** Round-to-nearest-even f32 → bf16 bits (NaN stays NaN). */
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Typed-array views use the platform's byte order; safetensors is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Widen little-endian bytes of a float dtype to f32. Works on unaligned input (DataView). */
export function decodeToF32(dtype: DType, bytes: Uint8Array, name = 'tensor'): Float32Array {
  return decodeIntoF32(dtype, bytes, new Float32Array((bytes.byteLength * 8) / dtypeBits(dtype)), 0, name);
}

/**
 * decodeToF32 into `out` from element `at` on (a reused array spares allocating and page-faulting a fresh one per
 * piece when parameters stream by the gigabyte). Returns `out`.
 */
export function decodeIntoF32(dtype: DType, bytes: Uint8Array, out: Float32Array, at = 0, name = 'tensor'): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = (bytes.byteLength * 8) / dtypeBits(dtype);
  if (at + n > out.length) throw new MoePruneError('InvalidArgument', `${n} decoded values do not fit at ${at} in ${out.length}`, name);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[at + i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[at + i] = dv.getFloat64(i * 8, true);
      return out;
    case 'BF16':
      if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
        // bf16 is the top half of an f32: a shift of the bits, far quicker than a number per element (expert
        // parameters are decoded by the gigabyte).
        // Two bf16 values per 32-bit word when aligned: half the loads. Int32 stores take `<< 16`'s result as is.
        const bits = new Int32Array(out.buffer, out.byteOffset + at * 4, n);
        if (bytes.byteOffset % 4 === 0) {
          const words = new Uint32Array(bytes.buffer, bytes.byteOffset, n >>> 1);
          const pairs = words.length;
          for (let i = 0, j = 0; i < pairs; i++, j += 2) {
            const w = words[i]!;
            bits[j] = w << 16;
            bits[j + 1] = w & 0xffff0000;
          }
          if (n & 1) bits[n - 1] = bytes[n * 2 - 2]! << 16 | bytes[n * 2 - 1]! << 24;
          return out;
        }
        const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
        return out;
      }
      for (let i = 0; i < n; i++) out[at + i] = bf16ToF32(dv.getUint16(i * 2, true));
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[at + i] = f16ToF32(dv.getUint16(i * 2, true));
      return out;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[at + i] = f8e4m3ToF32(bytes[i]!);
      return out;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[at + i] = f8e5m2ToF32(bytes[i]!);
      return out;
    default:
      throw new MoePruneError('UnsupportedDtype', `cannot decode ${dtype} to f32`, name);
  }
}

/** Round-to-nearest-even f32 → IEEE half bits (overflow → ±Inf, NaN stays NaN). */
export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** Narrow f32 values to the little-endian bytes of a float dtype (F32, F64, BF16, F16). */
export function encodeFromF32(dtype: DType, values: Float32Array, name = 'tensor'): Uint8Array {
  const out = new Uint8Array((values.length * dtypeBits(dtype)) / 8);
  const dv = new DataView(out.buffer);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i]!, true);
      return out;
    case 'F64':
      for (let i = 0; i < values.length; i++) dv.setFloat64(i * 8, values[i]!, true);
      return out;
    case 'BF16':
      for (let i = 0; i < values.length; i++) dv.setUint16(i * 2, f32ToBf16(values[i]!), true);
      return out;
    case 'F16':
      for (let i = 0; i < values.length; i++) dv.setUint16(i * 2, f32ToF16(values[i]!), true);
      return out;
    default:
      throw new MoePruneError('UnsupportedDtype', `cannot write averaged values as ${dtype} (quantised weights cannot be averaged without requantising)`, name);
  }
}
