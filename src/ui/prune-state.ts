/**
 * State of the expert-pruning plan panel. Router rows and their GPU squared distances are computed once per
 * model and cached, with the final distance matrices for each `normalize` choice; every settings change only
 * re-runs the (pure, fast) clustering, so the plan follows the controls instantly. Co-activation (and mixed)
 * similarity reads the page's calibration statistics, attached by the panel through `attachCalibration`.
 */
import { create } from 'zustand';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import { formatCountRange } from '../core/format.ts';
import type { FileSet } from '../formats/bytes.ts';
import { planPrunedTensors } from '../export/tensor-plan.ts';
import type { Catalogue } from '../models/catalogue.ts';
import { expertCountProblems, expertCountsProblems } from '../models/families.ts';
import {
  coactivationFromStats, DEFAULT_EXPERT_PLAN_SETTINGS, DEFAULT_KAPPA, resolveJobSettings,
  type CalibrationStats, type ExpertPlan, type ExpertPlanSettings, type ExpertScore, type OutputDistance, type OutputTokens, type PruneJob, type ReconstructRule,
  type SimilarityMode,
} from '../pipeline/job.ts';
import { jobFor } from './job-state.ts';
import { getGpuContext } from './state.ts';

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
  /** A score-based criterion (REAP, EAN, frequency, exhaustive, random) instead of clustering; null: clustering. */
  readonly expertScore: ExpertScore | null;
  readonly seed: number;
  readonly outputTokens: OutputTokens;
  readonly outputDistance: OutputDistance;
  /**
   * A plan taken from the comparison panel ("Use as plan"): shown as is, since its criterion needs calibration passes
   * the synchronous draft cannot run. Stage 2 and the export re-plan it from the settings (`planSettings`). Any
   * other control change drops it.
   */
  readonly adopted: ExpertPlan | null;
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
  /** The model's job: it read the routers and keeps the planner inputs (`draftPlan` re-plans from them). */
  readonly job: PruneJob;
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
    expertScore: null,
    seed: 0,
    outputTokens: DEFAULT_EXPERT_PLAN_SETTINGS.outputTokens,
    outputDistance: DEFAULT_EXPERT_PLAN_SETTINGS.outputDistance,
    adopted: null,
  };
}

/** The core settings the controls stand for. */
export function planSettings(c: PlanControls, cat: Catalogue): Partial<ExpertPlanSettings> {
  const common = {
    similarity: c.similarity, ...(c.similarity === 'mixed' && { mixWeight: c.mixWeight }), normalize: c.normalize, reconstruct: c.reconstruct, kappa: c.kappa,
    ...(c.expertScore && { expertScore: c.expertScore, seed: c.seed }),
    ...(c.similarity === 'output' && { outputTokens: c.outputTokens, outputDistance: c.outputDistance }),
  };
  if (c.mode === 'uniform') return { ...common, mode: 'uniform', keepPerLayer: c.keep };
  const all = cat.summary.expertsPerLayer * cat.moeLayers.length;
  const target = c.globalBy === 'total' ? c.targetTotal : Math.round(all * (1 - c.sparsityPct / 100));
  return { ...common, mode: 'global', targetTotal: target, search: 'exact' };
}

/** The job's full expert settings for the controls (defaults filled in as the CLI fills them). */
export function expertSettings(c: PlanControls, cat: Catalogue): ExpertPlanSettings {
  return resolveJobSettings({ experts: planSettings(c, cat) }).experts;
}

function computePlan(model: PlanModel, c: PlanControls, calibration: PlanCalibration | null = usePlan.getState().calibration): Pick<PlanState, 'plan' | 'planError' | 'numbers' | 'exportProblems' | 'planMs'> {
  const t0 = performance.now();
  const { cat } = model;
  try {
    // Router distances come from the job's cache; co-activation from the calibration attached below.
    const plan = c.adopted ?? model.job.draftPlan(expertSettings(c, cat), c.similarity === 'router' ? undefined : calibration?.byLayer);
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
  // Moving any control leaves a plan taken from the comparison: back to clustering (router similarity for output).
  const next = { ...controls, expertScore: null, adopted: null, ...(controls.similarity === 'output' && { similarity: 'router' as const }), ...patch };
  if (patch.reconstruct !== undefined && patch.kappa === undefined) next.kappa = DEFAULT_KAPPA[patch.reconstruct];
  const layerIndex = Math.min(usePlan.getState().layerIndex, Math.max(0, model.cat.moeLayers.length - 1));
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

/**
 * Makes a compared criterion's plan (uniform K) the current plan: the controls take its settings (criterion, K,
 * similarity, seed), so stage 2 and the export re-plan it the same way, and the plan on screen is the plan itself.
 */
export function adoptComparedPlan(plan: ExpertPlan): void {
  const { model, controls } = usePlan.getState();
  if (!model || !controls || plan.settings.keepPerLayer === null) return;
  const s = plan.settings;
  const next: PlanControls = {
    ...controls,
    mode: 'uniform',
    keep: s.keepPerLayer!,
    similarity: s.similarity,
    normalize: s.normalize,
    reconstruct: s.reconstruct,
    kappa: s.kappa,
    expertScore: s.expertScore,
    seed: s.seed,
    outputTokens: s.outputTokens,
    outputDistance: s.outputDistance,
    adopted: plan,
  };
  usePlan.setState({ controls: next, ...computePlan(model, next) });
}

export function selectLayer(index: number): void {
  usePlan.setState({ layerIndex: index });
}

/** Reads the routers and computes their distances for `fileSet` (once, on the model's job), then plans with the default controls. */
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
    const job = await jobFor(fileSet);
    const { cat } = job;
    if (cat.moeLayers.length === 0) throw new MoePruneError('InvalidPlan', 'this checkpoint has no MoE layer, so there are no experts to prune');
    const { device, ms } = await job.prepareDraft({ onProgress, signal });
    const gpu = job.gpu ?? getGpuContext();
    const controls = defaultControls(cat);
    const model: PlanModel = { fileSet, cat, job, device: device === 'gpu' ? `GPU (${gpu?.adapter.label || 'WebGPU'})` : 'CPU', distancesMs: ms };
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
