/**
 * State of the trade-off panel: the measured points of this model (size against held-out perplexity), the sweep's grid
 * and its run. The controls map to the job's sweep (`runSweep`, `measureSetting`); every other setting (similarity,
 * reconstruction, stage-2 method and scope, calibration and held-out texts) is the one on screen in the other panels,
 * so a sweep measures what an export with those settings would write. Points belong to the settings they were measured
 * under (their context); the chart shows those of the context on screen.
 */
import { create } from 'zustand';
import { sha256Hex } from '../core/digest.ts';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import {
  accuracyCsv, DEFAULT_SWEEP_GRID, describePoint, estimatePerplexity, measureSetting, needsCalibrationText, pointsCsv, runSweep, sweepNeedsCalibration, sweepSecondsLeft,
  type Calibration, type Evaluation, type ExpertPlan, type JobSettings, type PruneJob, type PruneTradeoff, type SeriesKind, type StageTwoResult, type SweepBase, type SweepGrid, type SweepTask, type TextInput, type TradeoffPoint,
} from '../pipeline/job.ts';
import { calibrationSpec, chosenCalibrationText, chosenHeldoutText, chosenTask, SAMPLE_FILES, taskKey, useEval, type CalibrationSettings, type HeldoutSettings, type TextChoice } from './eval-state.ts';
import { jobFor } from './job-state.ts';
import { expertSettings, usePlan } from './prune-state.ts';
import { stage2Inputs, unstructuredFrom, useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';

/** A measured point with the context it was measured under and the setting the grid asked for. */
export interface StoredPoint {
  readonly point: TradeoffPoint;
  readonly context: string;
  /** `${K}|${S}` (S empty when no stage 2 ran): the same setting measured again replaces it. */
  readonly setting: string;
  readonly at: number;
  /** The task its accuracy (point.acc) was measured on: taskKey and the file's name with its item count. */
  readonly task?: { readonly key: string; readonly name: string };
  /** The texts it was measured with (absent in points saved before they were recorded; calibration null when none was needed). */
  readonly texts?: PointTexts;
}

/** A text by its name and the SHA-256 of its bytes (as the export's report names the calibration text). */
export interface TextDigest {
  readonly name: string;
  readonly sha256: string;
  /** A file of the user's (not the built-in sample). */
  readonly own: boolean;
}

export interface PointTexts {
  readonly calibration: TextDigest | null;
  readonly heldout: TextDigest;
}

export async function textDigest(t: TextInput, own: boolean): Promise<TextDigest> {
  return { name: t.name, sha256: await sha256Hex(t.bytes), own };
}

/** The user's own texts the points were measured with ("calibration: my.txt"), each once, for their labels. */
export function ownTextNames(points: ReadonlyArray<Pick<StoredPoint, 'texts'>>): string[] {
  const names = new Set<string>();
  for (const p of points) {
    if (p.texts?.calibration?.own) names.add(`calibration: ${p.texts.calibration.name}`);
    if (p.texts?.heldout.own) names.add(`held-out: ${p.texts.heldout.name}`);
  }
  return [...names];
}

export interface TradeoffRun {
  readonly kind: 'sweep' | 'point';
  readonly controller: AbortController;
  readonly startedAt: number;
  /** When the first grid setting began (after calibration): time left counts from there. */
  readonly pointsStartedAt: number | null;
  readonly now: number;
  readonly done: number;
  readonly total: number;
  readonly detail: string;
  readonly step: Progress | null;
}

export type XAxisChoice = 'params' | 'sparsity';
export type YAxisChoice = 'perplexity' | 'accuracy';

export interface TradeoffState {
  source: FileSet | null;
  /** Grid controls: total sparsities and expert shares in percent. */
  totalsPct: number[];
  sharesPct: number[];
  expertOnly: boolean;
  axis: XAxisChoice;
  /** Perplexity, or accuracy on the evaluation panel's task (the points measured with that task). */
  yAxis: YAxisChoice;
  /** The sweep and "measure this point" also measure the task's accuracy, with the same plans and masks. */
  withTask: boolean;
  points: StoredPoint[];
  running: TradeoffRun | null;
  error: string | null;
  cancelled: boolean;
  /** The finished sweeps of this model, oldest first (kept in its session). */
  sweeps: SweepRecord[];
}

export interface SweepRecord {
  readonly at: number;
  readonly seconds: number;
  /** Settings measured. */
  readonly settings: number;
  readonly totalsPct: readonly number[];
  readonly sharesPct: readonly number[];
  readonly expertOnly: boolean;
}

const pctOf = (v: readonly number[]): number[] => v.map((x) => Math.round(1000 * x) / 10);

export const DEFAULT_TRADEOFF = {
  totalsPct: pctOf(DEFAULT_SWEEP_GRID.totals),
  sharesPct: pctOf(DEFAULT_SWEEP_GRID.expertShares),
  expertOnly: DEFAULT_SWEEP_GRID.expertOnly,
} as const;

export const useTradeoff = create<TradeoffState>(() => ({
  source: null,
  totalsPct: [...DEFAULT_TRADEOFF.totalsPct],
  sharesPct: [...DEFAULT_TRADEOFF.sharesPct],
  expertOnly: DEFAULT_TRADEOFF.expertOnly,
  axis: 'params',
  yAxis: 'perplexity',
  withTask: false,
  points: [],
  running: null,
  error: null,
  cancelled: false,
  sweeps: [],
}));

/** Switches the panel to `fileSet`: another model's points and run are dropped (its session keeps them). */
export function syncTradeoffModel(fileSet: FileSet | null): void {
  const s = useTradeoff.getState();
  if (s.source === fileSet) return;
  s.running?.controller.abort();
  useTradeoff.setState({ source: fileSet, points: [], running: null, error: null, cancelled: false, sweeps: [] });
}

export function setAxis(axis: XAxisChoice): void {
  useTradeoff.setState({ axis });
}

/** Accuracy on the y axis needs points measured with the task, so choosing it also measures the task from then on. */
export function setYAxis(yAxis: YAxisChoice): void {
  useTradeoff.setState(yAxis === 'accuracy' ? { yAxis, withTask: true } : { yAxis });
}

export function setWithTask(withTask: boolean): void {
  useTradeoff.setState({ withTask });
}

/** Parses "25, 50, 75" into sorted distinct percents within [lo, hi]; null when any entry is not a number there. */
export function parsePercents(text: string, lo: number, hi: number): number[] | null {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  if (!parts.length) return null;
  const v = parts.map(Number);
  if (v.some((x) => !Number.isFinite(x) || x < lo || x > hi)) return null;
  return [...new Set(v)].sort((a, b) => a - b);
}

export function setGrid(patch: Partial<Pick<TradeoffState, 'totalsPct' | 'sharesPct' | 'expertOnly'>>): void {
  useTradeoff.setState(patch);
}

export function gridOf(s: Pick<TradeoffState, 'totalsPct' | 'sharesPct' | 'expertOnly'>): SweepGrid {
  return { totals: s.totalsPct.map((p) => p / 100), expertShares: s.sharesPct.map((p) => p / 100), expertOnly: s.expertOnly, baseline: true };
}

/** What a sweep shares with every point (the settings of the other panels), or why there is none yet. */
export function sweepBase(): { ok: true; base: SweepBase; context: string; job: PruneJob } | { ok: false; error: string } {
  const ps = usePlan.getState();
  const fileSet = useApp.getState().current?.fileSet ?? null;
  if (!fileSet || ps.source !== fileSet || !ps.model || !ps.controls) return { ok: false, error: 'the expert plan is not ready yet' };
  const u = unstructuredFrom(useStage2.getState().controls);
  const ev = useEval.getState();
  const base: SweepBase = {
    experts: expertSettings(ps.controls, ps.model.cat),
    unstructured: { method: u.method, owlM: u.owlM, owlLambda: u.owlLambda, scope: u.scope, unrouted: u.unrouted },
    calibration: calibrationSpec(ev.calib),
  };
  return { ok: true, base, context: contextKey(base), job: ps.model.job };
}

/**
 * A text as a point's context names it: the built-in sample, or a user's file by its name and size. Unlike the
 * evaluation panel's keys (a file's id in this page), this survives a reload, so a reopened session's points show
 * again once the same file is chosen again.
 */
export function textIdentity(t: TextChoice): string {
  return t.source === 'file' && t.file ? `file:${t.file.name}:${t.file.bytes.length}` : 'sample';
}

/** The text and settings part of a context, as the evaluation panel's calibrationKey / heldoutKey but reload-stable. */
export function textsKey(ev: { calibText: TextChoice; calib: CalibrationSettings; heldoutText: TextChoice; heldout: HeldoutSettings }): { calibration: string; heldout: string } {
  return {
    calibration: `${textIdentity(ev.calibText)}|${JSON.stringify(calibrationSpec(ev.calib))}`,
    heldout: `${textIdentity(ev.heldoutText)}|${ev.heldout.length}|${ev.heldout.maxWindows}`,
  };
}

/** Points compare only under the same other settings, calibration and held-out text. */
function contextKey(base: SweepBase): string {
  const { mode: _m, keepPerLayer: _k, targetTotal: _t, ...experts } = base.experts;
  return JSON.stringify({ experts, unstructured: base.unstructured, ...textsKey(useEval.getState()) });
}

/** The digests of the texts a run measures with (the calibration text only when the settings need one). */
async function runTexts(heldout: TextInput, calibration: TextInput | null): Promise<PointTexts> {
  const ev = useEval.getState();
  return { heldout: await textDigest(heldout, ev.heldoutText.source === 'file'), calibration: calibration ? await textDigest(calibration, ev.calibText.source === 'file') : null };
}

/** The points of the context on screen. */
export function visiblePoints(s: Pick<TradeoffState, 'points'>, context: string | null): TradeoffPoint[] {
  return context === null ? [] : s.points.filter((p) => p.context === context).map((p) => p.point);
}

/** The points on screen measured with the task the evaluation panel has chosen now (their acc / acc_norm compare). */
export function accuracyPoints(s: Pick<TradeoffState, 'points'>, context: string | null, taskKey: string): TradeoffPoint[] {
  return context === null ? [] : s.points.filter((p) => p.context === context && p.task?.key === taskKey && p.point.acc !== undefined).map((p) => p.point);
}

/** The name of the task of those points ("task.jsonl, 40 items"), or null when none was measured with it. */
export function accuracyTaskName(s: Pick<TradeoffState, 'points'>, context: string | null, taskKey: string): string | null {
  return s.points.find((p) => p.context === context && p.task?.key === taskKey)?.task?.name ?? null;
}

/** The accuracy CSV of the points on screen (a file of its own: the points' CSV keeps its documented header). */
export function currentAccuracyCsv(): string {
  const b = sweepBase();
  const st = useTradeoff.getState();
  const key = taskKey(useEval.getState());
  const context = b.ok ? b.context : null;
  return accuracyCsv(accuracyPoints(st, context, key), accuracyTaskName(st, context, key) ?? '');
}

/** The CSV of the points on screen (exactly the documented header; `measured` true for each). */
export function currentCsv(): string {
  const b = sweepBase();
  return pointsCsv(visiblePoints(useTradeoff.getState(), b.ok ? b.context : null));
}

/** The setting on screen (plan K and stage-2 S), as a point: its perplexity measured, or estimated from its series. */
export interface CurrentSetting {
  readonly settings: JobSettings;
  readonly setting: string;
  readonly series: SeriesKind;
  readonly share: number | null;
  readonly point: TradeoffPoint;
}

export function currentSetting(): CurrentSetting | null {
  const inputs = stage2Inputs();
  const ps = usePlan.getState();
  const b = sweepBase();
  if (!inputs.ok || !b.ok || !ps.numbers || !ps.plan) return null;
  const { split, settings } = inputs;
  const n = b.job.cat.summary.expertsPerLayer;
  const u = settings.unstructured!;
  const kept = ps.plan.totalKept / Math.max(1, ps.plan.layers.length);
  const expertOnly = split.su === 0 && u.nm === null;
  const series: SeriesKind = split.se === 0 ? 'unstructured' : expertOnly ? 'experts' : 'stun';
  const share = series === 'stun' ? Math.round((100 * split.se) / split.total) / 100 : series === 'experts' ? 1 : null;
  const key = `${kept}|${expertOnly ? '' : u.nm ? `nm${u.nm.n}:${u.nm.m}` : u.sparsity}`;
  const mine = useTradeoff.getState().points.find((p) => p.context === b.context && p.setting === key);
  if (mine) return { settings: expertOnly ? { ...settings, unstructured: null } : settings, setting: key, series, share, point: mine.point };
  const zeros = expertOnly ? 0 : Math.max(0, split.total - split.se) * split.params;
  const paramsAfter = ps.numbers.paramsAfter;
  const visible = visiblePoints(useTradeoff.getState(), b.context);
  const point: TradeoffPoint = {
    expertsPerLayer: kept,
    expertSparsity: 1 - kept / n,
    unstructuredSparsity: expertOnly ? 0 : (split.su ?? 0),
    totalSparsity: split.total,
    method: expertOnly ? 'none' : u.method,
    similarity: settings.experts.similarity,
    params: paramsAfter,
    nonzeroParams: Math.round(paramsAfter - zeros),
    perplexity: estimatePerplexity(visible, series, share, split.total),
    measured: false,
    series,
    share,
  };
  return { settings: expertOnly ? { ...settings, unstructured: null } : settings, setting: key, series, share, point };
}

function failure(e: unknown): string | null {
  const err = asUserError(e);
  return err.code === 'Cancelled' ? null : err.text;
}

/** One GPU job at a time in the page: a sweep waits for stage 2 and calibration runs, and they for it. */
export function gpuBusy(): boolean {
  return useTradeoff.getState().running !== null || useStage2.getState().running !== null || useEval.getState().running !== null;
}

function startRun(kind: TradeoffRun['kind'], total: number): { controller: AbortController; live: () => boolean; patch: (f: (r: TradeoffRun) => Partial<TradeoffRun>) => void } | null {
  if (gpuBusy()) return null;
  const controller = new AbortController();
  const t0 = performance.now();
  useTradeoff.setState({ running: { kind, controller, startedAt: t0, pointsStartedAt: null, now: t0, done: 0, total, detail: 'starting', step: null }, error: null, cancelled: false });
  const live = (): boolean => useTradeoff.getState().running?.controller === controller;
  const patch = (f: (r: TradeoffRun) => Partial<TradeoffRun>): void => {
    if (live()) useTradeoff.setState((s) => (s.running ? { running: { ...s.running, ...f(s.running), now: performance.now() } } : {}));
  };
  return { controller, live, patch };
}

/** The evaluation panel's task when the runs measure it: what the sweep takes and what each stored point records. */
async function runTask(): Promise<{ sweep: SweepTask; stored: NonNullable<StoredPoint['task']> } | null> {
  if (!useTradeoff.getState().withTask) return null;
  const t = await chosenTask();
  const n = t.limit > 0 ? Math.min(t.limit, t.file.items.length) : t.file.items.length;
  return { sweep: { file: t.file, ...(t.limit > 0 ? { options: { limit: t.limit } } : {}) }, stored: { key: t.key, name: `${t.file.name}, ${n} items` } };
}

function addPoint(fileSet: FileSet, p: StoredPoint): void {
  useTradeoff.setState((s) => (s.source !== fileSet ? {} : { points: [...s.points.filter((q) => !(q.context === p.context && q.setting === p.setting)), p] }));
}

function settingOf(point: TradeoffPoint, total: number | null): string {
  return `${point.expertsPerLayer}|${total ?? ''}`;
}

/** Seconds left in the sweep on screen, or null before the first setting finished. */
export function secondsLeft(r: TradeoffRun): number | null {
  if (r.pointsStartedAt === null) return null;
  return sweepSecondsLeft((r.now - r.pointsStartedAt) / 1000, r.done, r.total);
}

/**
 * Runs the sweep: calibration first when the settings need it, then every setting of the grid measured on the fly.
 * Points appear as they are measured; Cancel keeps those.
 */
export async function runTradeoffSweep(): Promise<void> {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  const b = sweepBase();
  if (!fileSet || useTradeoff.getState().source !== fileSet) return;
  if (!b.ok) {
    useTradeoff.setState({ error: b.error });
    return;
  }
  const run = startRun('sweep', 0);
  if (!run) return;
  const { signal } = run.controller;
  const grid = gridOf(useTradeoff.getState());
  const t0 = performance.now();
  try {
    const job = await jobFor(fileSet);
    if (!job.gpu) throw new MoePruneError('GpuUnavailable', 'the sweep computes masks and perplexity on the GPU, and no WebGPU device is open');
    const ev = useEval.getState();
    const heldoutText = await chosenHeldoutText();
    const heldout = await job.heldoutWindows(heldoutText, ev.heldout.length, ev.heldout.maxWindows, signal);
    const calibrationText = await chosenCalibrationText();
    const texts = await runTexts(heldoutText, sweepNeedsCalibration(b.base) ? calibrationText : null);
    const task = await runTask();
    let count = 0;
    await runSweep(job, grid, { base: b.base, calibrationText, heldout, task: task?.sweep ?? null }, {
      signal,
      onProgress: (p) =>
        run.patch((r) =>
          p.phase === 'sweep'
            ? { done: p.done, total: p.total, detail: p.detail ?? '', step: null, ...(p.detail !== 'calibration' && r.pointsStartedAt === null && p.total > 0 ? { pointsStartedAt: performance.now() } : {}) }
            : { step: p },
        ),
      onPoint: (point, _i, total, setting) => {
        count = total;
        addPoint(fileSet, { point, context: b.context, setting: settingOf(point, setting.total), at: Date.now(), texts, ...(task ? { task: task.stored } : {}) });
      },
    });
    const at = Date.now();
    const { totalsPct, sharesPct, expertOnly } = useTradeoff.getState();
    if (run.live()) useTradeoff.setState((s) => ({ sweeps: [...s.sweeps, { at, seconds: (performance.now() - t0) / 1000, settings: count, totalsPct, sharesPct, expertOnly }] }));
  } catch (e) {
    if (run.live()) useTradeoff.setState({ error: failure(e), cancelled: asUserError(e).code === 'Cancelled' });
  } finally {
    if (run.live()) useTradeoff.setState({ running: null });
  }
}

/** Measures the setting on screen (the plan's K and stage 2's S, method and scope) on the fly, nothing written. */
export async function measureCurrentPoint(): Promise<void> {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  const cur = currentSetting();
  const b = sweepBase();
  if (!fileSet || useTradeoff.getState().source !== fileSet) return;
  if (!cur || !b.ok) {
    const i = stage2Inputs();
    useTradeoff.setState({ error: i.ok ? 'the expert plan is not ready yet' : i.error });
    return;
  }
  const run = startRun('point', 1);
  if (!run) return;
  const { signal } = run.controller;
  try {
    const job = await jobFor(fileSet);
    if (!job.gpu) throw new MoePruneError('GpuUnavailable', 'measuring a point computes masks and perplexity on the GPU, and no WebGPU device is open');
    const ev = useEval.getState();
    const heldoutText = await chosenHeldoutText();
    const heldout = await job.heldoutWindows(heldoutText, ev.heldout.length, ev.heldout.maxWindows, signal);
    let calibration: Calibration | null = null;
    let calibrationText: TextInput | null = null;
    if (needsCalibrationText(cur.settings)) {
      run.patch(() => ({ detail: 'calibration' }));
      calibrationText = await chosenCalibrationText();
      calibration = await job.calibrate(calibrationText, cur.settings.calibration, signal);
    }
    const texts = await runTexts(heldoutText, calibrationText);
    const task = await runTask();
    run.patch(() => ({ detail: 'measuring', pointsStartedAt: performance.now() }));
    const m = await measureSetting(job, cur.settings, calibration, heldout, { series: cur.series, share: cur.share }, { signal, onProgress: (p) => run.patch(() => ({ step: p })) }, task?.sweep ?? null);
    const { plan: _plan, stage2: _stage2, ...point } = m;
    if (!run.live()) return;
    addPoint(fileSet, { point, context: b.context, setting: cur.setting, at: Date.now(), texts, ...(task ? { task: task.stored } : {}) });
    run.patch(() => ({ done: 1 }));
  } catch (e) {
    if (run.live()) useTradeoff.setState({ error: failure(e), cancelled: asUserError(e).code === 'Cancelled' });
  } finally {
    if (run.live()) useTradeoff.setState({ running: null });
  }
}

export function cancelTradeoff(): void {
  useTradeoff.getState().running?.controller.abort();
}

/** Forgets the points of the settings on screen. */
export function clearPoints(): void {
  const b = sweepBase();
  if (!b.ok) return;
  useTradeoff.setState((s) => ({ points: s.points.filter((p) => p.context !== b.context) }));
}

/** A point without the chart's grouping: the row the report and the CSV hold (accuracy only when `withAcc`). */
function rowOf(p: TradeoffPoint, withAcc = true): PruneTradeoff['exported'] {
  const { series: _s, share: _sh, acc, acc_norm, ...row } = p;
  return withAcc && acc !== undefined && acc_norm !== undefined ? { ...row, acc, acc_norm } : row;
}

/**
 * What the export's report records of the trade-off: the points measured under the settings on screen, and the
 * exported plan as a row of the same table (its perplexity: measured on exactly it, measured at its setting in the
 * explorer, or estimated from its line). Null when nothing was measured.
 */
export function tradeoffForExport(job: PruneJob, settings: JobSettings, plan: ExpertPlan, stage2: StageTwoResult | null, evaluation: Evaluation | null): PruneTradeoff | null {
  const b = sweepBase();
  const st = useTradeoff.getState();
  const stored = b.ok ? st.points.filter((p) => p.context === b.context) : [];
  const points = stored.map((p) => p.point);
  if (!points.length) return null;
  // Accuracies compare on one task: the one the evaluation panel has chosen now.
  const tk = taskKey(useEval.getState());
  const taskName = accuracyTaskName(st, b.ok ? b.context : null, tk);
  const n = job.cat.summary.expertsPerLayer;
  const kept = plan.totalKept / Math.max(1, plan.layers.length);
  const u = stage2 ? settings.unstructured : null;
  const series: SeriesKind = stage2 ? (kept === n ? 'unstructured' : 'stun') : kept === n ? 'original' : 'experts';
  const key = `${kept}|${u ? (u.nm ? `nm${u.nm.n}:${u.nm.m}` : u.sparsity) : ''}`;
  const d = describePoint(job, settings, plan, stage2, series, stage2 && u?.sparsity ? Math.round((100 * stage2.sparsity.expert) / u.sparsity) / 100 : null);
  const same = stored.find((p) => p.setting === key);
  const perplexity = evaluation ? evaluation.after.perplexity : same ? same.point.perplexity : estimatePerplexity(points, d.series, d.share, d.totalSparsity);
  const measured = evaluation !== null || same !== undefined;
  const ev = useEval.getState();
  const text = ev.heldoutText.source === 'file' && ev.heldoutText.file ? ev.heldoutText.file.name : `the built-in ${SAMPLE_FILES.heldout}`;
  const sameAcc = evaluation === null && same?.task?.key === tk && same.point.acc !== undefined && same.point.acc_norm !== undefined ? { acc: same.point.acc, acc_norm: same.point.acc_norm } : {};
  return {
    heldout: `${text}, up to ${ev.heldout.maxWindows} windows of ${ev.heldout.length} tokens`,
    ...(taskName ? { task: taskName } : {}),
    points: stored.map((p) => rowOf(p.point, p.task?.key === tk)),
    exported: rowOf({ ...d, perplexity, measured, ...sameAcc }),
  };
}
