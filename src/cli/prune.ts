import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MoePruneError } from '../core/errors.ts';
import { formatCountRange } from '../core/format.ts';
import type { Progress } from '../core/progress.ts';
import type { GpuContext } from '../gpu/device.ts';
import { catalogueCheckpoint, assertComplete } from '../models/catalogue.ts';
import type { ExpertPlanSettings } from '../prune/experts/plan.ts';
import { DEFAULT_CALIB_SAMPLES, DEFAULT_CALIB_SEQ_LEN, measureCoactivation, type MeasuredCoactivation } from '../pipeline/coactivation.ts';
import { exportExpertPruned, runStageOne } from '../pipeline/expert-prune.ts';
import { expertPlanEdits } from '../eval/gpu/plan.ts';
import type { PrunePerplexity, PruneReport } from '../export/report.ts';
import { choiceArg, numberArg, parseArgs } from './args.ts';
import { evalPerplexity, evalWindows, maxWindowsArg, seqLenArg } from './eval.ts';
import { reportFailure, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';
import { closeNodeGpu, openCommandGpu } from './node-gpu.ts';
import { NodeOutputFolder } from './node-output.ts';

const USAGE =
  'usage: moe-prune prune <checkpoint dir> | --demo  --out <dir> [--experts-per-layer K | --expert-sparsity E] ' +
  '[--mode uniform|global [--per-layer-variant]] [--similarity router|coactivation|mixed] [--mix-weight μ] ' +
  '[--calib-text <file> [--calib-samples N] [--calib-seq-len L]] [--normalize-router] [--reconstruct none|per-layer|per-cluster-size] [--kappa N] ' +
  '[--search exact|official] [--eval-text <file> [--seq-len L] [--max-windows N]] [--cpu] [--force] [--json] [--quiet]';

/** "4", or for a per-layer variant "3–5 (per-layer variant: needs custom code)". */
function perLayerText(r: PruneReport): string {
  const by = r.expertsPerLayer.afterByLayer;
  return by ? `${formatCountRange(Object.values(by))} (per-layer variant: needs custom code)` : String(r.expertsPerLayer.after);
}

/** The demo checkpoint shipped with the app (public/demo/model). */
export const DEMO_MODEL_DIR = fileURLToPath(new URL('../../public/demo/model', import.meta.url));

/** Progress on stderr, at most two lines a second (plus each phase's last step), so logs stay readable. */
function progressPrinter(io: CliIo, quiet: boolean): (p: Progress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (quiet || (now - last < 500 && p.done < p.total)) return;
    last = now;
    const pct = p.total ? ` ${((100 * p.done) / p.total).toFixed(0)}%` : '';
    io.stderr.write(`  ${p.phase}${pct} (${p.done}/${p.total} ${p.unit})${p.file ? ` ${p.file}` : ''}\n`);
  };
}

export async function runPrune(args: string[], io: CliIo): Promise<number> {
  let gpu: GpuContext | undefined;
  try {
    const p = parseArgs(
      args,
      {
        values: ['out', 'experts-per-layer', 'expert-sparsity', 'mode', 'similarity', 'reconstruct', 'kappa', 'search', 'eval-text', 'seq-len', 'max-windows', 'mix-weight', 'calib-text', 'calib-samples', 'calib-seq-len'],
        flags: ['demo', 'normalize-router', 'per-layer-variant', 'cpu', 'force', 'json', 'quiet', 'help'],
      },
      USAGE,
    );
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const input = p.flags.has('demo') ? DEMO_MODEL_DIR : p.positional[0];
    const out = p.values.get('out');
    if (!input || !out || p.positional.length > (p.flags.has('demo') ? 0 : 1)) throw new MoePruneError('InvalidArgument', USAGE);
    const K = numberArg(p, 'experts-per-layer', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
    const E = numberArg(p, 'expert-sparsity', (n) => n >= 0 && n < 1, 'a fraction in [0, 1)');
    if ((K === undefined) === (E === undefined)) throw new MoePruneError('InvalidArgument', `give exactly one of --experts-per-layer and --expert-sparsity; ${USAGE}`);
    const mode = choiceArg(p, 'mode', ['uniform', 'global'] as const, 'uniform');
    if (mode === 'global' && K !== undefined) throw new MoePruneError('InvalidArgument', '--mode global takes --expert-sparsity (a global target), not --experts-per-layer');
    const similarity = choiceArg(p, 'similarity', ['router', 'coactivation', 'mixed'] as const, 'router');
    const mixWeight = numberArg(p, 'mix-weight', (n) => n >= 0, 'a non-negative number');
    if (mixWeight !== undefined && similarity !== 'mixed') throw new MoePruneError('InvalidArgument', '--mix-weight only applies to --similarity mixed');
    const calibText = p.values.get('calib-text');
    if (similarity !== 'router' && !calibText)
      throw new MoePruneError('InvalidArgument', `--similarity ${similarity} needs --calib-text <file>: co-activation is counted on calibration text`);
    if (similarity === 'router' && calibText) throw new MoePruneError('InvalidArgument', '--calib-text is only used by --similarity coactivation or mixed');
    for (const f of ['calib-samples', 'calib-seq-len'])
      if (p.values.has(f) && !calibText) throw new MoePruneError('InvalidArgument', `--${f} needs --calib-text <file>`);
    const calibSamples = maxWindowsArg(p, 'calib-samples', DEFAULT_CALIB_SAMPLES);
    const calibSeqLen = seqLenArg(p, 'calib-seq-len', DEFAULT_CALIB_SEQ_LEN);
    const reconstruct = choiceArg(p, 'reconstruct', ['none', 'per-layer', 'per-cluster-size'] as const, 'none');
    const kappa = numberArg(p, 'kappa', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
    const search = choiceArg(p, 'search', ['exact', 'official'] as const, 'exact');

    const files = await openNodeFileSet(input);
    const cat = await catalogueCheckpoint(files);
    assertComplete(cat.summary);
    const n = cat.summary.expertsPerLayer;
    const settings: Partial<ExpertPlanSettings> = {
      mode,
      similarity,
      ...(mixWeight !== undefined && { mixWeight }),
      normalize: p.flags.has('normalize-router'),
      reconstruct,
      search,
      ...(kappa !== undefined && { kappa }),
      ...(mode === 'uniform'
        ? { keepPerLayer: K ?? n - Math.round(E! * n) }
        : { targetTotal: Math.round((1 - E!) * n * cat.moeLayers.length) }),
    };
    gpu = await openCommandGpu(p.flags.has('cpu'), io.stderr, 'computing distances on the CPU');
    const onProgress = progressPrinter(io, p.flags.has('quiet') || p.flags.has('json'));
    const { signal } = io;
    let co: MeasuredCoactivation | undefined;
    let calibWindows = 0;
    if (calibText) {
      // One calibration pass (no lm_head on the GPU) counts, per MoE layer, tokens that chose each pair of experts.
      const windows = await evalWindows(files, calibText, calibSeqLen, calibSamples);
      calibWindows = windows.windows.length;
      co = await measureCoactivation(files, windows, gpu, { onProgress, signal });
      if (!p.flags.has('json')) io.stderr.write(`moe-prune: co-activation counted on ${co.tokens} calibration tokens (${calibWindows} × ${calibSeqLen})\n`);
    }
    const stage = await runStageOne(cat, settings, gpu, { onProgress, signal, ...(co && { coactivation: co.byLayer }) });
    if (stage.plan.search && !stage.plan.search.exact) io.stderr.write(`moe-prune: ${stage.plan.search.message}\n`);
    const evalText = p.values.get('eval-text');
    let perplexity: PrunePerplexity | undefined;
    if (evalText) {
      // Perplexity before and after, the plan applied on the fly (nothing written yet).
      const seqLen = seqLenArg(p);
      const windows = await evalWindows(files, evalText, seqLen, maxWindowsArg(p));
      const before = await evalPerplexity(files, windows, gpu, undefined, signal);
      const after = await evalPerplexity(files, windows, gpu, expertPlanEdits(stage.plan.layers), signal);
      perplexity = { before: before.perplexity, after: after.perplexity, tokens: after.tokens, seqLen, windows: after.windows };
      if (!p.flags.has('json')) io.stderr.write(`moe-prune: perplexity ${before.perplexity.toFixed(3)} → ${after.perplexity.toFixed(3)} (${after.tokens} tokens)\n`);
    }
    const result = await exportExpertPruned(cat, files, stage.plan, new NodeOutputFolder(out, p.flags.has('force')), {
      onProgress,
      signal,
      ...(perplexity ? { perplexity } : {}),
      perLayerVariant: p.flags.has('per-layer-variant'),
      tool: 'moe-prune prune',
      settings: {
        experts_per_layer: K ?? null,
        expert_sparsity: E ?? null,
        normalize_router: p.flags.has('normalize-router'),
        per_layer_variant: p.flags.has('per-layer-variant'),
        device: gpu ? gpu.adapter.label : 'cpu',
        ...(calibText &&
          co && {
            calibration: { text: basename(calibText), samples: calibWindows, requested_samples: calibSamples, seq_len: calibSeqLen, tokens: co.tokens },
          }),
      },
    });
    const r = result.report;
    if (p.flags.has('json')) io.stdout.write(`${JSON.stringify({ out, files: result.files, report: r, timings: stage.timings }, null, 2)}\n`);
    else
      io.stdout.write(
        `wrote ${out}: ${r.expertsPerLayer.before} → ${perLayerText(r)} experts per MoE layer, ` +
          `${r.params.before.toLocaleString('en-US')} → ${r.params.after.toLocaleString('en-US')} parameters, ${result.shards.length} shard(s)\n`,
      );
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    if (gpu) closeNodeGpu(gpu);
  }
}
