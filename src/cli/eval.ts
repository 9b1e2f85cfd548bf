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
import { numberArg, parseArgs } from './args.ts';
import { reportFailure, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';
import { closeNodeGpu, openCommandGpu } from './node-gpu.ts';

const USAGE = 'usage: moe-prune eval <checkpoint dir> --text <file> [--seq-len L] [--max-windows N] [--json] [--cpu]';

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

export async function runEval(args: string[], io: CliIo): Promise<number> {
  let gpu: GpuContext | undefined;
  try {
    const p = parseArgs(args, { values: ['text', 'seq-len', 'max-windows'], flags: ['json', 'cpu', 'help'] }, USAGE);
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const dir = p.positional[0];
    const text = p.values.get('text');
    if (!dir || !text || p.positional.length !== 1) throw new MoePruneError('InvalidArgument', USAGE);
    const seqLen = seqLenArg(p);
    const maxWindows = maxWindowsArg(p);
    const files = await openNodeFileSet(dir);
    const windows = await evalWindows(files, text, seqLen, maxWindows);
    gpu = await openCommandGpu(p.flags.has('cpu'), io.stderr, 'running the CPU reference forward pass');
    const t0 = performance.now();
    const r = await evalPerplexity(files, windows, gpu, undefined, io.signal);
    const seconds = (performance.now() - t0) / 1000;
    if (p.flags.has('json'))
      io.stdout.write(`${JSON.stringify({ perplexity: r.perplexity, tokens: r.tokens, windows: r.windows, seqLen, meanNll: r.meanNll, device: gpu ? gpu.adapter.label : 'cpu', seconds })}\n`);
    else io.stdout.write(`perplexity ${r.perplexity.toFixed(4)} over ${r.tokens} predicted tokens (${r.windows} windows of ${seqLen})\n`);
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    if (gpu) closeNodeGpu(gpu);
  }
}
