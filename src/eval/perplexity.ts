/**
 * Perplexity over evaluation windows: every window is scored on its own (no context crosses a window
 * boundary), each position t predicts token t+1, so a window of L tokens contributes L−1 predictions.
 * perplexity = exp(mean NLL over all predictions of all windows) — the same number as transformers'
 * `exp(model(input_ids=batch, labels=batch).loss)` on the same batch.
 */
import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import { findNonFiniteTensors, nonFiniteError, type NonFiniteTensor } from '../forward/finite.ts';
import { referenceForward, type ForwardOptions, type ReferenceModel } from '../forward/reference/forward.ts';
import { CheckpointWeights } from '../forward/reference/weights.ts';

export interface PerplexityResult {
  readonly perplexity: number;
  readonly meanNll: number;
  /** Number of scored predictions (windows × (L − 1)). */
  readonly tokens: number;
  readonly windows: number;
}

/**
 * Scores a batch of equal-length windows: per-prediction NLL, window-major ([windows·(L−1)]). `nonFinite`, when the
 * forward pass reads a checkpoint, finds the weights that hold NaN or ±Inf (run only after a loss came out non-finite).
 */
export type NllForward = ((windows: ReadonlyArray<ArrayLike<number>>, opts: LongTask) => Promise<Float64Array>) & {
  nonFinite?: (signal?: AbortSignal) => Promise<readonly NonFiniteTensor[]>;
};

export function perplexityFromNll(nll: ArrayLike<number>, windows = 1): PerplexityResult {
  if (!nll.length) throw new MoePruneError('InvalidArgument', 'perplexity needs at least one prediction (windows of 2+ tokens)');
  let s = 0;
  for (let i = 0; i < nll.length; i++) s += nll[i]!;
  const meanNll = s / nll.length;
  return { perplexity: Math.exp(meanNll), meanNll, tokens: nll.length, windows };
}

/** The CPU reference forward pass as an NllForward (options such as removedExperts pass through). */
export function referenceNll(model: ReferenceModel, forward: Omit<ForwardOptions, 'output' | 'onProgress' | 'signal'> = {}): NllForward {
  const nll: NllForward = async (windows, opts) => (await referenceForward(model, windows, { ...forward, output: 'nll', signal: opts.signal })).nll!;
  // A plan's overlay hides the checkpoint; its original weights are checked by the unplanned pass.
  const w = model.weights;
  if (w instanceof CheckpointWeights) nll.nonFinite = (signal) => findNonFiniteTensors(w, signal);
  return nll;
}

/** Perplexity of `windows`, run through `forward` in batches of `batchSize` windows. */
export async function perplexity(
  windows: ReadonlyArray<ArrayLike<number>>,
  forward: NllForward,
  opts: LongTask & { readonly batchSize?: number } = {},
): Promise<PerplexityResult> {
  if (!windows.length) throw new MoePruneError('InvalidArgument', 'perplexity needs at least one evaluation window');
  const batch = Math.max(1, opts.batchSize ?? 8);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < windows.length; i += batch) {
    throwIfAborted(opts.signal);
    opts.onProgress?.({ phase: 'perplexity', done: i, total: windows.length, unit: 'steps', detail: `windows ${i + 1}–${Math.min(windows.length, i + batch)}` });
    const nll = await forward(windows.slice(i, i + batch), { signal: opts.signal });
    for (let j = 0; j < nll.length; j++) sum += nll[j]!;
    count += nll.length;
    // Stop at the first non-finite batch and say which weights caused it, instead of reporting a perplexity of NaN.
    if (!Number.isFinite(sum)) throw nonFiniteError((await forward.nonFinite?.(opts.signal)) ?? [], 'the perplexity');
  }
  opts.onProgress?.({ phase: 'perplexity', done: windows.length, total: windows.length, unit: 'steps' });
  if (!count) throw new MoePruneError('InvalidArgument', 'perplexity needs windows of at least 2 tokens');
  return { perplexity: Math.exp(sum / count), meanNll: sum / count, tokens: count, windows: windows.length };
}
