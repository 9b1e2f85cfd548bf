/**
 * Perplexity through the GPU engine: all windows in one streamed pass (each layer's weights uploaded once),
 * for the original model or with a pruning plan applied on the fly (nothing written to disk).
 */
import type { LongTask, ProgressSink } from '../core/progress.ts';
import { perplexity, type NllForward, type PerplexityResult } from './perplexity.ts';
import type { GpuForwardEngine, GpuForwardOptions } from '../forward/engine.ts';
import { CheckpointTensors } from '../forward/weights.ts';
import type { WeightPlan } from '../forward/plan.ts';

export interface GpuPerplexityOptions extends LongTask {
  readonly plan?: WeightPlan;
  /** Windows per forward pass (default: all of them; the engine chunks them to its memory budget). */
  readonly batchSize?: number;
  readonly engine?: Omit<GpuForwardOptions, 'output' | 'plan' | 'signal' | 'onProgress'>;
  /** Layer-by-layer progress of each forward pass (`onProgress` reports whole batches of windows). */
  readonly onLayerProgress?: ProgressSink;
}

export function gpuPerplexity(engine: GpuForwardEngine, windows: ReadonlyArray<ArrayLike<number>>, opts: GpuPerplexityOptions = {}): Promise<PerplexityResult> {
  const nll = engine.nllForward({ ...opts.engine, ...(opts.plan ? { plan: opts.plan } : {}) });
  const onLayer = opts.onLayerProgress;
  const forward: NllForward = onLayer ? (w, o) => nll(w, { ...o, onProgress: onLayer }) : (w, o) => nll(w, o);
  const weights = engine.weights;
  if (weights instanceof CheckpointTensors) forward.nonFinite = (signal) => weights.nonFiniteTensors(signal);
  return perplexity(windows, forward, {
    batchSize: opts.batchSize ?? Math.max(1, windows.length),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
}
