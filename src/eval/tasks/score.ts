/**
 * lm-evaluation-harness's multiple-choice rules (HFLM loglikelihood requests and the acc / acc_norm metrics).
 *
 * Request of (context, choice): trailing spaces of the context move to the front of the choice;
 * whole = encode(context + choice), ctx = encode(context), both under the tokenizer's own special-token rule;
 * the choice's tokens are whole[len(ctx):]. An empty context ("") is lm-eval's own case: the context is the
 * prefix token alone (BOS, else EOS/EOT) and the choice is encoded by itself without special tokens. The model reads (ctx + choice tokens)[−(W+1):][:−1] — at most W
 * tokens, the oldest dropped — and the choice's log-likelihood is the sum of the log-probabilities of its tokens
 * at the last positions.
 *
 * acc: the item counts when its highest log-likelihood is the answer's; acc_norm the same with each divided by the
 * choice's length in characters (the choice as the item gives it, without the moved spaces); ties go to the lower
 * index (numpy's argmax). stderr: sqrt(p(1−p)/(n−1)), lm-eval's sample standard error of a mean of 0/1 values.
 */
import { MoePruneError } from '../../core/errors.ts';
import type { CheckpointTokenizer } from '../tokenizer.ts';
import type { TaskItem } from './items.ts';

/** One choice of one item as token ids: `tokens` = the model's input plus the last target, `scored` = how many final tokens are the choice's. */
export interface ChoiceRequest {
  readonly item: number;
  readonly choice: number;
  /** (context + choice tokens) keeping the last W + 1: positions 0..len−2 are read, the last `scored` are predicted. */
  readonly tokens: Int32Array;
  readonly scored: number;
  /** Whether context tokens were dropped to fit the window. */
  readonly truncated: boolean;
}

/** lm-eval's loglikelihood request encoding (its _encode_pair, or the prefix token for an empty context). */
export function encodePair(tok: CheckpointTokenizer, context: string, choice: string): { ctx: number[]; cont: number[] } {
  if (context === '') {
    const prefix = tok.prefixTokenId();
    // No BOS or EOS named: nothing to condition on, which the caller reports as an empty context.
    return { ctx: prefix === null ? [] : [prefix], cont: tok.encode(choice, { addSpecialTokens: false }) };
  }
  const spaces = context.length - context.replace(/\s+$/u, '').length;
  if (spaces > 0) {
    choice = context.slice(context.length - spaces) + choice;
    context = context.slice(0, context.length - spaces);
  }
  const whole = tok.encode(context + choice);
  const ctx = tok.encode(context);
  return { ctx, cont: whole.slice(ctx.length) };
}

/** Every choice of every item as a request; `window` (W) is the most tokens the model reads at once. */
export function taskRequests(tok: CheckpointTokenizer, items: readonly TaskItem[], window: number, file = 'task'): ChoiceRequest[] {
  if (!Number.isInteger(window) || window < 1) throw new MoePruneError('InvalidArgument', `the task window must be a positive integer (got ${window})`);
  const out: ChoiceRequest[] = [];
  items.forEach((it, i) => {
    it.choices.forEach((choice, c) => {
      const { ctx, cont } = encodePair(tok, it.context, choice);
      const where = `line ${it.line}${it.id !== undefined ? ` (id ${it.id})` : ''}`;
      if (!ctx.length) throw new MoePruneError('InvalidArgument', `${where}: the context encodes to no tokens${it.context === '' ? ' and the tokenizer names no bos_token or eos_token to stand for it' : ''}, so choice ${c} has nothing to be predicted from`, file);
      if (cont.length > window) throw new MoePruneError('InvalidArgument', `${where}: choice ${c} is ${cont.length} tokens, longer than the window of ${window}`, file);
      const all = ctx.concat(cont);
      const keep = all.slice(Math.max(0, all.length - (window + 1)));
      out.push({ item: i, choice: c, tokens: Int32Array.from(keep), scored: cont.length, truncated: keep.length < all.length });
    });
  });
  return out;
}

export interface TaskMetrics {
  readonly n: number;
  readonly acc: number;
  readonly acc_norm: number;
  /** null for a single item (n − 1 = 0). */
  readonly acc_stderr: number | null;
  readonly acc_norm_stderr: number | null;
}

/** Index of the largest value, the lowest index on ties. */
export function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

export function sampleStderr(p: number, n: number): number | null {
  return n > 1 ? Math.sqrt((p * (1 - p)) / (n - 1)) : null;
}

/** acc, acc_norm and their standard errors from each item's per-choice log-likelihoods. */
export function taskMetrics(items: readonly TaskItem[], logliks: ReadonlyArray<readonly number[]>): TaskMetrics {
  const n = items.length;
  if (!n) throw new MoePruneError('InvalidArgument', 'accuracy needs at least one item');
  let acc = 0;
  let norm = 0;
  items.forEach((it, i) => {
    const ll = logliks[i]!;
    if (argmax(ll) === it.answer) acc++;
    // lm-eval divides by float(len(choice)); an empty choice (length 0) gives ±inf/NaN there as here.
    if (argmax(ll.map((v, c) => v / it.choices[c]!.length)) === it.answer) norm++;
  });
  const a = acc / n;
  const b = norm / n;
  return { n, acc: a, acc_norm: b, acc_stderr: sampleStderr(a, n), acc_norm_stderr: sampleStderr(b, n) };
}
