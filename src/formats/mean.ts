/**
 * The one definition of a merged expert's weights (STUN reconstruction): the element-wise mean of its members.
 * The export writes it and the GPU engine applies it on the fly; both call these so the engine's "after"
 * perplexity equals the exported checkpoint's bit for bit. Sum in f32 in member order, then × 1/n (not ÷ n).
 */
import { MoePruneError } from '../core/errors.ts';
import { decodeToF32, encodeFromF32, type DType } from './dtype.ts';

/** dtypes a mean can be written back in; quantised ones (FP8, ints) would need requantising. */
export const AVERAGEABLE_DTYPES: ReadonlySet<DType> = new Set<DType>(['F32', 'F64', 'F16', 'BF16']);

function checkLengths(lengths: number[], name: string): void {
  if (lengths.length === 0) throw new MoePruneError('InvalidPlan', 'a merged expert needs at least one member', name);
  if (lengths.some((l) => l !== lengths[0])) throw new MoePruneError('InvalidPlan', `merged experts have different sizes (${lengths.join(', ')})`, name);
}

/** Adds `x` into `acc` element-wise (f32 rounding on every store). */
function addInto(acc: Float32Array, x: Float32Array): void {
  for (let i = 0; i < x.length; i++) acc[i] = acc[i]! + x[i]!;
}

function scaleInPlace(acc: Float32Array, n: number): Float32Array {
  const inv = 1 / n;
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! * inv;
  return acc;
}

/** Element-wise mean of equal-length f32 arrays (a new array; the inputs are not changed). */
export function meanF32(parts: readonly Float32Array[], name = 'tensor'): Float32Array {
  checkLengths(parts.map((p) => p.length), name);
  // Start from a copy of the first member, not from zeros: 0 + (-0) would turn -0 into +0.
  const acc = parts[0]!.slice();
  for (let k = 1; k < parts.length; k++) addInto(acc, parts[k]!);
  return scaleInPlace(acc, parts.length);
}

/**
 * Element-wise mean of equal-length little-endian byte ranges of one float dtype, rounded back to that dtype
 * (round to nearest even). Decodes one member at a time, so only two f32 buffers are live.
 */
export function meanInDtype(dtype: DType, parts: readonly Uint8Array[], name = 'tensor'): Uint8Array {
  if (!AVERAGEABLE_DTYPES.has(dtype))
    throw new MoePruneError('UnsupportedDtype', `cannot average ${dtype} weights without requantising`, name);
  checkLengths(parts.map((p) => p.byteLength), name);
  const acc = decodeToF32(dtype, parts[0]!, name);
  for (let k = 1; k < parts.length; k++) addInto(acc, decodeToF32(dtype, parts[k]!, name));
  return encodeFromF32(dtype, scaleInPlace(acc, parts.length), name);
}
