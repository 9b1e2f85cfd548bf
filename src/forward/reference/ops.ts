/**
 * Dense f32 building blocks of the CPU reference forward pass. Activations are row-major [rows, dim]
 * Float32Arrays; weights are PyTorch nn.Linear layout [out, in]. Dot products accumulate in float64 and are
 * rounded to f32 once, so results sit within an ulp or two of torch's f32 math on the same values.
 */
import { MoePruneError } from '../../core/errors.ts';

function check(cond: boolean, what: string): void {
  if (!cond) throw new MoePruneError('InvalidArgument', what);
}

/** y[r, o] = Σ_i x[r, i] · W[o, i] (+ b[o]). x: [rows, inDim], W: [outDim, inDim]. */
export function linear(x: Float32Array, rows: number, inDim: number, W: Float32Array, outDim: number, bias?: Float32Array): Float32Array {
  check(x.length === rows * inDim, `linear: input has ${x.length} values, expected ${rows}×${inDim}`);
  check(W.length === outDim * inDim, `linear: weight has ${W.length} values, expected ${outDim}×${inDim}`);
  check(!bias || bias.length === outDim, `linear: bias has ${bias?.length} values, expected ${outDim}`);
  const y = new Float32Array(rows * outDim);
  const in4 = inDim - (inDim % 4);
  for (let r = 0; r < rows; r++) {
    const xo = r * inDim;
    for (let o = 0; o < outDim; o++) {
      const wo = o * inDim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let i = 0; i < in4; i += 4) {
        s0 += x[xo + i]! * W[wo + i]!;
        s1 += x[xo + i + 1]! * W[wo + i + 1]!;
        s2 += x[xo + i + 2]! * W[wo + i + 2]!;
        s3 += x[xo + i + 3]! * W[wo + i + 3]!;
      }
      for (let i = in4; i < inDim; i++) s0 += x[xo + i]! * W[wo + i]!;
      y[r * outDim + o] = s0 + s1 + s2 + s3 + (bias ? bias[o]! : 0);
    }
  }
  return y;
}

/** RMSNorm over the last `dim` values of each row: x / sqrt(mean(x²) + eps) · w (T5/Llama style). */
export function rmsNorm(x: Float32Array, dim: number, weight: Float32Array, eps: number): Float32Array {
  check(x.length % dim === 0 && weight.length === dim, `rmsNorm: ${x.length} values, weight ${weight.length}, dim ${dim}`);
  const y = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt(Math.fround(ss / dim) + eps);
    // torch multiplies in f32: round the normalised value before the weight, as it does.
    for (let i = 0; i < dim; i++) y[o + i] = weight[i]! * Math.fround(x[o + i]! * inv);
  }
  return y;
}

/** LayerNorm with affine weight and optional bias (PhiMoE): (x − mean) / sqrt(var + eps) · w + b. */
export function layerNorm(x: Float32Array, dim: number, weight: Float32Array, bias: Float32Array | undefined, eps: number): Float32Array {
  check(x.length % dim === 0 && weight.length === dim && (!bias || bias.length === dim), `layerNorm: ${x.length} values, dim ${dim}`);
  const y = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[o + i]!;
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[o + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps); // biased variance, as torch
    for (let i = 0; i < dim; i++) y[o + i] = (x[o + i]! - mean) * inv * weight[i]! + (bias ? bias[i]! : 0);
  }
  return y;
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** In-place a += b (same length). */
export function addInto(a: Float32Array, b: Float32Array): Float32Array {
  check(a.length === b.length, `add: ${a.length} vs ${b.length} values`);
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
  return a;
}

/** Numerically stable softmax of v[0..n) (−Infinity entries get probability 0). */
export function softmax(v: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < v.length; i++) if (v[i]! > m) m = v[i]!;
  const out = new Float64Array(v.length);
  if (m === -Infinity) return out.fill(NaN); // torch: softmax of all −inf is NaN
  let s = 0;
  for (let i = 0; i < v.length; i++) {
    const e = v[i]! === -Infinity ? 0 : Math.exp(v[i]! - m);
    out[i] = e;
    s += e;
  }
  for (let i = 0; i < v.length; i++) out[i] = out[i]! / s;
  return out;
}

/** log Σ exp(v) over one row, stable. */
export function logSumExp(v: ArrayLike<number>, offset = 0, n = v.length): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (v[offset + i]! > m) m = v[offset + i]!;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(v[offset + i]! - m);
  return m + Math.log(s);
}

/** Rows `rows` of a [*, dim] matrix gathered into a new contiguous matrix. */
export function gatherRows(x: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let j = 0; j < rows.length; j++) out.set(x.subarray(rows[j]! * dim, rows[j]! * dim + dim), j * dim);
  return out;
}
