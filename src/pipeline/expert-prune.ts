/**
 * STUN stage 1 on a checkpoint, end to end: router rows → distances (GPU) → clusters → representatives (GPU,
 * streamed expert by expert) → a pruned checkpoint. The same functions serve the page and `moe-prune prune`.
 */
import { nonFiniteError, nonFiniteValues } from '../forward/finite.ts';
import { asUserError, MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import { readText, requireFile, type FileSet } from '../formats/bytes.ts';
import type { GpuContext } from '../gpu/device.ts';
import { sqdist } from '../gpu/kernels/sqdist.ts';
import { readBuffer } from '../gpu/pool.ts';
import { releaseTensor, uploadTensor } from '../gpu/tensor.ts';
import { shardOf, type Catalogue } from '../models/catalogue.ts';
import { BASE_MODEL_TYPE_KEY, expertCountPatch, expertCountsProblems, groupedRouting, PER_LAYER_KEY, PER_LAYER_MODEL_TYPE_SUFFIX } from '../models/families.ts';
import type { LayerIndex } from '../models/types.ts';
import { planExpertPruning, resolveRepresentatives, type ExpertLayerInput, type ExpertPlan, type ExpertPlanSettings } from '../prune/experts/plan.ts';
import { selectRepresentativeGpu } from '../prune/experts/representative-gpu.ts';
import type { ChunkDistanceWorkers } from '../prune/experts/representative.ts';
import { withCoactivation, type CoactivationByLayer } from './coactivation.ts';
import { expertParamSource } from './expert-params.ts';
import { planPrunedTensors, type TensorPlan } from '../export/tensor-plan.ts';
import { writePrunedCheckpoint, type ExportResult, type OutputFolder } from '../export/write-checkpoint.ts';
import { appendTopLevelMember, patchTopLevelValues } from '../export/config-text.ts';
import { buildModelCard, buildPruneReport, type PruneAccuracy, type PrunePerplexity, type PruneReport, type PruneTradeoff } from '../export/report.ts';
import type { StageTwoResult } from './unstructured.ts';

export interface RouterLayer {
  readonly layer: LayerIndex;
  readonly n: number;
  readonly d: number;
  /** Router weight widened to f32, row-major n×d. */
  readonly rows: Float32Array;
}

/** Reads every MoE layer's router weight (small: n×d per layer). */
export async function loadRouters(cat: Catalogue, opts: LongTask = {}): Promise<RouterLayer[]> {
  // Pruning a per-layer variant again would leave its per-layer config keys describing the old counts.
  if (cat.summary.expertsByLayer)
    throw new MoePruneError('InvalidPlan', `this is a per-layer variant ("${PER_LAYER_KEY}"); prune the original checkpoint instead`, 'config.json');
  const out: RouterLayer[] = [];
  for (const [i, l] of cat.moeLayers.entries()) {
    throwIfAborted(opts.signal);
    const file = shardOf(cat, l.routerTensor);
    const [n, d] = file.info(l.routerTensor).shape as [number, number];
    const rows = await file.readF32(l.routerTensor, opts.signal);
    // Router rows are small, so they are always checked: a NaN would otherwise surface as a distance of NaN between
    // two expert numbers, with no word of which tensor holds it.
    const bad = nonFiniteValues(rows);
    if (bad) throw nonFiniteError([{ tensor: l.routerTensor, file: file.name, layer: l.layer, ...bad }], "stage 1's router distances");
    out.push({ layer: l.layer, n, d, rows });
    opts.onProgress?.({ phase: 'reading routers', done: i + 1, total: cat.moeLayers.length, unit: 'layers' });
  }
  return out;
}

/** Squared router-row distances per layer on the GPU (shaders/sqdist.wgsl). */
export async function routerSquaredDistancesGpu(ctx: GpuContext, routers: readonly RouterLayer[], opts: LongTask = {}): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const [i, r] of routers.entries()) {
    throwIfAborted(opts.signal);
    const t = await uploadTensor(ctx, new Uint8Array(r.rows.buffer, r.rows.byteOffset, r.rows.byteLength), 'F32', [r.n, r.d], { name: `router ${r.layer}` });
    try {
      const view = await sqdist(ctx, t);
      try {
        const bytes = await readBuffer(ctx, view.buffer, view.byteLength);
        out.push(new Float32Array(bytes.buffer, bytes.byteOffset, r.n * r.n));
      } finally {
        ctx.pool.release(view.buffer);
      }
    } finally {
      releaseTensor(ctx, t);
    }
    opts.onProgress?.({ phase: 'router distances', done: i + 1, total: routers.length, unit: 'layers' });
  }
  return out;
}

export function layerInputs(cat: Catalogue, routers: readonly RouterLayer[], squared?: readonly Float32Array[]): ExpertLayerInput[] {
  const g = groupedRouting(cat.adapter, cat.config);
  // With the rows at hand the planner derives ‖W‖_F itself; GPU squared distances, when given, spare it the O(n²d) pass.
  return routers.map((r, i) => ({
    layer: r.layer,
    n: r.n,
    d: r.d,
    topK: cat.summary.topK,
    routerRows: r.rows,
    ...(g && { groups: { nGroup: g.nGroup, topkGroup: g.topkGroup } }),
    ...(squared && { squaredDistances: squared[i]! }),
  }));
}

/**
 * Fills representatives of ≥3-member clusters by streaming the members' parameters: on the CPU threads when given
 * (the CLI passes them without a GPU or with a software adapter, which computes on the same CPU but must first copy
 * every chunk up), else on the GPU when given, else inline.
 */
export async function resolvePlan(cat: Catalogue, plan: ExpertPlan, gpu: GpuContext | undefined, opts: LongTask = {}, cpuWorkers?: ChunkDistanceWorkers): Promise<ExpertPlan> {
  return resolveRepresentatives(plan, (layer) => expertParamSource(cat, layer), {
    ...opts,
    ...(cpuWorkers ? { workers: cpuWorkers } : gpu && { select: (members, source, o) => selectRepresentativeGpu(gpu, members, source, o) }),
  });
}

export interface StageOneResult {
  readonly plan: ExpertPlan;
  readonly routers: RouterLayer[];
  readonly timings: { routersMs: number; distancesMs: number; clusteringMs: number; representativesMs: number };
}

export interface StageOneOptions extends LongTask {
  /** Co-activation per MoE layer from a calibration pass (similarity 'coactivation' / 'mixed'); see coactivation.ts. */
  readonly coactivation?: CoactivationByLayer;
}

/** Router distances on the GPU when a device is given (else on the CPU), clustering, representatives. */
export async function runStageOne(cat: Catalogue, settings: Partial<ExpertPlanSettings>, gpu: GpuContext | undefined, opts: StageOneOptions = {}): Promise<StageOneResult> {
  const t0 = performance.now();
  const routers = await loadRouters(cat, opts);
  const t1 = performance.now();
  const squared = gpu ? await routerSquaredDistancesGpu(gpu, routers, opts) : undefined;
  const t2 = performance.now();
  const inputs = layerInputs(cat, routers, squared);
  const draft = planExpertPruning(opts.coactivation ? withCoactivation(inputs, opts.coactivation) : inputs, settings);
  const t3 = performance.now();
  const plan = await resolvePlan(cat, draft, gpu, opts);
  const t4 = performance.now();
  return { plan, routers, timings: { routersMs: t1 - t0, distancesMs: t2 - t1, clusteringMs: t3 - t2, representativesMs: t4 - t3 } };
}

/** Expert count per layer when uniform; a non-uniform plan cannot be loaded by stock transformers/vLLM classes. */
export function uniformCount(plan: TensorPlan): number | null {
  const counts = new Set(plan.expertsPerLayer.values());
  return counts.size === 1 ? [...counts][0]! : null;
}

export interface ExportOptions extends LongTask {
  /** Input settings to record in the report (CLI flags / UI state), beside the plan's own settings. */
  readonly settings: Record<string, unknown>;
  readonly tool: string;
  /** Perplexity before/after measured on the fly (recorded in prune-report.json). */
  readonly perplexity?: PrunePerplexity;
  /**
   * A plan whose layers keep different counts (global mode) is refused unless this is set; then the export is a
   * per-layer variant: the largest count in the config's count field, each layer's in PER_LAYER_KEY, labelled as
   * needing custom code (its model_type is marked so stock runtimes refuse it).
   */
  readonly perLayerVariant?: boolean;
  /** Stage-2 result: its masks are written as zeros, its sparsity goes into the report and the model card. */
  readonly stage2?: StageTwoResult;
  /** Task accuracy before/after measured on the fly (recorded in prune-report.json and the model card). */
  readonly accuracy?: PruneAccuracy;
  /** The page's trade-off points and the exported setting among them (prune-report.json and the model card). */
  readonly tradeoff?: PruneTradeoff;
}

export interface PruneExportResult extends ExportResult {
  readonly report: PruneReport;
}

/**
 * config.json of a per-layer variant: the largest count in the count field, each layer's count under PER_LAYER_KEY,
 * and a model_type no stock runtime knows (the original kept beside it), so nothing loads it by accident.
 */
function perLayerConfig(cat: Catalogue, text: string, tensors: TensorPlan): string {
  const modelType = typeof cat.config['model_type'] === 'string' ? cat.config['model_type'] : cat.adapter.modelTypes[0]!;
  const max = Math.max(...tensors.expertsPerLayer.values());
  let out = patchTopLevelValues(text, expertCountPatch(cat.adapter, cat.config, max));
  const variantType = modelType + PER_LAYER_MODEL_TYPE_SUFFIX;
  out = 'model_type' in cat.config ? patchTopLevelValues(out, { model_type: variantType }) : appendTopLevelMember(out, 'model_type', variantType);
  out = appendTopLevelMember(out, BASE_MODEL_TYPE_KEY, modelType);
  return appendTopLevelMember(out, PER_LAYER_KEY, Object.fromEntries(tensors.expertsPerLayer));
}

/** Writes the pruned checkpoint: weights, patched config, index, copied tokenizer files, report, model card. */
export async function exportExpertPruned(cat: Catalogue, files: FileSet, plan: ExpertPlan, out: OutputFolder, opts: ExportOptions): Promise<PruneExportResult> {
  let prepared: { tensorPlan: TensorPlan; configText: string; report: PruneReport; extras: Array<{ name: string; text: string }> };
  try {
    // Everything that can refuse the plan runs before the first byte is written.
    const tensorPlan = planPrunedTensors(cat, plan.layers);
    const k = uniformCount(tensorPlan);
    const counts = [...tensorPlan.expertsPerLayer.values()];
    if (k === null && !opts.perLayerVariant)
      throw new MoePruneError(
        'InvalidPlan',
        `the plan keeps ${Math.min(...counts)}–${Math.max(...counts)} experts in different layers; Hugging Face configs hold one expert count, so ` +
          'transformers and vLLM could not load it. Use uniform mode (same count in every layer), or export a per-layer variant that needs custom code (--per-layer-variant; in the page, its checkbox)',
      );
    const problems = expertCountsProblems(cat.adapter, cat.config, counts);
    if (problems.length) throw new MoePruneError('InvalidPlan', problems.join('; '), 'config.json');
    const original = await readText(requireFile(files, 'config.json'), opts.signal);
    const configText = k === null ? perLayerConfig(cat, original, tensorPlan) : patchTopLevelValues(original, expertCountPatch(cat.adapter, cat.config, k));
    const built = buildPruneReport(cat, plan, tensorPlan, opts.settings, opts.tool, opts.perplexity, opts.stage2);
    const report: PruneReport = { ...built, ...(opts.accuracy ? { accuracy: opts.accuracy } : {}), ...(opts.tradeoff ? { tradeoff: opts.tradeoff } : {}) };
    const extras = [
      { name: 'prune-report.json', text: JSON.stringify(report, null, 2) + '\n' },
      { name: 'README.md', text: buildModelCard(cat, report) },
    ];
    prepared = { tensorPlan, configText, report, extras };
  } catch (e) {
    await out.abort();
    throw asUserError(e);
  }
  const masks = opts.stage2?.masks;
  const result = await writePrunedCheckpoint(
    cat, files, prepared.tensorPlan, { configText: prepared.configText, extras: prepared.extras, ...(masks ? { masks: (n: string) => masks.get(n) } : {}) }, out, opts,
  );
  return { ...result, report: prepared.report };
}

