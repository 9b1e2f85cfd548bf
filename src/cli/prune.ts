import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MoePruneError } from '../core/errors.ts';
import { formatCountRange } from '../core/format.ts';
import type { Progress } from '../core/progress.ts';
import type { GpuContext } from '../gpu/device.ts';
import { catalogueCheckpoint, type Catalogue } from '../models/catalogue.ts';
import type { PruneReport } from '../export/report.ts';
import {
  CALIBRATION_DEFAULTS, needsCalibrationText, PruneJob, resolveJobSettings, settingsFromReport, type Evaluation, type JobSettings, type TextInput,
} from '../pipeline/job.ts';
import type { StageTwoResult } from '../pipeline/unstructured.ts';
import { checkUnstructuredSettings, METHODS, parseNm, SCOPES, UNROUTED_POLICIES, UNSTRUCTURED_DEFAULTS, type UnstructuredSettings } from '../prune/unstructured/settings.ts';
import { EXHAUSTIVE_MAX_EXPERTS, EXPERT_SCORES, type ExpertScore } from '../pipeline/job.ts';
import { choiceArg, numberArg, parseArgs, type ParsedArgs } from './args.ts';
import { maxWindowsArg, readTaskFile, seqLenArg, taskFormatArg } from './eval.ts';
import { reportFailure, type CliIo } from './main.ts';
import { openNodeFileSet } from './node-files.ts';
import { closeNodeGpu, openCommandGpu } from './node-gpu.ts';
import { NodeOutputFolder } from './node-output.ts';
import { NodeWorkDir } from './work-dir.ts';
import { representativeWorkers, type CpuWorkers } from './cpu-workers.ts';

const USAGE =
  'usage: moe-prune prune <checkpoint dir> | --demo  --out <dir> [--experts-per-layer K | --expert-sparsity E] ' +
  '[--sparsity S | --nm N:M] [--method wanda|owl|magnitude] [--owl-m M] [--owl-lambda λ] [--scope experts|experts+shared|all] [--unrouted all-tokens|magnitude|dense] ' +
  '[--mode uniform|global [--per-layer-variant]] [--similarity router|coactivation|mixed|output] [--mix-weight μ] [--output-tokens all|routed] [--output-distance cosine|l2] ' +
  '[--expert-score reap|ean|frequency|exhaustive|random [--seed S]] ' +
  '[--calib-text <file> [--calib-samples N] [--calib-seq-len L] [--calib-sampling first|random [--calib-seed S]]] [--normalize-router] [--reconstruct none|per-layer|per-cluster-size] [--kappa N] ' +
  '[--search exact|official] [--eval-text <file> [--seq-len L] [--max-windows N]] [--eval-task <file.jsonl> [--eval-task-format auto|jsonl|arc|hellaswag|piqa|mmlu]] [--from-report prune-report.json] [--work-dir D] [--cpu] [--force] [--json] [--quiet]';

/** Stage-2 settings from the flags, or null when neither --sparsity nor --nm is given. */
function stageTwoArgs(p: ParsedArgs): UnstructuredSettings | null {
  const sparsity = numberArg(p, 'sparsity', (n) => n >= 0 && n < 1, 'a fraction in [0, 1)');
  const nmText = p.values.get('nm');
  if (sparsity === undefined && nmText === undefined) {
    for (const f of ['method', 'owl-m', 'owl-lambda', 'scope', 'unrouted'])
      if (p.values.has(f)) throw new MoePruneError('InvalidArgument', `--${f} belongs to unstructured pruning: give --sparsity S or --nm N:M with it`);
    return null;
  }
  const d = UNSTRUCTURED_DEFAULTS;
  const method = choiceArg(p, 'method', METHODS, d.method);
  for (const f of ['owl-m', 'owl-lambda']) if (p.values.has(f) && method !== 'owl') throw new MoePruneError('InvalidArgument', `--${f} only applies to --method owl`);
  const s: UnstructuredSettings = {
    method,
    sparsity: sparsity ?? null,
    nm: nmText === undefined ? null : parseNm(nmText),
    owlM: numberArg(p, 'owl-m', (n) => n > 0, 'a positive number') ?? d.owlM,
    owlLambda: numberArg(p, 'owl-lambda', (n) => n >= 0 && n < 1, 'a number in [0, 1)') ?? d.owlLambda,
    scope: choiceArg(p, 'scope', SCOPES, d.scope),
    unrouted: choiceArg(p, 'unrouted', UNROUTED_POLICIES, d.unrouted),
  };
  checkUnstructuredSettings(s);
  return s;
}

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

/** Job settings from the flags, and the calibration text's path (when the settings need one). */
function settingsFromFlags(p: ParsedArgs, cat: Catalogue): { settings: JobSettings; calibText: string | undefined } {
  const K = numberArg(p, 'experts-per-layer', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  const E = numberArg(p, 'expert-sparsity', (n) => n >= 0 && n < 1, 'a fraction in [0, 1)');
  const stage2 = stageTwoArgs(p);
  if (K !== undefined && E !== undefined) throw new MoePruneError('InvalidArgument', `give at most one of --experts-per-layer and --expert-sparsity; ${USAGE}`);
  if (K === undefined && E === undefined && !stage2)
    throw new MoePruneError('InvalidArgument', `give --experts-per-layer K or --expert-sparsity E (expert pruning), --sparsity S or --nm N:M (unstructured), or both; ${USAGE}`);
  const mode = choiceArg(p, 'mode', ['uniform', 'global'] as const, 'uniform');
  if (mode === 'global' && K !== undefined) throw new MoePruneError('InvalidArgument', '--mode global takes --expert-sparsity (a global target), not --experts-per-layer');
  const similarity = choiceArg(p, 'similarity', ['router', 'coactivation', 'mixed', 'output'] as const, 'router');
  const expertScore = p.values.has('expert-score') ? choiceArg<ExpertScore>(p, 'expert-score', EXPERT_SCORES, 'reap') : null;
  if (expertScore && p.values.has('similarity')) throw new MoePruneError('InvalidArgument', '--expert-score keeps the K best experts instead of clustering; drop --similarity');
  if (expertScore && mode === 'global') throw new MoePruneError('InvalidArgument', `--expert-score keeps the K best experts of every layer: give --experts-per-layer K or --expert-sparsity E, not --mode global`);
  if (expertScore && K === undefined && E === undefined) throw new MoePruneError('InvalidArgument', '--expert-score needs --experts-per-layer K or --expert-sparsity E');
  if (expertScore === 'exhaustive' && cat.summary.expertsPerLayer > EXHAUSTIVE_MAX_EXPERTS)
    throw new MoePruneError(
      'InvalidArgument',
      `--expert-score exhaustive scores every subset of kept experts and takes layers of at most ${EXHAUSTIVE_MAX_EXPERTS} experts; this model has ${cat.summary.expertsPerLayer}. Use reap, ean or frequency`,
    );
  const seed = numberArg(p, 'seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2³²)');
  if (seed !== undefined && expertScore !== 'random') throw new MoePruneError('InvalidArgument', '--seed only applies to --expert-score random');
  for (const f of ['output-tokens', 'output-distance'])
    if (p.values.has(f) && similarity !== 'output') throw new MoePruneError('InvalidArgument', `--${f} only applies to --similarity output`);
  const mixWeight = numberArg(p, 'mix-weight', (n) => n >= 0, 'a non-negative number');
  if (mixWeight !== undefined && similarity !== 'mixed') throw new MoePruneError('InvalidArgument', '--mix-weight only applies to --similarity mixed');
  const kappa = numberArg(p, 'kappa', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
  const n = cat.summary.expertsPerLayer;
  const settings = resolveJobSettings({
    experts: {
      mode,
      similarity,
      outputTokens: choiceArg(p, 'output-tokens', ['all', 'routed'] as const, 'all'),
      outputDistance: choiceArg(p, 'output-distance', ['cosine', 'l2'] as const, 'cosine'),
      expertScore,
      ...(seed !== undefined && { seed }),
      ...(mixWeight !== undefined && { mixWeight }),
      normalize: p.flags.has('normalize-router'),
      reconstruct: choiceArg(p, 'reconstruct', ['none', 'per-layer', 'per-cluster-size'] as const, 'none'),
      search: choiceArg(p, 'search', ['exact', 'official'] as const, 'exact'),
      ...(kappa !== undefined && { kappa }),
      // Without an expert flag no expert is removed: every layer keeps all n.
      ...(mode === 'uniform' ? { keepPerLayer: K ?? n - Math.round((E ?? 0) * n) } : { targetTotal: Math.round((1 - (E ?? 0)) * n * cat.moeLayers.length) }),
    },
    unstructured: stage2,
    calibration: {
      samples: maxWindowsArg(p, 'calib-samples', CALIBRATION_DEFAULTS.samples),
      seqLen: seqLenArg(p, 'calib-seq-len', CALIBRATION_DEFAULTS.seqLen),
      sampling: choiceArg(p, 'calib-sampling', ['first', 'random'] as const, CALIBRATION_DEFAULTS.sampling),
      seed: numberArg(p, 'calib-seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2³²)') ?? CALIBRATION_DEFAULTS.seed,
    },
    perLayerVariant: p.flags.has('per-layer-variant'),
  });
  const calibText = p.values.get('calib-text');
  const needed = needsCalibrationText(settings);
  if (needed && !calibText)
    throw new MoePruneError(
      'InvalidArgument',
      expertScore
        ? `--expert-score ${expertScore} needs --calib-text <file>: experts are scored on their outputs for calibration text`
        : similarity === 'output'
          ? '--similarity output needs --calib-text <file>: expert outputs are compared on calibration text'
          : similarity !== 'router'
            ? `--similarity ${similarity} needs --calib-text <file>: co-activation is counted on calibration text`
            : `--method ${stage2!.method} needs --calib-text <file>: it scores weights by the norms of their inputs on calibration text`,
    );
  if (!needed && calibText) throw new MoePruneError('InvalidArgument', '--calib-text is only used by --similarity coactivation or mixed or output, by --expert-score (except random), or by --method wanda / owl');
  if (p.values.has('calib-seed') && p.values.get('calib-sampling') !== 'random') throw new MoePruneError('InvalidArgument', '--calib-seed only applies to --calib-sampling random');
  for (const f of ['calib-samples', 'calib-seq-len', 'calib-sampling']) if (p.values.has(f) && !calibText) throw new MoePruneError('InvalidArgument', `--${f} needs --calib-text <file>`);
  return { settings, calibText };
}

/** Flags that shape the result: with --from-report they come from the report and may not be given again. */
const SHAPING = [
  'experts-per-layer', 'expert-sparsity', 'mode', 'similarity', 'output-tokens', 'output-distance', 'expert-score', 'seed', 'reconstruct', 'kappa', 'search', 'mix-weight', 'calib-samples', 'calib-seq-len', 'calib-sampling', 'calib-seed',
  'sparsity', 'nm', 'method', 'owl-m', 'owl-lambda', 'scope', 'unrouted', 'normalize-router', 'per-layer-variant',
];

async function readTextFile(path: string, what: string): Promise<TextInput> {
  try {
    return { name: basename(path), bytes: new Uint8Array(await readFile(path)) };
  } catch (e) {
    throw new MoePruneError('MissingFile', `cannot read the ${what} (${(e as Error).message})`, path);
  }
}

export async function runPrune(args: string[], io: CliIo): Promise<number> {
  let gpu: GpuContext | undefined;
  let cpuWorkers: CpuWorkers | undefined;
  try {
    const p = parseArgs(
      args,
      {
        values: [
          'out', 'experts-per-layer', 'expert-sparsity', 'mode', 'similarity', 'output-tokens', 'output-distance', 'expert-score', 'seed', 'reconstruct', 'kappa', 'search', 'eval-text', 'seq-len', 'max-windows', 'mix-weight',
          'eval-task', 'eval-task-format', 'calib-text', 'calib-samples', 'calib-seq-len', 'calib-sampling', 'calib-seed', 'sparsity', 'nm', 'method', 'owl-m', 'owl-lambda', 'scope', 'unrouted', 'from-report', 'work-dir',
        ],
        flags: ['demo', 'normalize-router', 'per-layer-variant', 'cpu', 'force', 'json', 'quiet', 'help'],
      },
      USAGE,
    );
    if (p.flags.has('help')) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!p.values.has('eval-task') && p.values.has('eval-task-format')) throw new MoePruneError('InvalidArgument', '--eval-task-format belongs to --eval-task');
    const evalTaskFormat = taskFormatArg(p, 'eval-task-format');
    const input = p.flags.has('demo') ? DEMO_MODEL_DIR : p.positional[0];
    const out = p.values.get('out');
    if (!input || !out || p.positional.length > (p.flags.has('demo') ? 0 : 1)) throw new MoePruneError('InvalidArgument', USAGE);
    const files = await openNodeFileSet(input);
    const fromReport = p.values.get('from-report');
    let settings: JobSettings;
    let calibText: string | undefined;
    let wantDigest: string | undefined;
    if (fromReport) {
      const given = SHAPING.filter((f) => p.values.has(f) || p.flags.has(f));
      if (given.length) throw new MoePruneError('InvalidArgument', `--from-report repeats a run with the report's settings; drop ${given.map((f) => `--${f}`).join(', ')}`);
      let json: unknown;
      try {
        json = JSON.parse(await readFile(fromReport, 'utf8'));
      } catch (e) {
        throw new MoePruneError('InvalidArgument', `cannot read the report (${(e as Error).message})`, fromReport);
      }
      const r = settingsFromReport(json, fromReport);
      settings = r.settings;
      if (r.calibrationText) {
        // The report names its calibration text; it is looked for beside the report unless --calib-text says where.
        calibText = p.values.get('calib-text') ?? join(dirname(fromReport), r.calibrationText.name);
        wantDigest = r.calibrationText.sha256;
      } else if (p.values.has('calib-text')) throw new MoePruneError('InvalidArgument', 'the report used no calibration text; drop --calib-text');
    } else {
      const cat = await catalogueCheckpoint(files);
      ({ settings, calibText } = settingsFromFlags(p, cat));
    }
    if (settings.unstructured && p.flags.has('cpu'))
      throw new MoePruneError('InvalidArgument', "unstructured pruning (--sparsity / --nm) runs on a WebGPU adapter (a software one works: Debian's chromium package provides SwiftShader); drop --cpu");
    gpu = await openCommandGpu(p.flags.has('cpu'), io.stderr, 'computing distances on the CPU');
    cpuWorkers = representativeWorkers(gpu, p.flags.has('json') ? undefined : (l) => io.stderr.write(l));
    const job = await PruneJob.open(files, gpu, io.signal, cpuWorkers);
    if (settings.unstructured && !gpu)
      throw new MoePruneError('InvalidArgument', "unstructured pruning (--sparsity / --nm) runs on a WebGPU adapter (a software one works: Debian's chromium package provides SwiftShader); drop --cpu");
    const quiet = p.flags.has('json');
    const onProgress = progressPrinter(io, p.flags.has('quiet') || quiet);
    const { signal } = io;
    const task = { onProgress, signal };
    const calib = calibText ? await job.calibrate(await readTextFile(calibText, 'calibration text'), settings.calibration, signal) : null;
    if (calib && wantDigest && calib.text.sha256 !== wantDigest)
      throw new MoePruneError('InvalidArgument', `this is not the calibration text the report was made with (SHA-256 ${calib.text.sha256.slice(0, 12)}…, the report's ${wantDigest.slice(0, 12)}…)`, calibText);
    if (calib && settings.experts.expertScore === null && (settings.experts.similarity === 'coactivation' || settings.experts.similarity === 'mixed')) {
      const co = await job.measureCoactivation(calib, task);
      if (!quiet) io.stderr.write(`moe-prune: co-activation counted on ${co.tokens} calibration tokens (${calib.windows.windows.length} × ${calib.spec.seqLen})\n`);
    }
    const t0 = performance.now();
    let plan = await job.planExperts(settings.experts, calib, task);
    const stageOneMs = performance.now() - t0;
    if (plan.search && !plan.search.exact) io.stderr.write(`moe-prune: ${plan.search.message}\n`);
    let stage2: StageTwoResult | null = null;
    const workDir = p.values.get('work-dir');
    if (workDir && !settings.unstructured) throw new MoePruneError('InvalidArgument', '--work-dir keeps the progress of unstructured pruning (--sparsity / --nm); expert pruning alone is quick to redo');
    if (settings.unstructured) {
      const progressStore = workDir ? await NodeWorkDir.open(workDir, await job.fingerprint(settings, calib, signal)) : undefined;
      if (progressStore?.savedLayers && !quiet)
        io.stderr.write(`moe-prune: resuming unstructured pruning from layer ${progressStore.savedLayers + 1} of ${job.cat.summary.layers} (${progressStore.savedLayers} finished layer(s) saved in ${workDir})\n`);
      stage2 = await job.unstructured(plan, settings.unstructured, calib, { ...task, ...(progressStore ? { progressStore } : {}) });
      const sp = stage2.sparsity;
      if (!quiet)
        io.stderr.write(
          `moe-prune: ${sp.method}${sp.nm ? ` ${sp.nm}` : ''} over ${sp.scope}: sparsity ${(100 * sp.achieved).toFixed(2)}% achieved` +
            `${sp.target !== null ? ` (target ${(100 * sp.target).toFixed(2)}%)` : ''}; ${(100 * sp.expert).toFixed(2)}% with experts, ${(100 * sp.unstructured).toFixed(2)}% of the rest unstructured\n`,
        );
      if (stage2.unrouted.experts.length && !quiet)
        io.stderr.write(`moe-prune: ${stage2.unrouted.experts.length} expert(s) got no calibration token (policy ${stage2.unrouted.policy}): ${stage2.unrouted.experts.join(', ')}\n`);
    }
    const evalText = p.values.get('eval-text');
    let evaluation: Evaluation | null = null;
    if (evalText) {
      // Perplexity before and after, the plan applied on the fly (nothing written yet).
      const windows = await job.heldoutWindows(await readTextFile(evalText, 'evaluation text'), seqLenArg(p), maxWindowsArg(p), signal);
      evaluation = await job.evaluate(windows, plan, stage2, { signal });
      if (!quiet) io.stderr.write(`moe-prune: perplexity ${evaluation.before.perplexity.toFixed(3)} → ${evaluation.after.perplexity.toFixed(3)} (${evaluation.after.tokens} tokens)\n`);
    }
    const evalTask = p.values.get('eval-task');
    let taskEval: Parameters<typeof job.export>[1]['task'] = null;
    if (evalTask) {
      // Task accuracy before and after (lm-eval multiple-choice rules), the plan applied on the fly; --seq-len, when given, is its window.
      const file = await readTaskFile(evalTask, evalTaskFormat);
      const ev = await job.evaluateTask(file, plan, stage2, { signal, ...(p.values.has('seq-len') ? { window: seqLenArg(p) } : {}) });
      taskEval = { file, evaluation: ev };
      if (!quiet) io.stderr.write(`moe-prune: ${file.name} acc ${(100 * ev.before.acc).toFixed(1)}% → ${(100 * ev.after.acc).toFixed(1)}%, acc_norm ${(100 * ev.before.acc_norm).toFixed(1)}% → ${(100 * ev.after.acc_norm).toFixed(1)}% (${ev.after.n} items)\n`);
    }
    if (calib && gpu && plan.totalKept < plan.totalExperts) {
      // What the plan costs each MoE layer on the calibration tokens, for the report (any criterion).
      plan = await job.measurePlan(plan, calib, task);
      const rec = plan.reconstruction ?? [];
      if (!quiet && rec.length) io.stderr.write(`moe-prune: reconstruction error ${(rec.reduce((a, l) => a + l.error, 0) / rec.length).toFixed(4)} (mean of ${rec.length} MoE layers; ${rec.map((l) => `${l.layer}: ${l.error.toFixed(4)}`).join(', ')})\n`);
    }
    const result = await job.export(
      new NodeOutputFolder(out, p.flags.has('force')),
      { plan, stage2, settings, calibration: calib, evaluation, task: taskEval, tool: 'moe-prune prune' },
      task,
    );
    const r = result.report;
    if (quiet) io.stdout.write(`${JSON.stringify({ out, files: result.files, report: r, timings: { stageOneMs, stageTwoMs: stage2?.layerMs ?? null } }, null, 2)}\n`);
    else
      io.stdout.write(
        `wrote ${out}: ${r.expertsPerLayer.before} → ${perLayerText(r)} experts per MoE layer, ` +
          `${r.params.before.toLocaleString('en-US')} → ${r.params.after.toLocaleString('en-US')} parameters` +
          `${r.sparsity ? ` (${r.params.nonzeroAfter.toLocaleString('en-US')} non-zero)` : ''}, ${result.shards.length} shard(s)\n`,
      );
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    if (gpu) closeNodeGpu(gpu);
    await cpuWorkers?.close();
  }
}
