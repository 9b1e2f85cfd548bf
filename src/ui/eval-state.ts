/**
 * State of calibration and perplexity in the page: which texts, how many windows of how many tokens, one GPU
 * run at a time (calibration, perplexity of the original model, perplexity of the current expert plan) with
 * layer-by-layer progress and Cancel. Results belong to the model they were measured on and stay in memory:
 * the calibration statistics are what later pruning stages read (`useEval.getState().calibration?.stats`).
 */
import { create } from 'zustand';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import { TOKENIZER_FILE } from '../eval/tokenizer.ts';
import type { Sampling, Windows } from '../eval/windows.ts';
import {
  CALIBRATION_DEFAULTS, PruneJob, readTask, type CalibrationSpec, type CalibrationStats, type LayerReport, type Evaluation, type ExpertPlan, type StageTwoResult,
  type TaskEvaluation, type TaskFile, type TaskResult, type TextInput,
} from '../pipeline/job.ts';
import { isRealFile } from './demo.ts';
import { jobFor, lostDevice } from './job-state.ts';
import { adoptResolvedPlan, usePlan } from './prune-state.ts';
import { getGpuContext, useApp } from './state.ts';

export type TextRole = 'calibration' | 'heldout' | 'task';

/** A text the user dropped, read into memory; `id` tells two drops of same-named files apart. */
export interface UserText {
  readonly id: number;
  readonly name: string;
  readonly content: string;
  /** The file's bytes: the report records their SHA-256, so the CLI can check it is given the same text. */
  readonly bytes: Uint8Array;
}

export interface TextChoice {
  readonly source: 'sample' | 'file';
  readonly file: UserText | null;
}

export interface CalibrationSettings {
  /** N windows of L tokens. */
  readonly count: number;
  readonly length: number;
  readonly sampling: Sampling;
  readonly seed: number;
}

export interface HeldoutSettings {
  readonly length: number;
  readonly maxWindows: number;
}

export type RunKind = 'calibration' | 'before' | 'after' | 'task-before' | 'task-after';

/** The run in progress: its latest progress and what it costs so far. */
export interface RunView {
  readonly kind: RunKind;
  readonly controller: AbortController;
  readonly progress: Progress | null;
  /** Tokens in the forward pass (windows × L); 0 while tokenizing. */
  readonly tokens: number;
  readonly layers: number;
  /** When the current forward pass started, and the time of the latest report (for tokens/s). */
  readonly startedAt: number;
  readonly now: number;
  /** Highest GPU buffer-pool bytes seen at the end of any layer so far. */
  readonly peakPoolBytes: number;
}

export interface CalibrationResult {
  readonly source: FileSet;
  readonly stats: CalibrationStats;
  readonly textName: string;
  readonly windows: number;
  readonly seqLen: number;
  readonly sampling: Sampling;
  readonly seed: number | null;
  readonly seconds: number;
  readonly layers: readonly LayerReport[];
  readonly peakPoolBytes: number;
  readonly peakLayerWeightBytes: number;
}

export interface PerplexityMeasure {
  readonly source: FileSet;
  readonly perplexity: number;
  readonly meanNll: number;
  /** Scored predictions: windows × (L − 1). */
  readonly tokens: number;
  readonly windows: number;
  readonly seqLen: number;
  readonly textName: string;
  /** Held-out text and settings it was measured with (see heldoutKey). */
  readonly settingsKey: string;
  /** The expert plan it was measured with (planKey); null for the original model. */
  readonly planKey: string | null;
  /** The held-out windows it scored (an export's report records them with the numbers). */
  readonly heldoutWindows: Windows;
  readonly seconds: number;
  readonly peakPoolBytes: number;
}

/** Task accuracy of one model (original, or a plan with its stage-2 masks when they were fresh) on the chosen task file. */
export interface TaskMeasure {
  readonly source: FileSet;
  readonly result: TaskResult;
  readonly task: TaskFile;
  /** Task file and item limit it was measured with (see taskKey). */
  readonly settingsKey: string;
  /** planKey of the expert plan (+ the stage-2 result's key); null for the original model. */
  readonly planKey: string | null;
  readonly seconds: number;
}

export interface EvalState {
  /** The model the results belong to. */
  source: FileSet | null;
  calibText: TextChoice;
  heldoutText: TextChoice;
  calib: CalibrationSettings;
  heldout: HeldoutSettings;
  running: RunView | null;
  calibration: CalibrationResult | null;
  before: PerplexityMeasure | null;
  after: PerplexityMeasure | null;
  calibError: string | null;
  pplError: string | null;
  /** Index into calibration.stats.moeLayers of the layer shown in the charts. */
  layerIndex: number;
  /** The multiple-choice task: the built-in demo task or the user's file; 0 items = all of them. */
  taskText: TextChoice;
  taskLimit: number;
  taskBefore: TaskMeasure | null;
  taskAfter: TaskMeasure | null;
  taskError: string | null;
}

/** The job's calibration defaults (the CLI's): the page starts from the same N × L. */
export const DEFAULT_CALIBRATION: CalibrationSettings = {
  count: CALIBRATION_DEFAULTS.samples,
  length: CALIBRATION_DEFAULTS.seqLen,
  sampling: CALIBRATION_DEFAULTS.sampling,
  seed: CALIBRATION_DEFAULTS.seed,
};
export const DEFAULT_HELDOUT: HeldoutSettings = { length: 128, maxWindows: 16 };

/** The built-in public-domain samples (Jane Austen), served by the page itself. */
export const SAMPLE_FILES: Record<TextRole, string> = { calibration: 'calibration.txt', heldout: 'heldout.txt', task: 'task.jsonl' };

export const useEval = create<EvalState>(() => ({
  source: null,
  calibText: { source: 'sample', file: null },
  heldoutText: { source: 'sample', file: null },
  calib: DEFAULT_CALIBRATION,
  heldout: DEFAULT_HELDOUT,
  running: null,
  calibration: null,
  before: null,
  after: null,
  calibError: null,
  pplError: null,
  layerIndex: 0,
  taskText: { source: 'sample', file: null },
  taskLimit: 0,
  taskBefore: null,
  taskAfter: null,
  taskError: null,
}));

/** Whether a model can be evaluated in the page: its tokenizer is there and a GPU is open. */
export function hasTokenizer(files: ReadonlyArray<{ readonly name: string }>): boolean {
  return files.some((f) => f.name === TOKENIZER_FILE);
}

/** Which experts a plan keeps, removes and averages: equal keys measure the same model. */
export function planKey(plan: ExpertPlan): string {
  return plan.layers.map((l) => `${l.layer}:${l.kept.join(',')}/${l.merges.map((m) => m.members.join('+')).join(',')}`).join(';');
}

function textKey(t: TextChoice): string {
  return t.source === 'file' && t.file ? `file#${t.file.id}` : 'sample';
}

/** The held-out text and window settings: "before" and "after" compare only when these are equal. */
export function heldoutKey(s: Pick<EvalState, 'heldoutText' | 'heldout'>): string {
  return `${textKey(s.heldoutText)}|${s.heldout.length}|${s.heldout.maxWindows}`;
}

/** The job's calibration spec for the panel's N × L and sampling (key order as CALIBRATION_DEFAULTS: the job caches by it). */
export function calibrationSpec(c: CalibrationSettings): CalibrationSpec {
  return { samples: c.count, seqLen: c.length, sampling: c.sampling, seed: c.seed };
}

/** The calibration text and spec: equal keys cut the same windows. */
export function calibrationKey(s: Pick<EvalState, 'calibText' | 'calib'>): string {
  return `${textKey(s.calibText)}|${JSON.stringify(calibrationSpec(s.calib))}`;
}

/** Switches the panel to `fileSet`: a different model drops the previous one's results and stops its run. */
export function syncEvalModel(fileSet: FileSet | null): void {
  const s = useEval.getState();
  if (s.source === fileSet) return;
  s.running?.controller.abort();
  useEval.setState({
    source: fileSet, running: null, calibration: null, before: null, after: null, calibError: null, pplError: null, layerIndex: 0, taskBefore: null, taskAfter: null, taskError: null,
  });
}

export function setCalibSettings(patch: Partial<CalibrationSettings>): void {
  useEval.setState((s) => ({ calib: { ...s.calib, ...patch } }));
}

export function setHeldoutSettings(patch: Partial<HeldoutSettings>): void {
  useEval.setState((s) => ({ heldout: { ...s.heldout, ...patch } }));
}

export function selectEvalLayer(index: number): void {
  useEval.setState({ layerIndex: index });
}

function textField(role: TextRole): 'calibText' | 'heldoutText' | 'taskText' {
  return role === 'calibration' ? 'calibText' : role === 'task' ? 'taskText' : 'heldoutText';
}

function errorField(role: TextRole): 'calibError' | 'pplError' | 'taskError' {
  return role === 'calibration' ? 'calibError' : role === 'task' ? 'taskError' : 'pplError';
}

export function chooseSample(role: TextRole): void {
  useEval.setState((s) => ({ [textField(role)]: { ...s[textField(role)], source: 'sample' } }));
}

/** Selects the user's file (already read) when there is one. */
export function chooseUserFile(role: TextRole): void {
  useEval.setState((s) => (s[textField(role)].file ? { [textField(role)]: { ...s[textField(role)], source: 'file' } } : {}));
}

let nextTextId = 1;

/** Reads a dropped or picked text file (plain text or JSONL with "text") and selects it. */
export async function pickText(role: TextRole, file: File): Promise<void> {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const content = new TextDecoder().decode(bytes);
    if (!content.trim()) throw new MoePruneError('InvalidArgument', 'the file is empty', file.name);
    useEval.setState({ [textField(role)]: { source: 'file', file: { id: nextTextId++, name: file.name, content, bytes } } });
  } catch (e) {
    const msg = asUserError(e, 'IoError', file.name).text;
    useEval.setState({ [errorField(role)]: msg });
  }
}

interface TextBytes {
  readonly content: string;
  readonly bytes: Uint8Array;
}

const sampleCache = new Map<TextRole, Promise<TextBytes>>();

async function fetchSample(role: TextRole): Promise<TextBytes> {
  const name = SAMPLE_FILES[role];
  const res = await fetch(`${import.meta.env.BASE_URL}demo/${name}`).catch((e: unknown) => {
    throw new MoePruneError('IoError', `cannot fetch the built-in sample (${(e as Error).message})`, name);
  });
  if (!isRealFile(res)) throw new MoePruneError('MissingFile', 'this build ships no built-in sample text (public/demo/); choose a file of your own', name);
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { bytes, content: new TextDecoder().decode(bytes) };
}

/** The chosen text of a role: the user's file, or the built-in sample fetched from the page's own origin (once). */
async function chosenText(t: TextChoice, role: TextRole): Promise<TextInput & { readonly content: string }> {
  if (t.source === 'file') {
    if (!t.file) throw new MoePruneError('InvalidArgument', `choose a ${role === 'calibration' ? 'calibration text' : role === 'task' ? 'task' : 'held-out text'} file first`);
    return t.file;
  }
  let p = sampleCache.get(role);
  if (!p) {
    sampleCache.set(role, (p = fetchSample(role)));
    p.catch(() => sampleCache.delete(role));
  }
  return { name: SAMPLE_FILES[role], ...(await p) };
}

/** The calibration text the panel has chosen (the user's file, or the built-in sample), as the job takes it. */
export function chosenCalibrationText(): Promise<TextInput> {
  return chosenText(useEval.getState().calibText, 'calibration');
}

/** The held-out text the panel has chosen, as the job takes it. */
export function chosenHeldoutText(): Promise<TextInput> {
  return chosenText(useEval.getState().heldoutText, 'heldout');
}

/**
 * The task the panel has chosen (the demo task or the user's file), parsed, with its item limit and the key under
 * which accuracies compare (taskKey): the trade-off sweep measures it at every point.
 */
export async function chosenTask(): Promise<{ readonly file: TaskFile; readonly key: string; readonly limit: number }> {
  const s = useEval.getState();
  return { file: readTask(await chosenText(s.taskText, 'task')), key: taskKey(s), limit: s.taskLimit };
}

/** One run of the panel (calibration or perplexity) on the model's job. */
interface EvalRun {
  readonly fileSet: FileSet;
  readonly ctx: GpuContext;
  readonly signal: AbortSignal;
  /** Whether this run is still the one on screen (not replaced, the model not switched). */
  live(): boolean;
  /** The forward pass starts: `tokens` through `layers` decoder layers. */
  starting(tokens: number, layers: number, phase: string): void;
  /** Engine progress (layers), with the GPU pool's peak read at each report. */
  onLayer(p: Progress): void;
  onStep(p: Progress): void;
  kind(k: RunKind): void;
}

function startRun(kind: RunKind): EvalRun | null {
  const s = useEval.getState();
  const fileSet = useApp.getState().current?.fileSet ?? null;
  const ctx = getGpuContext();
  if (s.running || !fileSet || fileSet !== s.source) return null;
  if (!ctx) {
    const msg = new MoePruneError('GpuUnavailable', 'calibration and perplexity run on the GPU, and no WebGPU device is open').text;
    useEval.setState({ [errorField(kind === 'calibration' ? 'calibration' : kind.startsWith('task') ? 'task' : 'heldout')]: msg });
    return null;
  }
  const controller = new AbortController();
  const t0 = performance.now();
  const run: RunView = { kind, controller, progress: null, tokens: 0, layers: 0, startedAt: t0, now: t0, peakPoolBytes: 0 };
  useEval.setState(kind === 'calibration' ? { running: run, calibError: null } : kind.startsWith('task') ? { running: run, taskError: null } : { running: run, pplError: null });
  const live = () => useEval.getState().running?.controller === controller;
  const patch = (f: (r: RunView) => Partial<RunView>) => {
    if (live()) useEval.setState((st) => (st.running ? { running: { ...st.running, ...f(st.running), now: performance.now() } } : {}));
  };
  return {
    fileSet,
    ctx,
    signal: controller.signal,
    live,
    starting: (tokens, layers, phase) => {
      // Peak GPU memory counts from here (the engine also restarts it at every layer).
      ctx.pool.resetPeak();
      patch(() => ({ tokens, layers, startedAt: performance.now(), progress: { phase, done: 0, total: layers + 2, unit: 'layers' } }));
    },
    onLayer: (p) => patch((r) => ({ progress: p, peakPoolBytes: Math.max(r.peakPoolBytes, ctx.pool.stats().peakBytes) })),
    onStep: (p) => patch(() => ({ progress: p })),
    kind: (k) => patch(() => ({ kind: k })),
  };
}

function endRun(run: EvalRun): void {
  if (run.live()) useEval.setState({ running: null });
}

function failure(e: unknown): string | null {
  const err = asUserError(e);
  return err.code === 'Cancelled' ? null : err.text;
}

/** The model's job, opened on the GPU context this run started with (a lost device since then fails the run). */
async function jobOf(run: EvalRun): Promise<PruneJob> {
  const job = await jobFor(run.fileSet);
  if (!job.gpu) throw new MoePruneError('GpuUnavailable', 'calibration and perplexity run on the GPU, and no WebGPU device is open');
  return job;
}

/** Runs the calibration pass: N windows of L tokens through every layer, collecting statistics (no lm_head). */
export async function runCalibration(): Promise<void> {
  const run = startRun('calibration');
  if (!run) return;
  const s = useEval.getState();
  let job: PruneJob | null = null;
  try {
    job = await jobOf(run);
    const calib = await job.calibrate(await chosenText(s.calibText, 'calibration'), calibrationSpec(s.calib), run.signal);
    const w = calib.windows;
    run.starting(w.windows.length * w.length, job.cat.summary.layers, 'GPU forward');
    const t0 = performance.now();
    const res = await job.calibrationStats(calib, { signal: run.signal, onProgress: run.onLayer });
    if (!run.live() || !res.stats) return;
    useEval.setState({
      calibration: {
        source: run.fileSet,
        stats: res.stats,
        textName: calib.text.name,
        windows: w.windows.length,
        seqLen: w.length,
        sampling: w.sampling,
        seed: w.seed,
        seconds: (performance.now() - t0) / 1000,
        layers: res.layers,
        peakPoolBytes: res.peakPoolBytes,
        peakLayerWeightBytes: res.peakLayerWeightBytes,
      },
      layerIndex: Math.min(useEval.getState().layerIndex, Math.max(0, res.stats.moeLayers.length - 1)),
    });
  } catch (e) {
    const lost = await lostDevice(job);
    if (run.live()) useEval.setState({ calibError: lost ? lost.text : failure(e) });
  } finally {
    endRun(run);
  }
}

async function measure(run: EvalRun, job: PruneJob, s: EvalState, held: { w: Windows; name: string }, plan: ExpertPlan | null): Promise<PerplexityMeasure> {
  const { w } = held;
  run.starting(w.windows.length * w.length, job.cat.summary.layers, 'GPU forward');
  const t0 = performance.now();
  const peak0 = useEval.getState().running?.peakPoolBytes ?? 0;
  const r = await job.perplexityLayers(w, plan ? PruneJob.weightPlan(plan) : undefined, { signal: run.signal, onProgress: run.onLayer });
  return {
    source: run.fileSet,
    perplexity: r.perplexity,
    meanNll: r.meanNll,
    tokens: r.tokens,
    windows: r.windows,
    seqLen: w.length,
    textName: held.name,
    settingsKey: heldoutKey(s),
    planKey: plan ? planKey(plan) : null,
    heldoutWindows: w,
    seconds: (performance.now() - t0) / 1000,
    peakPoolBytes: Math.max(peak0, useEval.getState().running?.peakPoolBytes ?? 0),
  };
}

/**
 * Measures perplexity on the held-out windows: 'before' = the original model, 'after' = the current expert plan
 * applied on the fly (its ≥3-member clusters' representatives are chosen from the weights first, as export does).
 * 'after' also measures 'before' when that is missing or was measured on other held-out settings.
 */
export async function measurePerplexity(which: 'before' | 'after'): Promise<void> {
  const run = startRun(which);
  if (!run) return;
  const s = useEval.getState();
  try {
    const job = await jobOf(run);
    const text = await chosenText(s.heldoutText, 'heldout');
    const held = { w: await job.heldoutWindows(text, s.heldout.length, s.heldout.maxWindows, run.signal), name: text.name };
    const key = heldoutKey(s);
    if (which === 'before' || s.before?.settingsKey !== key) {
      run.kind('before');
      const before = await measure(run, job, s, held, null);
      if (!run.live()) return;
      useEval.setState({ before });
    }
    if (which === 'after') {
      run.kind('after');
      const ps = usePlan.getState();
      if (ps.source !== run.fileSet || !ps.model || !ps.plan)
        throw new MoePruneError('InvalidPlan', ps.planError ?? 'there is no expert plan for this model yet (see the plan panel)');
      const plan = await job.resolveDraft(ps.plan, { signal: run.signal, onProgress: run.onStep });
      adoptResolvedPlan(ps.plan, plan);
      const after = await measure(run, job, s, held, plan);
      if (run.live()) useEval.setState({ after });
    }
  } catch (e) {
    if (run.live()) useEval.setState({ pplError: failure(e) });
  } finally {
    endRun(run);
  }
}

/**
 * The measured perplexity of `plan` (stage 1 only) on the current held-out settings, as an export's report records
 * it; null unless both numbers were measured on these settings and "after" on this very plan.
 */
export function stageOneEvaluation(fileSet: FileSet, plan: ExpertPlan): Evaluation | null {
  const s = useEval.getState();
  const key = heldoutKey(s);
  const { before, after } = s;
  if (!before || !after || before.source !== fileSet || after.source !== fileSet) return null;
  if (before.settingsKey !== key || after.settingsKey !== key || after.planKey !== planKey(plan)) return null;
  const result = (m: PerplexityMeasure) => ({ perplexity: m.perplexity, meanNll: m.meanNll, tokens: m.tokens, windows: m.windows });
  return { windows: after.heldoutWindows, before: result(before), after: result(after) };
}

/** The task file and item limit: "before" and "after" accuracy compare only when these are equal. */
export function taskKey(s: Pick<EvalState, 'taskText' | 'taskLimit'>): string {
  return `${textKey(s.taskText)}|${s.taskLimit}`;
}

export function setTaskLimit(taskLimit: number): void {
  useEval.setState({ taskLimit });
}

/** The plan as measured: the expert plan and, when given, the stage-2 result made on it. */
export function measuredKey(plan: ExpertPlan, stage2: { readonly key: string } | null): string {
  return `${planKey(plan)}${stage2 ? `|stage2:${stage2.key}` : ''}`;
}

/**
 * Accuracy on the chosen task: 'before' = the original model, 'after' = the current expert plan (with the stage-2 masks
 * when a stage-2 result of exactly this plan and these settings is on screen), applied on the fly. 'after' also measures
 * 'before' when that is missing or was measured on another task or limit.
 */
export async function measureTask(which: 'before' | 'after', stage2: { readonly key: string; readonly plan: ExpertPlan; readonly result: StageTwoResult } | null = null): Promise<void> {
  const run = startRun(which === 'before' ? 'task-before' : 'task-after');
  if (!run) return;
  const s = useEval.getState();
  try {
    const job = await jobOf(run);
    const task = readTask(await chosenText(s.taskText, 'task'));
    const key = taskKey(s);
    const opts = { signal: run.signal, onProgress: run.onLayer, ...(s.taskLimit > 0 ? { limit: s.taskLimit } : {}) };
    const one = async (plan: ExpertPlan | null, st2: StageTwoResult | null): Promise<TaskMeasure> => {
      run.starting(0, job.cat.summary.layers, 'GPU forward');
      const t0 = performance.now();
      const result = await job.taskAccuracy(task, plan ? PruneJob.weightPlan(plan, st2) : undefined, opts);
      return { source: run.fileSet, result, task, settingsKey: key, planKey: plan ? measuredKey(plan, stage2 && st2 ? stage2 : null) : null, seconds: (performance.now() - t0) / 1000 };
    };
    if (which === 'before' || s.taskBefore?.settingsKey !== key || s.taskBefore.source !== run.fileSet) {
      run.kind('task-before');
      const before = await one(null, null);
      if (!run.live()) return;
      useEval.setState({ taskBefore: before });
    }
    if (which === 'after') {
      run.kind('task-after');
      let plan: ExpertPlan;
      if (stage2) plan = stage2.plan;
      else {
        const ps = usePlan.getState();
        if (ps.source !== run.fileSet || !ps.model || !ps.plan)
          throw new MoePruneError('InvalidPlan', ps.planError ?? 'there is no expert plan for this model yet (see the plan panel)');
        plan = await job.resolveDraft(ps.plan, { signal: run.signal, onProgress: run.onStep });
        adoptResolvedPlan(ps.plan, plan);
      }
      const after = await one(plan, stage2?.result ?? null);
      if (run.live()) useEval.setState({ taskAfter: after });
    }
  } catch (e) {
    if (run.live()) useEval.setState({ taskError: failure(e) });
  } finally {
    endRun(run);
  }
}

/**
 * The measured task accuracy of `plan` (with `stage2` when the export writes its masks) on the current task settings,
 * as an export's report records it; null unless both were measured on these settings and "after" on exactly this model.
 */
export function taskEvaluationFor(fileSet: FileSet, plan: ExpertPlan, stage2: { readonly key: string } | null): { file: TaskFile; evaluation: TaskEvaluation } | null {
  const s = useEval.getState();
  const key = taskKey(s);
  const { taskBefore: b, taskAfter: a } = s;
  if (!b || !a || b.source !== fileSet || a.source !== fileSet || b.settingsKey !== key || a.settingsKey !== key) return null;
  if (a.planKey !== measuredKey(plan, stage2)) return null;
  return { file: a.task, evaluation: { before: b.result, after: a.result } };
}

export function cancelEval(): void {
  useEval.getState().running?.controller.abort();
}

/** Why the current model cannot be calibrated or evaluated here (null: it can). */
export function useEvalBlocker(): string | null {
  const gpu = useApp((s) => s.gpu.status);
  const lost = useApp((s) => s.gpu.status === 'unavailable' && s.gpu.reason === 'lost');
  const files = useApp((s) => s.current?.files);
  if (!files || !hasTokenizer(files)) return `Calibration and perplexity need the checkpoint’s ${TOKENIZER_FILE}; this one has none.`;
  if (gpu === 'pending') return 'Waiting for the GPU…';
  if (lost) return 'Calibration and perplexity run on the GPU, and the GPU device was lost: reconnect it (top of the page) to run them again.';
  if (gpu !== 'ready') return 'Calibration and perplexity run on the GPU, and WebGPU is not available in this browser.';
  return null;
}
