/**
 * Routers of the supported families, one token at a time, as transformers 5.18 computes them:
 *  - softmax: probs = softmax(logits); top-k; optional renormalisation (Mixtral always, Qwen/OLMoE norm_topk_prob)
 *  - DeepSeek-V2 group_limited_greedy: groups scored by their best prob, keep topk_group groups (others → 0)
 *  - DeepSeek-V3 noaux_tc: sigmoid scores; choice on scores + e_score_correction_bias, groups scored by the sum
 *    of their best two, others → −inf; weights are the plain sigmoid scores (renormalised + 1e-20 if asked)
 *  - PhiMoE sparsemixer (inference): two rounds of "argmax, then softmax over the logits within a relative
 *    threshold 2·jitter_eps of it"; the second round masks the first choice
 * then weights × routed_scaling_factor. Ties break to the lower expert index (torch.topk on CPU does too for
 * these sizes; exact ties are the only place choices may legitimately differ).
 */
import type { RouterSpec } from '../../models/arch.ts';
import { sigmoid, softmax } from './ops.ts';

export interface Routed {
  /** Chosen experts, in selection order (best first). */
  readonly experts: number[];
  /** Their combination weights (after renormalisation and scaling). */
  readonly weights: number[];
}

/** Indices of the k largest values (ties → lower index first). */
export function topK(v: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: v.length }, (_, i) => i);
  idx.sort((a, b) => (v[b]! > v[a]! ? 1 : v[b]! < v[a]! ? -1 : a - b));
  return idx.slice(0, k);
}

export interface RouteOptions {
  /** Experts that may never be chosen (a pruning plan's removed experts): their logits count as −∞. */
  readonly removed?: ReadonlySet<number>;
  /** DeepSeek-V3 e_score_correction_bias [experts] (affects the choice only, not the weights). */
  readonly correctionBias?: Float32Array;
}

/** Routes one token from its router logits [experts]. */
export function route(logits: ArrayLike<number>, spec: RouterSpec, opts: RouteOptions = {}): Routed {
  const E = spec.experts;
  const removed = opts.removed;
  const z = Float64Array.from({ length: E }, (_, e) => (removed?.has(e) ? -Infinity : logits[e]!));
  let r: Routed;
  if (spec.scoring === 'sparsemixer') r = sparsemixer(z, spec.jitterEps);
  else if (spec.scoring === 'sigmoid') r = sigmoidGrouped(z, spec, removed, opts.correctionBias);
  else r = softmaxTopK(z, spec);
  if (spec.routedScalingFactor !== 1) r = { experts: r.experts, weights: r.weights.map((w) => w * spec.routedScalingFactor) };
  return r;
}

function softmaxTopK(z: Float64Array, spec: RouterSpec): Routed {
  let p = softmax(z);
  if (spec.groups && spec.groups.nGroup > 1) {
    const { nGroup, topkGroup } = spec.groups;
    const per = spec.experts / nGroup;
    const gScore = Array.from({ length: nGroup }, (_, g) => Math.max(...p.subarray(g * per, g * per + per)));
    const keep = new Set(topK(gScore, topkGroup));
    p = p.map((v, e) => (keep.has(Math.floor(e / per)) ? v : 0));
  }
  const experts = topK(p, spec.topK);
  let weights = experts.map((e) => p[e]!);
  if (spec.normTopkProb) {
    const s = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((w) => w / s);
  }
  return { experts, weights };
}

function sigmoidGrouped(z: Float64Array, spec: RouterSpec, removed?: ReadonlySet<number>, bias?: Float32Array): Routed {
  const scores = z.map((v) => sigmoid(v));
  const choice = scores.map((s, e) => (removed?.has(e) ? -Infinity : s + (bias ? bias[e]! : 0)));
  if (spec.groups && spec.groups.nGroup > 1) {
    const { nGroup, topkGroup } = spec.groups;
    const per = spec.experts / nGroup;
    const gScore = Array.from({ length: nGroup }, (_, g) => {
      const best = topK(choice.subarray(g * per, g * per + per), Math.min(2, per));
      return best.reduce((a, i) => a + choice[g * per + i]!, 0);
    });
    const keep = new Set(topK(gScore, topkGroup));
    for (let e = 0; e < spec.experts; e++) if (!keep.has(Math.floor(e / per))) choice[e] = -Infinity;
  }
  const experts = topK(choice, spec.topK);
  let weights = experts.map((e) => scores[e]!);
  if (spec.normTopkProb) {
    const s = weights.reduce((a, b) => a + b, 0) + 1e-20;
    weights = weights.map((w) => w / s);
  }
  return { experts, weights };
}

/** PhiMoE sparsemixer at inference (training=False), for top-2. */
function sparsemixer(z: Float64Array, jitterEps: number): Routed {
  const pick = (scores: Float64Array): { e: number; w: number } => {
    const e = topK(scores, 1)[0]!;
    const thr = scores[e]!;
    // Keep logits within the relative threshold of the max: (max − s) / max(|s|, max) ≤ 2ε (on the unmasked logits).
    const masked = scores.map((s, i) => {
      const factor = Math.max(Math.abs(z[i]!), thr);
      return (thr - z[i]!) / factor > 2 * jitterEps ? -Infinity : s;
    });
    return { e, w: softmax(masked)[e]! };
  };
  const first = pick(z);
  const rest = z.slice();
  rest[first.e] = -Infinity;
  const second = pick(rest);
  return { experts: [first.e, second.e], weights: [first.w, second.w] };
}
