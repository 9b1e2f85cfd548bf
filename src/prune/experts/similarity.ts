/**
 * Expert distance matrices for STUN stage 1 (reference spec §2.3.2). Every function returns a row-major
 * n×n Float64Array with a +Infinity diagonal; small values mean "merge these experts".
 *
 * All arithmetic is float64 so the TS planner and the Python oracle agree bit for bit on realistic inputs
 * (the official code works in the checkpoint dtype; near-ties may therefore resolve differently there).
 */
import { MoePruneError } from '../../core/errors.ts';

export interface RouterDistanceOptions {
  /** Divide every distance by the Frobenius norm of the whole router (official `--division_by_norm`, default true). */
  readonly normalize?: boolean;
}

function checkSize(len: number, want: number, what: string): void {
  if (len !== want) throw new MoePruneError('InvalidArgument', `${what} has ${len} values, expected ${want}`);
}

/** ‖W‖_F of a row-major n×d router, accumulated in float64. */
export function frobeniusNorm(W: Float32Array | Float64Array): number {
  let s = 0;
  for (let i = 0; i < W.length; i++) s += W[i]! * W[i]!;
  return Math.sqrt(s);
}

/**
 * Pairwise squared L2 distances between router rows, n×n, diagonal 0. This is the CPU twin of the GPU
 * kernel shaders/sqdist.wgsl; rows are differenced directly (no Gram trick) for accuracy.
 */
export function routerSquaredDistances(W: Float32Array | Float64Array, n: number, d: number): Float64Array {
  checkSize(W.length, n * d, 'router weight');
  const out = new Float64Array(n * n);
  const d4 = d - (d % 4);
  for (let i = 0; i < n; i++) {
    const oi = i * d;
    for (let j = i + 1; j < n; j++) {
      const oj = j * d;
      // Four independent accumulators: ~2x faster in V8 and still a fixed, reproducible order.
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < d4; k += 4) {
        const a = W[oi + k]! - W[oj + k]!;
        const b = W[oi + k + 1]! - W[oj + k + 1]!;
        const c = W[oi + k + 2]! - W[oj + k + 2]!;
        const e = W[oi + k + 3]! - W[oj + k + 3]!;
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += e * e;
      }
      for (let k = d4; k < d; k++) {
        const a = W[oi + k]! - W[oj + k]!;
        s0 += a * a;
      }
      const s = s0 + s1 + (s2 + s3);
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/**
 * Turns squared distances (from the CPU or the GPU kernel) into the official router distance:
 * sqrt, optionally divided by `scale` (pass ‖W‖_F to normalise), diagonal +Inf. Tiny negative values from
 * GPU rounding are clamped to 0; the matrix is symmetrised from its upper triangle.
 */
export function routerDistanceFromSquared(sq: Float32Array | Float64Array, n: number, scale = 1): Float64Array {
  checkSize(sq.length, n * n, 'squared-distance matrix');
  if (!(scale > 0) || !Number.isFinite(scale))
    throw new MoePruneError('InvalidArgument', `router distance scale must be a positive finite number, got ${scale}`);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    out[i * n + i] = Infinity;
    for (let j = i + 1; j < n; j++) {
      const v = sq[i * n + j]!;
      if (Number.isNaN(v)) throw new MoePruneError('InvalidArgument', `squared distance (${i}, ${j}) is NaN`);
      const dist = Math.sqrt(Math.max(0, v)) / scale;
      out[i * n + j] = dist;
      out[j * n + i] = dist;
    }
  }
  return out;
}

/** ‖W_i − W_j‖₂ (÷ ‖W‖_F when `normalize`), diagonal +Inf. */
export function routerDistance(
  W: Float32Array | Float64Array,
  n: number,
  d: number,
  opts: RouterDistanceOptions = {},
): Float64Array {
  const sq = routerSquaredDistances(W, n, d);
  const scale = opts.normalize ?? true ? frobeniusNorm(W) : 1;
  if (!(scale > 0)) throw new MoePruneError('InvalidArgument', 'cannot normalise an all-zero router (‖W‖_F = 0)');
  return routerDistanceFromSquared(sq, n, scale);
}

/**
 * Co-activation distance −a_ij / |mean(−a)| (official `--divide_mean`); the mean runs over all n² entries,
 * diagonal included. `a` is the symmetric n×n count matrix (tokens whose top-k set holds both i and j).
 */
export function coactivationDistance(a: Float32Array | Float64Array, n: number): Float64Array {
  checkSize(a.length, n * n, 'co-activation matrix');
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (!Number.isFinite(v)) throw new MoePruneError('InvalidArgument', `co-activation entry ${i} is not finite`);
    sum += v;
  }
  const meanAbs = Math.abs(sum / (n * n));
  if (meanAbs === 0) throw new MoePruneError('InvalidArgument', 'co-activation matrix is all zeros; run calibration on more tokens');
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) out[i * n + j] = i === j ? Infinity : -a[i * n + j]! / meanAbs;
  return out;
}

/**
 * Mixed distance μ·(−a_ij/|mean(−a)|) + router distance (official `--mix_weight μ`). `router` is the output of
 * `routerDistance` (normalised or not, as the caller chose: the spec leaves that combination open).
 */
export function mixedDistance(router: Float64Array, a: Float32Array | Float64Array, n: number, mu: number): Float64Array {
  checkSize(router.length, n * n, 'router distance matrix');
  if (!Number.isFinite(mu)) throw new MoePruneError('InvalidArgument', `mix weight μ must be finite, got ${mu}`);
  const co = coactivationDistance(a, n);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) out[i] = mu * co[i]! + router[i]!;
  for (let i = 0; i < n; i++) out[i * n + i] = Infinity;
  return out;
}

/** Generalised top-k co-activation counts (spec §2.3.1 [I]) from per-token top-k expert ids, for calibration passes. */
export function accumulateCoactivation(counts: Float64Array, n: number, topk: Int32Array | Uint32Array, k: number): void {
  checkSize(counts.length, n * n, 'co-activation matrix');
  for (let t = 0; t + k <= topk.length; t += k)
    for (let x = 0; x < k; x++)
      for (let y = 0; y < k; y++) {
        const i = topk[t + x]!, j = topk[t + y]!;
        if (i !== j) counts[i * n + j] = counts[i * n + j]! + 1;
      }
}
