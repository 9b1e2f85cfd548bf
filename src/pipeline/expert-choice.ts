/**
 * Which experts to drop, measured on the model itself: saliency criteria (REAP, EAN, frequency) scored layer by layer
 * on the GPU engine's sequential hook, a seeded random choice, and the reconstruction error of any expert plan per
 * MoE layer. Used by `PruneJob` and `moe-prune compare`.
 *
 * Sequential like stage 2: layer ℓ is scored on the outputs of layers < ℓ as already pruned. The engine runs layer ℓ
 * dense (its statistics pass, where the MoE block reports every routed expert's output norm and router weight), the
 * pruner picks the layer's kept experts and removes the others from a plan that grows layer by layer, and the output
 * pass of layer ℓ (the next layer's input) runs with them removed.
 */
import { MoePruneError } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import type { GpuForwardEngine, GpuForwardOptions } from '../forward/engine.ts';
import type { LayerReconstruction } from '../forward/expert-signals.ts';
import type { ExpertEdits, WeightPlan } from '../forward/plan.ts';
import { moeSpecAt, type ArchConfig } from '../models/arch.ts';
import { mulberry32 } from '../eval/windows.ts';
import type { ExpertIndex } from '../models/types.ts';
import type { ExpertPlan, ExpertPlanSettings, LayerPlan, OutputDistance, OutputTokens } from '../prune/experts/plan.ts';
import { route } from '../forward/reference/router.ts';
import { checkExhaustive, exhaustiveChoice } from '../prune/experts/exhaustive.ts';
import { storedToF32 } from '../forward/weights.ts';
import {
  expertPlanFromKept, keepRandom, keepTopK, keptPerGroup, layerPlanFromKept, saliencyScores, type KeepRule, type SaliencyCriterion,
} from '../prune/experts/saliency.ts';

/**
 * A plan whose removed experts are filled in by a sequential pruner. The engine reads a layer's edits once, before
 * the layer's statistics pass, and the MoE block reads `removed` at every call: adding to the same set between the
 * statistics pass (dense: empty) and the output pass removes the experts on the fly.
 */
export class GrowingExpertPlan implements WeightPlan {
  private readonly byLayer = new Map<number, { removed: Set<number> }>();

  readonly experts = (layer: number): ExpertEdits => {
    let e = this.byLayer.get(layer);
    if (!e) this.byLayer.set(layer, (e = { removed: new Set<number>() }));
    return e;
  };

  remove(layer: number, experts: Iterable<number>): void {
    const r = this.experts(layer).removed as Set<number>;
    for (const e of experts) r.add(e);
  }
}

/** The keep rule (size, top-k, routing groups) of MoE layer `layer` as the engine routes it. */
export function keepRuleAt(arch: ArchConfig, layer: number): KeepRule {
  const r = moeSpecAt(arch, layer).router;
  return { n: r.experts, topK: r.topK, groups: r.groups ? { nGroup: r.groups.nGroup, topkGroup: r.groups.topkGroup } : undefined, name: `layer ${layer}` };
}

/** MoE layers in order. */
export function moeLayersOf(arch: ArchConfig): number[] {
  return [...arch.moeLayers].sort((a, b) => a - b);
}

/** Checks K against every MoE layer's floors before any pass runs (InvalidPlan naming the layer and the rule). */
export function checkKeepCount(arch: ArchConfig, K: number): void {
  for (const layer of moeLayersOf(arch)) keptPerGroup(K, keepRuleAt(arch, layer));
}

/** How the engine runs a criterion's passes (tests exercise chunking and split bindings with it). */
export interface ChoiceRunOptions extends LongTask {
  readonly forward?: Pick<GpuForwardOptions, 'chunkWindows' | 'maxBindingBytes' | 'budgets'>;
  /** The rest of the plan's settings (normalize, reconstruct, …) recorded with the criterion. */
  readonly settings?: Partial<ExpertPlanSettings>;
}

/** Scores of one MoE layer's experts, on its sequential input. */
export interface LayerExpertScores {
  readonly layer: number;
  /** Tokens routed to each expert (= frequency). */
  readonly tokens: number[];
  readonly reap: number[];
  readonly ean: number[];
  readonly frequency: number[];
  /** Σ g·‖f‖ and Σ ‖f‖ per expert (REAP = weightedNorm / tokens, EAN = norm). */
  readonly weightedNorm: number[];
  readonly norm: number[];
  /** Experts kept by the criterion that drove the run (ascending). */
  readonly kept: ExpertIndex[];
}

export interface ScoredPlan {
  readonly criterion: SaliencyCriterion;
  readonly plan: ExpertPlan;
  readonly scores: LayerExpertScores[];
}

/**
 * REAP, EAN or frequency on `windows`, layer by layer: the K highest-scoring experts of each MoE layer are kept
 * (per routing group K / n_group; equal scores keep the lower index), the others removed before the next layer runs.
 * Every layer's scores of all three criteria are returned (measured on the input the chosen criterion's plan gives).
 */
export async function scoreExpertsSequential(
  engine: GpuForwardEngine, windows: ReadonlyArray<ArrayLike<number>>, criterion: SaliencyCriterion, K: number, opts: ChoiceRunOptions = {},
): Promise<ScoredPlan> {
  const { arch } = engine;
  checkKeepCount(arch, K);
  const growing = new GrowingExpertPlan();
  const scores: LayerExpertScores[] = [];
  const layers: LayerPlan[] = [];
  await engine.forward(windows, {
    ...opts.forward,
    output: 'none',
    plan: growing,
    expertSaliency: true,
    sequential: async (c) => {
      if (!c.moe) return;
      const s = c.saliency;
      if (!s) throw new MoePruneError('InvalidPlan', `layer ${c.layer}: the engine measured no expert outputs (expertSaliency was off)`);
      const rule = keepRuleAt(arch, c.layer);
      const by = { reap: saliencyScores(s, 'reap'), ean: saliencyScores(s, 'ean'), frequency: saliencyScores(s, 'frequency') };
      const kept = keepTopK(by[criterion], K, rule);
      const keptSet = new Set(kept);
      growing.remove(c.layer, Array.from({ length: rule.n }, (_, e) => e).filter((e) => !keptSet.has(e)));
      scores.push({
        layer: c.layer, tokens: Array.from(s.tokens), reap: Array.from(by.reap), ean: Array.from(by.ean), frequency: Array.from(by.frequency),
        weightedNorm: Array.from(s.weightedNorm), norm: Array.from(s.norm), kept,
      });
      layers.push(layerPlanFromKept({ layer: c.layer, n: rule.n, topK: rule.topK }, kept, undefined, by[criterion]));
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const byLayer = Object.fromEntries(scores.map((l) => [String(l.layer), { reap: l.reap, ean: l.ean, frequency: l.frequency, tokens: l.tokens }]));
  return { criterion, plan: expertPlanFromKept(layers, K, { ...opts.settings, expertScore: criterion }, byLayer), scores };
}

/** K experts per layer drawn by mulberry32(seed), layer after layer in order (per routing group K / n_group). */
export function randomExpertPlan(arch: ArchConfig, K: number, seed: number, settings: Partial<ExpertPlanSettings> = {}): ExpertPlan {
  checkKeepCount(arch, K);
  const rand = mulberry32(seed);
  const layers = moeLayersOf(arch).map((layer) => {
    const rule = keepRuleAt(arch, layer);
    return layerPlanFromKept({ layer, n: rule.n, topK: rule.topK }, keepRandom(K, rule, rand));
  });
  return expertPlanFromKept(layers, K, { ...settings, expertScore: 'random', seed });
}

/**
 * Reconstruction error of a plan per MoE layer: ‖y − ŷ‖² / ‖y‖² of the MoE block's output (routed experts plus any
 * shared expert) over the calibration tokens, y unpruned and ŷ with the plan (its routing among the kept experts),
 * both on the input that the plan's own earlier layers produce.
 */
export async function reconstructionErrors(
  engine: GpuForwardEngine, windows: ReadonlyArray<ArrayLike<number>>, plan: WeightPlan, opts: ChoiceRunOptions = {},
): Promise<LayerReconstruction[]> {
  const r = await engine.forward(windows, {
    ...opts.forward,
    output: 'none', plan, reconstruction: true,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return r.reconstruction ?? [];
}

/** Mean of the per-layer errors (each layer counts once). */
export function meanReconstructionError(layers: readonly LayerReconstruction[]): number {
  return layers.length ? layers.reduce((a, l) => a + l.error, 0) / layers.length : 0;
}

export interface ExhaustiveLayer {
  readonly layer: number;
  readonly kept: ExpertIndex[];
  /** ‖y − ŷ‖² / ‖y‖² of the kept set on the layer's calibration input (from the per-token Gram matrices). */
  readonly error: number;
  readonly runnerUp: number | null;
  readonly subsets: number;
}

export interface ExhaustivePlan {
  readonly plan: ExpertPlan;
  readonly layers: ExhaustiveLayer[];
  /** Subsets scored over all layers. */
  readonly subsets: number;
}

/**
 * NAEE exhaustive search, layer by layer like the saliency criteria: on each MoE layer's input (earlier layers already
 * pruned), every subset of K experts (per routing group K / n_group) is scored by the block's reconstruction error and
 * the best is kept. Layers of more than EXHAUSTIVE_MAX_EXPERTS experts are refused before any pass.
 */
export async function exhaustiveSequential(engine: GpuForwardEngine, windows: ReadonlyArray<ArrayLike<number>>, K: number, opts: ChoiceRunOptions = {}): Promise<ExhaustivePlan> {
  const { arch } = engine;
  for (const layer of moeLayersOf(arch)) checkExhaustive(K, keepRuleAt(arch, layer));
  const growing = new GrowingExpertPlan();
  const out: ExhaustiveLayer[] = [];
  const layers: LayerPlan[] = [];
  await engine.forward(windows, {
    ...opts.forward,
    output: 'none',
    plan: growing,
    sequential: async (c) => {
      if (!c.moe) return;
      if (!c.expertProbe) throw new MoePruneError('InvalidPlan', `layer ${c.layer}: the engine cannot run every expert on the layer's tokens`);
      const probe = await c.expertProbe({ perToken: true });
      const rule = keepRuleAt(arch, c.layer);
      const router = moeSpecAt(arch, c.layer).router;
      const bias = router.correctionBias ? await correctionBiasOf(engine, c.layer, opts.signal) : undefined;
      const choice = exhaustiveChoice({ ...probe, gram: probe.gram!, router, correctionBias: bias }, K, rule, opts.signal);
      const keptSet = new Set(choice.kept);
      growing.remove(c.layer, Array.from({ length: rule.n }, (_, e) => e).filter((e) => !keptSet.has(e)));
      out.push({ layer: c.layer, ...choice });
      layers.push(layerPlanFromKept({ layer: c.layer, n: rule.n, topK: rule.topK }, choice.kept));
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const byLayer = Object.fromEntries(out.map((l) => [String(l.layer), { subsets: l.subsets, error: l.error, runnerUp: l.runnerUp }]));
  return { plan: expertPlanFromKept(layers, K, { ...opts.settings, expertScore: 'exhaustive' }, byLayer), layers: out, subsets: out.reduce((a, l) => a + l.subsets, 0) };
}

async function correctionBiasOf(engine: GpuForwardEngine, layer: number, signal?: AbortSignal): Promise<Float32Array> {
  const name = `model.layers.${layer}.${engine.arch.names.moeBlock}.gate.e_score_correction_bias`;
  return storedToF32(await engine.weights.rows(name, 0, undefined, signal), signal);
}

/** Which tokens each expert's mean output is taken over, and the distance between the means. */
export interface OutputSimilarityOptions {
  readonly tokens?: OutputTokens;
  readonly distance?: OutputDistance;
}

/**
 * HC-SMoE's expert-output similarity (Chen et al., 2025): every expert runs on every calibration token entering the
 * layer (the original model, one pass) and its outputs are averaged — over all those tokens (default) or, with
 * tokens 'routed', over the tokens the family's router sends to it — then experts are compared by the cosine (default)
 * or L2 distance of those averages, from their Gram matrix computed on the GPU. Returns the distance matrix per MoE
 * layer (diagonal +Inf; an expert with no routed token has mean 0: cosine distance 1, L2 distance the other's norm),
 * for the existing clustering.
 */
export async function outputSimilarityDistances(
  engine: GpuForwardEngine, windows: ReadonlyArray<ArrayLike<number>>, opts: ChoiceRunOptions & OutputSimilarityOptions = {},
): Promise<Map<number, Float64Array>> {
  const out = new Map<number, Float64Array>();
  const routed = opts.tokens === 'routed';
  await engine.forward(windows, {
    ...opts.forward,
    output: 'none',
    sequential: async (c) => {
      if (!c.moe) return;
      if (!c.expertProbe) throw new MoePruneError('InvalidPlan', `layer ${c.layer}: the engine cannot run every expert on the layer's tokens`);
      const router = moeSpecAt(engine.arch, c.layer).router;
      const bias = routed && router.correctionBias ? await correctionBiasOf(engine, c.layer, opts.signal) : undefined;
      const counts = new Float64Array(router.experts);
      const rowWeights = routed
        ? (logits: Float32Array, n: number): Float32Array => {
            const E = router.experts;
            const w = new Float32Array(E * n);
            for (let t = 0; t < n; t++)
              for (const e of route(logits.subarray(t * E, (t + 1) * E), router, bias ? { correctionBias: bias } : {}).experts) {
                w[e * n + t] = 1;
                counts[e]!++;
              }
            return w;
          }
        : undefined;
      const probe = await c.expertProbe(rowWeights ? { rowWeights } : {});
      if (!routed) counts.fill(probe.tokens);
      out.set(c.layer, outputDistances(probe.outputGram, probe.experts, counts, opts.distance ?? 'cosine'));
    },
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return out;
}

/**
 * Distances between the experts' mean outputs m_e = S_e / count_e from the Gram of their output sums S: cosine
 * (1 − cos, scale-free) or L2 ‖m_i − m_j‖₂ = √(M_ii + M_jj − 2 M_ij), M_ij = G_ij / (count_i count_j). An expert
 * with count 0 has mean 0.
 */
export function outputDistances(G: ArrayLike<number>, E: number, counts: ArrayLike<number>, distance: OutputDistance): Float64Array {
  const M = Float64Array.from({ length: E * E }, (_, k) => {
    const ci = counts[Math.floor(k / E)]!;
    const cj = counts[k % E]!;
    return ci > 0 && cj > 0 ? G[k]! / (ci * cj) : 0;
  });
  if (distance === 'cosine') return cosineDistances(M, E);
  const D = new Float64Array(E * E);
  for (let i = 0; i < E; i++)
    for (let j = 0; j < E; j++) D[i * E + j] = i === j ? Infinity : Math.sqrt(Math.max(0, M[i * E + i]! + M[j * E + j]! - 2 * M[i * E + j]!));
  for (let i = 0; i < E; i++) for (let j = i + 1; j < E; j++) D[j * E + i] = D[i * E + j]!;
  return D;
}

/** 1 − G_ij / √(G_ii G_jj) from a Gram matrix, clamped to [0, 2], diagonal +Inf; zero vectors are at distance 1. */
export function cosineDistances(G: ArrayLike<number>, E: number): Float64Array {
  const D = new Float64Array(E * E);
  for (let i = 0; i < E; i++)
    for (let j = 0; j < E; j++) {
      if (i === j) {
        D[i * E + j] = Infinity;
        continue;
      }
      const den = Math.sqrt(G[i * E + i]! * G[j * E + j]!);
      D[i * E + j] = den > 0 ? Math.min(2, Math.max(0, 1 - G[i * E + j]! / den)) : 1;
    }
  // Exactly symmetric: the clustering's tie order reads both triangles.
  for (let i = 0; i < E; i++) for (let j = i + 1; j < E; j++) D[j * E + i] = D[i * E + j]!;
  return D;
}
