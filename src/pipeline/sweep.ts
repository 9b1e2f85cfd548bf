/**
 * The trade-off sweep: held-out perplexity of a grid of settings (total sparsity S × the share of S taken by whole
 * experts), each measured on the fly (expert plan and stage-2 masks applied by the forward pass, nothing written),
 * so a user sees where STUN beats unstructured-only and expert-only pruning on their own model. A point is measured
 * exactly as `moe-prune prune` with the same settings would write it and `moe-prune eval` would measure the result.
 *
 * Words used here:
 *  - expertSparsity: the share of routed experts removed (1 − K/n), as the CLI's --expert-sparsity;
 *  - unstructuredSparsity: s_u, the ratio stage 2 prunes of what the experts left in the scope;
 *  - totalSparsity: achieved over the stage-2 scope, experts included (s_e + (1 − s_e)·s_u).
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask, Progress } from '../core/progress.ts';
import type { Windows } from '../eval/windows.ts';
import { planPrunedTensors } from '../export/tensor-plan.ts';
import { expertCountProblems } from '../models/families.ts';
import type { ExpertPlan, ExpertPlanSettings } from '../prune/experts/plan.ts';
import { needsCalibration, UNSTRUCTURED_DEFAULTS, type UnstructuredMethod, type UnstructuredSettings } from '../prune/unstructured/settings.ts';
import type { TaskFile } from '../eval/tasks/items.ts';
import type { TaskOptions } from './task-eval.ts';
import type { StageTwoResult } from './unstructured.ts';
import { PruneJob, resolveJobSettings, type Calibration, type CalibrationSpec, type JobSettings, type TextInput } from './job.ts';

/** Which line of the trade-off chart a point belongs to. */
export type SeriesKind = 'original' | 'unstructured' | 'stun' | 'experts';

export interface TradeoffPoint {
  readonly expertsPerLayer: number;
  readonly expertSparsity: number;
  readonly unstructuredSparsity: number;
  readonly totalSparsity: number;
  /** The stage-2 method, or 'none' when no weight is masked. */
  readonly method: UnstructuredMethod | 'none';
  readonly similarity: ExpertPlanSettings['similarity'];
  /** Parameters of the pruned checkpoint, and those of them not zeroed by stage 2. */
  readonly params: number;
  readonly nonzeroParams: number;
  /** Held-out perplexity; an estimate (interpolated from measured neighbours) when `measured` is false, null if none. */
  readonly perplexity: number | null;
  readonly measured: boolean;
  /**
   * Zero-shot task accuracy (lm-eval acc / acc_norm) of the same plan and masks, when the point was measured with a
   * task; absent otherwise (never estimated).
   */
  readonly acc?: number;
  readonly acc_norm?: number;
  readonly series: SeriesKind;
  /** STUN: the share of S the grid asked whole experts to take (the chart draws one line per share). */
  readonly share: number | null;
}

/** The points' CSV (issue 10 pins its header: accuracy goes to `accuracyCsv`, a file of its own). */
export const CSV_HEADER = 'expertsPerLayer,expertSparsity,unstructuredSparsity,totalSparsity,method,similarity,params,nonzeroParams,perplexity,measured';

/** One row per point, in the order given; perplexity empty when there is none. */
export function pointsCsv(points: readonly TradeoffPoint[]): string {
  const num = (v: number): string => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(10))));
  const rows = points.map((p) =>
    [
      num(p.expertsPerLayer), num(p.expertSparsity), num(p.unstructuredSparsity), num(p.totalSparsity), p.method, p.similarity, String(p.params),
      String(p.nonzeroParams), p.perplexity === null ? '' : String(p.perplexity), p.measured ? 'true' : 'false',
    ].join(','),
  );
  return `${[CSV_HEADER, ...rows].join('\n')}\n`;
}

export const ACCURACY_CSV_HEADER = 'expertsPerLayer,expertSparsity,unstructuredSparsity,totalSparsity,method,similarity,params,nonzeroParams,task,acc,acc_norm';

/** One row per point measured with a task (the others have no accuracy), in the order given. */
export function accuracyCsv(points: readonly TradeoffPoint[], task: string): string {
  const num = (v: number): string => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(10))));
  // The task name is a file name: quoted when it holds a comma or a quote.
  const name = /[",\n]/.test(task) ? `"${task.replace(/"/g, '""')}"` : task;
  const rows = points
    .filter((p) => p.acc !== undefined && p.acc_norm !== undefined)
    .map((p) =>
      [num(p.expertsPerLayer), num(p.expertSparsity), num(p.unstructuredSparsity), num(p.totalSparsity), p.method, p.similarity, String(p.params), String(p.nonzeroParams), name, String(p.acc), String(p.acc_norm)].join(','),
    );
  return `${[ACCURACY_CSV_HEADER, ...rows].join('\n')}\n`;
}

/** The grid: every S with every share of it taken by whole experts (0 = unstructured only). */
export interface SweepGrid {
  readonly totals: readonly number[];
  readonly expertShares: readonly number[];
  /** Also measure expert pruning alone, at the expert count whose share comes closest to each S. */
  readonly expertOnly: boolean;
  /** Also measure the original model (the curves' common start). */
  readonly baseline: boolean;
}

export const DEFAULT_SWEEP_GRID: SweepGrid = { totals: [0.25, 0.375, 0.5, 0.625, 0.75], expertShares: [0, 0.25, 0.5, 0.75], expertOnly: true, baseline: true };

/** One setting of the grid, before it is measured. */
export interface SweepSetting {
  readonly series: SeriesKind;
  readonly share: number | null;
  /** Experts kept per MoE layer (uniform). */
  readonly keep: number;
  /** S handed to stage 2, or null when no stage 2 runs. */
  readonly total: number | null;
}

/** What every point of a sweep shares: the user's other settings (similarity, reconstruction, method, scope, calibration). */
export interface SweepBase {
  readonly experts: ExpertPlanSettings;
  /** Method, OWL's M and λ, scope and unrouted policy; S and N:M come from the grid. */
  readonly unstructured: Omit<UnstructuredSettings, 'sparsity' | 'nm'>;
  readonly calibration: CalibrationSpec;
}

export interface SweepInputs {
  readonly base: SweepBase;
  /** The calibration text (Wanda/OWL scores, co-activation similarity); a calibration already cut may be given instead. */
  readonly calibrationText: TextInput | null;
  readonly calibration?: Calibration | null;
  readonly heldout: Windows;
  /** A multiple-choice task: each point's accuracy is measured too, with the same plan and masks. */
  readonly task?: SweepTask | null;
}

/** A task to measure at every point, with the options of `PruneJob.taskAccuracy` (window, item limit). */
export interface SweepTask {
  readonly file: TaskFile;
  readonly options?: Omit<TaskOptions, keyof LongTask>;
}

export interface SweepOptions extends LongTask {
  /** Each point as soon as it is measured (a cancelled sweep keeps those). */
  readonly onPoint?: (point: TradeoffPoint, index: number, total: number, setting: SweepSetting) => void;
}

/** The valid uniform expert counts of the model (≥ top-k; group rules of the family) with the share of the scope each removes. */
export async function expertShares(job: PruneJob, base: SweepBase, opts: LongTask = {}): Promise<Array<{ keep: number; share: number }>> {
  await job.prepareDraft(opts);
  const n = job.cat.summary.expertsPerLayer;
  const out: Array<{ keep: number; share: number }> = [];
  for (let k = n; k >= 1; k--) {
    if (expertCountProblems(job.cat.adapter, job.cat.config, k).length) continue;
    // Only the count of removed experts matters for the share, so router distances draft it (no calibration needed).
    const plan = job.draftPlan({ ...base.experts, mode: 'uniform', keepPerLayer: k, targetTotal: null, similarity: 'router' });
    out.push({ keep: k, share: job.expertShare(plan, base.unstructured.scope).share });
  }
  return out;
}

const EPS = 1e-9;

/**
 * The settings a grid measures, in order: the original model, then per S the unstructured-only point, STUN at each
 * share (the expert count whose share of the scope comes closest to share·S without passing S), and expert pruning
 * alone. Settings that coincide are measured once.
 */
export function sweepSettings(grid: SweepGrid, counts: ReadonlyArray<{ keep: number; share: number }>): SweepSetting[] {
  for (const s of grid.totals) if (!(s > 0 && s < 1)) throw new MoePruneError('InvalidArgument', `a sweep's total sparsity must be in (0, 1), got ${s}`);
  for (const f of grid.expertShares) if (!(f >= 0 && f < 1)) throw new MoePruneError('InvalidArgument', `a sweep's expert share must be in [0, 1), got ${f}`);
  const full = counts.reduce((a, c) => (c.share < a.share ? c : a), counts[0] ?? { keep: 0, share: 0 });
  if (!counts.length || full.share !== 0) throw new MoePruneError('InvalidPlan', 'the model has no valid expert count');
  const out: SweepSetting[] = [];
  const seen = new Set<string>();
  const add = (s: SweepSetting): void => {
    const key = `${s.keep}|${s.total}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(s);
  };
  const closest = (target: number, limit: number): { keep: number; share: number } =>
    counts.filter((c) => c.share <= limit + EPS).reduce((a, c) => (Math.abs(c.share - target) < Math.abs(a.share - target) ? c : a), full);
  if (grid.baseline) add({ series: 'original', share: null, keep: full.keep, total: null });
  for (const total of [...grid.totals].sort((a, b) => a - b)) {
    for (const f of [...grid.expertShares].sort((a, b) => a - b)) {
      const c = f === 0 ? full : closest(f * total, total);
      add({ series: c.share === 0 ? 'unstructured' : 'stun', share: c.share === 0 ? null : f, keep: c.keep, total });
    }
    if (grid.expertOnly) {
      const c = counts.filter((x) => x.share > 0).reduce<{ keep: number; share: number } | null>((a, x) => (!a || Math.abs(x.share - total) < Math.abs(a.share - total) ? x : a), null);
      if (c) add({ series: 'experts', share: 1, keep: c.keep, total: null });
    }
  }
  return out;
}

/** The job settings of a grid setting (what `moe-prune prune` would be given for it). */
export function settingsOf(base: SweepBase, s: SweepSetting): JobSettings {
  return resolveJobSettings({
    experts: { ...base.experts, mode: 'uniform', keepPerLayer: s.keep, targetTotal: null },
    unstructured: s.total === null ? null : { ...base.unstructured, sparsity: s.total, nm: null },
    calibration: base.calibration,
  });
}

/** Whether the sweep needs calibration text: co-activation similarity or a method that scores by inputs. */
export function sweepNeedsCalibration(base: SweepBase): boolean {
  return base.experts.similarity !== 'router' || needsCalibration(base.unstructured.method);
}

/** The point a plan and its stage-2 result stand for (perplexity left to the caller). */
export function describePoint(job: PruneJob, settings: JobSettings, plan: ExpertPlan, stage2: StageTwoResult | null, series: SeriesKind, share: number | null): Omit<TradeoffPoint, 'perplexity' | 'measured'> {
  const n = job.cat.summary.expertsPerLayer;
  const layers = plan.layers.length || 1;
  const kept = plan.totalKept / layers;
  const params = planPrunedTensors(job.cat, plan.layers).params;
  const sp = stage2?.sparsity;
  const expertShare = sp ? sp.expert : job.expertShare(plan, settings.unstructured?.scope ?? UNSTRUCTURED_DEFAULTS.scope).share;
  return {
    expertsPerLayer: kept,
    expertSparsity: plan.totalExperts ? 1 - plan.totalKept / plan.totalExperts : 1 - kept / n,
    unstructuredSparsity: sp ? sp.unstructured : 0,
    totalSparsity: sp ? sp.achieved : expertShare,
    method: stage2 ? settings.unstructured!.method : 'none',
    similarity: settings.experts.similarity,
    params,
    nonzeroParams: params - (sp?.counts.zeros ?? 0),
    series,
    share,
  };
}

/**
 * Measures one setting on the fly: stage 1 (representatives resolved from the weights, as the export does), stage 2
 * when it prunes anything, then perplexity on the held-out windows with both applied, and the task's accuracy with
 * the same plan and masks when a task is given. GPU for stage 2.
 */
export async function measureSetting(
  job: PruneJob, settings: JobSettings, calibration: Calibration | null, heldout: Windows, meta: { series: SeriesKind; share: number | null }, opts: LongTask = {}, task: SweepTask | null = null,
): Promise<TradeoffPoint & { readonly plan: ExpertPlan; readonly stage2: StageTwoResult | null }> {
  const plan = await job.planExperts(settings.experts, calibration, opts);
  const u = settings.unstructured;
  let stage2: StageTwoResult | null = null;
  if (u && !(u.sparsity !== null && u.nm === null && Math.abs(u.sparsity - job.expertShare(plan, u.scope).share) < EPS)) stage2 = await job.unstructured(plan, u, calibration, opts);
  const weights = PruneJob.weightPlan(plan, stage2);
  const ppl = await job.perplexity(heldout, weights, opts);
  const acc = task ? await job.taskAccuracy(task.file, weights, { ...task.options, ...opts }) : null;
  return {
    ...describePoint(job, settings, plan, stage2, meta.series, meta.share), perplexity: ppl.perplexity, measured: true, ...(acc ? { acc: acc.acc, acc_norm: acc.acc_norm } : {}), plan, stage2,
  };
}

/**
 * Runs a sweep: calibration first when the settings need it (cut once), then every setting of the grid in turn.
 * Progress counts settings ('steps'); the detail names the one being measured. Cancelling stops at once
 * (the points measured so far were handed to `onPoint`).
 */
export async function runSweep(job: PruneJob, grid: SweepGrid, inputs: SweepInputs, opts: SweepOptions = {}): Promise<TradeoffPoint[]> {
  const { base } = inputs;
  const signal = opts.signal;
  const task = (detail: string): LongTask => ({
    ...(signal ? { signal } : {}),
    ...(opts.onProgress ? { onProgress: (p: Progress) => opts.onProgress!({ ...p, detail: p.detail ? `${detail} · ${p.detail}` : detail }) } : {}),
  });
  const counts = await expertShares(job, base, task('reading the routers'));
  const settings = sweepSettings(grid, counts);
  const total = settings.length;
  const report = (done: number, detail: string): void => opts.onProgress?.({ phase: 'sweep', done, total, unit: 'steps', detail });
  let calibration = inputs.calibration ?? null;
  if (!calibration && sweepNeedsCalibration(base)) {
    if (!inputs.calibrationText) throw new MoePruneError('InvalidArgument', 'this sweep needs a calibration text (Wanda/OWL scores or co-activation similarity)');
    report(0, 'calibration');
    calibration = await job.calibrate(inputs.calibrationText, base.calibration, signal);
    if (base.experts.similarity !== 'router') await job.measureCoactivation(calibration, task('calibration'));
  }
  const points: TradeoffPoint[] = [];
  for (const [i, s] of settings.entries()) {
    throwIfAborted(signal);
    const label = labelOf(s);
    report(i, label);
    const m = await measureSetting(job, settingsOf(base, s), calibration, inputs.heldout, s, task(label), inputs.task ?? null);
    const { plan: _plan, stage2: _stage2, ...point } = m;
    points.push(point);
    opts.onPoint?.(point, i, total, s);
  }
  report(total, 'done');
  return points;
}

/** "K = 6, S = 50 %" for progress lines. */
export function labelOf(s: SweepSetting): string {
  const pct = (v: number): string => `${Math.round(1000 * v) / 10} %`;
  if (s.series === 'original') return 'original model';
  if (s.series === 'experts') return `experts only, K = ${s.keep}`;
  return `K = ${s.keep}, S = ${pct(s.total!)}`;
}

/** Estimated seconds left: the mean time of the settings measured so far times those still to come. */
export function sweepSecondsLeft(elapsedSeconds: number, done: number, total: number): number | null {
  if (done <= 0 || elapsedSeconds <= 0) return null;
  return (elapsedSeconds / done) * Math.max(0, total - done);
}

/**
 * An estimate of a setting's perplexity from the measured points of its series: log-perplexity interpolated linearly
 * in total sparsity between the nearest measured neighbours (the original model counts as S = 0); null when the
 * series has no measured point on both sides.
 */
export function estimatePerplexity(measured: readonly TradeoffPoint[], series: SeriesKind, share: number | null, totalSparsity: number): number | null {
  const same = measured.filter((p) => p.measured && p.perplexity !== null && (p.series === 'original' || (p.series === series && (series !== 'stun' || p.share === share))));
  const sorted = same.map((p) => ({ x: p.series === 'original' ? 0 : p.totalSparsity, y: Math.log(p.perplexity!) })).sort((a, b) => a.x - b.x);
  let lo: { x: number; y: number } | null = null;
  let hi: { x: number; y: number } | null = null;
  for (const p of sorted) {
    if (p.x <= totalSparsity + EPS) lo = p;
    if (p.x >= totalSparsity - EPS && !hi) hi = p;
  }
  if (!lo || !hi) return null;
  if (hi.x - lo.x < EPS) return Math.exp(lo.y);
  return Math.exp(lo.y + ((hi.y - lo.y) * (totalSparsity - lo.x)) / (hi.x - lo.x));
}
