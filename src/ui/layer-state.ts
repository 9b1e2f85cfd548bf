/**
 * The per-layer chart's numbers: experts kept (the plan on screen), the unstructured ratio each decoder layer got (the
 * stage-2 result, OWL's spread when OWL ran) and the MoE block's reconstruction error ‖y − ŷ‖² / ‖y‖² on the calibration
 * text (`job.reconstructionError`, measured on request). A measured error belongs to the plan and calibration it ran
 * with (its key); other ones on screen show it as stale, never silently as current.
 */
import { create } from 'zustand';
import { asUserError } from '../core/errors.ts';
import type { Progress } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import type { ExpertPlan, LayerReconstruction, StageTwoResult } from '../pipeline/job.ts';
import { calibrationKey, calibrationSpec, chosenCalibrationText, planKey, useEval } from './eval-state.ts';
import { jobFor } from './job-state.ts';
import { useStage2 } from './stage2-state.ts';
import { useApp } from './state.ts';
import { useCompare } from './compare-state.ts';

export interface LayerRow {
  /** Decoder layer index. */
  readonly layer: number;
  /** Experts kept (slots) in this layer; null for a dense layer. */
  readonly kept: number | null;
  readonly experts: number | null;
  /** Unstructured ratio applied to what remained (fraction), when a stage-2 result exists. */
  readonly unstructured: number | null;
  /** ‖y − ŷ‖² / ‖y‖² of the MoE block, when measured. */
  readonly error: number | null;
}

/** One row per decoder layer that any source names, in layer order. */
export function layerRows(plan: ExpertPlan | null, stage2: StageTwoResult | null, recon: readonly LayerReconstruction[] | null): LayerRow[] {
  const layers = new Set<number>();
  const kept = new Map<number, { kept: number; n: number }>();
  for (const l of plan?.layers ?? []) {
    layers.add(l.layer);
    kept.set(l.layer, { kept: l.kept.length, n: l.n });
  }
  const ratio = new Map<number, number>();
  for (const [k, v] of Object.entries(stage2?.sparsity.byLayer ?? {})) {
    layers.add(Number(k));
    ratio.set(Number(k), v.target);
  }
  const error = new Map<number, number>();
  for (const r of recon ?? []) {
    layers.add(r.layer);
    error.set(r.layer, r.error);
  }
  return [...layers]
    .sort((a, b) => a - b)
    .map((layer) => ({
      layer,
      kept: kept.get(layer)?.kept ?? null,
      experts: kept.get(layer)?.n ?? null,
      unstructured: ratio.get(layer) ?? null,
      error: error.get(layer) ?? null,
    }));
}

export interface ReconDone {
  readonly source: FileSet;
  /** planKey + calibration key it was measured with. */
  readonly key: string;
  readonly layers: LayerReconstruction[];
  readonly seconds: number;
}

export interface LayerState {
  running: { controller: AbortController; progress: Progress | null; startedAt: number } | null;
  done: ReconDone | null;
  error: string | null;
}

export const useLayers = create<LayerState>(() => ({ running: null, done: null, error: null }));

export function reconKey(plan: ExpertPlan): string {
  return `${planKey(plan)}|${calibrationKey(useEval.getState())}`;
}

/** Measures the plan's reconstruction error per MoE layer (calibrating first when needed), one GPU job at a time. */
export async function measureReconstruction(plan: ExpertPlan): Promise<void> {
  const fileSet = useApp.getState().current?.fileSet ?? null;
  if (!fileSet || useLayers.getState().running || useEval.getState().running || useStage2.getState().running || useCompare.getState().running) return;
  const controller = new AbortController();
  const { signal } = controller;
  const t0 = performance.now();
  useLayers.setState({ running: { controller, progress: null, startedAt: t0 }, error: null });
  const live = (): boolean => useLayers.getState().running?.controller === controller;
  const key = reconKey(plan);
  try {
    const job = await jobFor(fileSet);
    const calib = await job.calibrate(await chosenCalibrationText(), calibrationSpec(useEval.getState().calib), signal);
    const layers = await job.reconstructionError(calib, plan, {
      signal,
      onProgress: (p) => {
        if (live()) useLayers.setState((s) => (s.running ? { running: { ...s.running, progress: p } } : {}));
      },
    });
    if (live()) useLayers.setState({ done: { source: fileSet, key, layers, seconds: (performance.now() - t0) / 1000 } });
  } catch (e) {
    const err = asUserError(e);
    if (live()) useLayers.setState({ error: err.code === 'Cancelled' ? null : err.text });
  } finally {
    if (live()) useLayers.setState({ running: null });
  }
}

export function cancelReconstruction(): void {
  useLayers.getState().running?.controller.abort();
}
