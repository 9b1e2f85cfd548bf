/**
 * STUN stage-1 plan: which experts each MoE layer keeps, which clusters merge, and the new expert order.
 * Router-only and instant (no parameter reads); cluster representatives that need parameter distances
 * (clusters of ≥ 3 members that select) are marked unresolved and filled in by `resolveRepresentatives`; the export
 * writes merged slots as the members' mean (src/export/tensor-plan.ts).
 */
import { MoePruneError } from '../../core/errors.ts';
import type { ExpertIndex, LayerIndex } from '../../models/types.ts';
import { LayerClusterer, searchThresholdExact, searchThresholdOfficial, type RoutingGroups, type SearchMethod, type ThresholdSearchResult } from './cluster.ts';
import { clusterAction, DEFAULT_KAPPA, selectRepresentative, type ClusterAction, type ExpertParamSource, type ReconstructRule, type RepresentativeOptions } from './representative.ts';
import { coactivationDistance, frobeniusNorm, mixedDistance, routerDistanceFromSquared, routerSquaredDistances } from './similarity.ts';

/** What the clustering compares: STUN's router rows, co-activation or both, or 'output' (HC-SMoE: the experts' mean outputs on calibration tokens). */
export type SimilarityMode = 'router' | 'coactivation' | 'mixed' | 'output';
/** Output similarity: all tokens entering the layer, or each expert's routed tokens only. */
export type OutputTokens = 'all' | 'routed';
export type OutputDistance = 'cosine' | 'l2';
/** Criteria that keep the K highest-scoring experts per layer instead of clustering. */
export type ExpertScore = 'reap' | 'ean' | 'frequency' | 'exhaustive' | 'random';
export const EXPERT_SCORES: readonly ExpertScore[] = ['reap', 'ean', 'frequency', 'exhaustive', 'random'];

export interface ExpertPlanSettings {
  /** 'uniform': keep `keepPerLayer` in every layer; 'global': one threshold for all layers, Σ kept = `targetTotal`. */
  readonly mode: 'uniform' | 'global';
  readonly keepPerLayer: number | null;
  readonly targetTotal: number | null;
  /** Global mode: 'exact' (bisection + sweep over distance values) or 'official' (step search of the paper code). */
  readonly search: SearchMethod;
  /** Start τ of the official search (the README's `--threshold 0.5`). */
  readonly startThreshold: number;
  /** Global mode: official cap c, most experts removed from one layer (null: only the routing floors apply). */
  readonly maxRemovedPerLayer: number | null;
  readonly similarity: SimilarityMode;
  /** Similarity 'output': which tokens each expert's mean output is taken over, and the distance between the means. */
  readonly outputTokens: OutputTokens;
  readonly outputDistance: OutputDistance;
  /** Keep the K best experts per layer by this score instead of clustering (null: clustering by `similarity`). */
  readonly expertScore: ExpertScore | null;
  /** Seed of expertScore 'random' (mulberry32). */
  readonly seed: number;
  /** Divide router distances by ‖W‖_F (official default true; the README's Arctic runs use false). */
  readonly normalize: boolean;
  /** μ of the mixed distance. */
  readonly mixWeight: number;
  readonly reconstruct: ReconstructRule;
  /** κ of the reconstruction rule (κ_L clusters for 'per-layer', cluster size for 'per-cluster-size'). */
  readonly kappa: number;
  /** Throw InvalidPlan instead of using the nearest achievable total when no threshold hits the target. */
  readonly requireExact: boolean;
}

export const DEFAULT_EXPERT_PLAN_SETTINGS: ExpertPlanSettings = {
  mode: 'uniform',
  keepPerLayer: null,
  targetTotal: null,
  search: 'exact',
  startThreshold: 0.5,
  maxRemovedPerLayer: null,
  similarity: 'router',
  outputTokens: 'all',
  outputDistance: 'cosine',
  expertScore: null,
  seed: 0,
  // Off, as in the paper's Arctic runs ("nodivnorm"); the official script's own default is on. Page and CLI share it.
  normalize: false,
  mixWeight: 1,
  reconstruct: 'none',
  kappa: DEFAULT_KAPPA.none,
  requireExact: false,
};

/** The criterion a plan's settings choose experts by, named as `moe-prune compare` names it. */
export function expertCriterion(s: Pick<ExpertPlanSettings, 'similarity' | 'expertScore'>): string {
  return s.expertScore ?? (s.similarity === 'output' ? 'output' : `stun-${s.similarity}`);
}

/** How a plan chose its experts, in words (report and model card). */
export function describeExpertCriterion(s: ExpertPlanSettings): string {
  switch (s.expertScore) {
    case 'reap':
      return 'keeping the experts of highest REAP saliency (mean router weight × expert output norm over routed calibration tokens; Lasby et al., 2025)';
    case 'ean':
      return 'keeping the experts of largest activation norm (EAN: Σ of expert output norms over routed calibration tokens)';
    case 'frequency':
      return 'keeping the experts most often routed on the calibration text';
    case 'exhaustive':
      return 'exhaustive search (NAEE; Lu et al., 2024): per layer the subset of experts with the least reconstruction error on the calibration text';
    case 'random':
      return `a seeded random choice of experts (seed ${s.seed})`;
    case null:
      break;
  }
  if (s.similarity === 'output')
    return `clustering by the ${s.outputDistance === 'l2' ? 'L2' : 'cosine'} distance of the experts' mean outputs over ${s.outputTokens === 'routed' ? 'their routed' : 'all'} calibration tokens (HC-SMoE; Chen et al., 2025)`;
  if (s.similarity === 'coactivation') return 'clustering by co-activation on the calibration text (STUN)';
  if (s.similarity === 'mixed') return 'clustering by router-row distance and co-activation (STUN)';
  return 'clustering by the distance between router rows (STUN)';
}

/** Fills defaults; κ defaults to the chosen rule's κ. */
export function resolveExpertPlanSettings(s: Partial<ExpertPlanSettings> = {}): ExpertPlanSettings {
  const reconstruct = s.reconstruct ?? DEFAULT_EXPERT_PLAN_SETTINGS.reconstruct;
  return { ...DEFAULT_EXPERT_PLAN_SETTINGS, kappa: DEFAULT_KAPPA[reconstruct], ...s, reconstruct };
}

export interface ExpertLayerInput {
  readonly layer: LayerIndex;
  readonly n: number;
  readonly d: number;
  readonly topK: number;
  /** Router weight, row-major n×d. Needed unless `distances` or (`squaredDistances` and, to normalise, `routerFrobenius`) are given. */
  readonly routerRows?: Float32Array;
  readonly groups?: RoutingGroups;
  /** Co-activation counts n×n (similarity 'coactivation' / 'mixed'). */
  readonly coactivation?: Float32Array | Float64Array;
  /** Router squared distances n×n, e.g. from the GPU kernel (shaders/sqdist.wgsl). */
  readonly squaredDistances?: Float32Array | Float64Array;
  readonly routerFrobenius?: number;
  /** A final distance matrix (diagonal +Inf) that overrides everything above, e.g. cached by the UI. */
  readonly distances?: Float64Array;
}

export interface ClusterPlan {
  /** Original expert indices, ascending. */
  readonly members: ExpertIndex[];
  readonly action: ClusterAction;
  /** Original index whose slot the cluster occupies: the kept expert ('keep'/'select') or the smallest member ('merge'). */
  readonly representative: ExpertIndex;
  /** False while a ≥ 3-member 'select' cluster waits for parameter distances (representative is provisional). */
  readonly resolved: boolean;
  /** New expert index = rank of `representative` among the layer's kept experts. */
  readonly slot: number;
}

export interface LayerPlan {
  readonly layer: LayerIndex;
  readonly n: number;
  readonly topK: number;
  /** Clusters ordered by smallest member. */
  readonly clusters: ClusterPlan[];
  /** Kept original indices (cluster representatives), ascending; slot i holds kept[i]. */
  readonly kept: ExpertIndex[];
  readonly removed: ExpertIndex[];
  /** slotOf[original] = new index the original expert's tokens now go to (its cluster's slot). */
  readonly slotOf: Int32Array;
  /** Clusters whose members are averaged into one slot. */
  readonly merges: Array<{ slot: number; members: ExpertIndex[] }>;
  /** The n×n distance matrix used (diagonal +Inf), kept for display. */
  readonly distances: Float64Array;
  /** Threshold used (+Inf in uniform mode). */
  readonly tau: number;
}

/** One MoE layer's scores: REAP, EAN and frequency per expert, or the exhaustive search's subsets and best error. */
export interface ExpertScoresReport {
  readonly reap?: number[];
  readonly ean?: number[];
  readonly frequency?: number[];
  /** Tokens routed to each expert. */
  readonly tokens?: number[];
  readonly subsets?: number;
  readonly error?: number;
  readonly runnerUp?: number | null;
}

export interface ExpertPlan {
  readonly settings: ExpertPlanSettings;
  /** Score-based criteria: each MoE layer's scores (keyed by layer), for the report. */
  readonly expertScores?: Record<string, ExpertScoresReport>;
  /** ‖y − ŷ‖² / ‖y‖² per MoE layer on the calibration tokens, when measured (`PruneJob.measurePlan`). */
  readonly reconstruction?: ReadonlyArray<{ readonly layer: number; readonly error: number }>;
  readonly layers: LayerPlan[];
  readonly totalExperts: number;
  readonly totalKept: number;
  /** Global mode only. */
  readonly search?: ThresholdSearchResult;
  /** Number of clusters whose representative still needs parameter distances. */
  readonly unresolved: number;
}

function layerName(l: ExpertLayerInput): string {
  return `layer ${l.layer}`;
}

/** The layer's distance matrix for the chosen similarity (spec §2.3.2). */
export function layerDistances(input: ExpertLayerInput, settings: ExpertPlanSettings): Float64Array {
  const { n } = input;
  if (input.distances) {
    if (input.distances.length !== n * n) throw new MoePruneError('InvalidArgument', `${layerName(input)}: distance matrix must be ${n}×${n}`);
    return input.distances;
  }
  const router = (): Float64Array => {
    const sq = input.squaredDistances ?? (input.routerRows ? routerSquaredDistances(input.routerRows, n, input.d) : undefined);
    if (!sq) throw new MoePruneError('InvalidArgument', `${layerName(input)}: router distances need the router weight or precomputed squared distances`);
    let scale = 1;
    if (settings.normalize) {
      const f = input.routerFrobenius ?? (input.routerRows ? frobeniusNorm(input.routerRows) : undefined);
      if (f === undefined) throw new MoePruneError('InvalidArgument', `${layerName(input)}: normalised distances need ‖W‖_F (routerFrobenius) or the router weight`);
      scale = f;
    }
    return routerDistanceFromSquared(sq, n, scale);
  };
  if (settings.similarity === 'router') return router();
  if (settings.similarity === 'output') throw new MoePruneError('InvalidArgument', `${layerName(input)}: output similarity needs the experts' output distances from a calibration pass`);
  if (!input.coactivation) throw new MoePruneError('InvalidArgument', `${layerName(input)}: similarity '${settings.similarity}' needs co-activation counts from a calibration pass`);
  if (settings.similarity === 'coactivation') return coactivationDistance(input.coactivation, n);
  return mixedDistance(router(), input.coactivation, n, settings.mixWeight);
}

/** Builds the layer plan from clusters and chosen representatives (undefined: provisional smallest member). */
export function buildLayerPlan(
  base: { layer: LayerIndex; n: number; topK: number; distances: Float64Array; tau: number },
  clusters: ExpertIndex[][],
  settings: Pick<ExpertPlanSettings, 'reconstruct' | 'kappa'>,
  representatives: ReadonlyArray<ExpertIndex | undefined> = [],
): LayerPlan {
  const pre = clusters.map((members, i) => {
    const action = clusterAction(settings.reconstruct, settings.kappa, clusters.length, members.length);
    const chosen = representatives[i];
    if (chosen !== undefined && !members.includes(chosen))
      throw new MoePruneError('InvalidPlan', `layer ${base.layer}: representative ${chosen} is not a member of cluster [${members.join(', ')}]`);
    const needsParams = action === 'select' && members.length > 2;
    const representative = action === 'merge' ? members[0]! : (chosen ?? members[0]!);
    return { members, action, representative, resolved: !needsParams || chosen !== undefined };
  });
  const kept = pre.map((c) => c.representative).sort((a, b) => a - b);
  const rank = new Map(kept.map((e, i) => [e, i] as const));
  const slotOf = new Int32Array(base.n).fill(-1);
  const out: ClusterPlan[] = pre.map((c) => {
    const slot = rank.get(c.representative)!;
    for (const m of c.members) slotOf[m] = slot;
    return { ...c, slot };
  });
  const keptSet = new Set(kept);
  const removed: ExpertIndex[] = [];
  for (let e = 0; e < base.n; e++) if (!keptSet.has(e)) removed.push(e);
  const merges = out.filter((c) => c.action === 'merge').map((c) => ({ slot: c.slot, members: c.members }));
  return { ...base, clusters: out, kept, removed, slotOf, merges };
}

/**
 * Plans expert pruning for all MoE layers. Uniform mode keeps exactly `keepPerLayer` per layer (validated
 * against top-k and routing groups); global mode searches one threshold so Σ kept = `targetTotal`, using the
 * nearest achievable total (reported in `search.message`) unless `requireExact`.
 */
export function planExpertPruning(layers: readonly ExpertLayerInput[], partial: Partial<ExpertPlanSettings> = {}): ExpertPlan {
  const settings = resolveExpertPlanSettings(partial);
  const distances = layers.map((l) => layerDistances(l, settings));
  const clusterers = layers.map(
    (l, i) =>
      new LayerClusterer({
        distances: distances[i]!, n: l.n, topK: l.topK, groups: l.groups, name: layerName(l),
        maxRemoved: settings.mode === 'global' ? (settings.maxRemovedPerLayer ?? undefined) : undefined,
      }),
  );
  let search: ThresholdSearchResult | undefined;
  let tau = Infinity;
  let clusters: ExpertIndex[][][];
  if (settings.mode === 'uniform') {
    const K = settings.keepPerLayer;
    if (K === null) throw new MoePruneError('InvalidPlan', 'uniform expert pruning needs keepPerLayer (experts kept in every layer)');
    clusters = clusterers.map((c) => c.clustersUniform(K));
  } else {
    const T = settings.targetTotal;
    if (T === null || !Number.isInteger(T) || T < 1)
      throw new MoePruneError('InvalidPlan', `global expert pruning needs targetTotal, a positive integer count of experts kept over all layers (got ${T})`);
    search = settings.search === 'official' ? searchThresholdOfficial(clusterers, T, settings.startThreshold) : searchThresholdExact(clusterers, T);
    if (!search.exact && settings.requireExact) throw new MoePruneError('InvalidPlan', search.message);
    tau = search.tau;
    clusters = clusterers.map((c) => c.clustersAt(tau));
  }
  const plans = layers.map((l, i) =>
    buildLayerPlan({ layer: l.layer, n: l.n, topK: l.topK, distances: distances[i]!, tau }, clusters[i]!, settings),
  );
  return summarise(settings, plans, search);
}

function summarise(settings: ExpertPlanSettings, layers: LayerPlan[], search: ThresholdSearchResult | undefined): ExpertPlan {
  let totalExperts = 0, totalKept = 0, unresolved = 0;
  for (const l of layers) {
    totalExperts += l.n;
    totalKept += l.kept.length;
    for (const c of l.clusters) if (!c.resolved) unresolved++;
  }
  return search ? { settings, layers, totalExperts, totalKept, search, unresolved } : { settings, layers, totalExperts, totalKept, unresolved };
}

/** Key of a cluster's chosen representative: its layer and members (the choice reads only the members' weights). */
export function representativeKey(layer: LayerIndex, members: readonly ExpertIndex[]): string {
  return `${layer}:${members.join(',')}`;
}

/** Records the representative of every chosen-by-weights cluster of a plan (skips provisional ones). */
export function rememberRepresentatives(plan: ExpertPlan, known: Map<string, ExpertIndex>): void {
  for (const lp of plan.layers)
    for (const c of lp.clusters) if (c.resolved && c.action !== 'merge' && c.members.length > 2) known.set(representativeKey(lp.layer, c.members), c.representative);
}

/**
 * The plan with each unresolved cluster whose representative was chosen before (same layer, same members) resolved to
 * it, without reading weights: re-planning with settings already measured or exported gives the same kept experts
 * instead of provisional ones again.
 */
export function withKnownRepresentatives(plan: ExpertPlan, known: ReadonlyMap<string, ExpertIndex>): ExpertPlan {
  if (plan.unresolved === 0 || known.size === 0) return plan;
  let changed = false;
  const layers = plan.layers.map((lp) => {
    if (!lp.clusters.some((c) => !c.resolved && known.has(representativeKey(lp.layer, c.members)))) return lp;
    changed = true;
    const reps = lp.clusters.map((c) => (c.resolved ? (c.action === 'merge' ? undefined : c.representative) : known.get(representativeKey(lp.layer, c.members))));
    return buildLayerPlan(lp, lp.clusters.map((c) => c.members), plan.settings, reps);
  });
  return changed ? summarise(plan.settings, layers, plan.search) : plan;
}

/** Chooses one cluster's representative from its members' parameters (CPU `selectRepresentative`, or the GPU's). */
export type RepresentativeSelector = (members: readonly ExpertIndex[], source: ExpertParamSource, opts: RepresentativeOptions) => Promise<{ representative: ExpertIndex }>;

/**
 * Fills in every unresolved representative by streaming the layer's expert parameters (two passes per chunk).
 * The one loop the page, the CLI and the oracle all use; `select` picks where the distances are computed.
 */
export async function resolveRepresentatives(
  plan: ExpertPlan,
  sourceFor: (layer: LayerIndex) => ExpertParamSource,
  opts: RepresentativeOptions & { readonly select?: RepresentativeSelector } = {},
): Promise<ExpertPlan> {
  if (plan.unresolved === 0) return plan;
  const select = opts.select ?? selectRepresentative;
  const total = plan.unresolved;
  let done = 0;
  const layers: LayerPlan[] = [];
  for (const lp of plan.layers) {
    if (!lp.clusters.some((c) => !c.resolved)) {
      layers.push(lp);
      continue;
    }
    const src = sourceFor(lp.layer);
    const reps: Array<ExpertIndex | undefined> = [];
    for (const c of lp.clusters) {
      if (c.resolved) reps.push(c.action === 'merge' ? undefined : c.representative);
      else {
        reps.push((await select(c.members, src, opts)).representative);
        opts.onProgress?.({ phase: 'choosing representatives', done: ++done, total, unit: 'steps', detail: `layer ${lp.layer}` });
      }
    }
    layers.push(buildLayerPlan(lp, lp.clusters.map((c) => c.members), plan.settings, reps));
  }
  return summarise(plan.settings, layers, plan.search);
}

