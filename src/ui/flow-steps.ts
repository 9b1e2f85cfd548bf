/**
 * The guided flow's step strip as a pure function of what the stores hold: each step of load → calibrate → plan experts
 * → unstructured → evaluate → export is not started, running (with progress and time left), done, or stale because a
 * setting changed since it ran; and before it starts, what it will cost (GPU memory, time from the layers measured so
 * far, disk for the export).
 */
import { formatBytes } from '../core/format.ts';

export type StepId = 'load' | 'calibrate' | 'plan' | 'unstructured' | 'evaluate' | 'export';
export type StepState = 'not-started' | 'running' | 'done' | 'stale';

/** What one step's store says. `progress` is set while it runs; `stale` when it ran with other settings. */
export interface StepFacts {
  readonly running: boolean;
  readonly done: boolean;
  readonly stale?: boolean;
  readonly progress?: { readonly done: number; readonly total: number } | null;
  readonly secondsLeft?: number | null;
}

export interface FlowFacts {
  readonly steps: Readonly<Record<StepId, StepFacts>>;
  /** Decoder layers, the largest layer's weight bytes (one layer is resident on the GPU at a time). */
  readonly layers: number;
  readonly largestLayerBytes: number | null;
  /** Seconds per layer of a forward pass over the calibration windows, once one was measured. */
  readonly secondsPerLayer: number | null;
  /** Bytes the export will write (the plan's tensors). */
  readonly exportBytes: number | null;
}

export interface StepView {
  readonly id: StepId;
  readonly label: string;
  readonly state: StepState;
  /** "3 / 24 layers · about 40 s left", or the cost before it starts, or null. */
  readonly detail: string | null;
}

const LABELS: Record<StepId, string> = {
  load: 'Load',
  calibrate: 'Calibrate',
  plan: 'Plan experts',
  unstructured: 'Unstructured',
  evaluate: 'Evaluate',
  export: 'Export',
};

export const STEP_ORDER: readonly StepId[] = ['load', 'calibrate', 'plan', 'unstructured', 'evaluate', 'export'];

export function stepState(f: StepFacts): StepState {
  if (f.running) return 'running';
  if (f.done) return f.stale ? 'stale' : 'done';
  return 'not-started';
}

function seconds(s: number): string {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

/** Passes over every layer a step makes (calibration 1, stage 2 one per layer's statistics pass, evaluate before + after). */
const PASSES: Partial<Record<StepId, number>> = { calibrate: 1, unstructured: 1, evaluate: 2 };

function cost(id: StepId, f: FlowFacts): string | null {
  const parts: string[] = [];
  const passes = PASSES[id];
  if (passes !== undefined) {
    if (f.largestLayerBytes !== null) parts.push(`GPU ≈ ${formatBytes(f.largestLayerBytes)}`);
    parts.push(f.secondsPerLayer !== null ? `≈ ${seconds(f.secondsPerLayer * f.layers * passes)}` : 'time: after the first layers');
  }
  if (id === 'export' && f.exportBytes !== null) parts.push(`disk ${formatBytes(f.exportBytes)}`);
  return parts.length ? parts.join(' · ') : null;
}

export function flowSteps(f: FlowFacts): StepView[] {
  return STEP_ORDER.map((id) => {
    const s = f.steps[id];
    const state = stepState(s);
    let detail: string | null = null;
    if (state === 'running') {
      const p = s.progress;
      detail = [p && p.total > 0 ? `${p.done} / ${p.total}` : 'starting…', s.secondsLeft != null ? `about ${seconds(s.secondsLeft)} left` : null].filter(Boolean).join(' · ');
    } else if (state === 'not-started' || state === 'stale') detail = cost(id, f);
    return { id, label: LABELS[id], state, detail: state === 'stale' ? `a setting changed${detail ? ` · ${detail}` : ''}` : detail };
  });
}
