/**
 * NAEE-style exhaustive expert choice (Lu et al., 2024, "Not All Experts are Equal"): every subset of K experts of a
 * layer is scored by the reconstruction error of the MoE block's output on the layer's calibration input, and the
 * best subset is kept. Dropped experts get router logits −∞ and the family's own top-k and normalisation route among
 * the kept ones (src/forward/reference/router.ts, the same rules as the GPU router).
 *
 * The error of a subset needs no new forward pass: with f_i(x_t) every expert's output on token t and d_t the change of
 * the routing weights (original minus the subset's), y_t − ŷ_t = Σ_i d_ti f_i(x_t), so
 *   ‖y − ŷ‖² = Σ_t Σ_{i,j} d_ti d_tj ⟨f_i(x_t), f_j(x_t)⟩,
 * from each token's Gram matrix of expert outputs (computed once on the GPU). Shared experts cancel in y − ŷ and only
 * enter ‖y‖². Grouped routing (DeepSeek) enumerates K / n_group experts per group, like every other criterion.
 */
import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { RouterSpec } from '../../models/arch.ts';
import { route } from '../../forward/reference/router.ts';
import type { ExpertIndex } from '../../models/types.ts';
import { keptPerGroup, type KeepRule } from './saliency.ts';

/** The largest layer exhaustive search accepts: C(16, 8) = 12 870 subsets. */
export const EXHAUSTIVE_MAX_EXPERTS = 16;

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

/** Number of subsets exhaustive search scores for K kept (per routing group: C(size, K / n_group) each, multiplied). */
export function subsetCount(K: number, rule: KeepRule): number {
  const { groups, groupSize, perGroup } = keptPerGroup(K, rule);
  return binomial(groupSize, perGroup) ** groups;
}

/** Refuses layers above EXHAUSTIVE_MAX_EXPERTS (and K against the routing floors). */
export function checkExhaustive(K: number, rule: KeepRule): void {
  if (rule.n > EXHAUSTIVE_MAX_EXPERTS)
    throw new MoePruneError(
      'InvalidPlan',
      `${rule.name ?? 'layer'} has ${rule.n} experts; exhaustive search scores every subset of K experts and takes layers of at most ${EXHAUSTIVE_MAX_EXPERTS} (here ${subsetCount(K, rule).toExponential(2)} subsets); use another criterion`,
    );
  keptPerGroup(K, rule);
}

/** Every kept set, ascending within, in lexicographic order (grouped: per-group combinations, group 0 varying slowest). */
export function* subsets(K: number, rule: KeepRule): Generator<ExpertIndex[]> {
  const { groups, groupSize, perGroup } = keptPerGroup(K, rule);
  const combos = (from: number, size: number, k: number): number[][] => {
    const out: number[][] = [];
    const cur: number[] = [];
    const rec = (start: number): void => {
      if (cur.length === k) {
        out.push([...cur]);
        return;
      }
      for (let i = start; i <= size - (k - cur.length); i++) {
        cur.push(from + i);
        rec(i + 1);
        cur.pop();
      }
    };
    rec(0);
    return out;
  };
  const per = Array.from({ length: groups }, (_, g) => combos(g * groupSize, groupSize, perGroup));
  const idx = new Array<number>(groups).fill(0);
  for (;;) {
    yield idx.flatMap((i, g) => per[g]![i]!);
    let g = groups - 1;
    while (g >= 0 && ++idx[g]! === per[g]!.length) idx[g--] = 0;
    if (g < 0) return;
  }
}

export interface ExhaustiveInput {
  readonly tokens: number;
  readonly experts: number;
  /** Raw router logits [tokens, experts]. */
  readonly logits: Float32Array;
  /** Per token Gram of expert outputs [tokens, experts, experts]. */
  readonly gram: Float32Array;
  /** Σ_t ‖y_t‖² of the unpruned block's output. */
  readonly sumSqRef: number;
  readonly router: RouterSpec;
  /** DeepSeek-V3 e_score_correction_bias [experts]. */
  readonly correctionBias?: Float32Array | undefined;
}

/** ‖y − ŷ‖² over the tokens for one kept set (f64). */
export function subsetSquaredError(inp: ExhaustiveInput, kept: readonly ExpertIndex[], original?: ReadonlyArray<{ experts: number[]; weights: number[] }>): number {
  const E = inp.experts;
  const keep = new Set(kept);
  const removed = new Set<number>();
  for (let e = 0; e < E; e++) if (!keep.has(e)) removed.add(e);
  const d = new Float64Array(E);
  let total = 0;
  for (let t = 0; t < inp.tokens; t++) {
    const z = inp.logits.subarray(t * E, (t + 1) * E);
    const orig = original?.[t] ?? route(z, inp.router, { correctionBias: inp.correctionBias });
    const now = route(z, inp.router, { removed, correctionBias: inp.correctionBias });
    const touched: number[] = [];
    orig.experts.forEach((e, j) => {
      if (d[e] === 0) touched.push(e);
      d[e]! += orig.weights[j]!;
    });
    now.experts.forEach((e, j) => {
      if (d[e] === 0 && !touched.includes(e)) touched.push(e);
      d[e]! -= now.weights[j]!;
    });
    const G = t * E * E;
    let s = 0;
    for (const i of touched) for (const j of touched) s += d[i]! * d[j]! * inp.gram[G + i * E + j]!;
    total += s;
    for (const i of touched) d[i] = 0;
  }
  return total;
}

export interface ExhaustiveChoice {
  readonly kept: ExpertIndex[];
  /** ‖y − ŷ‖² / ‖y‖² of the kept set. */
  readonly error: number;
  /** Subsets scored. */
  readonly subsets: number;
  /** The second-best error (how decisive the choice was); null with one subset. */
  readonly runnerUp: number | null;
}

/** Scores every subset; the lowest error wins, the first in lexicographic order among equal errors. */
export function exhaustiveChoice(inp: ExhaustiveInput, K: number, rule: KeepRule, signal?: AbortSignal): ExhaustiveChoice {
  checkExhaustive(K, rule);
  const E = inp.experts;
  const original = Array.from({ length: inp.tokens }, (_, t) => route(inp.logits.subarray(t * E, (t + 1) * E), inp.router, { correctionBias: inp.correctionBias }));
  let best: ExpertIndex[] | null = null;
  let bestErr = Infinity;
  let runnerUp = Infinity;
  let count = 0;
  for (const s of subsets(K, rule)) {
    if ((count & 255) === 0) throwIfAborted(signal);
    const err = subsetSquaredError(inp, s, original);
    count++;
    if (err < bestErr) {
      runnerUp = bestErr;
      bestErr = err;
      best = s;
    } else if (err < runnerUp) runnerUp = err;
  }
  const rel = (x: number): number => (inp.sumSqRef > 0 ? x / inp.sumSqRef : x > 0 ? Infinity : 0);
  return { kept: best!, error: rel(bestErr), subsets: count, runnerUp: Number.isFinite(runnerUp) ? rel(runnerUp) : null };
}
