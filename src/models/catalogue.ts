import { MoePruneError, throwIfAborted } from '../core/errors.ts';
import type { LongTask } from '../core/progress.ts';
import { formatCountRange } from '../core/format.ts';
import { readJson, requireFile, type FileSet } from '../formats/bytes.ts';
import { numel, type Shape } from '../formats/dtype.ts';
import { refuseUnfinishedExport } from '../formats/export-marker.ts';
import { INDEX_FILE, parseShardIndex, readShardIndex, shardFiles, type ShardIndex } from '../formats/safetensors/index-file.ts';
import { openSafetensors, type SafetensorsFile } from '../formats/safetensors/reader.ts';
import {
  classifyTensor,
  denseMlpTensorNames,
  expertCountAt,
  detectFamily,
  expertTensorNames,
  extraLayerCount,
  fusedExpertTensorNames,
  isQuantScale,
  layerKinds,
  numLayers,
  perLayerExpertCounts,
  PER_LAYER_KEY,
  requireConfigNumber,
  residualEnabled,
  residualTensorNames,
  routerTensorNames,
  routingOf,
  sharedExpertsOf,
  sharedExpertTensorNames,
  type Classified,
  type ExpertNaming,
  type FamilyAdapter,
  type ModelConfig,
} from './families.ts';
import type { CheckpointSummary, MoeLayerInfo, TensorEntry, TensorRole } from './types.ts';

/**
 * The checkpoint catalogue: reads config.json, the shard index and every shard's header (never tensor data),
 * gives every tensor a role through the family adapter, and checks the checkpoint against its config.
 *
 * Hard errors (thrown): no config.json, unsupported family, a shard the index names is absent, the index maps
 * a tensor to a shard that lacks it, a tensor in two shards, router/expert shapes that contradict the config.
 * Soft findings (reported): `missingTensors` (expected by the config, absent) and `extraTensors` (present but
 * not expected: in a shard but not in the index, an expert index ≥ the configured count, MoE tensors in a
 * dense layer, layers beyond num_hidden_layers). `assertComplete` turns missing tensors into an error.
 *
 * Parameter counts follow transformers' `model.num_parameters()`: FP8 `*_scale_inv` companions and the
 * DeepSeek-V3 `e_score_correction_bias` buffer are not parameters; a tied lm_head (absent from the files)
 * is not counted twice; MTP layers stored after num_hidden_layers are not loaded, so not counted. `routedExperts` counts the routed expert weights only (no shared experts, no router).
 */

export const CONFIG_FILE = 'config.json';

export interface Catalogue {
  readonly summary: CheckpointSummary;
  readonly adapter: FamilyAdapter;
  readonly config: ModelConfig;
  /** How this checkpoint names its MoE blocks (per-expert or fused, block path, router name). */
  readonly naming: ExpertNaming;
  /** Every tensor of the loaded shards, by name. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /** One entry per MoE layer, in layer order. */
  readonly moeLayers: readonly MoeLayerInfo[];
  /** Opened shard headers by file name, to read tensor bytes from later. */
  readonly shards: ReadonlyMap<string, SafetensorsFile>;
  /** The index file, or null for a single-file checkpoint. */
  readonly indexFile: string | null;
}

/** What `catalogueFromIndex` can tell from tensor names alone (no shapes, dtypes or sizes). */
export type IndexCatalogue = Pick<
  CheckpointSummary,
  | 'family' | 'architecture' | 'modelType' | 'layers' | 'moeLayers' | 'denseLayers' | 'expertsPerLayer' | 'topK' | 'routing'
  | 'sharedExperts' | 'layout' | 'expertCountField' | 'shards' | 'missingTensors' | 'extraTensors'
> & {
  readonly naming: string;
  /** Experts found per MoE layer (parallel to moeLayers); a fused layout is assumed to hold the configured count. */
  readonly expertsFound: number[];
  readonly tensorCount: number;
};

function asConfig(json: unknown, file = CONFIG_FILE): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new MoePruneError('InvalidConfig', 'must be a JSON object', file);
  return json as ModelConfig;
}

function stringField(config: ModelConfig, key: string): string | undefined {
  const v = config[key];
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Structure: generic over the adapter, from names (and, when known, fused expert counts).

interface Structure {
  readonly naming: ExpertNaming;
  readonly moe: number[];
  readonly dense: number[];
  readonly layerInfos: MoeLayerInfo[];
  readonly missing: string[];
  readonly extra: string[];
}

/** The MoE-block naming the checkpoint uses; mixing two (say per-expert and fused) is refused. */
function detectNaming(adapter: FamilyAdapter, roles: ReadonlyMap<string, Classified>, file: string): ExpertNaming {
  const counts = new Map<ExpertNaming, number>();
  for (const c of roles.values())
    if (c.naming && (c.role.kind === 'expert' || c.role.kind === 'fused_experts')) counts.set(c.naming, (counts.get(c.naming) ?? 0) + 1);
  if (counts.size > 1)
    throw new MoePruneError('InvalidIndex', `expert tensors use more than one naming (${[...counts.keys()].map((n) => n.id).join(' and ')}); expected one`, file);
  return [...counts.keys()][0] ?? adapter.namings[0]!;
}

/**
 * num_hidden_layers must agree with the decoder layers the tensors hold: a layer below it with no tensor at all, or
 * attention weights past it (and past any MTP layers), means config.json and the weights describe different models.
 * A stray expert tensor past the end stays a soft finding (`extraTensors`).
 */
function checkLayerCount(roles: ReadonlyMap<string, Classified>, layers: number, lastLayer: number): void {
  const present = new Set<number>();
  let beyond = -1;
  for (const { role } of roles.values()) {
    if (!('layer' in role) || role.layer === undefined) continue;
    present.add(role.layer);
    if (role.layer >= lastLayer && role.kind === 'attention') beyond = Math.max(beyond, role.layer);
  }
  if (present.size === 0) return;
  const held = [...present].filter((l) => l < lastLayer).length;
  const empty = Array.from({ length: layers }, (_, l) => l).filter((l) => !present.has(l));
  if (empty.length)
    throw new MoePruneError(
      'InvalidConfig',
      `num_hidden_layers is ${layers} but the tensors hold ${held} decoder layer(s); no tensor of layer ${empty[0]}` +
        `${empty.length > 1 ? ` (nor of ${empty.length - 1} more)` : ''}: this config.json belongs to another model`,
      CONFIG_FILE,
    );
  if (beyond >= 0)
    throw new MoePruneError(
      'InvalidConfig',
      `num_hidden_layers is ${layers} but the tensors hold attention weights of layer ${beyond}: this config.json belongs to another model`,
      CONFIG_FILE,
    );
}

function analyse(
  adapter: FamilyAdapter,
  config: ModelConfig,
  roles: ReadonlyMap<string, Classified>,
  file: string,
  fusedExperts: (layer: number) => number | undefined,
): Structure {
  const experts = expertCountAt(adapter, config);
  const layers = numLayers(config);
  const lastLayer = layers + extraLayerCount(adapter, config);
  const { moe, dense } = layerKinds(adapter, config);
  const moeSet = new Set(moe);
  const naming = detectNaming(adapter, roles, file);
  checkLayerCount(roles, layers, lastLayer);
  const withScales = [...roles.values()].some((c) => (c.role.kind === 'expert' || c.role.kind === 'fused_experts') && c.role.part === 'scale_inv');

  const extra: string[] = [];
  const expertIds = new Map<number, Set<number>>();
  const routerName = new Map<number, string>();
  const hasBias = new Set<number>();
  const hasShared = new Set<number>();
  const moeKinds = new Set<TensorRole['kind']>(['router', 'expert', 'fused_experts', 'shared_expert', 'residual_mlp']);
  for (const [name, { role }] of roles) {
    const layer = 'layer' in role ? role.layer : undefined;
    if (layer === undefined) continue;
    if (layer >= lastLayer) {
      extra.push(name);
      continue;
    }
    if (layer >= layers) continue; // MTP layers: kept as they are
    if (moeKinds.has(role.kind) && !moeSet.has(layer)) {
      extra.push(name);
      continue;
    }
    if (role.kind === 'dense_mlp' && moeSet.has(layer)) {
      extra.push(name);
      continue;
    }
    if (role.kind === 'expert') {
      if (role.expert >= experts(layer)) extra.push(name);
      else {
        let s = expertIds.get(layer);
        if (!s) expertIds.set(layer, (s = new Set()));
        s.add(role.expert);
      }
    } else if (role.kind === 'router') {
      if (role.part === 'weight') routerName.set(layer, name);
      else hasBias.add(layer);
    } else if (role.kind === 'shared_expert') hasShared.add(layer);
  }

  const expected: string[] = ['model.embed_tokens.weight', 'model.norm.weight'];
  if (config['tie_word_embeddings'] !== true) expected.push('lm_head.weight');
  const shared = sharedExpertsOf(adapter, config);
  const residual = residualEnabled(adapter, config);
  const layerInfos: MoeLayerInfo[] = [];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    expected.push(`${p}input_layernorm.weight`, `${p}post_attention_layernorm.weight`, `${p}self_attn.o_proj.weight`);
    if (!moeSet.has(l)) {
      expected.push(...denseMlpTensorNames(adapter, l));
      continue;
    }
    const router = routerTensorNames(adapter, naming, l);
    expected.push(routerName.get(l) ?? router.weight);
    if (router.correctionBias) expected.push(router.correctionBias);
    if (shared) expected.push(...sharedExpertTensorNames(adapter, l));
    if (residual) expected.push(...residualTensorNames(adapter, l));
    if (naming.layout === 'per-expert') for (let e = 0; e < experts(l); e++) expected.push(...expertTensorNames(naming, l, e, withScales).map((t) => t.name));
    else expected.push(...fusedExpertTensorNames(naming, l, withScales).map((t) => t.name));
    layerInfos.push({
      layer: l,
      experts: naming.layout === 'per-expert' ? (expertIds.get(l)?.size ?? 0) : (fusedExperts(l) ?? experts(l)),
      layout: naming.layout,
      routerTensor: routerName.get(l) ?? router.weight,
      hasSharedExpert: hasShared.has(l),
      hasCorrectionBias: hasBias.has(l),
    });
  }
  const missing = expected.filter((n) => !roles.has(n));
  return { naming, moe, dense, layerInfos, missing, extra };
}

// ---------------------------------------------------------------------------------------------------------
// Full catalogue from a FileSet.

async function loadIndex(files: FileSet, signal?: AbortSignal): Promise<{ index: ShardIndex | null; shards: string[] }> {
  const indexSrc = files.get(INDEX_FILE);
  if (indexSrc) {
    const index = await readShardIndex(indexSrc, signal);
    const shards = shardFiles(index);
    if (shards.length === 0) throw new MoePruneError('InvalidIndex', 'weight_map is empty', INDEX_FILE);
    for (const s of shards) if (!files.get(s)) throw new MoePruneError('MissingFile', `named by ${INDEX_FILE} but not in the checkpoint`, s);
    return { index, shards };
  }
  const shards = files.names().filter((n) => n.endsWith('.safetensors')).sort();
  if (shards.length === 0) throw new MoePruneError('MissingFile', `the checkpoint has neither ${INDEX_FILE} nor a .safetensors file`, 'model.safetensors');
  return { index: null, shards };
}

function expectShape(shard: string, name: string, actual: Shape, expected: readonly number[], why = ''): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i]))
    throw new MoePruneError('InvalidShape', `tensor "${name}" has shape [${actual.join(', ')}] but ${CONFIG_FILE} implies [${expected.join(', ')}]${why}`, shard);
}

/** Router and expert weights must have the shapes the config implies (FP8 weights keep them; their scales do not). */
function checkShapes(adapter: FamilyAdapter, config: ModelConfig, tensors: ReadonlyMap<string, TensorEntry>): void {
  const experts = expertCountAt(adapter, config);
  const H = requireConfigNumber(config, ['hidden_size']).value;
  let I: number | undefined;
  const needI = (): number => (I ??= requireConfigNumber(config, adapter.fields.expertIntermediate).value);
  // The expert count is the number users get wrong when they edit a config by hand: name the field and its value.
  const perLayer = config[PER_LAYER_KEY] !== undefined;
  const countField = (E: number, layer: number): string =>
    perLayer ? ` (${PER_LAYER_KEY} gives layer ${layer} ${E} experts)` : ` (${requireConfigNumber(config, adapter.fields.expertCount).field} = ${E})`;
  for (const t of tensors.values()) {
    const r = t.role;
    const E = 'layer' in r && r.layer !== undefined ? experts(r.layer) : 0;
    if (r.kind === 'router') expectShape(t.file, t.name, t.shape, r.part === 'weight' ? [E, H] : [E], countField(E, r.layer));
    else if (r.kind === 'expert' && r.part === 'weight') expectShape(t.file, t.name, t.shape, r.proj === 'down' ? [H, needI()] : [needI(), H]);
    else if (r.kind === 'fused_experts' && r.part === 'weight') expectShape(t.file, t.name, t.shape, r.proj === 'down' ? [E, H, needI()] : [E, 2 * needI(), H], countField(E, r.layer));
  }
}

function describeQuantization(config: ModelConfig, dtypes: Record<string, number>): string | null {
  const q = config['quantization_config'];
  if (typeof q === 'object' && q !== null && !Array.isArray(q)) {
    const qc = q as Record<string, unknown>;
    const method = typeof qc['quant_method'] === 'string' ? qc['quant_method'] : 'unknown method';
    const parts = [String(method)];
    if (typeof qc['fmt'] === 'string') parts[0] += ` ${qc['fmt']}`;
    const block = qc['weight_block_size'];
    if (Array.isArray(block) && block.length === 2) parts.push(`${block[0]}x${block[1]} block scales`);
    if (typeof qc['scale_fmt'] === 'string') parts.push(`${qc['scale_fmt']} scales`);
    return parts.join(', ');
  }
  const f8 = Object.keys(dtypes).filter((d) => d.startsWith('F8_'));
  return f8.length ? `fp8 (${f8.join(', ')} tensors, no quantization_config)` : null;
}

/** Reads and checks a checkpoint (headers only) and returns its summary with every tensor's role. */
export async function catalogueCheckpoint(files: FileSet, opts: LongTask = {}): Promise<Catalogue> {
  const { signal, onProgress } = opts;
  refuseUnfinishedExport(files);
  const config = asConfig(await readJson(requireFile(files, CONFIG_FILE), signal));
  const adapter = detectFamily(config);
  const { index, shards } = await loadIndex(files, signal);

  const opened = new Map<string, SafetensorsFile>();
  const tensors = new Map<string, TensorEntry>();
  const roles = new Map<string, Classified>();
  for (const [i, shard] of shards.entries()) {
    throwIfAborted(signal);
    onProgress?.({ phase: 'Reading shard headers', done: i, total: shards.length, unit: 'steps', file: shard });
    const st = await openSafetensors(files.get(shard)!, signal);
    opened.set(shard, st);
    for (const info of st.tensors.values()) {
      const prev = tensors.get(info.name);
      if (prev) throw new MoePruneError('DuplicateTensor', `tensor "${info.name}" is also in ${prev.file}`, shard);
      const c = classifyTensor(adapter, info.name);
      roles.set(info.name, c);
      tensors.set(info.name, { name: info.name, file: shard, dtype: info.dtype, shape: info.shape, byteLength: info.byteLength, role: c.role });
    }
  }
  onProgress?.({ phase: 'Reading shard headers', done: shards.length, total: shards.length, unit: 'steps' });

  const outsideIndex: string[] = [];
  if (index) {
    for (const [name, shard] of index.weightMap) {
      const t = tensors.get(name);
      if (t?.file === shard) continue;
      const where = t ? ` (it is in ${t.file})` : '';
      throw new MoePruneError('MissingTensor', `${INDEX_FILE} maps "${name}" to this shard, but the shard has no such tensor${where}`, shard);
    }
    for (const name of tensors.keys()) if (!index.weightMap.has(name)) outsideIndex.push(name);
  }

  checkShapes(adapter, config, tensors);
  const fusedExperts = (layer: number): number | undefined => {
    for (const t of tensors.values()) if (t.role.kind === 'fused_experts' && t.role.layer === layer && t.role.part === 'weight') return t.shape[0];
    return undefined;
  };
  const structure = analyse(adapter, config, roles, index ? INDEX_FILE : shards[0]!, fusedExperts);

  const summaryLayers = numLayers(config);
  const dtypes: Record<string, number> = {};
  let total = 0;
  let routed = 0;
  let tensorBytes = 0;
  for (const t of tensors.values()) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    tensorBytes += t.byteLength;
    const r = t.role;
    if (isQuantScale(t.name) || (r.kind === 'router' && r.part === 'e_score_correction_bias')) continue;
    if ('layer' in r && r.layer !== undefined && r.layer >= summaryLayers) continue; // MTP layers: transformers skips them
    const n = numel(t.shape);
    total += n;
    if (r.kind === 'expert' || r.kind === 'fused_experts') routed += n;
  }
  const expertSlots = structure.layerInfos.reduce((s, l) => s + l.experts, 0);
  const perLayer = perLayerExpertCounts(config, CONFIG_FILE);
  const architecture = Array.isArray(config['architectures']) && typeof config['architectures'][0] === 'string' ? config['architectures'][0] : adapter.architectures[0]!;
  const summary: CheckpointSummary = {
    family: adapter.id,
    architecture,
    modelType: stringField(config, 'model_type') ?? adapter.modelTypes[0]!,
    layers: summaryLayers,
    moeLayers: structure.moe,
    denseLayers: structure.dense,
    expertsPerLayer: requireConfigNumber(config, adapter.fields.expertCount).value,
    ...(perLayer && { expertsByLayer: Object.fromEntries(perLayer) }),
    topK: requireConfigNumber(config, adapter.fields.topK).value,
    routing: routingOf(adapter, config),
    sharedExperts: sharedExpertsOf(adapter, config),
    hiddenSize: requireConfigNumber(config, ['hidden_size']).value,
    expertIntermediateSize: requireConfigNumber(config, adapter.fields.expertIntermediate).value,
    vocabSize: requireConfigNumber(config, ['vocab_size']).value,
    layout: structure.naming.layout,
    dtypes,
    params: { total, routedExperts: routed, perExpert: expertSlots ? routed / expertSlots : 0 },
    bytesOnDisk: shards.reduce((s, n) => s + files.get(n)!.size, 0),
    tensorBytes,
    shards,
    missingTensors: structure.missing,
    extraTensors: [...new Set([...outsideIndex, ...structure.extra])],
    expertCountField: requireConfigNumber(config, adapter.fields.expertCount).field,
    quantization: describeQuantization(config, dtypes),
  };
  return { summary, adapter, config, naming: structure.naming, tensors, moeLayers: structure.layerInfos, shards: opened, indexFile: index ? INDEX_FILE : null };
}

/** "8", or for a per-layer variant "2–3 per layer" (the counts differ between MoE layers). */
export function expertsPerLayerText(s: Pick<CheckpointSummary, 'expertsPerLayer' | 'expertsByLayer'>): string {
  if (!s.expertsByLayer) return String(s.expertsPerLayer);
  return `${formatCountRange(Object.values(s.expertsByLayer))} per layer`;
}

/** The opened shard that holds tensor `name` (read its bytes with `.readRange` / `.readF32`). */
export function shardOf(cat: Catalogue, name: string): SafetensorsFile {
  const e = cat.tensors.get(name);
  const file = e && cat.shards.get(e.file);
  if (!file) throw new MoePruneError('MissingTensor', `the checkpoint has no tensor "${name}"`, cat.indexFile ?? undefined);
  return file;
}

/** `moe-prune inspect`: the summary only. */
export async function inspectCheckpoint(files: FileSet, opts: LongTask = {}): Promise<CheckpointSummary> {
  return (await catalogueCheckpoint(files, opts)).summary;
}

/** Throws MissingTensor when the checkpoint lacks tensors its config requires (names the first few). */
export function assertComplete(summary: Pick<CheckpointSummary, 'missingTensors' | 'shards'>, file = summary.shards.length > 1 ? INDEX_FILE : (summary.shards[0] ?? CONFIG_FILE)): void {
  const m = summary.missingTensors;
  if (m.length === 0) return;
  const shown = m.slice(0, 3).map((n) => `"${n}"`).join(', ');
  throw new MoePruneError('MissingTensor', `${m.length} tensor(s) required by ${CONFIG_FILE} are absent: ${shown}${m.length > 3 ? ', …' : ''}`, file);
}

// ---------------------------------------------------------------------------------------------------------
// Index-only catalogue (names without shapes), for real configs whose weights we do not have.

export function catalogueFromIndex(configJson: unknown, indexJson: unknown): IndexCatalogue {
  const config = asConfig(configJson);
  const adapter = detectFamily(config);
  const index = parseShardIndex(INDEX_FILE, indexJson);
  const roles = new Map<string, Classified>();
  for (const name of index.weightMap.keys()) roles.set(name, classifyTensor(adapter, name));
  const s = analyse(adapter, config, roles, INDEX_FILE, () => undefined);
  const expertCount = requireConfigNumber(config, adapter.fields.expertCount);
  return {
    family: adapter.id,
    architecture: Array.isArray(config['architectures']) && typeof config['architectures'][0] === 'string' ? config['architectures'][0] : adapter.architectures[0]!,
    modelType: stringField(config, 'model_type') ?? adapter.modelTypes[0]!,
    layers: numLayers(config),
    moeLayers: s.moe,
    denseLayers: s.dense,
    expertsPerLayer: expertCount.value,
    topK: requireConfigNumber(config, adapter.fields.topK).value,
    routing: routingOf(adapter, config),
    sharedExperts: sharedExpertsOf(adapter, config),
    layout: s.naming.layout,
    naming: s.naming.id,
    expertsFound: s.layerInfos.map((l) => l.experts),
    expertCountField: expertCount.field,
    shards: shardFiles(index),
    tensorCount: index.weightMap.size,
    missingTensors: s.missing,
    extraTensors: s.extra,
  };
}
