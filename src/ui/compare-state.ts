/**
 * State of the comparison panel: every expert-choice criterion on the page's calibration text (and, when asked, the
 * held-out text's perplexity), one row per criterion — `job.compareExpertChoices` on the model's one job, with
 * progress and Cancel. "Use as plan" hands a row's plan to the plan panel (`adoptComparedPlan`), from where stage 2
 * and the export take it. A result belongs to the model, K and calibration it ran with.
 */
import { create } from 'zustand';
import { asUserError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import { expertCriterion, type ChoiceCriterion, type Comparison, type CriterionResult } from '../pipeline/job.ts';
import { calibrationKey, calibrationSpec, chosenCalibrationText, chosenHeldoutText, heldoutKey, useEval } from './eval-state.ts';
import { jobFor } from './job-state.ts';
import { adoptComparedPlan, defaultKeep, usePlan } from './prune-state.ts';
import { useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';

export interface CompareRun {
  readonly controller: AbortController;
  readonly progress: Progress | null;
  readonly startedAt: number;
}

export interface CompareDone {
  readonly source: FileSet;
  readonly comparison: Comparison;
  /** The calibration (and held-out) settings it ran with: another key on screen means the table is stale. */
  readonly key: string;
  readonly calibrationText: string;
  readonly heldoutText: string | null;
  readonly seconds: number;
}

export interface CompareState {
  source: FileSet | null;
  /** Experts kept per MoE layer by every criterion (null: the plan panel's default). */
  keep: number | null;
  /** Measure held-out perplexity of every plan (one more pass per criterion). */
  perplexity: boolean;
  running: CompareRun | null;
  done: CompareDone | null;
  error: string | null;
  /** The criterion whose plan was last taken as the plan. */
  adopted: ChoiceCriterion | null;
}

export const useCompare = create<CompareState>(() => ({ source: null, keep: null, perplexity: false, running: null, done: null, error: null, adopted: null }));

/** Another model drops the previous one's table and stops its run. */
export function syncCompareModel(fileSet: FileSet | null): void {
  const s = useCompare.getState();
  if (s.source === fileSet) return;
  s.running?.controller.abort();
  useCompare.setState({ source: fileSet, keep: null, running: null, done: null, error: null, adopted: null });
}

export function setCompareKeep(keep: number): void {
  useCompare.setState({ keep });
}

export function setComparePerplexity(on: boolean): void {
  useCompare.setState({ perplexity: on });
}

/** K for the comparison: the panel's own choice, else the plan panel's default for this model. */
export function compareKeep(): number | null {
  const k = useCompare.getState().keep;
  if (k !== null) return k;
  const m = usePlan.getState().model;
  return m ? defaultKeep(m.cat) : null;
}

/** What the table was measured with, as a key (K, calibration text and N × L, held-out settings when measured). */
export function compareKey(): string {
  const ev = useEval.getState();
  const c = useCompare.getState();
  return JSON.stringify({ keep: compareKeep(), calibration: calibrationKey(ev), heldout: c.perplexity ? heldoutKey(ev) : null });
}

/** Runs every criterion that can run on this model (exhaustive only on layers of ≤ 16 experts), one GPU job at a time. */
export async function runComparison(): Promise<void> {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  const K = compareKeep();
  if (!fileSet || K === null || useCompare.getState().running || useEval.getState().running || useStage2.getState().running) return;
  const controller = new AbortController();
  const { signal } = controller;
  const t0 = performance.now();
  useCompare.setState({ source: fileSet, running: { controller, progress: null, startedAt: t0 }, error: null });
  const live = (): boolean => useCompare.getState().running?.controller === controller;
  const onProgress = (p: Progress): void => {
    if (live()) useCompare.setState((s) => (s.running ? { running: { ...s.running, progress: p } } : {}));
  };
  const key = compareKey();
  try {
    const job = await jobFor(fileSet);
    const ev = useEval.getState();
    const text = await chosenCalibrationText();
    const calib = await job.calibrate(text, calibrationSpec(ev.calib), signal);
    let heldoutText: string | null = null;
    let evaluation = null;
    if (useCompare.getState().perplexity) {
      const held = await chosenHeldoutText();
      evaluation = await job.heldoutWindows(held, ev.heldout.length, ev.heldout.maxWindows, signal);
      heldoutText = held.name;
    }
    const comparison = await job.compareExpertChoices(calib, K, { evaluation, signal, onProgress });
    if (!live()) return;
    useCompare.setState({ done: { source: fileSet, comparison, key, calibrationText: text.name, heldoutText, seconds: (performance.now() - t0) / 1000 }, adopted: null });
  } catch (e) {
    const err = asUserError(e);
    if (live()) useCompare.setState({ error: err.code === 'Cancelled' ? null : err.text });
  } finally {
    if (live()) useCompare.setState({ running: null });
  }
}

export function cancelComparison(): void {
  useCompare.getState().running?.controller.abort();
}

/** Makes a row's kept experts the current plan (plan panel → stage 2 → export). */
export function takeRowAsPlan(row: CriterionResult): void {
  adoptComparedPlan(row.plan);
  useCompare.setState({ adopted: row.criterion });
}

/** Whether the plan on screen is this row's plan (its criterion and kept experts). */
export function isCurrentPlan(row: CriterionResult): boolean {
  const plan = usePlan.getState().plan;
  if (!plan || expertCriterion(plan.settings) !== expertCriterion(row.plan.settings)) return false;
  return plan.layers.every((l) => l.kept.join() === (row.kept[String(l.layer)] ?? []).join());
}
