/**
 * Scores a multiple-choice task through a forward pass that returns per-prediction NLL (the GPU engine or the CPU
 * reference, with any plan applied on the fly): every choice of every item is one sequence, and the sequences go
 * through the model together — by default all in one pass, so each decoder layer's weights are read once for the
 * whole task, as for perplexity. Sequences of one pass are padded at the end to the longest: attention is causal
 * and routing is per token, so the padding changes nothing at the positions that are scored.
 */
import { MoePruneError, throwIfAborted } from '../../core/errors.ts';
import type { LongTask } from '../../core/progress.ts';
import type { CheckpointTokenizer } from '../tokenizer.ts';
import type { NllForward } from '../perplexity.ts';
import type { TaskFile } from './items.ts';
import { taskMetrics, taskRequests, type ChoiceRequest, type TaskMetrics } from './score.ts';

/** Any id of the vocabulary serves as padding: its positions are never scored and come after every scored one. */
const PAD_ID = 0;

export interface TaskResult extends TaskMetrics {
  readonly task: string;
  /** Per item (file order), per choice: log-likelihood of the choice given the context. */
  readonly logliks: number[][];
  /** Per item: the number of tokens of each choice that were scored. */
  readonly choiceTokens: number[][];
  /** Items whose context was cut to fit the window. */
  readonly truncated: number;
  readonly window: number;
  /** Sequences run (choices of all items) and the tokens they held, padding excluded. */
  readonly sequences: number;
  readonly tokens: number;
}

export interface TaskRunOptions extends LongTask {
  /** Most tokens the model reads at once (lm-eval's max_length). */
  readonly window: number;
  /** Sequences per forward pass (default: all in one pass). Sequences are sorted by length, so a pass holds similar lengths. */
  readonly batchSize?: number;
}

/** Log-likelihoods of requests: one NllForward call per batch of sequences, padded to the batch's longest. */
export async function requestLogliks(requests: readonly ChoiceRequest[], forward: NllForward, opts: LongTask & { readonly batchSize?: number } = {}): Promise<Float64Array> {
  const order = requests.map((_, i) => i).sort((a, b) => requests[b]!.tokens.length - requests[a]!.tokens.length || a - b);
  const batch = Math.max(1, opts.batchSize ?? Math.max(1, requests.length));
  const out = new Float64Array(requests.length);
  for (let b0 = 0; b0 < order.length; b0 += batch) {
    throwIfAborted(opts.signal);
    const ids = order.slice(b0, b0 + batch);
    opts.onProgress?.({ phase: 'task', done: b0, total: order.length, unit: 'steps', detail: `sequences ${b0 + 1}–${b0 + ids.length}` });
    // At least 2 tokens: a window's predictions are its positions 0..L−2.
    const L = Math.max(2, requests[ids[0]!]!.tokens.length);
    const windows = ids.map((r) => {
      const w = new Int32Array(L).fill(PAD_ID);
      w.set(requests[r]!.tokens);
      return w;
    });
    const nll = await forward(windows, opts.signal ? { signal: opts.signal } : {});
    if (nll.length !== windows.length * (L - 1)) throw new MoePruneError('InvalidShape', `the forward pass returned ${nll.length} predictions for ${windows.length} sequences of ${L}`);
    ids.forEach((r, j) => {
      const q = requests[r]!;
      const n = q.tokens.length;
      let s = 0;
      // Token t of the sequence is predicted at position t − 1.
      for (let t = n - q.scored; t < n; t++) s -= nll[j * (L - 1) + t - 1]!;
      out[r] = s;
    });
  }
  opts.onProgress?.({ phase: 'task', done: order.length, total: order.length, unit: 'steps' });
  return out;
}

/** acc / acc_norm of a task file's items (the first `limit` when given) under `forward`. */
export async function runTask(tok: CheckpointTokenizer, task: TaskFile, forward: NllForward, opts: TaskRunOptions & { readonly limit?: number }): Promise<TaskResult> {
  const items = opts.limit !== undefined ? task.items.slice(0, opts.limit) : task.items;
  const requests = taskRequests(tok, items, opts.window, task.name);
  const ll = await requestLogliks(requests, forward, opts);
  const logliks = items.map((it) => new Array<number>(it.choices.length).fill(0));
  const choiceTokens = items.map((it) => new Array<number>(it.choices.length).fill(0));
  const cut = new Set<number>();
  let tokens = 0;
  requests.forEach((q, r) => {
    logliks[q.item]![q.choice] = ll[r]!;
    choiceTokens[q.item]![q.choice] = q.scored;
    if (q.truncated) cut.add(q.item);
    tokens += q.tokens.length;
  });
  return {
    task: task.name, ...taskMetrics(items, logliks), logliks, choiceTokens, truncated: cut.size, window: opts.window, sequences: requests.length, tokens,
  };
}

/** lm-eval's default max_length: the config's max_position_embeddings, else 2048. */
export function defaultTaskWindow(config: Readonly<Record<string, unknown>>): number {
  const m = config['max_position_embeddings'];
  return typeof m === 'number' && Number.isInteger(m) && m > 0 ? m : 2048;
}
