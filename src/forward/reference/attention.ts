/**
 * Causal self-attention over a batch of equal-length windows (eager attention as in transformers: scores ·
 * scale, causal mask, f32 softmax, weighted sum of values). GQA shares each KV head among heads/kvHeads query
 * heads. Standard attention covers Mixtral, Qwen2/3-MoE, OLMoE, PhiMoE and Arctic; MLA covers DeepSeek-V2/V3.
 */
import type { MhaSpec, MlaSpec } from '../../models/arch.ts';
import type { LinearInputHook } from './moe.ts';
import { linear, rmsNorm } from './ops.ts';
import { applyRope, type RopeSpec } from './rope.ts';

/** Weights of one attention block, by role (names resolved by the caller). */
export interface MhaWeights {
  q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array;
  qBias?: Float32Array; kBias?: Float32Array; vBias?: Float32Array; oBias?: Float32Array;
  qNorm?: Float32Array; kNorm?: Float32Array;
}

export interface MlaWeights {
  /** q_proj (q_lora_rank null) or q_a_proj + q_a_layernorm + q_b_proj. */
  q?: Float32Array; qA?: Float32Array; qANorm?: Float32Array; qB?: Float32Array;
  kvA: Float32Array; kvANorm: Float32Array; kvB: Float32Array; o: Float32Array;
  qABias?: Float32Array; kvABias?: Float32Array; oBias?: Float32Array;
}

export interface Batch {
  /** Windows in the batch and tokens per window; activations are [windows·tokens, dim], window-major. */
  readonly windows: number;
  readonly tokens: number;
}

type Tables = { cos: Float32Array; sin: Float32Array };

/**
 * softmax(q·kᵀ·scale + causal mask)·v for every window and head. q: [N, heads, qkDim], k: [N, kvHeads, qkDim],
 * v: [N, kvHeads, vDim] → [N, heads·vDim]. `window`: sliding-window size (keys with q−k ≥ window are masked).
 */
export function causalAttention(
  b: Batch, q: Float32Array, k: Float32Array, v: Float32Array,
  heads: number, kvHeads: number, qkDim: number, vDim: number, scale: number, window: number | null = null,
): Float32Array {
  const T = b.tokens;
  const group = heads / kvHeads;
  const out = new Float32Array(b.windows * T * heads * vDim);
  const scores = new Float64Array(T);
  for (let w = 0; w < b.windows; w++)
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qo = ((w * T + i) * heads + h) * qkDim;
        const j0 = window ? Math.max(0, i - window + 1) : 0;
        let m = -Infinity;
        for (let j = j0; j <= i; j++) {
          const ko = ((w * T + j) * kvHeads + kh) * qkDim;
          let s = 0;
          for (let d = 0; d < qkDim; d++) s += q[qo + d]! * k[ko + d]!;
          scores[j] = Math.fround(Math.fround(s) * scale);
          if (scores[j]! > m) m = scores[j]!;
        }
        let sum = 0;
        for (let j = j0; j <= i; j++) {
          scores[j] = Math.exp(scores[j]! - m);
          sum += scores[j]!;
        }
        const oo = ((w * T + i) * heads + h) * vDim;
        for (let d = 0; d < vDim; d++) {
          let acc = 0;
          for (let j = j0; j <= i; j++) acc += scores[j]! * v[((w * T + j) * kvHeads + kh) * vDim + d]!;
          out[oo + d] = acc / sum;
        }
      }
    }
  return out;
}

function positionsOf(b: Batch): Int32Array {
  const p = new Int32Array(b.windows * b.tokens);
  for (let i = 0; i < p.length; i++) p[i] = i % b.tokens;
  return p;
}

function clip(x: Float32Array, c: number | null): void {
  if (c === null) return;
  for (let i = 0; i < x.length; i++) x[i] = Math.min(c, Math.max(-c, x[i]!));
}

/** Standard attention block: x [N, hidden] (already normed) → [N, hidden]. */
export function mhaForward(
  b: Batch, x: Float32Array, hidden: number, spec: MhaSpec, w: MhaWeights,
  rope: RopeSpec, tables: Tables, scale: number, normEps: number, hook?: LinearInputHook, prefix = 'self_attn',
): Float32Array {
  const N = b.windows * b.tokens;
  const { heads, kvHeads, headDim } = spec;
  if (hook) for (const n of ['q_proj', 'k_proj', 'v_proj']) hook(`${prefix}.${n}.weight`, x, N, hidden);
  const q = linear(x, N, hidden, w.q, heads * headDim, w.qBias);
  const k = linear(x, N, hidden, w.k, kvHeads * headDim, w.kBias);
  const v = linear(x, N, hidden, w.v, kvHeads * headDim, w.vBias);
  let qn = q;
  let kn = k;
  if (spec.qkNorm === 'per-head') {
    qn = rmsNorm(q, headDim, w.qNorm!, normEps);
    kn = rmsNorm(k, headDim, w.kNorm!, normEps);
  } else if (spec.qkNorm === 'whole') {
    qn = rmsNorm(q, heads * headDim, w.qNorm!, normEps);
    kn = rmsNorm(k, kvHeads * headDim, w.kNorm!, normEps);
  }
  clip(qn, spec.clipQkv);
  clip(kn, spec.clipQkv);
  clip(v, spec.clipQkv);
  const pos = positionsOf(b);
  applyRope(qn, N, heads, headDim, 0, rope, tables, pos);
  applyRope(kn, N, kvHeads, headDim, 0, rope, tables, pos);
  const a = causalAttention(b, qn, kn, v, heads, kvHeads, headDim, headDim, scale, spec.slidingWindow);
  hook?.(`${prefix}.o_proj.weight`, a, N, heads * headDim);
  return linear(a, N, heads * headDim, w.o, hidden, w.oBias);
}

/** DeepSeek MLA block: x [N, hidden] (already normed) → [N, hidden]. */
export function mlaForward(
  b: Batch, x: Float32Array, hidden: number, spec: MlaSpec, w: MlaWeights,
  rope: RopeSpec, tables: Tables, scale: number, hook?: LinearInputHook, prefix = 'self_attn',
): Float32Array {
  const N = b.windows * b.tokens;
  const { heads, nopeDim, ropeDim, vDim, kvLoraRank } = spec;
  const qkDim = nopeDim + ropeDim;
  let q: Float32Array;
  hook?.(`${prefix}.${spec.qLoraRank === null ? 'q_proj' : 'q_a_proj'}.weight`, x, N, hidden);
  hook?.(`${prefix}.kv_a_proj_with_mqa.weight`, x, N, hidden);
  if (spec.qLoraRank === null) q = linear(x, N, hidden, w.q!, heads * qkDim);
  else {
    const qa = rmsNorm(linear(x, N, hidden, w.qA!, spec.qLoraRank, w.qABias), spec.qLoraRank, w.qANorm!, spec.loraNormEps);
    hook?.(`${prefix}.q_b_proj.weight`, qa, N, spec.qLoraRank);
    q = linear(qa, N, spec.qLoraRank, w.qB!, heads * qkDim);
  }
  // kv_a → [latent (kvLoraRank) | shared rotary key (ropeDim)] per token.
  const kva = linear(x, N, hidden, w.kvA, kvLoraRank + ropeDim, w.kvABias);
  const latent = new Float32Array(N * kvLoraRank);
  const kRot = new Float32Array(N * ropeDim);
  for (let t = 0; t < N; t++) {
    latent.set(kva.subarray(t * (kvLoraRank + ropeDim), t * (kvLoraRank + ropeDim) + kvLoraRank), t * kvLoraRank);
    kRot.set(kva.subarray(t * (kvLoraRank + ropeDim) + kvLoraRank, (t + 1) * (kvLoraRank + ropeDim)), t * ropeDim);
  }
  const latentN = rmsNorm(latent, kvLoraRank, w.kvANorm, spec.loraNormEps);
  hook?.(`${prefix}.kv_b_proj.weight`, latentN, N, kvLoraRank);
  const kv = linear(latentN, N, kvLoraRank, w.kvB, heads * (nopeDim + vDim));
  const pos = positionsOf(b);
  applyRope(q, N, heads, qkDim, nopeDim, rope, tables, pos);
  applyRope(kRot, N, 1, ropeDim, 0, rope, tables, pos);
  // Keys per head: [k_nope (from kv_b) | k_rot (shared by all heads)]; values from kv_b.
  const k = new Float32Array(N * heads * qkDim);
  const v = new Float32Array(N * heads * vDim);
  for (let t = 0; t < N; t++)
    for (let h = 0; h < heads; h++) {
      const src = (t * heads + h) * (nopeDim + vDim);
      k.set(kv.subarray(src, src + nopeDim), (t * heads + h) * qkDim);
      k.set(kRot.subarray(t * ropeDim, (t + 1) * ropeDim), (t * heads + h) * qkDim + nopeDim);
      v.set(kv.subarray(src + nopeDim, src + nopeDim + vDim), (t * heads + h) * vDim);
    }
  const a = causalAttention(b, q, k, v, heads, heads, qkDim, vDim, scale);
  hook?.(`${prefix}.o_proj.weight`, a, N, heads * vDim);
  return linear(a, N, heads * vDim, w.o, hidden, w.oBias);
}
