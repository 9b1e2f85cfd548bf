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

/** A token's routing: chosen experts and their weights (best first). */
interface Routing {
  readonly experts: ArrayLike<number>;
  readonly weights: ArrayLike<number>;
}

/**
 * Routing of token t among the kept experts. Plain softmax routers (no groups) take a fast path that gives route()'s
 * result without its per-call sort and allocations — the search calls it tokens × subsets times: the token's experts
 * sorted once by logit (ties: lower index), the first top-k kept ones chosen, p = exp(z − max) over the kept ones'
 * sum (renormalised over the chosen when the family does), × the routed scaling factor. Other routers (groups,
 * sigmoid with correction bias, sparsemixer) call route() itself.
 */
function tokenRouter(inp: ExhaustiveInput): (t: number, keep: Uint8Array, removed: ReadonlySet<number>) => Routing {
  const E = inp.experts;
  const r = inp.router;
  const z = (t: number) => inp.logits.subarray(t * E, (t + 1) * E);
  if (r.scoring !== 'softmax' || (r.groups && r.groups.nGroup > 1))
    return (t, _keep, removed) => route(z(t), r, { removed, correctionBias: inp.correctionBias });
  const order = new Uint16Array(inp.tokens * E);
  const ez = new Float64Array(inp.tokens * E);
  for (let t = 0; t < inp.tokens; t++) {
    const v = z(t);
    let m = -Infinity;
    for (let e = 0; e < E; e++) if (v[e]! > m) m = v[e]!;
    for (let e = 0; e < E; e++) ez[t * E + e] = Math.exp(v[e]! - m);
    const idx = Array.from({ length: E }, (_, e) => e).sort((a, b) => (v[b]! > v[a]! ? 1 : v[b]! < v[a]! ? -1 : a - b));
    order.set(idx, t * E);
  }
  const k = r.topK;
  const experts = new Int32Array(k);
  const weights = new Float64Array(k);
  return (t, keep, removed) => {
    let den = 0;
    for (let e = 0; e < E; e++) if (keep[e]) den += ez[t * E + e]!;
    if (!(den > 0)) return route(z(t), r, { removed, correctionBias: inp.correctionBias }); // every kept exp underflowed
    let n = 0;
    for (let i = 0; i < E && n < k; i++) {
      const e = order[t * E + i]!;
      if (keep[e]) experts[n++] = e;
    }
    let chosen = 0;
    for (let j = 0; j < n; j++) chosen += ez[t * E + experts[j]!]!;
    for (let j = 0; j < n; j++) weights[j] = (ez[t * E + experts[j]!]! / (r.normTopkProb ? chosen : den)) * r.routedScalingFactor;
    return { experts: experts.subarray(0, n), weights: weights.subarray(0, n) };
  };
}

/** ‖y − ŷ‖² over the tokens for one kept set (f64). */
export function subsetSquaredError(inp: ExhaustiveInput, kept: readonly ExpertIndex[], original?: readonly Routing[], router = tokenRouter(inp)): number {
  const E = inp.experts;
  const keep = new Uint8Array(E);
  for (const e of kept) keep[e] = 1;
  const removed = new Set<number>();
  for (let e = 0; e < E; e++) if (!keep[e]) removed.add(e);
  const all = new Uint8Array(E).fill(1);
  const d = new Float64Array(E);
  const touched = new Int32Array(2 * inp.router.topK + 2);
  let total = 0;
  for (let t = 0; t < inp.tokens; t++) {
    const orig = original?.[t] ?? copyRouting(router(t, all, new Set()));
    const now = router(t, keep, removed);
    // The experts whose weight changed (at most the two top-k lists), without a per-token closure or allocation.
    let nt = 0;
    for (let pass = 0; pass < 2; pass++) {
      const r = pass === 0 ? orig : now;
      const sign = pass === 0 ? 1 : -1;
      for (let j = 0; j < r.experts.length; j++) {
        const e = r.experts[j]!;
        let seen = false;
        for (let i = 0; i < nt; i++) if (touched[i] === e) seen = true;
        if (!seen) touched[nt++] = e;
        d[e]! += sign * r.weights[j]!;
      }
    }
    const G = t * E * E;
    let s = 0;
    for (let a = 0; a < nt; a++) {
      const i = touched[a]!;
      if (d[i] === 0) continue;
      for (let b = 0; b < nt; b++) s += d[i]! * d[touched[b]!]! * inp.gram[G + i * E + touched[b]!]!;
    }
    total += s;
    for (let a = 0; a < nt; a++) d[touched[a]!] = 0;
  }
  return total;
}

/** A routing that outlives the fast path's shared buffers. */
function copyRouting(r: Routing): Routing {
  return { experts: Array.from(r.experts), weights: Array.from(r.weights) };
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
  const router = tokenRouter(inp);
  const all = new Uint8Array(inp.experts).fill(1);
  const none = new Set<number>();
  const original = Array.from({ length: inp.tokens }, (_, t) => copyRouting(router(t, all, none)));
  let best: ExpertIndex[] | null = null;
  let bestErr = Infinity;
  let runnerUp = Infinity;
  let count = 0;
  for (const s of subsets(K, rule)) {
    if ((count & 255) === 0) throwIfAborted(signal);
    const err = subsetSquaredError(inp, s, original, router);
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
