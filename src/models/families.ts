import { MoePruneError } from '../core/errors.ts';
import type { ExpertIndex, ExpertLayout, FamilyId, LayerIndex, RouterScoring, RoutingSummary, TensorRole } from './types.ts';

/**
 * The MoE family adapter table. Everything that differs between families (config field names, which layers
 * are MoE, routing, tensor names) is data in FAMILIES; the functions below it are generic and read that data.
 * Sources: the project's reference notes on MoE checkpoint layouts (moe-checkpoints.md §2), transformers 5.18 conversion_mapping.py / configs.
 */

/** One on-disk naming of a family's MoE block. A family may have several (original per-expert, v5 fused). */
export interface ExpertNaming {
  readonly id: string;
  readonly layout: ExpertLayout;
  /** Module path of the MoE block inside a decoder layer ('mlp' or 'block_sparse_moe'). */
  readonly block: string;
  /** Router weight names relative to the block; the first is used when a name must be made up. */
  readonly routers: readonly string[];
  /** Per-expert layout: stems under `experts.{e}.`, each stored as `<stem>.weight` [+ `_scale_inv`]. */
  readonly perExpert?: { readonly gate: string; readonly up: string; readonly down: string };
  /** Fused layout: names relative to the block of the [E,2I,H] and [E,H,I] tensors [+ `_scale_inv`]. */
  readonly fused?: { readonly gateUp: string; readonly down: string };
}

/** Config keys; lists are candidates, the first present wins (transformers writes aliases in some versions). */
export interface ConfigFields {
  readonly expertCount: readonly string[];
  readonly topK: readonly string[];
  readonly expertIntermediate: readonly string[];
  /** FFN width of the dense (non-MoE) layers, where the family has them. */
  readonly denseIntermediate?: string;
}

export type MoeLayerRule =
  | { readonly kind: 'all' }
  /** Qwen: MoE iff i ∉ skipList and (i+1) % step == 0. */
  | { readonly kind: 'sparse-step'; readonly skipListField: string; readonly stepField: string; readonly stepDefault: number }
  /** DeepSeek: MoE iff i >= firstK and i % freq == 0. */
  | { readonly kind: 'first-k-dense'; readonly firstKField: string; readonly firstKDefault: number; readonly freqField: string; readonly freqDefault: number }
  /** Arctic: MoE iff (i+1) % freq == 0. */
  | { readonly kind: 'every-nth'; readonly freqField: string; readonly freqDefault: number };

export interface RoutingSpec {
  readonly scoring: RouterScoring;
  /** Config key that may override `scoring` (DeepSeek `scoring_func`). */
  readonly scoringField?: string;
  /** Whether the top-k weights are renormalised to sum to 1; Arctic does it only when top-k > 1. */
  readonly normTopkProb: boolean | 'when-top-k-above-1';
  /** Config key that may override `normTopkProb`; absent = fixed by the architecture. */
  readonly normTopkProbField?: string;
  /** Group-limited routing: active when the method field holds one of `methods` and n_group > 1. */
  readonly groups?: {
    readonly nGroupField: string;
    readonly topkGroupField: string;
    readonly methodField: string;
    readonly methodDefault: string;
    readonly methods: readonly string[];
    /** How a group is scored: its best expert (V2) or the sum of its best two (V3). */
    readonly groupScore: 'max' | 'top2-sum';
  };
  readonly scalingField?: string;
  readonly scalingDefault?: number;
  /** Router carries a per-expert `e_score_correction_bias` (DeepSeek-V3), stored beside the router weight. */
  readonly correctionBias?: { readonly name: string };
}

export interface SharedExpertSpec {
  /** Module path of the shared MLP inside a decoder layer. */
  readonly prefix: string;
  readonly projs: { readonly gate: string; readonly up: string; readonly down: string };
  /** Config key of the shared-expert count; absent = one shared MLP when `sizeField` > 0. */
  readonly countField?: string;
  readonly countDefault: number;
  readonly sizeField: string;
  /** DeepSeek stores the n shared experts as ONE MLP of width n × sizeField. */
  readonly widthIsCountTimesSize: boolean;
  /** Sigmoid gate of the shared expert (Qwen2-MoE), relative to the decoder layer. */
  readonly gate?: string;
}

/** The dense MLP of non-MoE layers. */
export interface DenseMlpSpec {
  readonly prefix: string;
  readonly projs: { readonly gate: string; readonly up: string; readonly down: string };
}

/** Arctic's dense residual MLP beside the MoE of MoE layers only (when `enableField` is true). */
export interface ResidualSpec {
  readonly prefix: string;
  readonly norm: string;
  readonly projs: { readonly gate: string; readonly up: string; readonly down: string };
  readonly enableField: string;
  readonly enableDefault: boolean;
}

export interface FamilyAdapter {
  readonly id: FamilyId;
  readonly label: string;
  readonly architectures: readonly string[];
  readonly modelTypes: readonly string[];
  readonly fields: ConfigFields;
  readonly moeLayers: MoeLayerRule;
  readonly routing: RoutingSpec;
  readonly shared: SharedExpertSpec | null;
  readonly dense: DenseMlpSpec | null;
  readonly residual: ResidualSpec | null;
  /** Accepted namings of the MoE block, in order of preference. */
  readonly namings: readonly ExpertNaming[];
  /** Config key counting extra (MTP) layers stored after the decoder layers, which are not "extra" tensors. */
  readonly extraLayersField?: string;
  /** Arctic's modeling code ships with the checkpoint, not with transformers (loaded with trust_remote_code). */
  readonly remoteCode?: true;
}

const LAYER_PREFIX = 'model.layers.';
const GATE_UP_DOWN = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' } as const;
const W1_W3_W2 = { gate: 'w1', up: 'w3', down: 'w2' } as const;
const V5_FUSED = { gateUp: 'experts.gate_up_proj', down: 'experts.down_proj' } as const;

const perExpert = (id: string, block: string, routers: readonly string[], stems: ExpertNaming['perExpert']): ExpertNaming => ({
  id,
  layout: 'per-expert',
  block,
  routers,
  perExpert: stems,
});
const fused = (id: string, block: string, routers: readonly string[], names: ExpertNaming['fused'] = V5_FUSED): ExpertNaming => ({
  id,
  layout: 'fused',
  block,
  routers,
  fused: names,
});

/** Mixtral, Phi-MoE: original names under block_sparse_moe; transformers v5 renames the block to mlp when fusing. */
const MIXTRAL_NAMINGS = [
  perExpert('block_sparse_moe.experts.{e}.w1/w3/w2', 'block_sparse_moe', ['gate.weight', 'router.weight'], W1_W3_W2),
  perExpert('mlp.experts.{e}.w1/w3/w2', 'mlp', ['gate.weight', 'router.weight'], W1_W3_W2),
  fused('mlp.experts.gate_up_proj', 'mlp', ['gate.weight', 'router.weight']),
  fused('block_sparse_moe.experts.gate_up_proj', 'block_sparse_moe', ['gate.weight', 'router.weight']),
];
const QWEN_STYLE_NAMINGS = [
  perExpert('mlp.experts.{e}.gate_proj/up_proj/down_proj', 'mlp', ['gate.weight', 'router.weight'], GATE_UP_DOWN),
  fused('mlp.experts.gate_up_proj', 'mlp', ['gate.weight', 'router.weight']),
];

const QWEN_LAYERS: MoeLayerRule = { kind: 'sparse-step', skipListField: 'mlp_only_layers', stepField: 'decoder_sparse_step', stepDefault: 1 };
const DEEPSEEK_LAYERS: MoeLayerRule = { kind: 'first-k-dense', firstKField: 'first_k_dense_replace', firstKDefault: 0, freqField: 'moe_layer_freq', freqDefault: 1 };
const DEEPSEEK_SHARED: SharedExpertSpec = {
  prefix: 'mlp.shared_experts',
  projs: GATE_UP_DOWN,
  countField: 'n_shared_experts',
  countDefault: 0,
  sizeField: 'moe_intermediate_size',
  widthIsCountTimesSize: true,
};
const MLP_DENSE: DenseMlpSpec = { prefix: 'mlp', projs: GATE_UP_DOWN };

export const FAMILIES: readonly FamilyAdapter[] = [
  {
    id: 'mixtral',
    label: 'Mixtral',
    architectures: ['MixtralForCausalLM'],
    modelTypes: ['mixtral'],
    fields: { expertCount: ['num_local_experts', 'num_experts'], topK: ['num_experts_per_tok'], expertIntermediate: ['intermediate_size'] },
    moeLayers: { kind: 'all' },
    routing: { scoring: 'softmax', normTopkProb: true },
    shared: null,
    dense: null,
    residual: null,
    namings: MIXTRAL_NAMINGS,
  },
  {
    id: 'qwen2_moe',
    label: 'Qwen2-MoE',
    architectures: ['Qwen2MoeForCausalLM'],
    modelTypes: ['qwen2_moe'],
    fields: {
      expertCount: ['num_experts', 'num_local_experts'],
      topK: ['num_experts_per_tok'],
      expertIntermediate: ['moe_intermediate_size'],
      denseIntermediate: 'intermediate_size',
    },
    moeLayers: QWEN_LAYERS,
    routing: { scoring: 'softmax', normTopkProb: false, normTopkProbField: 'norm_topk_prob' },
    shared: {
      prefix: 'mlp.shared_expert',
      projs: GATE_UP_DOWN,
      countDefault: 1,
      sizeField: 'shared_expert_intermediate_size',
      widthIsCountTimesSize: false,
      gate: 'mlp.shared_expert_gate.weight',
    },
    dense: MLP_DENSE,
    residual: null,
    namings: QWEN_STYLE_NAMINGS,
  },
  {
    id: 'qwen3_moe',
    label: 'Qwen3-MoE',
    architectures: ['Qwen3MoeForCausalLM'],
    modelTypes: ['qwen3_moe'],
    // transformers 5.x saves this family's count as num_local_experts; released checkpoints use num_experts.
    fields: {
      expertCount: ['num_experts', 'num_local_experts'],
      topK: ['num_experts_per_tok'],
      expertIntermediate: ['moe_intermediate_size'],
      denseIntermediate: 'intermediate_size',
    },
    moeLayers: QWEN_LAYERS,
    routing: { scoring: 'softmax', normTopkProb: false, normTopkProbField: 'norm_topk_prob' },
    shared: null,
    dense: MLP_DENSE,
    residual: null,
    namings: QWEN_STYLE_NAMINGS,
  },
  {
    id: 'olmoe',
    label: 'OLMoE',
    architectures: ['OlmoeForCausalLM'],
    modelTypes: ['olmoe'],
    fields: { expertCount: ['num_experts', 'num_local_experts'], topK: ['num_experts_per_tok'], expertIntermediate: ['intermediate_size'] },
    moeLayers: { kind: 'all' },
    routing: { scoring: 'softmax', normTopkProb: false, normTopkProbField: 'norm_topk_prob' },
    shared: null,
    dense: null,
    residual: null,
    namings: QWEN_STYLE_NAMINGS,
  },
  {
    id: 'phimoe',
    label: 'Phi-MoE',
    architectures: ['PhimoeForCausalLM'],
    modelTypes: ['phimoe'],
    fields: { expertCount: ['num_local_experts', 'num_experts'], topK: ['num_experts_per_tok'], expertIntermediate: ['intermediate_size'] },
    moeLayers: { kind: 'all' },
    // sparsemixer picks the top-2 by masked softmaxes; its weights are not a renormalised softmax.
    routing: { scoring: 'sparsemixer', normTopkProb: false },
    shared: null,
    dense: null,
    residual: null,
    namings: MIXTRAL_NAMINGS,
  },
  {
    id: 'deepseek_v2',
    label: 'DeepSeek-V2',
    architectures: ['DeepseekV2ForCausalLM'],
    modelTypes: ['deepseek_v2'],
    fields: {
      expertCount: ['n_routed_experts', 'num_experts'],
      topK: ['num_experts_per_tok'],
      expertIntermediate: ['moe_intermediate_size'],
      denseIntermediate: 'intermediate_size',
    },
    moeLayers: DEEPSEEK_LAYERS,
    routing: {
      scoring: 'softmax',
      scoringField: 'scoring_func',
      // transformers' DeepseekV2 router never renormalises the top-k weights, whatever norm_topk_prob says.
      normTopkProb: false,
      groups: {
        nGroupField: 'n_group',
        topkGroupField: 'topk_group',
        methodField: 'topk_method',
        methodDefault: 'greedy',
        methods: ['group_limited_greedy'],
        groupScore: 'max',
      },
      scalingField: 'routed_scaling_factor',
      scalingDefault: 1,
    },
    shared: DEEPSEEK_SHARED,
    dense: MLP_DENSE,
    residual: null,
    namings: QWEN_STYLE_NAMINGS,
  },
  {
    id: 'deepseek_v3',
    label: 'DeepSeek-V3',
    architectures: ['DeepseekV3ForCausalLM'],
    modelTypes: ['deepseek_v3'],
    fields: {
      expertCount: ['n_routed_experts', 'num_local_experts'],
      topK: ['num_experts_per_tok'],
      expertIntermediate: ['moe_intermediate_size'],
      denseIntermediate: 'intermediate_size',
    },
    moeLayers: DEEPSEEK_LAYERS,
    routing: {
      scoring: 'sigmoid',
      scoringField: 'scoring_func',
      normTopkProb: true,
      normTopkProbField: 'norm_topk_prob',
      groups: {
        nGroupField: 'n_group',
        topkGroupField: 'topk_group',
        methodField: 'topk_method',
        methodDefault: 'noaux_tc',
        methods: ['noaux_tc', 'group_limited_greedy'],
        groupScore: 'top2-sum',
      },
      scalingField: 'routed_scaling_factor',
      scalingDefault: 2.5,
      correctionBias: { name: 'gate.e_score_correction_bias' },
    },
    shared: DEEPSEEK_SHARED,
    dense: MLP_DENSE,
    residual: null,
    namings: QWEN_STYLE_NAMINGS,
    extraLayersField: 'num_nextn_predict_layers',
  },
  {
    id: 'arctic',
    label: 'Snowflake Arctic',
    architectures: ['ArcticForCausalLM'],
    modelTypes: ['arctic'],
    fields: {
      expertCount: ['num_local_experts'],
      topK: ['num_experts_per_tok'],
      expertIntermediate: ['intermediate_size'],
      denseIntermediate: 'intermediate_size',
    },
    moeLayers: { kind: 'every-nth', freqField: 'moe_layer_frequency', freqDefault: 2 },
    routing: { scoring: 'softmax', normTopkProb: 'when-top-k-above-1' },
    shared: null,
    dense: { prefix: 'block_sparse_moe.mlp', projs: W1_W3_W2 },
    residual: { prefix: 'residual_mlp', norm: 'residual_layernorm', projs: W1_W3_W2, enableField: 'use_residual', enableDefault: true },
    namings: [perExpert('block_sparse_moe.experts.{e}.w1/w3/w2', 'block_sparse_moe', ['gate.weight'], W1_W3_W2)],

    remoteCode: true,
  },
  {
    id: 'granitemoe',
    label: 'Granite-MoE',
    architectures: ['GraniteMoeForCausalLM'],
    modelTypes: ['granitemoe'],
    fields: { expertCount: ['num_local_experts'], topK: ['num_experts_per_tok'], expertIntermediate: ['intermediate_size'] },
    moeLayers: { kind: 'all' },
    // top-k on the logits, then softmax over the k: the weights always sum to 1.
    routing: { scoring: 'softmax', normTopkProb: true },
    shared: null,
    dense: null,
    residual: null,
    namings: [
      fused('block_sparse_moe.input_linear', 'block_sparse_moe', ['router.layer.weight', 'router.weight'], {
        gateUp: 'input_linear.weight',
        down: 'output_linear.weight',
      }),
      fused('block_sparse_moe.experts.gate_up_proj', 'block_sparse_moe', ['router.weight', 'router.layer.weight']),
    ],
  },
];

// ---------------------------------------------------------------------------------------------------------
// Generic code over the table.

export type ModelConfig = Readonly<Record<string, unknown>>;
const CONFIG_FILE = 'config.json';

export function familyById(id: FamilyId): FamilyAdapter {
  const f = FAMILIES.find((a) => a.id === id);
  if (!f) throw new MoePruneError('UnsupportedFamily', `no adapter for family "${id}"`);
  return f;
}

export function supportedFamiliesText(): string {
  return FAMILIES.map((f) => `${f.architectures[0]} (${f.modelTypes[0]})`).join(', ');
}

/** Picks the adapter by `architectures[0]`, then by `model_type`. */
export function detectFamily(config: ModelConfig, file = CONFIG_FILE): FamilyAdapter {
  const archs = Array.isArray(config['architectures']) ? config['architectures'].filter((a): a is string => typeof a === 'string') : [];
  const modelType = typeof config['model_type'] === 'string' ? config['model_type'] : undefined;
  for (const arch of archs) {
    const f = FAMILIES.find((a) => a.architectures.includes(arch));
    if (f) return f;
  }
  if (modelType) {
    const f = FAMILIES.find((a) => a.modelTypes.includes(modelType));
    if (f) return f;
  }
  const what = archs.length ? `architecture "${archs[0]}"` : 'no "architectures" entry';
  throw new MoePruneError(
    'UnsupportedFamily',
    `${what} (model_type "${modelType ?? '?'}") is not a supported MoE family; supported: ${supportedFamiliesText()}`,
    file,
  );
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Which of the candidate keys the config holds, with its value; throws InvalidConfig if none is a number. */
export function requireConfigNumber(config: ModelConfig, keys: readonly string[], file = CONFIG_FILE): { field: string; value: number } {
  for (const k of keys) {
    const v = config[k];
    if (isNum(v)) return { field: k, value: v };
  }
  throw new MoePruneError('InvalidConfig', `needs a number in "${keys.join('" or "')}"`, file);
}

function optNumber(config: ModelConfig, key: string | undefined, fallback: number): number {
  if (!key) return fallback;
  const v = config[key];
  return isNum(v) ? v : fallback;
}

/** The config key holding the routed-expert count (the one the checkpoint itself uses). */
export function expertCountField(adapter: FamilyAdapter, config: ModelConfig): string {
  return requireConfigNumber(config, adapter.fields.expertCount).field;
}

/**
 * The config key of a per-layer variant (written by a global-mode export): MoE layer index → routed experts kept.
 * Stock classes ignore it and refuse such weights; we read it so the variant can be inspected and re-imported.
 */
export const PER_LAYER_KEY = 'moe_prune_experts_per_layer';
/**
 * A per-layer variant's model_type gets this suffix (the original is kept under BASE_MODEL_TYPE_KEY): transformers and
 * vLLM then refuse the config outright. With the stock model_type transformers 5.18 would "load" it, re-initialising
 * the mismatched experts at random with only a warning.
 */
export const PER_LAYER_MODEL_TYPE_SUFFIX = '_per_layer_experts';
export const BASE_MODEL_TYPE_KEY = 'moe_prune_base_model_type';

/** The per-layer expert counts of a per-layer variant, or null; malformed values are refused naming the key. */
export function perLayerExpertCounts(config: ModelConfig, file = 'config.json'): ReadonlyMap<number, number> | null {
  const v = config[PER_LAYER_KEY];
  if (v === undefined) return null;
  const bad = (): never => {
    throw new MoePruneError('InvalidConfig', `"${PER_LAYER_KEY}" must map layer indices to positive expert counts`, file);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad();
  const out = new Map<number, number>();
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (!/^\d+$/.test(k) || typeof n !== 'number' || !Number.isInteger(n) || n < 1) bad();
    out.set(Number(k), n as number);
  }
  return out;
}

/** Routed experts in a MoE layer: the config's count, or the layer's own in a per-layer variant. */
export function expertCountAt(adapter: FamilyAdapter, config: ModelConfig): (layer: number) => number {
  const n = requireConfigNumber(config, adapter.fields.expertCount).value;
  const perLayer = perLayerExpertCounts(config);
  return (layer) => perLayer?.get(layer) ?? n;
}

/** The config edit that sets the routed-expert count to `k` (only the key the checkpoint uses). */
export function expertCountPatch(adapter: FamilyAdapter, config: ModelConfig, k: number): Record<string, number> {
  return { [expertCountField(adapter, config)]: k };
}

export function isMoeLayer(adapter: FamilyAdapter, config: ModelConfig, layer: number): boolean {
  const rule = adapter.moeLayers;
  switch (rule.kind) {
    case 'all':
      return true;
    case 'sparse-step': {
      const skip = config[rule.skipListField];
      const step = optNumber(config, rule.stepField, rule.stepDefault);
      if (Array.isArray(skip) && skip.includes(layer)) return false;
      return step > 0 && (layer + 1) % step === 0;
    }
    case 'first-k-dense': {
      const k = optNumber(config, rule.firstKField, rule.firstKDefault);
      const freq = optNumber(config, rule.freqField, rule.freqDefault);
      return layer >= k && freq > 0 && layer % freq === 0;
    }
    case 'every-nth': {
      const freq = optNumber(config, rule.freqField, rule.freqDefault);
      return freq > 0 && (layer + 1) % freq === 0;
    }
  }
}

export function numLayers(config: ModelConfig, file = CONFIG_FILE): number {
  return requireConfigNumber(config, ['num_hidden_layers'], file).value;
}

/** Decoder layers 0..L-1 split into MoE and dense by the family's rule (no MoE at all when E == 0). */
export function layerKinds(adapter: FamilyAdapter, config: ModelConfig): { moe: number[]; dense: number[] } {
  const layers = numLayers(config);
  const experts = requireConfigNumber(config, adapter.fields.expertCount).value;
  const moe: number[] = [];
  const dense: number[] = [];
  for (let i = 0; i < layers; i++) (experts > 0 && isMoeLayer(adapter, config, i) ? moe : dense).push(i);
  return { moe, dense };
}

/** Number of layers stored after the decoder layers (DeepSeek-V3 MTP); they hold an MoE block too. */
export function extraLayerCount(adapter: FamilyAdapter, config: ModelConfig): number {
  return adapter.extraLayersField ? optNumber(config, adapter.extraLayersField, 0) : 0;
}

export interface GroupedRouting {
  readonly nGroup: number;
  readonly topkGroup: number;
  readonly groupScore: 'max' | 'top2-sum';
}

/** Group-limited routing in force for this config, or null (no groups, one group, or a non-grouped method). */
export function groupedRouting(adapter: FamilyAdapter, config: ModelConfig): GroupedRouting | null {
  const g = adapter.routing.groups;
  if (!g) return null;
  const method = typeof config[g.methodField] === 'string' ? (config[g.methodField] as string) : g.methodDefault;
  const nGroup = optNumber(config, g.nGroupField, 1);
  if (!g.methods.includes(method) || nGroup <= 1) return null;
  return { nGroup, topkGroup: optNumber(config, g.topkGroupField, nGroup), groupScore: g.groupScore };
}

export function routingOf(adapter: FamilyAdapter, config: ModelConfig): RoutingSummary {
  const r = adapter.routing;
  const scoringValue = r.scoringField ? config[r.scoringField] : undefined;
  const scoring: RouterScoring = scoringValue === 'softmax' || scoringValue === 'sigmoid' ? scoringValue : r.scoring;
  const normValue = r.normTopkProbField ? config[r.normTopkProbField] : undefined;
  const fixed = r.normTopkProb === 'when-top-k-above-1' ? requireConfigNumber(config, adapter.fields.topK).value > 1 : r.normTopkProb;
  const out: RoutingSummary = {
    scoring,
    normTopkProb: typeof normValue === 'boolean' ? normValue : fixed,
    correctionBias: r.correctionBias !== undefined,
  };
  const groups = groupedRouting(adapter, config);
  if (groups) out.groups = { nGroup: groups.nGroup, topkGroup: groups.topkGroup };
  if (r.scalingField) out.routedScalingFactor = optNumber(config, r.scalingField, r.scalingDefault ?? 1);
  return out;
}

/** Shared expert(s) per MoE layer, as stored: count and the width of the stored MLP; null when none. */
export function sharedExpertsOf(adapter: FamilyAdapter, config: ModelConfig): { count: number; intermediateSize: number } | null {
  const s = adapter.shared;
  if (!s) return null;
  const size = optNumber(config, s.sizeField, 0);
  const count = s.countField ? optNumber(config, s.countField, s.countDefault) : size > 0 ? s.countDefault : 0;
  if (count <= 0 || size <= 0) return null;
  return { count, intermediateSize: s.widthIsCountTimesSize ? count * size : size };
}

export function residualEnabled(adapter: FamilyAdapter, config: ModelConfig): boolean {
  const r = adapter.residual;
  if (!r) return false;
  const v = config[r.enableField];
  return typeof v === 'boolean' ? v : r.enableDefault;
}

/**
 * Why keeping `k` routed experts per layer would break this config's routing; empty when it is fine.
 * Checks top-k ≤ k and, for group-limited routing, k % n_group == 0, ≥ 2 experts per group when a group
 * is scored by its top two, and enough experts in the top groups to fill top-k.
 */
/** The problems of every distinct count a plan keeps (a per-layer variant has several), each named once. */
export function expertCountsProblems(adapter: FamilyAdapter, config: ModelConfig, counts: Iterable<number>): string[] {
  return [...new Set([...new Set(counts)].flatMap((k) => expertCountProblems(adapter, config, k)))];
}

export function expertCountProblems(adapter: FamilyAdapter, config: ModelConfig, k: number): string[] {
  const problems: string[] = [];
  const topK = requireConfigNumber(config, adapter.fields.topK).value;
  if (!Number.isInteger(k) || k < 1) problems.push(`the expert count must be a positive integer, got ${k}`);
  if (k < topK) problems.push(`keeping ${k} experts is fewer than the ${topK} each token is routed to (num_experts_per_tok)`);
  const g = groupedRouting(adapter, config);
  if (g) {
    if (k % g.nGroup !== 0) problems.push(`grouped routing needs the expert count to be a multiple of n_group=${g.nGroup}, got ${k}`);
    else {
      const perGroup = k / g.nGroup;
      if (g.groupScore === 'top2-sum' && perGroup < 2) problems.push(`grouped routing scores a group by its top two experts, so each of the ${g.nGroup} groups needs ≥ 2 experts (k=${k})`);
      if (g.topkGroup * perGroup < topK) problems.push(`the ${g.topkGroup} chosen groups hold ${g.topkGroup * perGroup} experts, fewer than top-k=${topK}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// Tensor names → roles.

/** A compiled tensor-name rule: `re` has named groups layer / expert / proj / scale / part as the kind needs. */
export interface TensorRule {
  readonly re: RegExp;
  readonly kind: TensorRole['kind'];
  readonly naming?: ExpertNaming;
  /** For expert rules: captured `proj` stem → role proj. */
  readonly projs?: Readonly<Record<string, 'gate' | 'up' | 'down' | 'gate_up'>>;
  readonly routerPart?: 'weight' | 'bias' | 'e_score_correction_bias';
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const LAYER = `^${esc(LAYER_PREFIX)}(?<layer>\\d+)\\.`;
const SCALE = '(?<scale>_scale_inv)?';

function namingRules(adapter: FamilyAdapter, n: ExpertNaming): TensorRule[] {
  const b = esc(n.block);
  const rules: TensorRule[] = n.routers.map((r) => ({ re: new RegExp(`${LAYER}${b}\\.${esc(r)}$`), kind: 'router', naming: n, routerPart: 'weight' }));
  if (adapter.routing.correctionBias)
    rules.push({ re: new RegExp(`${LAYER}${b}\\.${esc(adapter.routing.correctionBias.name)}$`), kind: 'router', naming: n, routerPart: 'e_score_correction_bias' });
  if (n.perExpert) {
    const p = n.perExpert;
    rules.push({
      re: new RegExp(`${LAYER}${b}\\.experts\\.(?<expert>\\d+)\\.(?<proj>${esc(p.gate)}|${esc(p.up)}|${esc(p.down)})\\.weight${SCALE}$`),
      kind: 'expert',
      naming: n,
      projs: { [p.gate]: 'gate', [p.up]: 'up', [p.down]: 'down' },
    });
  }
  if (n.fused) {
    const f = n.fused;
    rules.push({
      re: new RegExp(`${LAYER}${b}\\.(?<proj>${esc(f.gateUp)}|${esc(f.down)})${SCALE}$`),
      kind: 'fused_experts',
      naming: n,
      projs: { [f.gateUp]: 'gate_up', [f.down]: 'down' },
    });
  }
  return rules;
}

const ruleCache = new Map<FamilyId, readonly TensorRule[]>();

/** Every rule of a family in match order: family-specific first, then the names all these families share. */
export function tensorRules(adapter: FamilyAdapter): readonly TensorRule[] {
  const cached = ruleCache.get(adapter.id);
  if (cached) return cached;
  const rules: TensorRule[] = adapter.namings.flatMap((n) => namingRules(adapter, n));
  const mlpParts = (projs: { gate: string; up: string; down: string }): string => `(?:${esc(projs.gate)}|${esc(projs.up)}|${esc(projs.down)})\\.weight(?:_scale_inv)?`;
  if (adapter.shared) {
    const s = adapter.shared;
    rules.push({ re: new RegExp(`${LAYER}${esc(s.prefix)}\\.(?<part>${mlpParts(s.projs)})$`), kind: 'shared_expert' });
    if (s.gate) rules.push({ re: new RegExp(`${LAYER}(?<part>${esc(s.gate)})$`), kind: 'shared_expert' });
  }
  if (adapter.dense) rules.push({ re: new RegExp(`${LAYER}${esc(adapter.dense.prefix)}\\.(?<part>${mlpParts(adapter.dense.projs)})$`), kind: 'dense_mlp' });
  if (adapter.residual) {
    const r = adapter.residual;
    rules.push({ re: new RegExp(`${LAYER}${esc(r.prefix)}\\.(?<part>.+)$`), kind: 'residual_mlp' });
    rules.push({ re: new RegExp(`${LAYER}(?<part>${esc(r.norm)}\\..+)$`), kind: 'norm' });
  }
  rules.push(
    { re: /^model\.embed_tokens\.weight$/, kind: 'embedding' },
    { re: /^lm_head\.(?:weight|bias)$/, kind: 'lm_head' },
    { re: /^model\.norm\.(?:weight|bias)$/, kind: 'final_norm' },
    { re: new RegExp(`${LAYER}self_attn\\.(?<part>.+)$`), kind: 'attention' },
    { re: new RegExp(`${LAYER}(?<part>(?:input_layernorm|post_attention_layernorm)\\.(?:weight|bias))$`), kind: 'norm' },
    { re: new RegExp(`${LAYER}(?<part>.+)$`), kind: 'other' },
  );
  ruleCache.set(adapter.id, rules);
  return rules;
}

export interface Classified {
  readonly role: TensorRole;
  /** The MoE-block naming the tensor belongs to (router, expert and fused-expert tensors only). */
  readonly naming?: ExpertNaming;
}

/** The role of one tensor name; names no rule knows get `{kind: 'other'}`. */
export function classifyTensor(adapter: FamilyAdapter, name: string): Classified {
  for (const rule of tensorRules(adapter)) {
    const m = rule.re.exec(name);
    if (!m) continue;
    const g = m.groups ?? {};
    const layer = g['layer'] !== undefined ? (Number(g['layer']) as LayerIndex) : undefined;
    const part = g['part'] ?? '';
    const scalePart = g['scale'] ? 'scale_inv' : 'weight';
    const naming = rule.naming;
    switch (rule.kind) {
      case 'embedding':
      case 'lm_head':
      case 'final_norm':
        return { role: { kind: rule.kind } };
      case 'router':
        return { role: { kind: 'router', layer: layer!, part: rule.routerPart ?? 'weight' }, ...(naming && { naming }) };
      case 'expert': {
        const proj = rule.projs![g['proj']!] as 'gate' | 'up' | 'down';
        return { role: { kind: 'expert', layer: layer!, expert: Number(g['expert']) as ExpertIndex, proj, part: scalePart }, ...(naming && { naming }) };
      }
      case 'fused_experts': {
        const proj = rule.projs![g['proj']!] as 'gate_up' | 'down';
        return { role: { kind: 'fused_experts', layer: layer!, proj, part: scalePart }, ...(naming && { naming }) };
      }
      case 'attention':
      case 'norm':
      case 'shared_expert':
      case 'dense_mlp':
      case 'residual_mlp':
        return { role: { kind: rule.kind, layer: layer!, part } };
      case 'other':
        return { role: layer === undefined ? { kind: 'other', part: name } : { kind: 'other', layer, part } };
    }
  }
  return { role: { kind: 'other', part: name } };
}

/** True for quantisation scale companions (`*_scale_inv`), which are not model parameters. */
export function isQuantScale(name: string): boolean {
  return name.endsWith('_scale_inv');
}

// ---------------------------------------------------------------------------------------------------------
// Names the pruning stage writes.

const layerPath = (layer: number): string => `${LAYER_PREFIX}${layer}.`;

export interface ExpertTensorName {
  readonly name: string;
  readonly proj: 'gate' | 'up' | 'down';
  readonly part: 'weight' | 'scale_inv';
}

/** The per-expert tensors of one expert (gate, up, down weights; their `_scale_inv` companions when asked). */
export function expertTensorNames(naming: ExpertNaming, layer: number, expert: number, withScales = false): ExpertTensorName[] {
  const p = naming.perExpert;
  if (!p) throw new MoePruneError('InvalidArgument', `naming ${naming.id} stores experts fused, not one tensor per expert`);
  const out: ExpertTensorName[] = [];
  for (const proj of ['gate', 'up', 'down'] as const) {
    const name = `${layerPath(layer)}${naming.block}.experts.${expert}.${p[proj]}.weight`;
    out.push({ name, proj, part: 'weight' });
    if (withScales) out.push({ name: `${name}_scale_inv`, proj, part: 'scale_inv' });
  }
  return out;
}

/** The fused [E,2I,H] and [E,H,I] tensors of one layer (and their scales when asked). */
export function fusedExpertTensorNames(naming: ExpertNaming, layer: number, withScales = false): Array<{ name: string; proj: 'gate_up' | 'down'; part: 'weight' | 'scale_inv' }> {
  const f = naming.fused;
  if (!f) throw new MoePruneError('InvalidArgument', `naming ${naming.id} stores one tensor per expert, not fused`);
  const out: Array<{ name: string; proj: 'gate_up' | 'down'; part: 'weight' | 'scale_inv' }> = [];
  for (const [proj, stem] of [['gate_up', f.gateUp], ['down', f.down]] as const) {
    const name = `${layerPath(layer)}${naming.block}.${stem}`;
    out.push({ name, proj, part: 'weight' });
    if (withScales) out.push({ name: `${name}_scale_inv`, proj, part: 'scale_inv' });
  }
  return out;
}

/** `...experts.{old}.w1.weight` → `...experts.{newExpert}.w1.weight`; throws if the name is not a per-expert tensor. */
export function renameExpertTensor(naming: ExpertNaming, name: string, newExpert: number): string {
  if (!naming.perExpert) throw new MoePruneError('InvalidArgument', `naming ${naming.id} has no per-expert tensors`, name);
  const marker = `.${naming.block}.experts.`;
  const at = name.indexOf(marker);
  const rest = at >= 0 ? name.slice(at + marker.length) : '';
  const m = /^(\d+)(\..+)$/.exec(rest);
  if (at < 0 || !m || !name.startsWith(LAYER_PREFIX)) throw new MoePruneError('InvalidArgument', `not a per-expert tensor of ${naming.id}`, name);
  return `${name.slice(0, at + marker.length)}${newExpert}${m[2]}`;
}

/** Router tensors of one MoE layer: the [E,H] weight (sliced by rows when pruning) and any per-expert bias. */
export function routerTensorNames(adapter: FamilyAdapter, naming: ExpertNaming, layer: number, routerName?: string): { weight: string; correctionBias?: string } {
  const base = `${layerPath(layer)}${naming.block}.`;
  const out: { weight: string; correctionBias?: string } = { weight: `${base}${routerName ?? naming.routers[0]!}` };
  if (adapter.routing.correctionBias) out.correctionBias = `${base}${adapter.routing.correctionBias.name}`;
  return out;
}

/** Tensor names of the shared expert (and its gate) in one layer. */
export function sharedExpertTensorNames(adapter: FamilyAdapter, layer: number): string[] {
  const s = adapter.shared;
  if (!s) return [];
  const names = (['gate', 'up', 'down'] as const).map((p) => `${layerPath(layer)}${s.prefix}.${s.projs[p]}.weight`);
  if (s.gate) names.push(`${layerPath(layer)}${s.gate}`);
  return names;
}

export function denseMlpTensorNames(adapter: FamilyAdapter, layer: number): string[] {
  const d = adapter.dense;
  if (!d) return [];
  return (['gate', 'up', 'down'] as const).map((p) => `${layerPath(layer)}${d.prefix}.${d.projs[p]}.weight`);
}

export function residualTensorNames(adapter: FamilyAdapter, layer: number): string[] {
  const r = adapter.residual;
  if (!r) return [];
  return [...(['gate', 'up', 'down'] as const).map((p) => `${layerPath(layer)}${r.prefix}.${r.projs[p]}.weight`), `${layerPath(layer)}${r.norm}.weight`];
}
