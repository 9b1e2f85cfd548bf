/**
 * State of the second-stage panel (STUN stage 2: unstructured masks on top of the expert plan). The controls map to
 * the job's settings (`resolveJobSettings`, the CLI's defaults); a run is `job.planExperts` + `job.unstructured` on the
 * model's one job, with per-layer progress and Cancel; perplexity before/after applies the masks on the fly
 * (`job.evaluateLayers`). A result belongs to the settings and calibration it ran with (its key): once the controls,
 * the expert plan or the calibration text change, it is stale and the export will not write it.
 */
import { create } from 'zustand';
import { asUserError, MoePruneError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import {
  needsCalibrationText, parseNm, resolveJobSettings, UNSTRUCTURED_DEFAULTS, unstructuredRatio,
  type Calibration, type Evaluation, type ExpertPlan, type JobSettings, type PruneScope, type StageTwoResult, type UnroutedPolicy, type UnstructuredMethod,
  type UnstructuredSettings, type SavedWork, type WorkAbout, StageTwoWork,
} from '../pipeline/job.ts';
import { calibrationKey, calibrationSpec, chosenCalibrationText, chosenHeldoutText, heldoutKey, useEval } from './eval-state.ts';
import { jobFor, lostDevice, openJob } from './job-state.ts';
import { OpfsFolder } from './opfs-folder.ts';
import { adoptResolvedPlan, planSettings, usePlan } from './prune-state.ts';
import { useApp } from './state.ts';

export type NmChoice = 'none' | '2:4' | '4:8';

export interface Stage2Controls {
  readonly method: UnstructuredMethod;
  /** Total sparsity S over the scope in percent, whole experts removed by the plan included. */
  readonly sparsityPct: number;
  readonly nm: NmChoice;
  readonly owlM: number;
  readonly owlLambda: number;
  readonly scope: PruneScope;
  readonly unrouted: UnroutedPolicy;
}

/** The page starts from the job's defaults; S has none there (the CLI requires it), so half the scope. */
export const DEFAULT_STAGE2: Stage2Controls = {
  method: UNSTRUCTURED_DEFAULTS.method,
  sparsityPct: 50,
  nm: 'none',
  owlM: UNSTRUCTURED_DEFAULTS.owlM,
  owlLambda: UNSTRUCTURED_DEFAULTS.owlLambda,
  scope: UNSTRUCTURED_DEFAULTS.scope,
  unrouted: UNSTRUCTURED_DEFAULTS.unrouted,
};

export type Stage2RunKind = 'prune' | 'perplexity';

/** The run in progress. Time left is estimated within the current phase (each phase walks the layers once). */
export interface Stage2Run {
  readonly kind: Stage2RunKind;
  readonly controller: AbortController;
  readonly progress: Progress | null;
  readonly startedAt: number;
  readonly phase: string;
  /** When the current phase began: the previous report (or the start), since a phase reports after each layer it finished. */
  readonly phaseStartedAt: number;
  readonly now: number;
  /** OWL walks the layers twice (outlier scores, then masks): a second pass still follows the first. */
  readonly passes: number;
}

export interface Stage2Done {
  readonly source: FileSet;
  /** What it ran with (see `stage2Inputs`); another key on screen means the result is stale. */
  readonly key: string;
  readonly settings: JobSettings;
  readonly calibration: Calibration | null;
  /** The expert plan with representatives resolved, as stage 2 ran on it. */
  readonly plan: ExpertPlan;
  readonly result: StageTwoResult;
  readonly seconds: number;
  /** Layers restored from the work folder instead of computed by this run. */
  readonly resumed: number;
}

export interface Stage2Eval {
  readonly source: FileSet;
  /** The stage-2 key and the held-out key it was measured with. */
  readonly key: string;
  readonly heldoutKey: string;
  readonly evaluation: Evaluation;
  readonly textName: string;
  readonly seconds: number;
}

export interface Stage2State {
  source: FileSet | null;
  controls: Stage2Controls;
  running: Stage2Run | null;
  done: Stage2Done | null;
  error: string | null;
  /** Set when the last run was cancelled (cleared by the next start). */
  cancelled: boolean;
  evaluation: Stage2Eval | null;
  evalError: string | null;
  /** The run saved in the page's work folder (OPFS), finished or not: a reload, a crash or a lost GPU resumes from it. */
  saved: SavedWork | null;
  /** The last run was refused because the work folder holds an unfinished run of other inputs (Start over discards it). */
  conflict: boolean;
}

export const useStage2 = create<Stage2State>(() => ({
  source: null,
  controls: DEFAULT_STAGE2,
  running: null,
  done: null,
  error: null,
  cancelled: false,
  evaluation: null,
  evalError: null,
  saved: null,
  conflict: false,
}));

/**
 * The page's stage-2 work folder: the CLI's `--work-dir` format in the origin-private file system. It holds one run
 * (as a work folder does), recorded after every finished layer.
 */
const WORK_FOLDER = 'moe-prune-stage2-work';

function workFolder(): Promise<OpfsFolder | null> {
  return OpfsFolder.open(WORK_FOLDER);
}

/** Reads what the work folder holds (for the panel's resume notice). */
export async function refreshSavedWork(): Promise<void> {
  const folder = await workFolder();
  let saved: SavedWork | null = null;
  try {
    saved = folder ? await StageTwoWork.peek(folder) : null;
  } catch {
    // A work file of no job we can read: the next run replaces it.
  }
  useStage2.setState({ saved });
}

async function clearSavedWork(): Promise<void> {
  const folder = await workFolder();
  if (folder) await StageTwoWork.clear(folder);
  useStage2.setState({ saved: null, conflict: false });
}

/** The run's settings in a few words, for the resume notice. */
function describeRun(settings: JobSettings, calibration: Calibration | null): string {
  const u = settings.unstructured!;
  const e = settings.experts;
  const target = u.nm ? `N:M ${u.nm.n}:${u.nm.m}` : `S = ${Math.round(1000 * u.sparsity!) / 10} %`;
  const keep = e.mode === 'uniform' ? `K = ${e.keepPerLayer}` : `${e.targetTotal} experts kept`;
  const calib = calibration ? `, calibration ${calibration.text.name} ${calibration.windows.windows.length} × ${calibration.spec.seqLen} tokens` : '';
  return `${u.method}, ${target}, ${keep}, scope ${u.scope}${calib}`;
}

/** User cancels (not a model switch): their saved progress is discarded with the run. */
const cancelledByUser = new WeakSet<AbortController>();

/** Switches the panel to `fileSet`: another model drops the previous one's results and stops its run. */
export function syncStage2Model(fileSet: FileSet | null): void {
  const s = useStage2.getState();
  if (s.source === fileSet) return;
  s.running?.controller.abort();
  useStage2.setState({ source: fileSet, running: null, done: null, error: null, cancelled: false, evaluation: null, evalError: null, conflict: false });
  if (fileSet) void refreshSavedWork();
}

export function setStage2Controls(patch: Partial<Stage2Controls>): void {
  useStage2.setState((s) => ({ controls: { ...s.controls, ...patch } }));
}

/** The job's stage-2 settings for the controls (N:M fixes the ratio, so S is left out with it). */
export function unstructuredFrom(c: Stage2Controls): UnstructuredSettings {
  const nm = c.nm === 'none' ? null : parseNm(c.nm);
  return { method: c.method, sparsity: nm ? null : c.sparsityPct / 100, nm, owlM: c.owlM, owlLambda: c.owlLambda, scope: c.scope, unrouted: c.unrouted };
}

/** STUN's split of the total target for the plan on screen: s_e removed with whole experts, s_u pruned of the rest. */
export interface Split {
  /** Scope parameters before pruning, and removed with whole experts. */
  readonly params: number;
  readonly removed: number;
  readonly se: number;
  /** s_u; null when S is below s_e (the settings are refused). */
  readonly su: number | null;
  /** The total over the scope the settings aim at: S, or with N:M s_e + (1 − s_e)·n/m. */
  readonly total: number;
}

export type Stage2Inputs =
  | { readonly ok: true; readonly settings: JobSettings; readonly key: string; readonly calibrated: boolean; readonly split: Split }
  | { readonly ok: false; readonly error: string; readonly split: Split | null };

/**
 * Everything a run would use, from the controls on screen (plan panel, this panel, the calibration text and N × L),
 * or why it cannot run. The key tells results of other settings apart.
 */
export function stage2Inputs(): Stage2Inputs {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  const ps = usePlan.getState();
  const job = openJob(fileSet);
  const { controls } = useStage2.getState();
  if (!fileSet || !job || ps.source !== fileSet || !ps.model || !ps.controls) return { ok: false, error: 'the expert plan is not ready yet', split: null };
  if (!ps.plan) return { ok: false, error: ps.planError ?? 'there is no expert plan yet', split: null };
  const u = unstructuredFrom(controls);
  const share = job.expertShare(ps.plan, u.scope);
  const ratio = u.nm ? u.nm.n / u.nm.m : null;
  let su: number | null = ratio;
  let problem: string | null = null;
  if (ratio === null)
    try {
      su = unstructuredRatio(u.sparsity!, share.share);
    } catch {
      su = null;
      problem =
        `Expert pruning alone removes ${(100 * share.share).toFixed(1)} % of the ${u.scope} scope, more than the total ${controls.sparsityPct} %: ` +
        `raise the total sparsity to at least ${Math.ceil(100 * share.share)} % or keep more experts per layer.`;
    }
  const split: Split = { params: share.params, removed: share.removed, se: share.share, su, total: ratio === null ? u.sparsity! : share.share + (1 - share.share) * ratio };
  if (problem) return { ok: false, error: problem, split };
  let settings: JobSettings;
  try {
    settings = resolveJobSettings({ experts: planSettings(ps.controls, ps.model.cat), unstructured: u, calibration: calibrationSpec(useEval.getState().calib) });
  } catch (e) {
    return { ok: false, error: asUserError(e).text, split };
  }
  const calibrated = needsCalibrationText(settings);
  const ev = useEval.getState();
  const key = JSON.stringify({ experts: settings.experts, unstructured: settings.unstructured, calibration: calibrated ? calibrationKey(ev) : null });
  return { ok: true, settings, key, calibrated, split };
}

/** A result of this model, fresh or not. */
export function currentDone(fileSet: FileSet | null): Stage2Done | null {
  const d = useStage2.getState().done;
  return d && d.source === fileSet ? d : null;
}

/** The result the export writes: this model's, run with exactly the settings on screen. */
export function freshDone(): Stage2Done | null {
  const d = currentDone(useApp.getState().current?.fileSet ?? null);
  if (!d) return null;
  const i = stage2Inputs();
  return i.ok && i.key === d.key ? d : null;
}

/** The measured perplexity of the fresh result on the current held-out settings (what the export's report records). */
export function freshEvaluation(): Evaluation | null {
  const d = freshDone();
  const e = useStage2.getState().evaluation;
  if (!d || !e || e.source !== d.source || e.key !== d.key || e.heldoutKey !== heldoutKey(useEval.getState())) return null;
  return e.evaluation;
}

function failure(e: unknown): string | null {
  const err = asUserError(e);
  return err.code === 'Cancelled' ? null : err.text;
}

/** Phases after which a second walk over the layers follows: OWL's outlier scores (then its masks), the original model's perplexity (then the pruned one's). */
const FIRST_PASSES: ReadonlySet<string> = new Set(['OWL outlier scores', 'original model']);

/** Starts a run of `kind` unless one (of this panel or of the calibration panel: one GPU job at a time) is going. */
function startRun(kind: Stage2RunKind, passes: number): { controller: AbortController; live: () => boolean; onProgress: (p: Progress) => void } | null {
  if (useStage2.getState().running || useEval.getState().running) return null;
  const controller = new AbortController();
  const t0 = performance.now();
  useStage2.setState({
    running: { kind, controller, progress: null, startedAt: t0, phase: '', phaseStartedAt: t0, now: t0, passes },
    ...(kind === 'prune' ? { error: null, cancelled: false, conflict: false } : { evalError: null }),
  });
  const live = (): boolean => useStage2.getState().running?.controller === controller;
  const onProgress = (p: Progress): void => {
    if (!live()) return;
    useStage2.setState((s) => {
      const r = s.running;
      if (!r) return {};
      const now = performance.now();
      const newPhase = p.phase !== r.phase;
      const passes = newPhase && FIRST_PASSES.has(r.phase) ? Math.max(1, r.passes - 1) : r.passes;
      return { running: { ...r, progress: p, now, passes, ...(newPhase ? { phase: p.phase, phaseStartedAt: r.now } : {}) } };
    });
  };
  return { controller, live, onProgress };
}

/** Seconds left in the run: the current phase's rate over its remaining layers, plus any pass still to come. */
export function secondsLeft(r: Stage2Run): number | null {
  const p = r.progress;
  if (!p || p.unit !== 'layers' || !p.total) return null;
  const done = p.done;
  const s = (r.now - r.phaseStartedAt) / 1000;
  if (done <= 0 || s <= 0) return null;
  const perLayer = s / done;
  return perLayer * (p.total - p.done) + perLayer * p.total * (r.passes - 1);
}

/**
 * Runs stage 2 with the settings on screen: the expert plan is resolved (≥3-member clusters' representatives from
 * the weights), then the masks are computed layer by layer, each finished layer recorded in the work folder. A run of
 * the same inputs (the job's fingerprint: files, settings, calibration text) resumes from what is recorded; an
 * unfinished run of other inputs is not overwritten but refused, until the user starts over. Cancel discards the
 * run's progress; a failure (a lost GPU) or a reload keeps it.
 */
export async function runStage2(): Promise<void> {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  const inputs = stage2Inputs();
  if (!fileSet || useStage2.getState().source !== fileSet) return;
  if (!inputs.ok) {
    useStage2.setState({ error: inputs.error });
    return;
  }
  const u = inputs.settings.unstructured!;
  const run = startRun('prune', u.method === 'owl' ? 2 : 1);
  if (!run) return;
  const { signal } = run.controller;
  const draft = usePlan.getState().plan;
  const t0 = performance.now();
  let job: Awaited<ReturnType<typeof jobFor>> | null = null;
  try {
    job = await jobFor(fileSet);
    if (!job.gpu) throw new MoePruneError('GpuUnavailable', 'unstructured pruning runs on the GPU, and no WebGPU device is open');
    const calibration = inputs.calibrated ? await job.calibrate(await chosenCalibrationText(), inputs.settings.calibration, signal) : null;
    const plan = await job.planExperts(inputs.settings.experts, calibration, { signal, onProgress: run.onProgress });
    if (draft) adoptResolvedPlan(draft, plan);
    const progressStore = await openWork(job.fingerprint(inputs.settings, calibration, signal), {
      model: useApp.getState().current?.name ?? 'model',
      layers: job.cat.summary.layers,
      settings: describeRun(inputs.settings, calibration),
    });
    const resumed = progressStore?.savedLayers ?? 0;
    const result = await job.unstructured(plan, u, calibration, { signal, onProgress: run.onProgress, ...(progressStore ? { progressStore } : {}) });
    if (!run.live()) return;
    useStage2.setState({
      done: { source: fileSet, key: inputs.key, settings: inputs.settings, calibration, plan, result, seconds: (performance.now() - t0) / 1000, resumed },
    });
  } catch (e) {
    const byUser = cancelledByUser.has(run.controller);
    if (byUser) await clearSavedWork().catch(() => undefined);
    const lost = byUser ? undefined : await lostDevice(job);
    if (run.live()) useStage2.setState({ error: lost ? lost.text : failure(e), cancelled: !lost && asUserError(e).code === 'Cancelled' });
  } finally {
    if (run.live()) useStage2.setState({ running: null });
    await refreshSavedWork();
  }
}

/**
 * The work folder for a run of `fingerprint`: resumed when it holds this run, taken over when it holds a finished
 * run of other inputs (its result was delivered), refused when it holds an unfinished one. Null without OPFS.
 */
async function openWork(fingerprint: Promise<string>, about: WorkAbout): Promise<StageTwoWork | null> {
  const folder = await workFolder();
  if (!folder) return null;
  const fp = await fingerprint;
  let saved: SavedWork | null = null;
  try {
    saved = await StageTwoWork.peek(folder);
  } catch {
    // Unreadable: nothing to resume from.
  }
  // No job recorded (or none readable): whatever a run stopped before its first record left behind goes.
  if (!saved) await StageTwoWork.clear(folder);
  else if (saved.fingerprint !== fp) {
    if (saved.complete || !saved.about) await StageTwoWork.clear(folder);
    else {
      useStage2.setState({ conflict: true });
      const a = saved.about;
      throw new MoePruneError(
        'InvalidArgument',
        `an unfinished stage-2 run of other inputs is saved (${a.model}: ${a.settings}; ${saved.layers} of ${a.layers} layers done), and the model, ` +
          'the settings or the calibration text on screen differ from it. Set them as they were to resume it, or start over (its progress is discarded).',
      );
    }
  }
  return StageTwoWork.open(folder, fp, { about });
}

/** Discards the saved run and starts one with the settings on screen. */
export async function startStage2Over(): Promise<void> {
  if (useStage2.getState().running) return;
  await clearSavedWork();
  await runStage2();
}

/** Perplexity of the original model and of the model with the fresh result applied on the fly (nothing written). */
export async function measureStage2Perplexity(): Promise<void> {
  const done = freshDone();
  if (!done) {
    useStage2.setState({ evalError: 'run stage 2 with the settings on screen first' });
    return;
  }
  const run = startRun('perplexity', 2);
  if (!run) return;
  const { signal } = run.controller;
  const ev = useEval.getState();
  const hk = heldoutKey(ev);
  const t0 = performance.now();
  try {
    const job = await jobFor(done.source);
    const text = await chosenHeldoutText();
    const windows = await job.heldoutWindows(text, ev.heldout.length, ev.heldout.maxWindows, signal);
    const evaluation = await job.evaluateLayers(windows, done.plan, done.result, { signal, onProgress: run.onProgress });
    if (!run.live()) return;
    useStage2.setState({
      evaluation: { source: done.source, key: done.key, heldoutKey: hk, evaluation, textName: text.name, seconds: (performance.now() - t0) / 1000 },
    });
  } catch (e) {
    if (run.live()) useStage2.setState({ evalError: failure(e) });
  } finally {
    if (run.live()) useStage2.setState({ running: null });
  }
}

export function cancelStage2(): void {
  const c = useStage2.getState().running?.controller;
  if (!c) return;
  cancelledByUser.add(c);
  c.abort();
}

/** Drops the result (the export then writes the expert plan alone). */
export function discardStage2(): void {
  useStage2.setState({ done: null, evaluation: null, error: null, cancelled: false });
}
