/**
 * What the engine measures about routed experts for choosing which to drop: per-expert output-norm sums (REAP, EAN,
 * frequency) gathered by the MoE block's observer, and per-layer reconstruction sums of a plan (‖y − ŷ‖², ‖y‖²).
 * Sums are kept in f64 on the CPU: the GPU returns one norm per (token, expert) entry per chunk, which is small.
 */
import type { ExpertOutputObserver } from './blocks.ts';

/** Per expert of one MoE layer over the tokens routed to it (the layer's dense pass). */
export interface ExpertSaliency {
  readonly experts: number;
  /** Tokens routed to each expert (any top-k slot). */
  readonly tokens: Uint32Array;
  /** Σ g(x)·‖f(x)‖₂: g the router weight the model applies to the expert's output f(x). */
  readonly weightedNorm: Float64Array;
  /** Σ ‖f(x)‖₂. */
  readonly norm: Float64Array;
  /** Σ g(x). */
  readonly weight: Float64Array;
}

export class ExpertSaliencyAccumulator implements ExpertOutputObserver, ExpertSaliency {
  readonly tokens: Uint32Array;
  readonly weightedNorm: Float64Array;
  readonly norm: Float64Array;
  readonly weight: Float64Array;

  constructor(readonly experts: number) {
    this.tokens = new Uint32Array(experts);
    this.weightedNorm = new Float64Array(experts);
    this.norm = new Float64Array(experts);
    this.weight = new Float64Array(experts);
  }

  add(offsets: Uint32Array, weights: Float32Array, norms: Float32Array): void {
    for (let e = 0; e < this.experts; e++)
      for (let j = offsets[e]!; j < offsets[e + 1]!; j++) {
        this.tokens[e]!++;
        this.norm[e]! += norms[j]!;
        this.weight[e]! += weights[j]!;
        this.weightedNorm[e]! += weights[j]! * norms[j]!;
      }
  }
}

/** Reconstruction of one MoE layer's block output under a plan, on the tokens entering it (the plan's own earlier layers). */
export interface LayerReconstruction {
  readonly layer: number;
  readonly tokens: number;
  /** Σ over tokens of ‖y − ŷ‖²: y the original block's output, ŷ the pruned block's, on the same input. */
  readonly sumSqDiff: number;
  /** Σ ‖y‖². */
  readonly sumSqRef: number;
  /** sumSqDiff / sumSqRef (0 when both are 0). */
  readonly error: number;
}

export class ReconstructionSums {
  tokens = 0;
  sumSqDiff = 0;
  sumSqRef = 0;

  add(rows: Float32Array): void {
    for (let j = 0; j + 1 < rows.length; j += 2) {
      this.sumSqDiff += rows[j]!;
      this.sumSqRef += rows[j + 1]!;
      this.tokens++;
    }
  }

  result(layer: number): LayerReconstruction {
    const { tokens, sumSqDiff, sumSqRef } = this;
    return { layer, tokens, sumSqDiff, sumSqRef, error: sumSqRef > 0 ? sumSqDiff / sumSqRef : sumSqDiff > 0 ? Infinity : 0 };
  }
}

/**
 * Every routed expert run on every token entering one MoE layer (the layer's dense input; NAEE and HC-SMoE need the
 * outputs of experts the router did not pick). f_e(x_t) is expert e's un-weighted output for token t.
 */
export interface ExpertProbe {
  readonly layer: number;
  readonly tokens: number;
  readonly experts: number;
  /** Raw router logits [tokens, experts] (before any plan's −∞). */
  readonly logits: Float32Array;
  /** With `perToken`: G[t·E² + i·E + j] = ⟨f_i(x_t), f_j(x_t)⟩; else null. */
  readonly gram: Float32Array | null;
  /** Σ_t ‖y_t‖² of the unpruned MoE block's output (routed experts plus any shared expert). */
  readonly sumSqRef: number;
  /** [E, E] Gram of the experts' output sums S_e = Σ_t f_e(x_t), computed on the GPU: cos(S_i, S_j) = G_ij / √(G_ii G_jj). */
  readonly outputGram: Float32Array;
}
