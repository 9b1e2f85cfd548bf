/**
 * The arithmetic of one parameter chunk for `selectRepresentative`, in a module of its own with no imports so a
 * worker thread loads nothing else. sq-distances.wat is the same arithmetic in WebAssembly SIMD (the CLI's CPU
 * threads run that); this is its reference and the in-thread path, and the two agree bit for bit.
 *
 * For members' chunks x₀ … x_{k−1} (equal lengths n):
 *   m[t]   = (((0 + x₀[t]) + x₁[t]) + …) / k
 *   s_i,l  = Σ over t ≡ l (mod 8), t ascending, of (x_i[t] − m[t])²
 *   out[i] = ((s_i,0 + s_i,1) + (s_i,2 + s_i,3)) + ((s_i,4 + s_i,5) + (s_i,6 + s_i,7))
 * every operation in float64. Eight lane sums per member rather than one running sum: a single sum waits on its own
 * additions, eight independent ones keep the CPU's adders (and SIMD lanes) busy; the order is fixed, so the result
 * does not depend on how the chunk is walked. Members are float32 values or bfloat16 bit patterns (`Bf16Bits`,
 * straight from a checkpoint's bytes): bfloat16 widens to float32 exactly, so both give the same distances.
 */

/** bfloat16 values as their 16-bit patterns (the upper half of the float32 they widen to). */
export type Bf16Bits = Uint16Array;
/** One member's parameter chunk: float32 values, or bfloat16 bits as read from a checkpoint. */
export type ParamValues = Float32Array | Bf16Bits;

/** Values per block: the members' widened blocks and the centroid block stay in cache. A multiple of 8. */
export const SQ_BLOCK = 1024;
/** Independent partial sums per member (lane l takes the values t ≡ l mod 8). */
export const SQ_LANES = 8;

/** Reusable arrays for chunkSqDistances; grown on demand. */
export interface SqScratch {
  rows: Float32Array;
  centroid: Float64Array;
  lanes: Float64Array;
}

export function sqScratch(k = 1): SqScratch {
  return { rows: new Float32Array(k * SQ_BLOCK), centroid: new Float64Array(SQ_BLOCK), lanes: new Float64Array(k * SQ_LANES) };
}

/** Member values [lo, lo + n) as float32 into `row`, zero-padded to `n8` (a padded value adds (0 − 0)² = +0). */
function widen(x: ParamValues, lo: number, n: number, n8: number, row: Float32Array): void {
  if (x instanceof Float32Array) row.set(x.subarray(lo, lo + n));
  else {
    const bits = new Uint32Array(row.buffer, row.byteOffset, n);
    for (let t = 0; t < n; t++) bits[t] = x[lo + t]! << 16;
  }
  row.fill(0, n, n8);
}

/** The eight lane sums joined in the fixed order. */
export function joinLanes(s: Float64Array, at = 0): number {
  return ((s[at]! + s[at + 1]!) + (s[at + 2]! + s[at + 3]!)) + ((s[at + 4]! + s[at + 5]!) + (s[at + 6]! + s[at + 7]!));
}

/** lanes[at..at+8) += the lane sums of Σ (x[t] − m[t])² over t < n (n a multiple of 8). */
export function addLaneSums(x: Float32Array, m: Float64Array, n: number, lanes: Float64Array, at = 0): void {
  let s0 = lanes[at]!, s1 = lanes[at + 1]!, s2 = lanes[at + 2]!, s3 = lanes[at + 3]!;
  let s4 = lanes[at + 4]!, s5 = lanes[at + 5]!, s6 = lanes[at + 6]!, s7 = lanes[at + 7]!;
  for (let t = 0; t < n; t += 8) {
    const v0 = x[t]! - m[t]!, v1 = x[t + 1]! - m[t + 1]!, v2 = x[t + 2]! - m[t + 2]!, v3 = x[t + 3]! - m[t + 3]!;
    const v4 = x[t + 4]! - m[t + 4]!, v5 = x[t + 5]! - m[t + 5]!, v6 = x[t + 6]! - m[t + 6]!, v7 = x[t + 7]! - m[t + 7]!;
    s0 += v0 * v0;
    s1 += v1 * v1;
    s2 += v2 * v2;
    s3 += v3 * v3;
    s4 += v4 * v4;
    s5 += v5 * v5;
    s6 += v6 * v6;
    s7 += v7 * v7;
  }
  lanes[at] = s0;
  lanes[at + 1] = s1;
  lanes[at + 2] = s2;
  lanes[at + 3] = s3;
  lanes[at + 4] = s4;
  lanes[at + 5] = s5;
  lanes[at + 6] = s6;
  lanes[at + 7] = s7;
}

export function chunkSqDistances(xs: readonly ParamValues[], out: Float64Array, scratch: SqScratch = sqScratch(xs.length)): Float64Array {
  const k = xs.length;
  const len = k > 0 ? xs[0]!.length : 0;
  if (scratch.rows.length < k * SQ_BLOCK) scratch.rows = new Float32Array(k * SQ_BLOCK);
  if (scratch.lanes.length < k * SQ_LANES) scratch.lanes = new Float64Array(k * SQ_LANES);
  const { rows, centroid: m, lanes } = scratch;
  lanes.fill(0, 0, k * SQ_LANES);
  for (let lo = 0; lo < len; lo += SQ_BLOCK) {
    const n = Math.min(SQ_BLOCK, len - lo);
    const n8 = (n + 7) & ~7;
    for (let i = 0; i < k; i++) widen(xs[i]!, lo, n, n8, rows.subarray(i * SQ_BLOCK, (i + 1) * SQ_BLOCK));
    for (let t = 0; t < n8; t++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += rows[i * SQ_BLOCK + t]!;
      m[t] = s / k;
    }
    for (let i = 0; i < k; i++) addLaneSums(rows.subarray(i * SQ_BLOCK, (i + 1) * SQ_BLOCK), m, n8, lanes, i * SQ_LANES);
  }
  for (let i = 0; i < k; i++) out[i] = joinLanes(lanes, i * SQ_LANES);
  return out;
}

/** One member's distance over a whole chunk (any length), the tail taken by the lanes it falls in: as chunkSqDistances. */
export function memberSqDistance(x: Float32Array, m: Float64Array, lanes: Float64Array = new Float64Array(SQ_LANES)): number {
  lanes.fill(0, 0, SQ_LANES);
  const n8 = m.length & ~7;
  addLaneSums(x, m, n8, lanes);
  for (let t = n8; t < m.length; t++) {
    const v = x[t]! - m[t]!;
    lanes[t - n8] = lanes[t - n8]! + v * v;
  }
  return joinLanes(lanes);
}
