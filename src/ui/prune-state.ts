/**
 * State of the expert-pruning plan panel. Router rows and their GPU squared distances are computed once per
 * model and cached, with the final distance matrices for each `normalize` choice; every settings change only
 * re-runs the (pure, fast) clustering, so the plan follows the controls instantly. Co-activation (and mixed)
 * similarity reads the page's calibration statistics, attached by the panel through `attachCalibration`.
 */
import { create } from 'zustand';
import type { CalibrationStats } from '../eval/gpu/stats.ts';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import { formatCountRange } from '../core/format.ts';
import type { FileSet } from '../formats/bytes.ts';
import { planPrunedTensors } from '../export/tensor-plan.ts';
import { catalogueCheckpoint, type Catalogue } from '../models/catalogue.ts';
import { expertCountProblems, expertCountsProblems } from '../models/families.ts';
import { coactivationFromStats } from '../pipeline/coactivation.ts';
import { layerInputs, loadRouters, routerSquaredDistancesGpu } from '../pipeline/expert-prune.ts';
import { DEFAULT_EXPERT_PLAN_SETTINGS, layerDistances, planExpertPruning, resolveExpertPlanSettings, type ExpertLayerInput, type ExpertPlan, type ExpertPlanSettings, type SimilarityMode } from '../prune/experts/plan.ts';
import { coactivationDistance, mixedDistance } from '../prune/experts/similarity.ts';
import { DEFAULT_KAPPA, type ReconstructRule } from '../prune/experts/representative.ts';
import { getGpuContext, useApp } from './state.ts';

export interface PlanControls {
  readonly mode: 'uniform' | 'global';
  /** Uniform: experts kept in every MoE layer. */
  readonly keep: number;
  /** Global: the target is a total count or an expert sparsity. */
  readonly globalBy: 'total' | 'sparsity';
  readonly targetTotal: number;
  /** Percent of routed experts removed over all MoE layers. */
  readonly sparsityPct: number;
  readonly normalize: boolean;
  /** 'coactivation' / 'mixed' need a calibration run of this model (see `attachCalibration`). */
  readonly similarity: SimilarityMode;
  /** μ of the mixed distance. */
  readonly mixWeight: number;
  readonly reconstruct: ReconstructRule;
  readonly kappa: number;
}

/** Co-activation per MoE layer from the page's calibration run (planner form: zero diagonal). */
export interface PlanCalibration {
  readonly stats: CalibrationStats;
  /** Name of the calibration text (recorded in the export's report). */
  readonly textName: string;
  readonly byLayer: Map<number, Float64Array>;
}

/** What the plan means for the checkpoint: counts from planPrunedTensors, without reading any weights. */
export interface PlanNumbers {
  readonly paramsBefore: number;
  readonly paramsAfter: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly expertsBefore: number;
  readonly expertsAfter: number;
  /** Experts per layer when every layer keeps the same count, else null. */
  readonly uniformK: number | null;
}

export interface PlanModel {
  readonly fileSet: FileSet;
  readonly cat: Catalogue;
  readonly inputs: ExpertLayerInput[];
  /** Where the router distances were computed. */
  readonly device: string;
  readonly distancesMs: number;
}

export interface PlanState {
  /** The model the cache belongs to (the current model's FileSet). */
  source: FileSet | null;
  preparing: Progress | null;
  model: PlanModel | null;
  prepareError: string | null;
  controls: PlanControls | null;
  plan: ExpertPlan | null;
  planError: string | null;
  numbers: PlanNumbers | null;
  /** Why the plan cannot be written at all (empty: it can; a non-uniform plan only as a per-layer variant). */
  exportProblems: string[];
  /** Index into plan.layers of the layer shown in the heatmap. */
  layerIndex: number;
  planMs: number;
  /** The calibration of this model, when one has run. */
  calibration: PlanCalibration | null;
}

/** The state of a model whose plan has not been prepared yet. */
const EMPTY: PlanState = {
  source: null,
  preparing: null,
  model: null,
  prepareError: null,
  controls: null,
  plan: null,
  planError: null,
  numbers: null,
  exportProblems: [],
  layerIndex: 0,
  planMs: 0,
  calibration: null,
};

export const usePlan = create<PlanState>(() => EMPTY);

/** Final distance matrices per normalize choice, computed once per model. */
const distanceCache = new WeakMap<PlanModel, Map<boolean, Float64Array[]>>();

function computeDistances(inputs: readonly ExpertLayerInput[], normalize: boolean): Float64Array[] {
  const s = resolveExpertPlanSettings({ normalize, similarity: 'router' });
  return inputs.map((input) => layerDistances(input, s));
}

function distancesFor(model: PlanModel, normalize: boolean): Float64Array[] {
  let m = distanceCache.get(model);
  if (!m) distanceCache.set(model, (m = new Map()));
  let d = m.get(normalize);
  if (!d) m.set(normalize, (d = computeDistances(model.inputs, normalize)));
  return d;
}

/** The smallest count ≥ half the experts that the family's routing accepts (top-k, DeepSeek groups). */
export function defaultKeep(cat: Catalogue): number {
  const n = cat.summary.expertsPerLayer;
  for (let k = Math.max(1, Math.ceil(n / 2)); k <= n; k++) if (expertCountProblems(cat.adapter, cat.config, k).length === 0) return k;
  return n;
}

export function defaultControls(cat: Catalogue): PlanControls {
  const keep = defaultKeep(cat);
  const n = cat.summary.expertsPerLayer;
  const layers = cat.moeLayers.length;
  return {
    mode: 'uniform',
    keep,
    globalBy: 'sparsity',
    targetTotal: keep * layers,
    sparsityPct: Math.round((100 * (n - keep)) / n),
    normalize: DEFAULT_EXPERT_PLAN_SETTINGS.normalize,
    similarity: DEFAULT_EXPERT_PLAN_SETTINGS.similarity,
    mixWeight: DEFAULT_EXPERT_PLAN_SETTINGS.mixWeight,
    reconstruct: 'none',
    kappa: DEFAULT_KAPPA.none,
  };
}

/** The core settings the controls stand for. */
export function planSettings(c: PlanControls, cat: Catalogue): Partial<ExpertPlanSettings> {
  const common = { similarity: c.similarity, ...(c.similarity === 'mixed' && { mixWeight: c.mixWeight }), normalize: c.normalize, reconstruct: c.reconstruct, kappa: c.kappa };
  if (c.mode === 'uniform') return { ...common, mode: 'uniform', keepPerLayer: c.keep };
  const all = cat.summary.expertsPerLayer * cat.moeLayers.length;
  const target = c.globalBy === 'total' ? c.targetTotal : Math.round(all * (1 - c.sparsityPct / 100));
  return { ...common, mode: 'global', targetTotal: target, search: 'exact' };
}

/** The distance matrices the controls ask for: router ones from the cache, co-activation ones from the calibration. */
function similarityDistances(model: PlanModel, c: PlanControls, calibration: PlanCalibration | null): Float64Array[] {
  if (c.similarity === 'router') return distancesFor(model, c.normalize);
  if (!calibration) throw new MoePruneError('InvalidPlan', `${c.similarity === 'mixed' ? 'mixed' : 'co-activation'} similarity needs a calibration run of this model; run calibration first`);
  const router = c.similarity === 'mixed' ? distancesFor(model, c.normalize) : null;
  return model.inputs.map((l, i) => {
    const a = calibration.byLayer.get(l.layer);
    if (!a || a.length !== l.n * l.n) throw new MoePruneError('InvalidPlan', `layer ${l.layer}: the calibration statistics hold no ${l.n}×${l.n} co-activation matrix for this layer`);
    return router ? mixedDistance(router[i]!, a, l.n, c.mixWeight) : coactivationDistance(a, l.n);
  });
}

function computePlan(model: PlanModel, c: PlanControls, calibration: PlanCalibration | null = usePlan.getState().calibration): Pick<PlanState, 'plan' | 'planError' | 'numbers' | 'exportProblems' | 'planMs'> {
  const t0 = performance.now();
  const { cat } = model;
  try {
    const distances = similarityDistances(model, c, calibration);
    const inputs = model.inputs.map((l, i) => ({ layer: l.layer, n: l.n, d: l.d, topK: l.topK, ...(l.groups && { groups: l.groups }), distances: distances[i]! }));
    const plan = planExpertPruning(inputs, planSettings(c, cat));
    const tensors = planPrunedTensors(cat, plan.layers);
    const counts = new Set(tensors.expertsPerLayer.values());
    const uniformK = counts.size === 1 ? [...counts][0]! : null;
    const exportProblems = expertCountsProblems(cat.adapter, cat.config, counts);
    return {
      plan,
      planError: null,
      exportProblems,
      numbers: {
        paramsBefore: cat.summary.params.total,
        paramsAfter: tensors.params,
        bytesBefore: cat.summary.tensorBytes,
        bytesAfter: tensors.bytes,
        expertsBefore: plan.totalExperts,
        expertsAfter: plan.totalKept,
        uniformK,
      },
      planMs: performance.now() - t0,
    };
  } catch (e) {
    return { plan: null, planError: asUserError(e, 'InvalidPlan').text, numbers: null, exportProblems: [], planMs: performance.now() - t0 };
  }
}

/** Updates the controls and re-plans at once (clustering only; distances come from the cache). */
/** "4", or "3–5" when the plan's layers keep different numbers of experts. */
export function expertsRange(plan: ExpertPlan, dash = '–'): string {
  return formatCountRange(
    plan.layers.map((l) => l.kept.length),
    dash,
  );
}

/** The uniform count closest to a global plan's average (never below top-k): what "use uniform" switches to. */
export function nearestUniformK(): number | null {
  const { model, plan } = usePlan.getState();
  if (!model || !plan || plan.layers.length === 0) return null;
  const n = model.cat.summary.expertsPerLayer;
  return Math.min(n, Math.max(model.cat.summary.topK, Math.round(plan.totalKept / plan.layers.length)));
}

export function setControls(patch: Partial<PlanControls>): void {
  const { model, controls } = usePlan.getState();
  if (!model || !controls) return;
  const next = { ...controls, ...patch };
  if (patch.reconstruct !== undefined && patch.kappa === undefined) next.kappa = DEFAULT_KAPPA[patch.reconstruct];
  const layerIndex = Math.min(usePlan.getState().layerIndex, Math.max(0, model.inputs.length - 1));
  usePlan.setState({ controls: next, layerIndex, ...computePlan(model, next) });
}

/**
 * Attaches (or, with null, detaches) the current model's calibration statistics. Without them a co-activation
 * or mixed plan falls back to router similarity, so the plan never shows distances of another calibration.
 */
export function attachCalibration(stats: CalibrationStats | null, textName = ''): void {
  const st = usePlan.getState();
  if ((st.calibration?.stats ?? null) === stats) return;
  const calibration = stats ? { stats, textName, byLayer: coactivationFromStats(stats) } : null;
  const { model, controls } = st;
  if (!model || !controls) {
    usePlan.setState({ calibration });
    return;
  }
  const next = calibration || controls.similarity === 'router' ? controls : { ...controls, similarity: 'router' as const };
  usePlan.setState({ calibration, controls: next, ...computePlan(model, next, calibration) });
}

/** Report settings of the calibration a co-activation / mixed plan used (the CLI records the same keys). */
export function planCalibrationSettings(c: PlanControls): { calibration?: Record<string, unknown> } {
  const cal = usePlan.getState().calibration;
  if (c.similarity === 'router' || !cal) return {};
  return { calibration: { text: cal.textName, samples: cal.stats.windows, seq_len: cal.stats.seqLen, tokens: cal.stats.tokens } };
}

export function selectLayer(index: number): void {
  usePlan.setState({ layerIndex: index });
}

/** Resolves once the GPU probe at start-up has finished (so a model loaded at once still uses the GPU). */
function gpuSettled(): Promise<void> {
  if (useApp.getState().gpu.status !== 'pending') return Promise.resolve();
  return new Promise((resolve) => {
    const stop = useApp.subscribe((s) => {
      if (s.gpu.status !== 'pending') {
        stop();
        resolve();
      }
    });
  });
}

/** Reads the routers and computes their distances for `fileSet` (once), then plans with the default controls. */
/** Cancels the preparation of the previous model when another one is loaded: its reads and GPU work stop. */
let preparing: AbortController | null = null;

export async function preparePlan(fileSet: FileSet): Promise<void> {
  if (usePlan.getState().source === fileSet) return;
  preparing?.abort();
  const ac = (preparing = new AbortController());
  const signal = ac.signal;
  usePlan.setState({ ...EMPTY, source: fileSet, preparing: { phase: 'reading headers', done: 0, total: 1, unit: 'steps' } });
  const still = (): boolean => usePlan.getState().source === fileSet && !signal.aborted;
  const onProgress = (p: Progress): void => {
    if (still()) usePlan.setState({ preparing: p });
  };
  try {
    const cat = await catalogueCheckpoint(fileSet, { signal });
    if (cat.moeLayers.length === 0) throw new MoePruneError('InvalidPlan', 'this checkpoint has no MoE layer, so there are no experts to prune');
    const routers = await loadRouters(cat, { onProgress, signal });
    await gpuSettled();
    const gpu = getGpuContext();
    const t0 = performance.now();
    let squared: Float32Array[] | undefined;
    let device = 'CPU';
    if (gpu) {
      try {
        squared = await routerSquaredDistancesGpu(gpu, routers, { onProgress, signal });
        device = `GPU (${gpu.adapter.label || 'WebGPU'})`;
      } catch (e) {
        if (signal.aborted) throw e;
        // A lost or failing device must not block planning: the CPU computes the same distances.
        squared = undefined;
      }
    }
    const inputs = layerInputs(cat, routers, squared);
    const controls = defaultControls(cat);
    const first = computeDistances(inputs, controls.normalize);
    const model: PlanModel = { fileSet, cat, inputs, device, distancesMs: performance.now() - t0 };
    distanceCache.set(model, new Map([[controls.normalize, first]]));
    if (!still()) return;
    usePlan.setState({ model, controls, preparing: null, ...computePlan(model, controls) });
  } catch (e) {
    if (still()) usePlan.setState({ preparing: null, prepareError: asUserError(e).text });
  }
}

/** Replaces the plan after export resolved its representatives, if the controls did not change meanwhile. */
export function adoptResolvedPlan(before: ExpertPlan, resolved: ExpertPlan): void {
  if (usePlan.getState().plan === before) usePlan.setState({ plan: resolved });
}
