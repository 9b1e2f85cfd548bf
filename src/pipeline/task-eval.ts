/**
 * Zero-shot multiple-choice accuracy (lm-evaluation-harness rules, src/eval/tasks) as a step of the pruning job: the
 * original model or a plan applied on the fly, on the job's GPU engine (layer by layer, one decoder layer resident)
 * or, without a GPU, on the CPU reference.
 */
import { MoePruneError } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import { referencePlan, type WeightPlan } from '../forward/plan.ts';
import { openReferenceModel } from '../forward/reference/forward.ts';
import { referenceNll, type NllForward } from '../eval/perplexity.ts';
import { loadTokenizer } from '../eval/tokenizer.ts';
import { parseTaskFile, type TaskFile, type TaskFormat } from '../eval/tasks/items.ts';
import { defaultTaskWindow, runTask, type TaskResult } from '../eval/tasks/run.ts';
import type { PruneAccuracy } from '../export/report.ts';
import type { PruneJob, TextInput } from './job.ts';

export interface TaskOptions extends LongTask {
  /** Most tokens the model reads at once (default: the config's max_position_embeddings, else 2048). */
  readonly window?: number;
  /** Only the first N items. */
  readonly limit?: number;
  /** Sequences per forward pass (default: all in one pass). */
  readonly batchSize?: number;
}

export interface TaskEvaluation {
  readonly before: TaskResult;
  readonly after: TaskResult;
}

/** A task file the user gave, parsed (format 'auto': by the first line's fields). */
export function readTask(text: TextInput, format: TaskFormat | 'auto' = 'auto'): TaskFile {
  return parseTaskFile(new TextDecoder().decode(text.bytes), text.name, format);
}

/** Accuracy of `task` with `plan` applied on the fly (none: the original model). Progress is the engine's, layer by layer. */
export async function taskAccuracy(job: PruneJob, task: TaskFile, plan: WeightPlan | undefined, opts: TaskOptions = {}): Promise<TaskResult> {
  const tok = await loadTokenizer(job.files, opts.signal);
  let forward: NllForward;
  if (job.gpu) {
    const nll = (await job.engine(opts.signal)).nllForward(plan ? { plan } : {});
    const onLayer = opts.onProgress;
    forward = onLayer ? (w, o) => nll(w, { ...o, onProgress: onLayer }) : nll;
  } else {
    if (plan?.mask) throw new MoePruneError('InvalidArgument', 'measuring a masked plan runs on a WebGPU adapter');
    const model = await openReferenceModel(job.files, opts.signal);
    if (plan) {
      const rp = referencePlan(model, plan);
      forward = referenceNll(rp.model, { removedExperts: rp.removedExperts });
    } else forward = referenceNll(model);
  }
  return runTask(tok, task, forward, {
    window: opts.window ?? defaultTaskWindow(job.cat.config),
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** What the report and the model card record of a before/after task evaluation. */
export function reportAccuracy(task: TaskFile, ev: TaskEvaluation): PruneAccuracy {
  const m = (r: TaskResult) => ({ acc: r.acc, acc_norm: r.acc_norm, acc_stderr: r.acc_stderr, acc_norm_stderr: r.acc_norm_stderr });
  return { task: task.name, format: task.format, n: ev.after.n, window: ev.after.window, before: m(ev.before), after: m(ev.after) };
}
