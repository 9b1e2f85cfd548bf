/**
 * Every expert-choice criterion on one calibration, side by side (`moe-prune compare`, `PruneJob.compareExpertChoices`):
 * STUN clustering (router, co-activation, mixed), the saliency criteria (REAP, EAN, frequency), a seeded random choice
 * — each keeping K experts per MoE layer — then for each plan the reconstruction error of every MoE layer on the same
 * calibration and, with evaluation windows, held-out perplexity with the plan applied on the fly. Times per criterion.
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import type { LayerReconstruction } from '../forward/expert-signals.ts';
import { expertPlanEdits } from '../forward/plan.ts';
import type { PerplexityResult } from '../eval/perplexity.ts';
import type { Windows } from '../eval/windows.ts';
import { resolveExpertPlanSettings, type ExpertPlan, type SimilarityMode } from '../prune/experts/plan.ts';
import type { SaliencyCriterion } from '../prune/experts/saliency.ts';
import {
  checkKeepCount, meanReconstructionError, randomExpertPlan, reconstructionErrors, scoreExpertsSequential, type LayerExpertScores,
} from './expert-choice.ts';
import type { Calibration, PruneJob } from './job.ts';

export const CRITERIA = ['stun-router', 'stun-coactivation', 'stun-mixed', 'reap', 'ean', 'frequency', 'random'] as const;
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

async function choose(job: PruneJob, calib: Calibration, c: ChoiceCriterion, K: number, seed: number, task: LongTask): Promise<{ plan: ExpertPlan; scores: LayerExpertScores[] | null }> {
  const similarity = STUN[c];
  if (similarity) return { plan: await job.planExperts(resolveExpertPlanSettings({ mode: 'uniform', keepPerLayer: K, similarity }), calib, task), scores: null };
  const saliency = SALIENCY[c];
  const engine = await job.engine(task.signal);
  if (saliency) {
    const r = await scoreExpertsSequential(engine, calib.windows.windows, saliency, K, task);
    return { plan: r.plan, scores: r.scores };
  }
  return { plan: randomExpertPlan(engine.arch, K, seed), scores: null };
}

/** Runs the criteria one after the other on the job's engine (GPU only). */
export async function compareExpertChoices(job: PruneJob, calib: Calibration, K: number, opts: ComparisonOptions = {}): Promise<Comparison> {
  const criteria = opts.criteria ?? CRITERIA;
  const seed = opts.seed ?? 0;
  const engine = await job.engine(opts.signal);
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
    const { plan, scores } = await choose(job, calib, c, K, seed, task(c));
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
      seconds: { choose: (t1 - t0) / 1000, reconstruction: (t2 - t1) / 1000, perplexity: ev ? (t3 - t2) / 1000 : null },
    });
  }
  return { keepPerLayer: K, seed, original, results };
}
