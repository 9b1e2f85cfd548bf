/**
 * The one orchestrator of a pruning job, driven by the CLI and by the page alike:
 *   prepare (routers, GPU distances; cached) → calibrate (windows of a text; cached) → plan experts (stage 1) →
 *   unstructured masks (stage 2) → evaluate (perplexity, the plan applied on the fly) → export.
 * Settings are one typed object with one set of defaults (`resolveJobSettings`), and the report's `settings` are built
 * from it in one place (`reportSettings`), so any run can be repeated from its `prune-report.json`
 * (`settingsFromReport`, `moe-prune prune … --from-report`).
 */
import { MoePruneError } from '../core/errors.ts';
import { sha256Hex } from '../core/digest.ts';
import type { LongTask } from '../core/progress.ts';
import type { FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import { GpuForwardEngine, type GpuForwardResult } from '../forward/engine.ts';
import { gpuPerplexity } from '../eval/gpu-perplexity.ts';
import { expertPlanEdits, referencePlan, type WeightPlan } from '../forward/plan.ts';
import { perplexity, referenceNll, type PerplexityResult } from '../eval/perplexity.ts';
import { openReferenceModel } from '../forward/reference/forward.ts';
import { loadTokenizer } from '../eval/tokenizer.ts';
import { windowsOfText, type Sampling, type Windows } from '../eval/windows.ts';
import type { OutputFolder } from '../export/write-checkpoint.ts';
import type { PrunePerplexity, PruneTradeoff } from '../export/report.ts';
import { catalogueCheckpoint, assertComplete, type Catalogue } from '../models/catalogue.ts';
import {
  layerDistances, planExpertPruning, rememberRepresentatives, resolveExpertPlanSettings, withKnownRepresentatives, DEFAULT_EXPERT_PLAN_SETTINGS, type ExpertLayerInput,
  type ExpertPlan, type ExpertPlanSettings,
} from '../prune/experts/plan.ts';
import {
  checkUnstructuredSettings, formatNm, needsCalibration, parseNm, UNSTRUCTURED_DEFAULTS, type PruneScope, type UnstructuredSettings,
} from '../prune/unstructured/settings.ts';
import {
  coactivationFromStats, DEFAULT_CALIB_SAMPLES, DEFAULT_CALIB_SEQ_LEN, measureCoactivation, withCoactivation, type CoactivationByLayer, type MeasuredCoactivation,
} from './coactivation.ts';
import { exportExpertPruned, layerInputs, loadRouters, resolvePlan, routerSquaredDistancesGpu, type PruneExportResult, type RouterLayer } from './expert-prune.ts';
import { compareExpertChoices, outputSimilarityPlan, planByCriterion, withReconstruction, type Comparison, type ComparisonOptions } from './compare-experts.ts';
import { exhaustiveSequential, reconstructionErrors, scoreExpertsSequential, type ExhaustivePlan, type ScoredPlan } from './expert-choice.ts';
import type { LayerReconstruction } from '../forward/expert-signals.ts';
import type { ChunkDistanceWorkers } from '../prune/experts/representative.ts';
import type { SaliencyCriterion } from '../prune/experts/saliency.ts';
import { runStageTwo, scopeCounts, type StageTwoProgressStore, type StageTwoResult } from './unstructured.ts';
import { reportAccuracy, taskAccuracy, type TaskEvaluation, type TaskOptions } from './task-eval.ts';
import type { TaskFile } from '../eval/tasks/items.ts';
import type { TaskResult } from '../eval/tasks/run.ts';

/**
 * What the page needs from the stage-2 settings, re-exported so the page's stores import the job alone (they map
 * controls to job calls and never reach into the pruning code themselves).
 */
export {
  formatNm, METHODS, needsCalibration, parseNm, SCOPES, UNROUTED_POLICIES, UNSTRUCTURED_DEFAULTS, unstructuredRatio,
} from '../prune/unstructured/settings.ts';
export type { NmPattern, PruneScope, UnroutedPolicy, UnstructuredMethod, UnstructuredSettings } from '../prune/unstructured/settings.ts';
export { DEFAULT_EXPERT_PLAN_SETTINGS, EXPERT_SCORES, describeExpertCriterion, expertCriterion } from '../prune/experts/plan.ts';
export type { ExpertPlan, ExpertPlanSettings, ExpertScore, LayerPlan, OutputDistance, OutputTokens, SimilarityMode } from '../prune/experts/plan.ts';
export { EXHAUSTIVE_MAX_EXPERTS } from '../prune/experts/exhaustive.ts';
export { CRITERIA, parseCriteria } from './compare-experts.ts';
export type { ChoiceCriterion, Comparison, CriterionResult } from './compare-experts.ts';
export { DEFAULT_KAPPA } from '../prune/experts/representative.ts';
export type { ReconstructRule } from '../prune/experts/representative.ts';
export type { CalibrationStats, MoeLayerStats } from '../forward/stats.ts';
export type { LayerReport } from '../forward/engine.ts';
export { coactivationFromStats } from './coactivation.ts';
export type { StageTwoResult } from './unstructured.ts';
export type { LayerReconstruction } from '../forward/expert-signals.ts';
export { StageTwoWork } from './work-folder.ts';
export type { SavedWork, WorkAbout, WorkFolder } from './work-folder.ts';
export type { CoactivationByLayer } from './coactivation.ts';
export { readTask } from './task-eval.ts';
export { TASK_FORMATS } from '../eval/tasks/items.ts';
export type { TaskEvaluation, TaskOptions } from './task-eval.ts';
export type { TaskFile, TaskFormat, TaskItem } from '../eval/tasks/items.ts';
export type { TaskResult } from '../eval/tasks/run.ts';

/** How calibration windows are cut from a text: the first N non-overlapping windows of L tokens, or N seeded random ones. */
export interface CalibrationSpec {
  readonly samples: number;
  readonly seqLen: number;
  readonly sampling: Sampling;
  readonly seed: number;
}

export const CALIBRATION_DEFAULTS: CalibrationSpec = { samples: DEFAULT_CALIB_SAMPLES, seqLen: DEFAULT_CALIB_SEQ_LEN, sampling: 'first', seed: 0 };

/** Everything that shapes a pruned checkpoint. */
export interface JobSettings {
  readonly experts: ExpertPlanSettings;
  /** Stage 2, or null for expert pruning only. */
  readonly unstructured: UnstructuredSettings | null;
  readonly calibration: CalibrationSpec;
  readonly perLayerVariant: boolean;
}

export interface JobSettingsInput {
  readonly experts?: Partial<ExpertPlanSettings>;
  readonly unstructured?: (Partial<UnstructuredSettings> & Pick<UnstructuredSettings, 'sparsity'>) | null;
  readonly calibration?: Partial<CalibrationSpec>;
  readonly perLayerVariant?: boolean;
}

export function resolveJobSettings(s: JobSettingsInput): JobSettings {
  const unstructured = s.unstructured ? { ...UNSTRUCTURED_DEFAULTS, ...s.unstructured } : null;
  if (unstructured) checkUnstructuredSettings(unstructured);
  return {
    experts: resolveExpertPlanSettings(s.experts ?? {}),
    unstructured,
    calibration: { ...CALIBRATION_DEFAULTS, ...s.calibration },
    perLayerVariant: s.perLayerVariant ?? false,
  };
}

/** Whether the settings need a calibration text (co-activation similarity, or Wanda/OWL scores). */
export function needsCalibrationText(s: JobSettings): boolean {
  return (
    s.experts.similarity !== 'router' || (s.experts.expertScore !== null && s.experts.expertScore !== 'random') || (s.unstructured !== null && needsCalibration(s.unstructured.method))
  );
}

/** A text the user gave (file name and bytes). */
export interface TextInput {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface Calibration {
  readonly text: { readonly name: string; readonly sha256: string };
  readonly spec: CalibrationSpec;
  readonly windows: Windows;
}

/** The report's `settings`: every option, defaults included, and where the calibration came from. */
export function reportSettings(s: JobSettings, calib: Calibration | null, device: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const u = s.unstructured;
  return {
    ...s.experts,
    per_layer_variant: s.perLayerVariant,
    device,
    unstructured: u && { method: u.method, sparsity: u.sparsity, nm: formatNm(u.nm), owl_m: u.owlM, owl_lambda: u.owlLambda, scope: u.scope, unrouted: u.unrouted },
    calibration: calib && {
      text: calib.text.name, sha256: calib.text.sha256, sampling: calib.spec.sampling, seed: calib.spec.seed,
      requested_samples: calib.spec.samples, samples: calib.windows.windows.length, seq_len: calib.spec.seqLen,
      tokens: calib.windows.windows.length * calib.spec.seqLen,
    },
    ...extra,
  };
}

const LATER_EXPERT_SETTINGS: ReadonlyArray<keyof ExpertPlanSettings> = ['outputTokens', 'outputDistance', 'expertScore', 'seed'];

/** The settings a `prune-report.json` was made with, and the calibration text it names (to be given again, checked by digest). */
export function settingsFromReport(report: unknown, file = 'prune-report.json'): { settings: JobSettings; calibrationText: { name: string; sha256: string } | null } {
  const bad = (why: string): never => {
    throw new MoePruneError('InvalidArgument', `cannot repeat this run: ${why}`, file);
  };
  const r = report as { format?: unknown; settings?: Record<string, unknown> } | null;
  if (!r || r.format !== 'moe-prune-report' || typeof r.settings !== 'object' || !r.settings) bad('not a moe-prune report (no "format": "moe-prune-report" with "settings")');
  const st = r!.settings!;
  const experts: Partial<Record<keyof ExpertPlanSettings, unknown>> = {};
  for (const k of Object.keys(DEFAULT_EXPERT_PLAN_SETTINGS) as Array<keyof ExpertPlanSettings>) {
    // Settings added with the expert-choice criteria default when an earlier report lacks them.
    if (!(k in st)) {
      if (LATER_EXPERT_SETTINGS.includes(k)) continue;
      bad(`settings.${k} is missing (reports older than this version cannot be repeated)`);
    }
    experts[k] = st[k];
  }
  const u = st['unstructured'] as Record<string, unknown> | null | undefined;
  const c = st['calibration'] as Record<string, unknown> | null | undefined;
  const settings = resolveJobSettings({
    experts: experts as Partial<ExpertPlanSettings>,
    unstructured: u
      ? {
          method: u['method'] as UnstructuredSettings['method'],
          sparsity: (u['sparsity'] as number | null) ?? null,
          nm: typeof u['nm'] === 'string' ? parseNm(u['nm']) : null,
          owlM: u['owl_m'] as number,
          owlLambda: u['owl_lambda'] as number,
          scope: u['scope'] as UnstructuredSettings['scope'],
          unrouted: u['unrouted'] as UnstructuredSettings['unrouted'],
        }
      : null,
    calibration: c
      ? { samples: c['requested_samples'] as number, seqLen: c['seq_len'] as number, sampling: c['sampling'] as Sampling, seed: (c['seed'] as number | null) ?? 0 }
      : {},
    perLayerVariant: st['per_layer_variant'] === true,
  });
  return { settings, calibrationText: c ? { name: String(c['text']), sha256: String(c['sha256']) } : null };
}

export interface Evaluation {
  readonly windows: Windows;
  readonly before: PerplexityResult;
  readonly after: PerplexityResult;
}

/**
 * One checkpoint being pruned. Costly steps are cached on the job (router rows and distances, calibration windows
 * and co-activation, the engine), so the page can re-plan at once and the CLI runs each step once.
 */
export class PruneJob {
  private routers?: Promise<RouterLayer[]>;
  private squared?: Promise<Float32Array[] | undefined>;
  private engineP?: Promise<GpuForwardEngine>;
  private readonly coactivation = new Map<string, Promise<MeasuredCoactivation>>();
  /** Planner inputs once `prepareDraft` has run (for the synchronous `draftPlan`), and router distances per normalize choice. */
  private drafted?: { readonly inputs: ExpertLayerInput[]; readonly device: 'gpu' | 'cpu'; readonly ms: number };
  private readonly routerDistances = new Map<boolean, Float64Array[]>();
  /** Representatives chosen from the weights so far (representativeKey → expert): drafts reuse them. */
  private readonly representatives = new Map<string, number>();

  private constructor(
    readonly files: FileSet,
    readonly cat: Catalogue,
    /** WebGPU, or undefined for the CPU paths (stage 1 and perplexity only). */
    readonly gpu: GpuContext | undefined,
    /** Threads for the CPU representatives (the CLI's worker threads); undefined: computed inline. */
    readonly cpuWorkers?: ChunkDistanceWorkers,
  ) {}

  static async open(files: FileSet, gpu: GpuContext | undefined, signal?: AbortSignal, cpuWorkers?: ChunkDistanceWorkers): Promise<PruneJob> {
    const cat = await catalogueCheckpoint(files, signal ? { signal } : {});
    assertComplete(cat.summary);
    return new PruneJob(files, cat, gpu, cpuWorkers);
  }

  get device(): string {
    return this.gpu ? this.gpu.adapter.label : 'cpu';
  }

  /** Router rows and (on a GPU) their squared distances: read and computed once per job. */
  async prepare(opts: LongTask = {}): Promise<{ routers: RouterLayer[]; squared: Float32Array[] | undefined }> {
    this.routers ??= loadRouters(this.cat, opts).catch((e: unknown) => {
      this.routers = undefined;
      throw e;
    });
    const routers = await this.routers;
    const gpu = this.gpu;
    this.squared ??= (gpu ? routerSquaredDistancesGpu(gpu, routers, opts) : Promise.resolve(undefined)).catch((e: unknown) => {
      this.squared = undefined;
      throw e;
    });
    return { routers, squared: await this.squared };
  }

  /** Calibration windows of a text under a spec, with the text's digest (recorded in the report). */
  async calibrate(text: TextInput, spec: CalibrationSpec, signal?: AbortSignal): Promise<Calibration> {
    const tok = await loadTokenizer(this.files, signal);
    const content = new TextDecoder().decode(text.bytes);
    const windows = windowsOfText(tok, content, text.name, { count: spec.samples, length: spec.seqLen, sampling: spec.sampling, seed: spec.seed });
    if (!windows.windows.length) throw new MoePruneError('InvalidArgument', `the calibration text is shorter than one window of ${spec.seqLen} tokens`, text.name);
    return { text: { name: text.name, sha256: await sha256Hex(text.bytes) }, spec, windows };
  }

  /** Co-activation counts of a calibration (one stats pass; cached per text and spec). */
  measureCoactivation(calib: Calibration, opts: LongTask = {}): Promise<MeasuredCoactivation> {
    const key = `${calib.text.sha256}|${JSON.stringify(calib.spec)}`;
    let p = this.coactivation.get(key);
    if (!p) {
      p = (async () => measureCoactivation(this.files, calib.windows, this.gpu, { ...opts, ...(this.gpu ? { engine: await this.engine(opts.signal) } : {}) }))();
      p.catch(() => this.coactivation.delete(key));
      this.coactivation.set(key, p);
    }
    return p;
  }

  /** The engine of this checkpoint (opened once). */
  engine(signal?: AbortSignal): Promise<GpuForwardEngine> {
    const gpu = this.gpu;
    if (!gpu) throw new MoePruneError('InvalidArgument', 'this step runs on a WebGPU adapter (a software one works: Debian\'s chromium package provides SwiftShader)');
    this.engineP ??= GpuForwardEngine.open(gpu, this.files, signal).catch((e: unknown) => {
      this.engineP = undefined;
      throw e;
    });
    return this.engineP;
  }

  /**
   * Reads the routers and computes their distances once (as `prepare`), then keeps the planner inputs so that
   * `draftPlan` re-plans synchronously: the page re-plans on every slider move. When the GPU distances fail (a lost
   * device) the CPU computes the same distances, so planning never depends on the GPU.
   */
  async prepareDraft(opts: LongTask = {}): Promise<{ device: 'gpu' | 'cpu'; ms: number }> {
    if (this.drafted) return { device: this.drafted.device, ms: this.drafted.ms };
    const t0 = performance.now();
    let prepared: { routers: RouterLayer[]; squared: Float32Array[] | undefined };
    let device: 'gpu' | 'cpu' = this.gpu ? 'gpu' : 'cpu';
    try {
      prepared = await this.prepare(opts);
    } catch (e) {
      if (opts.signal?.aborted || !this.gpu || !this.routers) throw e;
      prepared = { routers: await this.routers, squared: undefined };
      device = 'cpu';
    }
    this.drafted ??= { inputs: layerInputs(this.cat, prepared.routers, prepared.squared), device, ms: performance.now() - t0 };
    return { device: this.drafted.device, ms: this.drafted.ms };
  }

  /**
   * Stage 1 as a draft, synchronously, from the inputs `prepareDraft` cached (router distances are kept per normalize
   * choice). Representatives of ≥3-member clusters stay unresolved (`planExperts` resolves them from the weights).
   * Co-activation (similarity 'coactivation' / 'mixed') comes from a calibration pass (`calibrationStats`).
   */
  draftPlan(settings: ExpertPlanSettings, coactivation?: CoactivationByLayer): ExpertPlan {
    const d = this.drafted;
    if (!d) throw new MoePruneError('InvalidPlan', 'the routers are not read yet: prepareDraft() comes first');
    let inputs = d.inputs;
    if (settings.similarity === 'router') {
      let dist = this.routerDistances.get(settings.normalize);
      if (!dist) {
        const s = resolveExpertPlanSettings({ normalize: settings.normalize, similarity: 'router' });
        dist = inputs.map((l) => layerDistances(l, s));
        this.routerDistances.set(settings.normalize, dist);
      }
      const final = dist;
      inputs = inputs.map((l, i) => ({ ...l, distances: final[i]! }));
    } else {
      if (!coactivation)
        throw new MoePruneError('InvalidPlan', `${settings.similarity === 'mixed' ? 'mixed' : 'co-activation'} similarity needs a calibration run of this model; run calibration first`);
      inputs = withCoactivation(inputs, coactivation);
    }
    return withKnownRepresentatives(planExpertPruning(inputs, settings), this.representatives);
  }

  /**
   * A calibration pass with routing statistics (tokens per expert, co-activation, input norms) for the page's charts.
   * Its co-activation is cached as `measureCoactivation` would have measured it on the same windows, so a later
   * co-activation plan of this calibration needs no second pass.
   */
  async calibrationStats(calib: Calibration, opts: LongTask = {}): Promise<GpuForwardResult> {
    const engine = await this.engine(opts.signal);
    const r = await engine.forward(calib.windows.windows, {
      output: 'none',
      stats: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    const stats = r.stats;
    if (!stats) throw new MoePruneError('InvalidPlan', 'the calibration pass returned no statistics');
    // The same key as measureCoactivation's cache.
    const key = `${calib.text.sha256}|${JSON.stringify(calib.spec)}`;
    if (!this.coactivation.has(key)) this.coactivation.set(key, Promise.resolve({ byLayer: coactivationFromStats(stats), tokens: stats.tokens, device: this.gpu?.adapter.label || 'WebGPU' }));
    return r;
  }

  /** Resolves a draft's ≥3-member clusters' representatives from the weights (as `planExperts` does), so the page measures and shows the plan it drew. */
  async resolveDraft(plan: ExpertPlan, opts: LongTask = {}): Promise<ExpertPlan> {
    return this.resolved(await resolvePlan(this.cat, withKnownRepresentatives(plan, this.representatives), this.gpu, opts, this.cpuWorkers));
  }

  /** Keeps a resolved plan's representatives, so later drafts of the same clusters show them (not provisional ones). */
  private resolved(plan: ExpertPlan): ExpertPlan {
    rememberRepresentatives(plan, this.representatives);
    return plan;
  }

  /** s_e: the share of a scope's parameters that an expert plan removes with whole experts (STUN's split of S). */
  expertShare(plan: ExpertPlan, scope: PruneScope): { params: number; removed: number; share: number } {
    let params = 0;
    let removed = 0;
    for (const byKind of scopeCounts(this.cat, plan, { scope }).values())
      for (const c of byKind.values()) {
        params += c.params;
        removed += c.removed;
      }
    return { params, removed, share: params ? removed / params : 0 };
  }

  /**
   * Perplexity as `perplexity` computes it, with the engine's layer-by-layer progress (`perplexity` reports whole
   * batches), so the page can show which layer runs and how long is left. GPU only.
   */
  async perplexityLayers(windows: Windows, plan?: WeightPlan, opts: LongTask = {}): Promise<PerplexityResult> {
    const engine = await this.engine(opts.signal);
    return gpuPerplexity(engine, windows.windows, {
      ...(plan ? { plan } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onLayerProgress: opts.onProgress } : {}),
    });
  }

  /** `evaluate` with layer-by-layer progress: phase 'original model', then 'pruned model'. GPU only. */
  async evaluateLayers(windows: Windows, plan: ExpertPlan | null, stage2: StageTwoResult | null, opts: LongTask = {}): Promise<Evaluation> {
    const sink = opts.onProgress;
    const as = (phase: string): LongTask => ({ ...(opts.signal ? { signal: opts.signal } : {}), ...(sink ? { onProgress: (p) => sink({ ...p, phase }) } : {}) });
    const before = await this.perplexityLayers(windows, undefined, as('original model'));
    const after = await this.perplexityLayers(windows, PruneJob.weightPlan(plan, stage2), as('pruned model'));
    return { windows, before, after };
  }

  /** Stage 1: the expert plan, representatives resolved (streams expert parameters when a cluster needs them). */
  async planExperts(settings: ExpertPlanSettings, calib: Calibration | null, opts: LongTask = {}): Promise<ExpertPlan> {
    // A score (REAP, EAN, frequency, exhaustive, random) or output similarity: the engine's calibration passes.
    if (settings.expertScore !== null || settings.similarity === 'output') return planByCriterion(this, settings, calib, opts);
    const { routers, squared } = await this.prepare(opts);
    let inputs = layerInputs(this.cat, routers, squared);
    if (settings.similarity !== 'router') {
      if (!calib) throw new MoePruneError('InvalidArgument', `similarity "${settings.similarity}" needs a calibration text: co-activation is counted on it`);
      inputs = withCoactivation(inputs, (await this.measureCoactivation(calib, opts)).byLayer);
    }
    return this.resolved(await resolvePlan(this.cat, withKnownRepresentatives(planExpertPruning(inputs, settings), this.representatives), this.gpu, opts, this.cpuWorkers));
  }

  /** Stage 2 on top of an expert plan; with a progress store it saves every finished layer and resumes from it. */
  async unstructured(
    plan: ExpertPlan, settings: UnstructuredSettings, calib: Calibration | null, opts: LongTask & { readonly progressStore?: StageTwoProgressStore } = {},
  ): Promise<StageTwoResult> {
    if (needsCalibration(settings.method) && !calib) throw new MoePruneError('InvalidArgument', `${settings.method} needs a calibration text: it scores weights by the norms of their inputs`);
    const engine = await this.engine(opts.signal);
    return runStageTwo(
      this.gpu!,
      {
        cat: this.cat, engine, windows: calib?.windows.windows ?? null, expertPlan: plan, expertEdits: expertPlanEdits(plan.layers), settings,
        ...(opts.progressStore ? { progressStore: opts.progressStore } : {}),
      },
      opts,
    );
  }

  /**
   * What a saved stage-2 run depends on: every setting, the calibration text's digest, and the checkpoint's files
   * (names, sizes, and the bytes of config.json, the index and each shard's header and first/last MiB). A saved run
   * resumes only under the same fingerprint.
   */
  async fingerprint(settings: JobSettings, calib: Calibration | null, signal?: AbortSignal): Promise<string> {
    const MiB = 2 ** 20;
    const parts: string[] = [JSON.stringify(reportSettings(settings, calib, ''))];
    for (const name of this.files.names().sort()) {
      const f = this.files.get(name)!;
      parts.push(`${name}:${f.size}`);
      const small = !name.endsWith('.safetensors') || f.size <= 2 * MiB;
      if (name === 'config.json' || name.endsWith('.json') || name.endsWith('.safetensors')) {
        const head = await f.read(0, Math.min(f.size, small ? f.size : MiB), signal);
        const tail = small ? new Uint8Array(0) : await f.read(f.size - MiB, MiB, signal);
        parts.push(await sha256Hex(head), await sha256Hex(tail));
      }
    }
    return sha256Hex(new TextEncoder().encode(parts.join('\n')));
  }

  /** The plan as the forward pass applies it on the fly: removed/merged experts and stage-2 masks. */
  static weightPlan(plan: ExpertPlan | null, stage2?: StageTwoResult | null): WeightPlan | undefined {
    const edits = plan ? expertPlanEdits(plan.layers) : undefined;
    const masks = stage2?.masks;
    return masks ? { ...edits, mask: (n) => masks.get(n) } : edits;
  }

  /** Held-out windows of a text (first N non-overlapping windows of L tokens). */
  async heldoutWindows(text: TextInput, seqLen: number, maxWindows: number, signal?: AbortSignal): Promise<Windows> {
    const tok = await loadTokenizer(this.files, signal);
    return windowsOfText(tok, new TextDecoder().decode(text.bytes), text.name, { count: maxWindows, length: seqLen });
  }

  /** Perplexity with a plan applied on the fly (none: the original model); the CPU reference without a GPU. */
  async perplexity(windows: Windows, plan?: WeightPlan, opts: LongTask = {}): Promise<PerplexityResult> {
    const task = { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) };
    if (this.gpu) return gpuPerplexity(await this.engine(opts.signal), windows.windows, { ...(plan ? { plan } : {}), ...task });
    if (plan?.mask) throw new MoePruneError('InvalidArgument', 'measuring a masked plan runs on a WebGPU adapter');
    const model = await openReferenceModel(this.files, opts.signal);
    if (!plan) return perplexity(windows.windows, referenceNll(model), task);
    const rp = referencePlan(model, plan);
    return perplexity(windows.windows, referenceNll(rp.model, { removedExperts: rp.removedExperts }), task);
  }

  /** Perplexity of the original and of the pruned plan on the same windows. */
  async evaluate(windows: Windows, plan: ExpertPlan | null, stage2: StageTwoResult | null, opts: LongTask = {}): Promise<Evaluation> {
    const before = await this.perplexity(windows, undefined, opts);
    const after = await this.perplexity(windows, PruneJob.weightPlan(plan, stage2), opts);
    return { windows, before, after };
  }

  /**
   * Zero-shot multiple-choice accuracy (lm-evaluation-harness rules) with a plan applied on the fly (none: the original
   * model); `onProgress` is the engine's, layer by layer. The CPU reference without a GPU (no masks).
   */
  taskAccuracy(task: TaskFile, plan?: WeightPlan, opts: TaskOptions = {}): Promise<TaskResult> {
    return taskAccuracy(this, task, plan, opts);
  }

  /** Task accuracy of the original and of the pruned plan on the same items: phase 'original model', then 'pruned model'. */
  async evaluateTask(task: TaskFile, plan: ExpertPlan | null, stage2: StageTwoResult | null, opts: TaskOptions = {}): Promise<TaskEvaluation> {
    const sink = opts.onProgress;
    const as = (phase: string): TaskOptions => ({ ...opts, ...(sink ? { onProgress: (p) => sink({ ...p, phase }) } : {}) });
    const before = await this.taskAccuracy(task, undefined, as('original model'));
    const after = await this.taskAccuracy(task, PruneJob.weightPlan(plan, stage2), as('pruned model'));
    return { before, after };
  }

  /** Writes the pruned checkpoint, its report (settings from `reportSettings`) and model card. */
  export(
    out: OutputFolder,
    a: {
      plan: ExpertPlan; stage2: StageTwoResult | null; settings: JobSettings; calibration: Calibration | null; evaluation?: Evaluation | null; tool: string;
      task?: { readonly file: TaskFile; readonly evaluation: TaskEvaluation } | null;
      /** The page's trade-off points (recorded in the report and the model card). */
      tradeoff?: PruneTradeoff | null;
    },
    opts: LongTask = {},
  ): Promise<PruneExportResult> {
    const ev = a.evaluation;
    const perplexity: PrunePerplexity | undefined = ev
      ? { before: ev.before.perplexity, after: ev.after.perplexity, tokens: ev.after.tokens, seqLen: ev.windows.length, windows: ev.after.windows }
      : undefined;
    return exportExpertPruned(this.cat, this.files, a.plan, out, {
      ...opts,
      tool: a.tool,
      settings: reportSettings(a.settings, a.calibration, this.device),
      perLayerVariant: a.settings.perLayerVariant,
      ...(perplexity ? { perplexity } : {}),
      ...(a.stage2 ? { stage2: a.stage2 } : {}),
      ...(a.task ? { accuracy: reportAccuracy(a.task.file, a.task.evaluation) } : {}),
      ...(a.tradeoff ? { tradeoff: a.tradeoff } : {}),
    });
  }

  /**
   * Saliency criteria (REAP, EAN, frequency) layer by layer on a calibration: each MoE layer keeps its K best experts by
   * `criterion` (per routing group K / n_group; equal scores keep the lower index), the rest are removed before the next
   * layer is scored. Returns an ExpertPlan the export accepts and every layer's scores of all three. GPU only.
   */
  async scoreExperts(calib: Calibration, criterion: SaliencyCriterion, keepPerLayer: number, opts: LongTask = {}): Promise<ScoredPlan> {
    return scoreExpertsSequential(await this.engine(opts.signal), calib.windows.windows, criterion, keepPerLayer, opts);
  }

  /** ‖y − ŷ‖² / ‖y‖² of every MoE layer's block output under an expert plan, on a calibration (the plan's own earlier layers feed each layer). GPU only. */
  async reconstructionError(calib: Calibration, plan: ExpertPlan, opts: LongTask = {}): Promise<LayerReconstruction[]> {
    return reconstructionErrors(await this.engine(opts.signal), calib.windows.windows, expertPlanEdits(plan.layers), opts);
  }

  /**
   * NAEE: on each MoE layer's calibration input (earlier layers pruned), every subset of K experts is scored by the block's
   * reconstruction error and the best kept. Layers of at most 16 experts. GPU only.
   */
  async exhaustiveExperts(calib: Calibration, keepPerLayer: number, opts: LongTask = {}): Promise<ExhaustivePlan> {
    return exhaustiveSequential(await this.engine(opts.signal), calib.windows.windows, keepPerLayer, opts);
  }

  /** HC-SMoE: cosine distances of the experts' mean outputs on a calibration, clustered like STUN (K per layer). GPU only. */
  outputSimilarityPlan(calib: Calibration, keepPerLayer: number, opts: LongTask = {}): Promise<ExpertPlan> {
    return outputSimilarityPlan(this, calib, resolveExpertPlanSettings({ mode: 'uniform', keepPerLayer, similarity: 'output' }), opts);
  }

  /** The plan with each MoE layer's reconstruction error ‖y − ŷ‖² / ‖y‖² on a calibration, for the report. GPU only. */
  measurePlan(plan: ExpertPlan, calib: Calibration, opts: LongTask = {}): Promise<ExpertPlan> {
    return withReconstruction(this, plan, calib, opts);
  }

  /** Every expert-choice criterion on one calibration, with reconstruction errors, perplexity and times (`moe-prune compare`). GPU only. */
  compareExpertChoices(calib: Calibration, keepPerLayer: number, opts: ComparisonOptions = {}): Promise<Comparison> {
    return compareExpertChoices(this, calib, keepPerLayer, opts);
  }
}

/** The trade-off sweep and its points, for the page's trade-off panel (src/pipeline/sweep.ts). */
export {
  ACCURACY_CSV_HEADER, accuracyCsv, CSV_HEADER, DEFAULT_SWEEP_GRID, describePoint, estimatePerplexity, expertShares, labelOf, measureSetting, pointsCsv, runSweep, settingsOf, sweepNeedsCalibration, sweepSecondsLeft, sweepSettings,
} from './sweep.ts';
export type { SeriesKind, SweepBase, SweepGrid, SweepSetting, SweepTask, TradeoffPoint } from './sweep.ts';
export type { PruneTradeoff, TradeoffRow } from '../export/report.ts';
