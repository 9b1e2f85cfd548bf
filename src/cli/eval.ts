import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { MoePruneError } from '../core/errors.ts';
import type { FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import { GpuForwardEngine } from '../forward/engine.ts';
import { gpuPerplexity } from '../eval/gpu-perplexity.ts';
import { referencePlan, type WeightPlan } from '../forward/plan.ts';
import { perplexity, referenceNll, type PerplexityResult } from '../eval/perplexity.ts';
import { openReferenceModel } from '../forward/reference/forward.ts';
import { loadTokenizer } from '../eval/tokenizer.ts';
import { windowsOfText, type Windows } from '../eval/windows.ts';
import { choiceArg, numberArg, parseArgs, type ParsedArgs } from './args.ts';
import { PruneJob, readTask, TASK_FORMATS, type TaskFile, type TaskFormat, type TaskResult } from '../pipeline/job.ts';
import { reportFailure, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';
import { closeNodeGpu, openCommandGpu } from './node-gpu.ts';

const USAGE =
  'usage: moe-prune eval <checkpoint dir> [--text <file> [--max-windows N]] [--task <file.jsonl> [--format auto|jsonl|arc|hellaswag|piqa|mmlu] [--limit N] [--per-item]] ' +
  '[--seq-len L] [--json] [--cpu]';

export const DEFAULT_EVAL_SEQ_LEN = 256;
export const DEFAULT_EVAL_WINDOWS = 32;

/** The first N non-overlapping windows of L tokens of a text file (plain text or JSONL with "text"). */
export async function evalWindows(files: FileSet, textPath: string, seqLen: number, maxWindows: number): Promise<Windows> {
  let content: string;
  try {
    content = await readFile(textPath, 'utf8');
  } catch (e) {
    throw new MoePruneError('MissingFile', `cannot read the evaluation text (${(e as Error).message})`, textPath);
  }
  const tok = await loadTokenizer(files);
  return windowsOfText(tok, content, basename(textPath), { count: maxWindows, length: seqLen });
}

/** Perplexity of a checkpoint on windows, on the GPU engine or (gpu undefined) the CPU reference, with an optional plan. */
export async function evalPerplexity(files: FileSet, windows: Windows, gpu: GpuContext | undefined, plan?: WeightPlan, signal?: AbortSignal): Promise<PerplexityResult> {
  if (gpu) {
    const engine = await GpuForwardEngine.open(gpu, files, signal);
    return gpuPerplexity(engine, windows.windows, { ...(plan ? { plan } : {}), ...(signal ? { signal } : {}) });
  }
  const model = await openReferenceModel(files, signal);
  if (!plan) return perplexity(windows.windows, referenceNll(model), { ...(signal ? { signal } : {}) });
  const rp = referencePlan(model, plan);
  return perplexity(windows.windows, referenceNll(rp.model, { removedExperts: rp.removedExperts }), { ...(signal ? { signal } : {}) });
}

export function seqLenArg(p: Parameters<typeof numberArg>[0], name = 'seq-len', fallback = DEFAULT_EVAL_SEQ_LEN): number {
  return numberArg(p, name, (n) => Number.isInteger(n) && n >= 2, 'an integer ≥ 2') ?? fallback;
}

export function maxWindowsArg(p: Parameters<typeof numberArg>[0], name = 'max-windows', fallback = DEFAULT_EVAL_WINDOWS): number {
  return numberArg(p, name, (n) => Number.isInteger(n) && n >= 1, 'a positive integer') ?? fallback;
}

/** A task file named on the command line, parsed (`--format`, default auto). */
export async function readTaskFile(path: string, format: TaskFormat | 'auto'): Promise<TaskFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new MoePruneError('MissingFile', `cannot read the task file (${(e as Error).message})`, path);
  }
  return readTask({ name: basename(path), bytes }, format);
}

/** A task file's format option (`--format` of eval, `--eval-task-format` of prune), default auto. */
export function taskFormatArg(p: ParsedArgs, name = 'format'): TaskFormat | 'auto' {
  return choiceArg<TaskFormat | 'auto'>(p, name, ['auto', ...TASK_FORMATS], 'auto');
}

/** What `--json` prints of a task run (`perItem`: every item's per-choice log-likelihoods and scored token counts). */
export function taskJson(task: TaskFile, r: TaskResult, perItem: boolean): Record<string, unknown> {
  return {
    task: r.task, n: r.n, acc: r.acc, acc_norm: r.acc_norm, acc_stderr: r.acc_stderr, acc_norm_stderr: r.acc_norm_stderr,
    format: task.format, window: r.window, truncated: r.truncated, sequences: r.sequences,
    ...(perItem
      ? { items: r.logliks.map((ll, i) => ({ line: task.items[i]!.line, ...(task.items[i]!.id !== undefined ? { id: task.items[i]!.id } : {}), answer: task.items[i]!.answer, logliks: ll, tokens: r.choiceTokens[i] })) }
      : {}),
  };
}

const pct = (v: number, e: number | null) => `${(100 * v).toFixed(2)}%${e === null ? '' : ` ± ${(100 * e).toFixed(2)}`}`;

export async function runEval(args: string[], io: CliIo): Promise<number> {
  let gpu: GpuContext | undefined;
  try {
    const p = parseArgs(args, { values: ['text', 'seq-len', 'max-windows', 'task', 'format', 'limit'], flags: ['json', 'cpu', 'per-item', 'help'] }, USAGE);
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const dir = p.positional[0];
    const text = p.values.get('text');
    const taskPath = p.values.get('task');
    if (!dir || (!text && !taskPath) || p.positional.length !== 1) throw new MoePruneError('InvalidArgument', USAGE);
    if (!taskPath) for (const f of ['format', 'limit']) if (p.values.has(f)) throw new MoePruneError('InvalidArgument', `--${f} belongs to --task`);
    const seqLen = seqLenArg(p);
    const maxWindows = maxWindowsArg(p);
    const limit = numberArg(p, 'limit', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
    const files = await openNodeFileSet(dir);
    const windows = text ? await evalWindows(files, text, seqLen, maxWindows) : null;
    const task = taskPath ? await readTaskFile(taskPath, taskFormatArg(p)) : null;
    gpu = await openCommandGpu(p.flags.has('cpu'), io.stderr, 'running the CPU reference forward pass');
    const device = gpu ? gpu.adapter.label : 'cpu';
    const json: Record<string, unknown> = {};
    const lines: string[] = [];
    if (windows) {
      const t0 = performance.now();
      const r = await evalPerplexity(files, windows, gpu, undefined, io.signal);
      const seconds = (performance.now() - t0) / 1000;
      Object.assign(json, { perplexity: r.perplexity, tokens: r.tokens, windows: r.windows, seqLen, meanNll: r.meanNll, device, seconds });
      lines.push(`perplexity ${r.perplexity.toFixed(4)} over ${r.tokens} predicted tokens (${r.windows} windows of ${seqLen})`);
    }
    if (task) {
      const job = await PruneJob.open(files, gpu, io.signal);
      const t0 = performance.now();
      // --seq-len given: the task's window too; otherwise the model's own maximum (lm-eval's max_length).
      const r = await job.taskAccuracy(task, undefined, { ...(p.values.has('seq-len') ? { window: seqLen } : {}), ...(limit !== undefined ? { limit } : {}), ...(io.signal ? { signal: io.signal } : {}) });
      const seconds = (performance.now() - t0) / 1000;
      Object.assign(json, taskJson(task, r, p.flags.has('per-item')), { device, task_seconds: seconds });
      lines.push(
        `${r.task}: acc ${pct(r.acc, r.acc_stderr)}, acc_norm ${pct(r.acc_norm, r.acc_norm_stderr)} over ${r.n} items (${task.format}` +
          `${r.truncated ? `; ${r.truncated} cut to the last ${r.window} tokens` : ''})`,
      );
    }
    io.stdout.write(p.flags.has('json') ? `${JSON.stringify(json)}\n` : lines.map((l) => `${l}\n`).join(''));
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    if (gpu) closeNodeGpu(gpu);
  }
}
