/**
 * Every expert-choice criterion on one calibration, side by side (`moe-prune compare`, `PruneJob.compareExpertChoices`):
 * STUN clustering (router, co-activation, mixed), the saliency criteria (REAP, EAN, frequency), a seeded random choice,
 * NAEE's exhaustive search (layers of ≤ 16 experts) and HC-SMoE's expert-output similarity fed to the STUN clustering —
 * each keeping K experts per MoE layer — then for each plan the reconstruction error of every MoE layer on the same
 * calibration and, with evaluation windows, held-out perplexity with the plan applied on the fly. Times per criterion.
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import type { LayerReconstruction } from '../forward/expert-signals.ts';
import { expertPlanEdits } from '../forward/plan.ts';
import type { PerplexityResult } from '../eval/perplexity.ts';
import type { Windows } from '../eval/windows.ts';
import { planExpertPruning, resolveExpertPlanSettings, type ExpertPlan, type ExpertPlanSettings, type SimilarityMode } from '../prune/experts/plan.ts';
import { EXHAUSTIVE_MAX_EXPERTS } from '../prune/experts/exhaustive.ts';
import type { SaliencyCriterion } from '../prune/experts/saliency.ts';
import {
  checkKeepCount, exhaustiveSequential, keepRuleAt, meanReconstructionError, moeLayersOf, outputSimilarityDistances, randomExpertPlan, reconstructionErrors,
  scoreExpertsSequential, type ExhaustiveLayer, type LayerExpertScores,
} from './expert-choice.ts';
import { layerInputs, resolvePlan } from './expert-prune.ts';
import type { Calibration, PruneJob } from './job.ts';

export const CRITERIA = ['stun-router', 'stun-coactivation', 'stun-mixed', 'reap', 'ean', 'frequency', 'random', 'exhaustive', 'output'] as const;
export type ChoiceCriterion = (typeof CRITERIA)[number];

const STUN: Partial<Record<ChoiceCriterion, SimilarityMode>> = { 'stun-router': 'router', 'stun-coactivation': 'coactivation', 'stun-mixed': 'mixed' };
const SALIENCY: Partial<Record<ChoiceCriterion, SaliencyCriterion>> = { reap: 'reap', ean: 'ean', frequency: 'frequency' };

export interface CriterionResult {
  readonly criterion: ChoiceCriterion;
  readonly plan: ExpertPlan;
  /** Kept original expert indices per MoE layer (ascending). */
  readonly kept: Record<string, number[]>;
  readonly reconstruction: LayerReconstruction[];
  /** Mean over MoE layers of ‖y − ŷ‖² / ‖y‖². */
  readonly meanError: number;
  readonly perplexity: PerplexityResult | null;
  /** REAP / EAN / frequency runs: every layer's scores of all three, on the run's own sequential input. */
  readonly scores: LayerExpertScores[] | null;
  /** Exhaustive: per layer the subsets scored, the best error (from the Gram matrices) and the runner-up. */
  readonly exhaustive: { readonly subsets: number; readonly layers: ExhaustiveLayer[] } | null;
  /** Seconds to choose (calibration passes included), to measure the reconstruction, and the perplexity. */
  readonly seconds: { readonly choose: number; readonly reconstruction: number; readonly perplexity: number | null };
}

export interface ComparisonOptions extends LongTask {
  readonly criteria?: readonly ChoiceCriterion[];
  /** Seed of the random criterion (mulberry32). Default 0. */
  readonly seed?: number;
  /** Held-out windows: perplexity of the original model and of each plan. */
  readonly evaluation?: Windows | null;
}

export interface Comparison {
  readonly keepPerLayer: number;
  readonly seed: number;
  /** Criteria left out of the default list, and why (exhaustive on layers of more than 16 experts). */
  readonly skipped: Array<{ readonly criterion: ChoiceCriterion; readonly reason: string }>;
  readonly original: { readonly perplexity: PerplexityResult | null };
  readonly results: CriterionResult[];
}

/** Parses a comma-separated list of criteria (`all` for every one), in the order given. */
export function parseCriteria(text: string): ChoiceCriterion[] {
  if (text.trim() === 'all') return [...CRITERIA];
  const out: ChoiceCriterion[] = [];
  for (const raw of text.split(',')) {
    const c = raw.trim();
    if (!(CRITERIA as readonly string[]).includes(c)) throw new MoePruneError('InvalidArgument', `--criteria: unknown criterion "${c}"; choose from ${CRITERIA.join(', ')} (or all)`);
    if (!out.includes(c as ChoiceCriterion)) out.push(c as ChoiceCriterion);
  }
  if (!out.length) throw new MoePruneError('InvalidArgument', '--criteria names no criterion');
  return out;
}

/**
 * HC-SMoE's choice: distances of the experts' mean outputs on the calibration (original model; all or routed tokens,
 * cosine or L2 as the settings say) replace the router distances of STUN's clustering (uniform or global);
 * representatives of ≥ 3-member clusters are resolved as for STUN.
 */
export async function outputSimilarityPlan(job: PruneJob, calib: Calibration, settings: ExpertPlanSettings, opts: LongTask = {}): Promise<ExpertPlan> {
  const engine = await job.engine(opts.signal);
  if (settings.mode === 'uniform') checkKeepCount(engine.arch, settings.keepPerLayer ?? 0);
  const { routers, squared } = await job.prepare(opts);
  const D = await outputSimilarityDistances(engine, calib.windows.windows, { ...opts, tokens: settings.outputTokens, distance: settings.outputDistance });
  const inputs = layerInputs(job.cat, routers, squared).map((l) => {
    const d = D.get(l.layer);
    if (!d) throw new MoePruneError('InvalidPlan', `layer ${l.layer}: the calibration pass measured no expert outputs`);
    return { ...l, distances: d };
  });
  return resolvePlan(job.cat, planExpertPruning(inputs, { ...settings, similarity: 'output' }), job.gpu, opts, job.cpuWorkers);
}

/**
 * Plans of the criteria that need the engine's calibration passes — a score (`expertScore`: REAP, EAN, frequency,
 * exhaustive, random) keeping the K best experts per layer, or output similarity — from the job's settings
 * (`PruneJob.planExperts` hands them here). Score-based criteria take uniform K only.
 */
export async function planByCriterion(job: PruneJob, settings: ExpertPlanSettings, calib: Calibration | null, opts: LongTask = {}): Promise<ExpertPlan> {
  const score = settings.expertScore;
  const name = score ? `expert score "${score}"` : `similarity "${settings.similarity}"`;
  if (score && (settings.mode !== 'uniform' || settings.keepPerLayer === null))
    throw new MoePruneError('InvalidArgument', `${name} keeps the K best experts of every layer: give experts per layer (uniform mode), not a global target`);
  if (score === 'random') return randomExpertPlan((await job.engine(opts.signal)).arch, settings.keepPerLayer!, settings.seed, settings);
  if (!calib) throw new MoePruneError('InvalidArgument', `${name} needs a calibration text: it is measured on the model's own outputs for it`);
  if (!score) return outputSimilarityPlan(job, calib, settings, opts);
  const engine = await job.engine(opts.signal);
  const K = settings.keepPerLayer!;
  if (score === 'exhaustive') return (await exhaustiveSequential(engine, calib.windows.windows, K, { ...opts, settings })).plan;
  return (await scoreExpertsSequential(engine, calib.windows.windows, score, K, { ...opts, settings })).plan;
}

/** The plan with every MoE layer's reconstruction error on the calibration (recorded in the report). GPU only. */
export async function withReconstruction(job: PruneJob, plan: ExpertPlan, calib: Calibration, opts: LongTask = {}): Promise<ExpertPlan> {
  const r = await reconstructionErrors(await job.engine(opts.signal), calib.windows.windows, expertPlanEdits(plan.layers), opts);
  return { ...plan, reconstruction: r.map((l) => ({ layer: l.layer, error: l.error })) };
}

type Chosen = { plan: ExpertPlan; scores: LayerExpertScores[] | null; exhaustive: CriterionResult['exhaustive'] };

async function choose(job: PruneJob, calib: Calibration, c: ChoiceCriterion, K: number, seed: number, task: LongTask): Promise<Chosen> {
  const similarity = STUN[c];
  if (similarity) return { plan: await job.planExperts(resolveExpertPlanSettings({ mode: 'uniform', keepPerLayer: K, similarity }), calib, task), scores: null, exhaustive: null };
  const saliency = SALIENCY[c];
  const engine = await job.engine(task.signal);
  if (saliency) {
    const r = await scoreExpertsSequential(engine, calib.windows.windows, saliency, K, task);
    return { plan: r.plan, scores: r.scores, exhaustive: null };
  }
  if (c === 'exhaustive') {
    const r = await exhaustiveSequential(engine, calib.windows.windows, K, task);
    return { plan: r.plan, scores: null, exhaustive: { subsets: r.subsets, layers: r.layers } };
  }
  if (c === 'output') return { plan: await outputSimilarityPlan(job, calib, resolveExpertPlanSettings({ mode: 'uniform', keepPerLayer: K, similarity: 'output' }), task), scores: null, exhaustive: null };
  return { plan: randomExpertPlan(engine.arch, K, seed), scores: null, exhaustive: null };
}

/** Why a criterion cannot run on this model (left out of the default list), or null. */
function unavailable(c: ChoiceCriterion, arch: Parameters<typeof moeLayersOf>[0]): string | null {
  if (c !== 'exhaustive') return null;
  const big = moeLayersOf(arch).find((l) => keepRuleAt(arch, l).n > EXHAUSTIVE_MAX_EXPERTS);
  return big === undefined ? null : `layer ${big} has ${keepRuleAt(arch, big).n} experts; exhaustive search takes layers of at most ${EXHAUSTIVE_MAX_EXPERTS}`;
}

/** Runs the criteria one after the other on the job's engine (GPU only). */
export async function compareExpertChoices(job: PruneJob, calib: Calibration, K: number, opts: ComparisonOptions = {}): Promise<Comparison> {
  const seed = opts.seed ?? 0;
  const engine = await job.engine(opts.signal);
  // The default list leaves out what cannot run here (and says so); a criterion asked for by name is refused instead.
  const skipped: Comparison['skipped'] = [];
  const criteria = opts.criteria ?? CRITERIA.filter((c) => {
    const why = unavailable(c, engine.arch);
    if (why) skipped.push({ criterion: c, reason: why });
    return !why;
  });
  // Every refusal (K against a layer's floors) before the first pass.
  checkKeepCount(engine.arch, K);
  const sink = opts.onProgress;
  const task = (phase: string): LongTask => ({ ...(opts.signal ? { signal: opts.signal } : {}), ...(sink ? { onProgress: (p) => sink({ ...p, phase: `${phase}: ${p.phase}` }) } : {}) });
  const ev = opts.evaluation ?? null;
  const original = { perplexity: ev ? await job.perplexity(ev, undefined, task('original model')) : null };
  const results: CriterionResult[] = [];
  for (const c of criteria) {
    throwIfAborted(opts.signal);
    const t0 = performance.now();
    const { plan, scores, exhaustive } = await choose(job, calib, c, K, seed, task(c));
    const t1 = performance.now();
    const edits = expertPlanEdits(plan.layers);
    const reconstruction = await reconstructionErrors(engine, calib.windows.windows, edits, task(`${c} reconstruction`));
    const t2 = performance.now();
    const perplexity = ev ? await job.perplexity(ev, edits, task(`${c} perplexity`)) : null;
    const t3 = performance.now();
    results.push({
      criterion: c,
      plan,
      kept: Object.fromEntries(plan.layers.map((l) => [String(l.layer), [...l.kept]])),
      reconstruction,
      meanError: meanReconstructionError(reconstruction),
      perplexity,
      scores,
      exhaustive,
      seconds: { choose: (t1 - t0) / 1000, reconstruction: (t2 - t1) / 1000, perplexity: ev ? (t3 - t2) / 1000 : null },
    });
  }
  return { keepPerLayer: K, seed, skipped, original, results };
}
