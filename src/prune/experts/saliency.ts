/**
 * Expert choice by a score instead of clustering: keep the K highest-scoring experts of each MoE layer (REAP, EAN,
 * frequency, a seeded random draw, or any per-expert score), as an `ExpertPlan` the export and the engine accept —
 * every kept expert its own one-member cluster, removed experts in none (`slotOf` −1: their tokens go elsewhere).
 * Grouped routing (DeepSeek `n_group`) keeps K / n_group per group, as stage-1 clustering does, so the router's
 * group structure survives; the same floors apply. Pure CPU code.
 */
import { MoePruneError } from '../../core/errors.ts';
import type { ExpertIndex, LayerIndex } from '../../models/types.ts';
import type { RoutingGroups } from './cluster.ts';
import { buildLayerPlan, resolveExpertPlanSettings, type ExpertPlan, type ExpertPlanSettings, type LayerPlan } from './plan.ts';

export type SaliencyCriterion = 'reap' | 'ean' | 'frequency';
export const SALIENCY_CRITERIA: readonly SaliencyCriterion[] = ['reap', 'ean', 'frequency'];

/** Per-expert sums over the tokens routed to each expert (the engine's `ExpertSaliency` satisfies it). */
export interface ExpertOutputSums {
  readonly tokens: ArrayLike<number>;
  /** Σ g(x)·‖f(x)‖₂. */
  readonly weightedNorm: ArrayLike<number>;
  /** Σ ‖f(x)‖₂. */
  readonly norm: ArrayLike<number>;
}

/**
 * Scores of one layer's experts:
 *  - reap: mean over the expert's routed tokens of g(x)·‖f(x)‖₂ (0 for an expert no token reached);
 *  - ean: Σ over routed tokens of ‖f(x)‖₂;
 *  - frequency: routed tokens.
 */
export function saliencyScores(s: ExpertOutputSums, criterion: SaliencyCriterion): Float64Array {
  const n = s.tokens.length;
  const out = new Float64Array(n);
  for (let e = 0; e < n; e++) {
    const t = s.tokens[e]!;
    out[e] = criterion === 'frequency' ? t : criterion === 'ean' ? s.norm[e]! : t > 0 ? s.weightedNorm[e]! / t : 0;
  }
  return out;
}

/** What limits the experts a layer may keep: its size, the router's top-k and routing groups. */
export interface KeepRule {
  readonly n: number;
  readonly topK: number;
  readonly groups?: RoutingGroups | undefined;
  /** Names the layer in messages. */
  readonly name?: string;
}

/**
 * Experts kept per routing group for K kept in the layer, validated with the floors of stage-1 clustering
 * (LayerClusterer): ungrouped ≥ max(top-k, 1); grouped K a multiple of n_group and ≥ max(2, ⌈top-k / topk_group⌉) per
 * group (V3 scores a group by its top two experts; the chosen groups must still hold top-k experts).
 */
export function keptPerGroup(K: number, rule: KeepRule): { groups: number; groupSize: number; perGroup: number } {
  const { n, topK } = rule;
  const name = rule.name ?? 'layer';
  const g = rule.groups && rule.groups.nGroup > 1 ? rule.groups : undefined;
  const groups = g ? g.nGroup : 1;
  if (n % groups !== 0) throw new MoePruneError('InvalidArgument', `${name}: ${n} experts do not split into ${groups} equal routing groups`);
  const groupSize = n / groups;
  if (!Number.isInteger(K) || K < 1 || K > n) throw new MoePruneError('InvalidPlan', `${name}: experts kept per layer must be an integer in [1, ${n}], got ${K}`);
  if (K % groups !== 0) throw new MoePruneError('InvalidPlan', `${name}: keeping ${K} experts breaks grouped routing; K must be a multiple of n_group = ${groups}`);
  const perGroup = K / groups;
  const floor = g ? Math.min(groupSize, Math.max(2, Math.ceil(topK / g.topkGroup))) : Math.min(n, Math.max(topK, 1));
  if (perGroup < floor)
    throw new MoePruneError(
      'InvalidPlan',
      g
        ? `${name}: keeping ${perGroup} experts per routing group is below the floor of ${floor} (≥ 2 per group and topk_group × per-group ≥ top-k)`
        : `${name}: keeping ${K} experts is below the router's top-k floor of ${floor}`,
    );
  return { groups, groupSize, perGroup };
}

/**
 * The K highest-scoring experts (per routing group: K / n_group), ascending. Equal scores keep the lower index;
 * a NaN score counts as the lowest.
 */
export function keepTopK(scores: ArrayLike<number>, K: number, rule: KeepRule): ExpertIndex[] {
  if (scores.length !== rule.n) throw new MoePruneError('InvalidArgument', `${rule.name ?? 'layer'}: ${scores.length} scores for ${rule.n} experts`);
  const { groups, groupSize, perGroup } = keptPerGroup(K, rule);
  const key = (e: number): number => (Number.isNaN(scores[e]!) ? -Infinity : scores[e]!);
  const kept: ExpertIndex[] = [];
  for (let b = 0; b < groups; b++) {
    const members = Array.from({ length: groupSize }, (_, i) => b * groupSize + i);
    members.sort((x, y) => (key(y) > key(x) ? 1 : key(y) < key(x) ? -1 : x - y));
    kept.push(...members.slice(0, perGroup));
  }
  return kept.sort((a, b) => a - b);
}

/** K experts drawn uniformly without replacement (per routing group) from `rand` (e.g. mulberry32(seed)), ascending. */
export function keepRandom(K: number, rule: KeepRule, rand: () => number): ExpertIndex[] {
  const { groups, groupSize, perGroup } = keptPerGroup(K, rule);
  const kept: ExpertIndex[] = [];
  for (let b = 0; b < groups; b++) {
    const members = Array.from({ length: groupSize }, (_, i) => b * groupSize + i);
    // Partial Fisher–Yates: the first perGroup places are a uniform draw.
    for (let i = 0; i < perGroup; i++) {
      const j = i + Math.floor(rand() * (groupSize - i));
      [members[i], members[j]] = [members[j]!, members[i]!];
    }
    kept.push(...members.slice(0, perGroup));
  }
  return kept.sort((a, b) => a - b);
}

/**
 * A layer plan that keeps exactly `kept` (each its own cluster, action 'keep'); removed experts belong to no cluster
 * and `slotOf` is −1 for them. `distances` (diagonal +Inf) is kept for display; by default |score_i − score_j|.
 */
export function layerPlanFromKept(
  base: { layer: LayerIndex; n: number; topK: number },
  kept: readonly ExpertIndex[],
  distances?: Float64Array,
  scores?: ArrayLike<number>,
): LayerPlan {
  const { n, layer } = base;
  const set = new Set(kept);
  if (set.size !== kept.length || kept.some((e) => !Number.isInteger(e) || e < 0 || e >= n))
    throw new MoePruneError('InvalidPlan', `layer ${layer}: kept experts [${kept.join(', ')}] must be distinct indices in [0, ${n})`);
  let D = distances;
  if (!D) {
    D = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) D[i * n + j] = i === j ? Infinity : scores ? Math.abs(scores[i]! - scores[j]!) : 0;
  }
  const plan = buildLayerPlan({ layer, n, topK: base.topK, distances: D, tau: Infinity }, [...kept].sort((a, b) => a - b).map((e) => [e]), { reconstruct: 'none', kappa: 0 });
  return plan;
}

/** An ExpertPlan (uniform, K per layer) from per-layer kept sets; `settings` name the criterion (expertScore, seed). */
export function expertPlanFromKept(layers: readonly LayerPlan[], keepPerLayer: number, settings: Partial<ExpertPlanSettings> = {}, expertScores?: ExpertPlan['expertScores']): ExpertPlan {
  let totalExperts = 0;
  let totalKept = 0;
  for (const l of layers) {
    totalExperts += l.n;
    totalKept += l.kept.length;
  }
  return {
    settings: resolveExpertPlanSettings({ ...settings, mode: 'uniform', keepPerLayer, targetTotal: null }), layers: [...layers], totalExperts, totalKept, unresolved: 0,
    ...(expertScores ? { expertScores } : {}),
  };
}
