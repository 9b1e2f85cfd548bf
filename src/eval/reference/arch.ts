/**
 * What the forward pass needs to know about a checkpoint, read from its config.json through a small typed
 * accessor. Family differences are rows of FAMILY_ARCH (data, not branches in the math); the semantics follow
 * transformers 5.18's modeling code for each family, and Snowflake's modeling_arctic.py for Arctic.
 */
import { MoePruneError } from '../../core/errors.ts';
import type { FamilyId } from '../../models/types.ts';
import { parseRope, type RopeSpec } from './rope.ts';

export type NormKind = 'rms' | 'layer';
export type Scoring = 'softmax' | 'sigmoid' | 'sparsemixer';

export interface MhaSpec {
  readonly kind: 'mha';
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** q/k/v projections carry biases (Qwen2-MoE qkv_bias, PhiMoE/OLMoE attention_bias). */
  readonly qkvBias: boolean;
  readonly oBias: boolean;
  /** 'per-head': RMSNorm over head_dim (Qwen3); 'whole': RMSNorm over the whole q/k projection (OLMoE). */
  readonly qkNorm: 'none' | 'per-head' | 'whole';
  readonly clipQkv: number | null;
  readonly slidingWindow: number | null;
}

/** DeepSeek multi-head latent attention. */
export interface MlaSpec {
  readonly kind: 'mla';
  readonly heads: number;
  readonly qLoraRank: number | null;
  readonly kvLoraRank: number;
  readonly nopeDim: number;
  readonly ropeDim: number;
  readonly vDim: number;
  readonly bias: boolean;
  /** q_a/kv_a layernorms are built without the config eps in transformers: DeepseekV*RMSNorm default 1e-6. */
  readonly loraNormEps: number;
}

export interface RouterSpec {
  readonly experts: number;
  readonly topK: number;
  readonly scoring: Scoring;
  readonly normTopkProb: boolean;
  /** DeepSeek grouped top-k: a group's score is its best expert (V2) or the sum of its best two (V3). */
  readonly groups: { readonly nGroup: number; readonly topkGroup: number; readonly groupScore: 'max' | 'top2-sum' } | null;
  readonly routedScalingFactor: number;
  readonly correctionBias: boolean;
  /** PhiMoE sparsemixer threshold (router_jitter_noise). */
  readonly jitterEps: number;
}

export interface MoeSpec {
  readonly router: RouterSpec;
  readonly intermediate: number;
  /** Qwen2-MoE: one shared MLP scaled by sigmoid(shared_expert_gate·x); DeepSeek: n shared experts as one MLP. */
  readonly shared: { readonly intermediate: number; readonly sigmoidGate: boolean } | null;
}

export interface ArchConfig {
  readonly family: FamilyId;
  readonly hidden: number;
  readonly vocab: number;
  readonly layers: number;
  readonly norm: NormKind;
  readonly normEps: number;
  readonly attention: MhaSpec | MlaSpec;
  readonly rope: RopeSpec;
  /** Softmax scale of attention scores (1/sqrt(qk head dim), times yarn's mscale² for DeepSeek). */
  readonly attnScale: number;
  readonly moeLayers: ReadonlySet<number>;
  readonly moe: MoeSpec;
  readonly denseIntermediate: number;
  /** Arctic: MoE layers add a dense residual MLP (width = hidden) in parallel, fed by the layer input. */
  readonly parallelResidualMlp: boolean;
  readonly tieEmbeddings: boolean;
  readonly lmHeadBias: boolean;
  readonly names: TensorNames;
}

/** Tensor names of one family (transformers' original, per-expert on-disk names). */
export interface TensorNames {
  readonly embed: string;
  readonly finalNorm: string;
  readonly lmHead: string;
  /** Module path of the MoE block inside a layer ('mlp' or 'block_sparse_moe'). */
  readonly moeBlock: string;
  /** Per-expert projection stems [gate, up, down]. */
  readonly expertProj: readonly [string, string, string];
  /** Dense MLP of non-MoE layers, relative to the layer: prefix and [gate, up, down] stems. */
  readonly denseMlp: { readonly prefix: string; readonly proj: readonly [string, string, string] };
  readonly sharedMlp: string | null;
}

type Json = Record<string, unknown>;

/** Typed reads of config.json fields; every failure names the file and the field. */
export class ConfigReader {
  constructor(
    readonly json: Json,
    readonly file = 'config.json',
  ) {}
  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }
  private bad(key: string, want: string): never {
    throw new MoePruneError('InvalidConfig', `"${key}" must be ${want} (found ${JSON.stringify(this.json[key])})`, this.file);
  }
  int(key: string, dflt?: number): number {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      throw new MoePruneError('InvalidConfig', `missing required field "${key}"`, this.file);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.bad(key, 'a non-negative integer');
    return v;
  }
  /** First present key among candidates (transformers writes aliases in some versions). */
  intOf(keys: readonly string[], dflt?: number): number {
    for (const k of keys) if (this.has(k)) return this.int(k);
    if (dflt !== undefined) return dflt;
    throw new MoePruneError('InvalidConfig', `missing required field (one of ${keys.map((k) => `"${k}"`).join(', ')})`, this.file);
  }
  optInt(key: string): number | null {
    return this.has(key) ? this.int(key) : null;
  }
  num(key: string, dflt?: number): number {
    const v = this.json[key];
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      throw new MoePruneError('InvalidConfig', `missing required field "${key}"`, this.file);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.bad(key, 'a number');
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.json[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v;
  }
  str(key: string, dflt: string): string {
    const v = this.json[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') this.bad(key, 'a string');
    return v;
  }
  intList(key: string): number[] {
    const v = this.json[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) this.bad(key, 'a list of integers');
    return v as number[];
  }
  obj(key: string): Json | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) this.bad(key, 'an object');
    return v as Json;
  }
}

/** Per-family rules. Field lists are candidate config keys, first present wins. */
interface FamilyArch {
  readonly modelTypes: readonly string[];
  readonly norm: NormKind;
  readonly expertCount: readonly string[];
  readonly expertSize: readonly string[];
  readonly moeLayers: (c: ConfigReader, n: number) => number[];
  readonly attention: (c: ConfigReader) => MhaSpec | MlaSpec;
  readonly router: (c: ConfigReader, experts: number, topK: number) => RouterSpec;
  readonly shared: (c: ConfigReader, expertSize: number) => MoeSpec['shared'];
  readonly names: TensorNames;
  readonly lmHeadBias?: (c: ConfigReader) => boolean;
  readonly parallelResidualMlp?: (c: ConfigReader) => boolean;
}

function mha(c: ConfigReader, opts: { qkvBias: boolean; oBias: boolean; qkNorm: MhaSpec['qkNorm']; window: boolean }): MhaSpec {
  const hidden = c.int('hidden_size');
  const heads = c.int('num_attention_heads');
  const kvHeads = c.int('num_key_value_heads', heads);
  if (heads === 0 || kvHeads === 0 || heads % kvHeads !== 0)
    throw new MoePruneError('InvalidConfig', `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`, c.file);
  const window = opts.window ? c.optInt('sliding_window') : null;
  return {
    kind: 'mha',
    heads,
    kvHeads,
    headDim: c.optInt('head_dim') ?? Math.floor(hidden / heads),
    qkvBias: opts.qkvBias,
    oBias: opts.oBias,
    qkNorm: opts.qkNorm,
    clipQkv: c.has('clip_qkv') ? c.num('clip_qkv') : null,
    slidingWindow: window && window > 0 ? window : null,
  };
}

function mla(c: ConfigReader): MlaSpec {
  return {
    kind: 'mla',
    heads: c.int('num_attention_heads'),
    qLoraRank: c.optInt('q_lora_rank'),
    kvLoraRank: c.int('kv_lora_rank'),
    nopeDim: c.int('qk_nope_head_dim'),
    ropeDim: c.int('qk_rope_head_dim'),
    vDim: c.int('v_head_dim'),
    bias: c.bool('attention_bias', false),
    loraNormEps: 1e-6,
  };
}

function softmaxRouter(normTopk: boolean) {
  return (_c: ConfigReader, experts: number, topK: number): RouterSpec => ({
    experts, topK, scoring: 'softmax', normTopkProb: normTopk, groups: null, routedScalingFactor: 1, correctionBias: false, jitterEps: 0,
  });
}

function qwenStyleRouter(c: ConfigReader, experts: number, topK: number): RouterSpec {
  return softmaxRouter(c.bool('norm_topk_prob', false))(c, experts, topK);
}

const MIXTRAL_NAMES: TensorNames = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm',
  lmHead: 'lm_head',
  moeBlock: 'block_sparse_moe',
  expertProj: ['w1', 'w3', 'w2'],
  denseMlp: { prefix: 'block_sparse_moe.mlp', proj: ['w1', 'w3', 'w2'] },
  sharedMlp: null,
};
const MLP_NAMES: TensorNames = {
  ...MIXTRAL_NAMES,
  moeBlock: 'mlp',
  expertProj: ['gate_proj', 'up_proj', 'down_proj'],
  denseMlp: { prefix: 'mlp', proj: ['gate_proj', 'up_proj', 'down_proj'] },
};

const allLayers = (_c: ConfigReader, n: number): number[] => Array.from({ length: n }, (_, i) => i);
const noShared = (): MoeSpec['shared'] => null;

export const FAMILY_ARCH: Readonly<Record<FamilyId, FamilyArch | null>> = {
  mixtral: {
    modelTypes: ['mixtral'],
    norm: 'rms',
    expertCount: ['num_local_experts'],
    expertSize: ['intermediate_size'],
    moeLayers: allLayers,
    attention: (c) => mha(c, { qkvBias: false, oBias: false, qkNorm: 'none', window: true }),
    router: softmaxRouter(true),
    shared: noShared,
    names: MIXTRAL_NAMES,
  },
  qwen2_moe: {
    modelTypes: ['qwen2_moe'],
    norm: 'rms',
    expertCount: ['num_experts', 'num_local_experts'],
    expertSize: ['moe_intermediate_size'],
    moeLayers: qwenMoeLayers,
    attention: (c) => {
      if (c.bool('use_sliding_window', false)) throw new MoePruneError('UnsupportedFamily', 'use_sliding_window=true is not supported', c.file);
      return mha(c, { qkvBias: c.bool('qkv_bias', true), oBias: false, qkNorm: 'none', window: false });
    },
    router: qwenStyleRouter,
    shared: (c) => {
      const size = c.int('shared_expert_intermediate_size', 0);
      return size > 0 ? { intermediate: size, sigmoidGate: true } : null;
    },
    names: { ...MLP_NAMES, sharedMlp: 'mlp.shared_expert' },
  },
  qwen3_moe: {
    modelTypes: ['qwen3_moe'],
    norm: 'rms',
    expertCount: ['num_experts', 'num_local_experts'],
    expertSize: ['moe_intermediate_size'],
    moeLayers: qwenMoeLayers,
    attention: (c) => {
      if (c.bool('use_sliding_window', false)) throw new MoePruneError('UnsupportedFamily', 'use_sliding_window=true is not supported', c.file);
      const b = c.bool('attention_bias', false);
      return mha(c, { qkvBias: b, oBias: b, qkNorm: 'per-head', window: false });
    },
    router: qwenStyleRouter,
    shared: noShared,
    names: MLP_NAMES,
  },
  olmoe: {
    modelTypes: ['olmoe'],
    norm: 'rms',
    expertCount: ['num_experts', 'num_local_experts'],
    expertSize: ['intermediate_size'],
    moeLayers: allLayers,
    attention: (c) => {
      const b = c.bool('attention_bias', false);
      return mha(c, { qkvBias: b, oBias: b, qkNorm: 'whole', window: false });
    },
    router: qwenStyleRouter,
    shared: noShared,
    names: MLP_NAMES,
  },
  phimoe: {
    modelTypes: ['phimoe'],
    norm: 'layer',
    expertCount: ['num_local_experts'],
    expertSize: ['intermediate_size'],
    moeLayers: allLayers,
    attention: (c) => {
      const b = c.bool('attention_bias', false);
      return mha(c, { qkvBias: b, oBias: b, qkNorm: 'none', window: true });
    },
    router: (c, experts, topK) => {
      if (topK !== 2) throw new MoePruneError('UnsupportedFamily', `sparsemixer routing is defined for top-2, config has num_experts_per_tok ${topK}`, c.file);
      return { experts, topK, scoring: 'sparsemixer', normTopkProb: false, groups: null, routedScalingFactor: 1, correctionBias: false, jitterEps: c.num('router_jitter_noise', 0.01) };
    },
    shared: noShared,
    names: MIXTRAL_NAMES,
    lmHeadBias: (c) => c.bool('lm_head_bias', false),
  },
  deepseek_v2: {
    modelTypes: ['deepseek_v2'],
    norm: 'rms',
    expertCount: ['n_routed_experts', 'num_local_experts', 'num_experts'],
    expertSize: ['moe_intermediate_size'],
    moeLayers: deepseekMoeLayers,
    attention: mla,
    router: (c, experts, topK) => {
      const method = c.str('topk_method', 'greedy');
      const grouped = method === 'group_limited_greedy';
      if (!grouped && method !== 'greedy') throw new MoePruneError('UnsupportedFamily', `topk_method "${method}" is not supported for deepseek_v2`, c.file);
      return {
        experts, topK, scoring: 'softmax',
        // transformers' DeepseekV2TopkRouter never renormalises the top-k weights, whatever norm_topk_prob says.
        normTopkProb: false,
        groups: grouped ? { nGroup: c.int('n_group'), topkGroup: c.int('topk_group'), groupScore: 'max' } : null,
        routedScalingFactor: c.num('routed_scaling_factor', 1), correctionBias: false, jitterEps: 0,
      };
    },
    shared: (c, size) => {
      const n = c.int('n_shared_experts', 0);
      return n > 0 ? { intermediate: n * size, sigmoidGate: false } : null;
    },
    names: { ...MLP_NAMES, sharedMlp: 'mlp.shared_experts' },
  },
  deepseek_v3: {
    modelTypes: ['deepseek_v3'],
    norm: 'rms',
    expertCount: ['n_routed_experts', 'num_local_experts', 'num_experts'],
    expertSize: ['moe_intermediate_size'],
    moeLayers: deepseekMoeLayers,
    attention: mla,
    router: (c, experts, topK) => ({
      experts, topK, scoring: 'sigmoid', normTopkProb: c.bool('norm_topk_prob', true),
      groups: { nGroup: c.int('n_group', 1), topkGroup: c.int('topk_group', 1), groupScore: 'top2-sum' },
      routedScalingFactor: c.num('routed_scaling_factor', 1), correctionBias: true, jitterEps: 0,
    }),
    shared: (c, size) => {
      const n = c.int('n_shared_experts', 0);
      return n > 0 ? { intermediate: n * size, sigmoidGate: false } : null;
    },
    names: { ...MLP_NAMES, sharedMlp: 'mlp.shared_experts' },
  },
  arctic: {
    modelTypes: ['arctic'],
    norm: 'rms',
    expertCount: ['num_local_experts'],
    expertSize: ['intermediate_size'],
    // modeling_arctic.py: layer i is MoE when (i + 1) % moe_layer_frequency == 0.
    moeLayers: (c, n) => {
      const f = c.int('moe_layer_frequency', 2);
      return Array.from({ length: n }, (_, i) => i).filter((i) => f > 0 && (i + 1) % f === 0);
    },
    attention: (c) => mha(c, { qkvBias: false, oBias: false, qkNorm: 'none', window: true }),
    // Arctic renormalises its top-k softmax weights when top_k > 1.
    router: (c, experts, topK) => softmaxRouter(topK > 1)(c, experts, topK),
    shared: noShared,
    names: MIXTRAL_NAMES,
    parallelResidualMlp: (c) => c.bool('parallel_attn_mlp_res', false) && c.bool('use_residual', true),
  },
  granitemoe: null,
};

function qwenMoeLayers(c: ConfigReader, n: number): number[] {
  const only = new Set(c.intList('mlp_only_layers'));
  const step = c.int('decoder_sparse_step', 1);
  return Array.from({ length: n }, (_, i) => i).filter((i) => !only.has(i) && step > 0 && (i + 1) % step === 0);
}

/** transformers 5.18 DeepSeek: MoE iff layer >= first_k_dense_replace (moe_layer_freq is 1 in every release). */
function deepseekMoeLayers(c: ConfigReader, n: number): number[] {
  const first = c.int('first_k_dense_replace', 0);
  const freq = c.int('moe_layer_freq', 1);
  return Array.from({ length: n }, (_, i) => i).filter((i) => i >= first && i % freq === 0);
}

export function familyOfModelType(modelType: string, file = 'config.json'): FamilyId {
  for (const [id, arch] of Object.entries(FAMILY_ARCH) as Array<[FamilyId, FamilyArch | null]>)
    if (arch?.modelTypes.includes(modelType)) return id;
  throw new MoePruneError('UnsupportedFamily', `model_type "${modelType}" has no reference forward pass`, file);
}

/** Reads config.json (already parsed) into the architecture description the forward pass runs. */
export function readArchConfig(json: unknown, file = 'config.json'): ArchConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new MoePruneError('InvalidConfig', 'config must be a JSON object', file);
  const c = new ConfigReader(json as Json, file);
  const family = familyOfModelType(c.str('model_type', ''), file);
  const fa = FAMILY_ARCH[family]!;
  const hidden = c.int('hidden_size');
  const layers = c.int('num_hidden_layers');
  const experts = c.intOf(fa.expertCount);
  const topK = c.int('num_experts_per_tok');
  if (topK < 1 || topK > experts) throw new MoePruneError('InvalidConfig', `num_experts_per_tok ${topK} must be in 1..${experts}`, file);
  const expertSize = c.intOf(fa.expertSize);
  const attention = fa.attention(c);
  const headDimForRope = attention.kind === 'mla' ? attention.ropeDim : attention.headDim;
  const rope = parseRope(c, headDimForRope, family === 'deepseek_v2' || (family === 'deepseek_v3' && c.bool('rope_interleave', true)));
  const qkHeadDim = attention.kind === 'mla' ? attention.nopeDim + attention.ropeDim : attention.headDim;
  let attnScale = qkHeadDim ** -0.5;
  // DeepSeek (yarn_apply_mscale): a non-default rope with mscale_all_dim scales the softmax by mscale².
  if (attention.kind === 'mla' && rope.type !== 'default' && rope.mscaleAllDim) {
    const m = yarnGetMscale(rope.factor, rope.mscaleAllDim);
    attnScale *= m * m;
  }
  return {
    family,
    hidden,
    vocab: c.int('vocab_size'),
    layers,
    norm: fa.norm,
    normEps: c.num('rms_norm_eps', 1e-6),
    attention,
    rope,
    attnScale,
    moeLayers: new Set(fa.moeLayers(c, layers)),
    moe: { router: fa.router(c, experts, topK), intermediate: expertSize, shared: fa.shared(c, expertSize) },
    denseIntermediate: c.int('intermediate_size', 0),
    parallelResidualMlp: fa.parallelResidualMlp?.(c) ?? false,
    tieEmbeddings: c.bool('tie_word_embeddings', false),
    lmHeadBias: fa.lmHeadBias?.(c) ?? false,
    names: fa.names,
  };
}

export function yarnGetMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}
