/**
 * `moe-prune compare`: which experts to drop, measured on the user's own model. Runs every expert-choice criterion on
 * the same calibration (STUN router / co-activation / mixed clustering, REAP, EAN, frequency, seeded random, NAEE's
 * exhaustive search, HC-SMoE's expert-output similarity), keeping
 * K experts per MoE layer, and prints one table: reconstruction error per MoE layer and its mean, held-out perplexity
 * with the plan applied on the fly (--eval-text), time per criterion, and the kept experts. `--json` gives the same data.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { MoePruneError } from '../core/errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { CALIBRATION_DEFAULTS, PruneJob, type TextInput } from '../pipeline/job.ts';
import { CRITERIA, parseCriteria, type Comparison } from '../pipeline/compare-experts.ts';
import { choiceArg, numberArg, parseArgs } from './args.ts';
import { maxWindowsArg, seqLenArg } from './eval.ts';
import { reportFailure, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';
import { closeNodeGpu, openNodeGpu } from './node-gpu.ts';
import { representativeWorkers, type CpuWorkers } from './cpu-workers.ts';

const USAGE =
  'usage: moe-prune compare <checkpoint dir> --experts-per-layer K --calib-text <file> [--calib-samples N] [--calib-seq-len L] [--calib-sampling first|random [--calib-seed S]] ' +
  `[--eval-text <file> [--seq-len L] [--max-windows N]] [--criteria ${CRITERIA.join(',')}|all] [--seed S] [--json] [--quiet]`;

async function readTextFile(path: string, what: string): Promise<TextInput> {
  try {
    return { name: basename(path), bytes: new Uint8Array(await readFile(path)) };
  } catch (e) {
    throw new MoePruneError('MissingFile', `cannot read the ${what} (${(e as Error).message})`, path);
  }
}

const num = (x: number, digits = 4): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** Left-aligned columns, two spaces apart. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** The printed report: one row per criterion, then the kept experts. */
export function comparisonText(c: Comparison, head: string): string {
  const ppl = c.original.perplexity !== null;
  const layers = c.results[0]?.reconstruction.map((r) => r.layer) ?? [];
  const rows: string[][] = [['criterion', 'mean error', `error per MoE layer (${layers.join(', ')})`, ...(ppl ? ['perplexity'] : []), 'seconds (choose / error' + (ppl ? ' / perplexity)' : ')')]];
  if (ppl) rows.push(['original', '0', '—', num(c.original.perplexity!.perplexity, 3), '—']);
  for (const r of c.results) {
    const s = r.seconds;
    rows.push([
      r.criterion, num(r.meanError), r.reconstruction.map((l) => num(l.error)).join(' '),
      ...(ppl ? [num(r.perplexity!.perplexity, 3)] : []),
      [s.choose, s.reconstruction, ...(s.perplexity !== null ? [s.perplexity] : [])].map((x) => x.toFixed(2)).join(' / '),
    ]);
  }
  const kept: string[][] = [['criterion', 'kept experts per MoE layer (original indices)']];
  for (const r of c.results) kept.push([r.criterion, Object.entries(r.kept).map(([l, k]) => `${l}: [${k.join(' ')}]`).join('  ')]);
  const notes: string[] = [];
  for (const r of c.results)
    if (r.exhaustive) notes.push(`exhaustive: ${r.exhaustive.subsets} subsets scored (${r.exhaustive.layers.map((l) => `layer ${l.layer}: ${l.subsets}`).join(', ')})`);
  for (const s of c.skipped) notes.push(`${s.criterion} left out: ${s.reason}`);
  return `${head}\n${table(rows)}\n${table(kept)}${notes.length ? `\n${notes.join('\n')}\n` : ''}`;
}

export function comparisonJson(c: Comparison, extra: Record<string, unknown>): Record<string, unknown> {
  const ppl = (p: { perplexity: number; tokens: number } | null) => p && { perplexity: p.perplexity, tokens: p.tokens };
  return {
    ...extra,
    keepPerLayer: c.keepPerLayer,
    seed: c.seed,
    skipped: c.skipped,
    original: { perplexity: ppl(c.original.perplexity) },
    criteria: c.results.map((r) => ({
      criterion: r.criterion,
      kept: r.kept,
      reconstruction: { mean: r.meanError, layers: r.reconstruction },
      perplexity: ppl(r.perplexity),
      seconds: r.seconds,
      ...(r.scores ? { scores: r.scores } : {}),
      ...(r.exhaustive ? { exhaustive: r.exhaustive } : {}),
    })),
  };
}

export async function runCompare(args: string[], io: CliIo): Promise<number> {
  let gpu: GpuContext | undefined;
  let cpuWorkers: CpuWorkers | undefined;
  try {
    const p = parseArgs(
      args,
      {
        values: ['experts-per-layer', 'calib-text', 'calib-samples', 'calib-seq-len', 'calib-sampling', 'calib-seed', 'eval-text', 'seq-len', 'max-windows', 'criteria', 'seed'],
        flags: ['json', 'quiet', 'help'],
      },
      USAGE,
    );
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const dir = p.positional[0];
    if (!dir || p.positional.length !== 1) throw new MoePruneError('InvalidArgument', USAGE);
    const K = numberArg(p, 'experts-per-layer', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
    if (K === undefined) throw new MoePruneError('InvalidArgument', `--experts-per-layer K is required: every criterion keeps K experts per MoE layer; ${USAGE}`);
    const calibText = p.values.get('calib-text');
    if (!calibText) throw new MoePruneError('InvalidArgument', `--calib-text <file> is required: the criteria and the reconstruction error are measured on it; ${USAGE}`);
    const evalText = p.values.get('eval-text');
    for (const f of ['seq-len', 'max-windows']) if (p.values.has(f) && !evalText) throw new MoePruneError('InvalidArgument', `--${f} needs --eval-text <file>`);
    const seed = numberArg(p, 'seed', (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'an integer in [0, 2^32)') ?? 0;
    const criteria = p.values.has('criteria') ? parseCriteria(p.values.get('criteria')!) : [...CRITERIA];
    // The calibration rules of `prune`, so a comparison and a pruning run can use the same windows.
    if (p.values.has('calib-seed') && p.values.get('calib-sampling') !== 'random') throw new MoePruneError('InvalidArgument', '--calib-seed only applies to --calib-sampling random');
    const spec = {
      samples: maxWindowsArg(p, 'calib-samples', CALIBRATION_DEFAULTS.samples),
      seqLen: seqLenArg(p, 'calib-seq-len', CALIBRATION_DEFAULTS.seqLen),
      sampling: choiceArg(p, 'calib-sampling', ['first', 'random'] as const, CALIBRATION_DEFAULTS.sampling),
      seed: numberArg(p, 'calib-seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2³²)') ?? CALIBRATION_DEFAULTS.seed,
    };
    const files = await openNodeFileSet(dir);
    const calibInput = await readTextFile(calibText, 'calibration text');
    const evalInput = evalText ? await readTextFile(evalText, 'evaluation text') : null;
    gpu = await openNodeGpu();
    const json = p.flags.has('json');
    if (!json) io.stderr.write(`moe-prune: using WebGPU adapter ${gpu.adapter.label}\n`);
    cpuWorkers = representativeWorkers(gpu, json ? undefined : (l) => io.stderr.write(l));
    const job = await PruneJob.open(files, gpu, io.signal, cpuWorkers);
    const { signal } = io;
    const calib = await job.calibrate(calibInput, spec, signal);
    const evaluation = evalInput ? await job.heldoutWindows(evalInput, seqLenArg(p), maxWindowsArg(p), signal) : null;
    const quiet = json || p.flags.has('quiet');
    let last = '';
    const onProgress = quiet
      ? undefined
      : (pr: { phase: string }) => {
          const phase = pr.phase.split(':')[0]!;
          if (phase !== last) io.stderr.write(`  ${(last = phase)}\n`);
        };
    const result = await job.compareExpertChoices(calib, K, { criteria, seed, evaluation, ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}) });
    const W = calib.windows.windows.length;
    const calibration = { text: calib.text.name, sha256: calib.text.sha256, samples: W, seqLen: spec.seqLen, tokens: W * spec.seqLen, sampling: spec.sampling, seed: spec.seed };
    const held = evaluation && { text: evalInput!.name, windows: evaluation.windows.length, seqLen: evaluation.length };
    if (json) io.stdout.write(`${JSON.stringify(comparisonJson(result, { model: dir, device: gpu.adapter.label, calibration, evaluation: held }))}\n`);
    else
      io.stdout.write(
        comparisonText(
          result,
          `${K} experts kept per MoE layer; calibration ${calibration.text}: ${W} × ${spec.seqLen} tokens` +
            (held ? `; held-out ${held.text}: ${held.windows} × ${held.seqLen} tokens` : '') +
            `; error = ‖y − ŷ‖² / ‖y‖² of each MoE block's output on the calibration tokens; random seed ${seed}`,
        ),
      );
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    if (gpu) closeNodeGpu(gpu);
    await cpuWorkers?.close();
  }
}
