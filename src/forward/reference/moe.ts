/**
 * Feed-forward blocks: SwiGLU MLP (dense layers, experts, shared experts, Arctic's residual MLP) and the routed
 * MoE block. Each expert runs only on the tokens routed to it, and its output is added with its routing weight,
 * in the order transformers' expert loop adds them (expert by expert, ascending).
 */
import type { MoeSpec } from '../../models/arch.ts';
import { gatherRows, linear, sigmoid, silu } from './ops.ts';
import { route } from './router.ts';

export interface MlpWeights {
  /** gate [I, H], up [I, H], down [H, I] (nn.Linear layout). */
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** Called with the input of every linear map, so statistics (per-channel input norms) can be collected. */
export type LinearInputHook = (tensor: string, x: Float32Array, rows: number, inDim: number) => void;

/** down(silu(gate·x) ⊙ up·x) for x [rows, hidden]. `names` = [gate, up, down] tensor names for the hook. */
export function swiglu(x: Float32Array, rows: number, hidden: number, inter: number, w: MlpWeights, hook?: LinearInputHook, names?: readonly [string, string, string]): Float32Array {
  if (hook && names) {
    hook(names[0], x, rows, hidden);
    hook(names[1], x, rows, hidden);
  }
  const g = linear(x, rows, hidden, w.gate, inter);
  const u = linear(x, rows, hidden, w.up, inter);
  for (let i = 0; i < g.length; i++) g[i] = Math.fround(silu(g[i]!)) * u[i]!;
  if (hook && names) hook(names[2], g, rows, inter);
  return linear(g, rows, inter, w.down, hidden);
}

export interface MoeLayerWeights {
  router: Float32Array;
  correctionBias?: Float32Array;
  /** Expert e's weights, or undefined for an expert removed by the plan. */
  expert: (e: number) => MlpWeights | undefined;
  expertNames: (e: number) => readonly [string, string, string];
  shared?: MlpWeights;
  sharedNames?: readonly [string, string, string];
  sharedGate?: Float32Array;
}

export interface MoeRouting {
  readonly topK: number;
  /** [tokens, topK] chosen experts, best first. */
  readonly experts: Int32Array;
  /** [tokens, topK] combination weights. */
  readonly weights: Float32Array;
  /** [tokens, experts] raw router logits. */
  readonly logits: Float32Array;
}

/** The routed MoE block (plus shared expert) on x [N, hidden] (already normed). */
export function moeForward(
  x: Float32Array, N: number, hidden: number, spec: MoeSpec, w: MoeLayerWeights,
  removed: ReadonlySet<number> | undefined, hook?: LinearInputHook, routerName = 'router',
): { out: Float32Array; routing: MoeRouting } {
  const E = spec.router.experts;
  const k = spec.router.topK;
  hook?.(routerName, x, N, hidden);
  const logits = linear(x, N, hidden, w.router, E);
  const experts = new Int32Array(N * k);
  const weights = new Float32Array(N * k);
  const tokensOf: number[][] = Array.from({ length: E }, () => []);
  const slotOf: number[][] = Array.from({ length: E }, () => []);
  for (let t = 0; t < N; t++) {
    const r = route(logits.subarray(t * E, t * E + E), spec.router, { removed, correctionBias: w.correctionBias });
    for (let j = 0; j < k; j++) {
      experts[t * k + j] = r.experts[j]!;
      weights[t * k + j] = r.weights[j]!;
      tokensOf[r.experts[j]!]!.push(t);
      slotOf[r.experts[j]!]!.push(t * k + j);
    }
  }
  const out = new Float32Array(N * hidden);
  for (let e = 0; e < E; e++) {
    const toks = tokensOf[e]!;
    if (!toks.length) continue;
    const ew = w.expert(e);
    if (!ew) continue; // removed experts are never chosen; defensive for all-(−∞) rows
    const y = swiglu(gatherRows(x, hidden, toks), toks.length, hidden, spec.intermediate, ew, hook, w.expertNames(e));
    for (let j = 0; j < toks.length; j++) {
      const g = weights[slotOf[e]![j]!]!;
      const o = toks[j]! * hidden;
      for (let d = 0; d < hidden; d++) out[o + d] = out[o + d]! + Math.fround(y[j * hidden + d]! * g);
    }
  }
  if (spec.shared && w.shared) {
    const s = swiglu(x, N, hidden, spec.shared.intermediate, w.shared, hook, w.sharedNames);
    if (spec.shared.sigmoidGate && w.sharedGate) {
      const gate = linear(x, N, hidden, w.sharedGate, 1);
      for (let t = 0; t < N; t++) {
        const g = Math.fround(sigmoid(gate[t]!));
        for (let d = 0; d < hidden; d++) s[t * hidden + d] = s[t * hidden + d]! * g;
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + s[i]!;
  }
  return { out, routing: { topK: k, experts, weights, logits } };
}
