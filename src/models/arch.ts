/**
 * What the forward pass needs to know about a checkpoint, read from its config.json through a small typed
 * accessor. Family differences are rows of FAMILY_ARCH (data, not branches in the math); the semantics follow
 * transformers 5.18's modeling code for each family, and Snowflake's modeling_arctic.py for Arctic.
 */
import { MoePruneError } from '../core/errors.ts';
import {
  classifyTensor,
  detectFamily,
  groupedRouting,
  layerKinds,
  perLayerExpertCounts,
  requireConfigNumber,
  residualEnabled,
  routingOf,
  sharedExpertsOf,
  type ExpertNaming,
  type FamilyAdapter,
} from './families.ts';
import type { FamilyId } from './types.ts';
import { parseRope, type RopeSpec } from '../forward/reference/rope.ts';

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
  /** The MoE block as the config describes it; a layer of a per-layer variant may differ (see `moeSpecAt`). */
  readonly moe: MoeSpec;
  /** A per-layer variant's routed-expert count per MoE layer (`moe.router.experts` is the largest); else null. */
  readonly expertsByLayer: ReadonlyMap<number, number> | null;
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

/**
 * What only the forward pass needs per family: norms, attention, rope layout and scoring details. Everything about
 * the MoE structure (which layers, expert counts and sizes, routing, shared experts, tensor names) comes from the
 * one family table in src/models/families.ts, so the catalogue, the pruning stage and the forward pass agree.
 */
interface ForwardSpec {
  readonly norm: NormKind;
  readonly attention: (c: ConfigReader) => MhaSpec | MlaSpec;
  /** Rotary pairs interleaved (DeepSeek) rather than half-rotated. */
  readonly ropeInterleaved?: (c: ConfigReader) => boolean;
  /** Refuses configs the forward pass does not implement (named in the error). */
  readonly check?: (c: ConfigReader, topK: number) => void;
  readonly lmHeadBias?: (c: ConfigReader) => boolean;
  /** Arctic: the residual MLP runs in parallel with the MoE (`parallel_attn_mlp_res`). */
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

function noSlidingWindow(c: ConfigReader): void {
  if (c.bool('use_sliding_window', false)) throw new MoePruneError('UnsupportedFamily', 'use_sliding_window=true is not supported', c.file);
}

const FORWARD: Readonly<Partial<Record<FamilyId, ForwardSpec>>> = {
  mixtral: { norm: 'rms', attention: (c) => mha(c, { qkvBias: false, oBias: false, qkNorm: 'none', window: true }) },
  qwen2_moe: {
    norm: 'rms',
    attention: (c) => mha(c, { qkvBias: c.bool('qkv_bias', true), oBias: false, qkNorm: 'none', window: false }),
    check: noSlidingWindow,
  },
  qwen3_moe: {
    norm: 'rms',
    attention: (c) => {
      const b = c.bool('attention_bias', false);
      return mha(c, { qkvBias: b, oBias: b, qkNorm: 'per-head', window: false });
    },
    check: noSlidingWindow,
  },
  olmoe: {
    norm: 'rms',
    attention: (c) => {
      const b = c.bool('attention_bias', false);
      return mha(c, { qkvBias: b, oBias: b, qkNorm: 'whole', window: false });
    },
  },
  phimoe: {
    norm: 'layer',
    attention: (c) => {
      const b = c.bool('attention_bias', false);
      return mha(c, { qkvBias: b, oBias: b, qkNorm: 'none', window: true });
    },
    check: (c, topK) => {
      if (topK !== 2) throw new MoePruneError('UnsupportedFamily', `sparsemixer routing is defined for top-2, config has num_experts_per_tok ${topK}`, c.file);
    },
    lmHeadBias: (c) => c.bool('lm_head_bias', false),
  },
  deepseek_v2: {
    norm: 'rms',
    attention: mla,
    ropeInterleaved: () => true,
    check: (c) => {
      const method = c.str('topk_method', 'greedy');
      if (method !== 'greedy' && method !== 'group_limited_greedy')
        throw new MoePruneError('UnsupportedFamily', `topk_method "${method}" is not supported for deepseek_v2`, c.file);
    },
  },
  deepseek_v3: { norm: 'rms', attention: mla, ropeInterleaved: (c) => c.bool('rope_interleave', true) },
  arctic: {
    norm: 'rms',
    attention: (c) => mha(c, { qkvBias: false, oBias: false, qkNorm: 'none', window: true }),
    parallelResidualMlp: (c) => c.bool('parallel_attn_mlp_res', false),
  },
};

const GATE_UP_DOWN = ['gate_proj', 'up_proj', 'down_proj'] as const;

/** Tensor names from the family table, for the MoE-block naming the checkpoint uses. */
function tensorNames(adapter: FamilyAdapter, naming: ExpertNaming): TensorNames {
  const stems = (naming.perExpert ?? adapter.namings.find((n) => n.perExpert)?.perExpert) ?? { gate: GATE_UP_DOWN[0], up: GATE_UP_DOWN[1], down: GATE_UP_DOWN[2] };
  const dense = adapter.dense ?? { prefix: 'mlp', projs: { gate: GATE_UP_DOWN[0], up: GATE_UP_DOWN[1], down: GATE_UP_DOWN[2] } };
  return {
    embed: 'model.embed_tokens.weight',
    finalNorm: 'model.norm',
    lmHead: 'lm_head',
    moeBlock: naming.block,
    expertProj: [stems.gate, stems.up, stems.down],
    denseMlp: { prefix: dense.prefix, proj: [dense.projs.gate, dense.projs.up, dense.projs.down] },
    sharedMlp: adapter.shared?.prefix ?? null,
  };
}

/** The MoE-block naming the checkpoint's tensors use (the family's first when no names are given). */
function namingOf(adapter: FamilyAdapter, names: Iterable<string> | undefined): ExpertNaming {
  if (names)
    for (const n of names) {
      const c = classifyTensor(adapter, n);
      if (c.naming && (c.role.kind === 'expert' || c.role.kind === 'fused_experts')) return c.naming;
    }
  return adapter.namings[0]!;
}

/**
 * Reads config.json (already parsed) into the architecture description the forward pass runs. `tensorNames`
 * (the checkpoint's tensor names) select the on-disk naming, e.g. transformers v5 fused experts under `mlp`.
 */
export function readArchConfig(json: unknown, file = 'config.json', tensorNames_?: Iterable<string>): ArchConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new MoePruneError('InvalidConfig', 'config must be a JSON object', file);
  const config = json as Json;
  const c = new ConfigReader(config, file);
  const adapter = detectFamily(config, file);
  const fwd = FORWARD[adapter.id];
  if (!fwd) throw new MoePruneError('UnsupportedFamily', `${adapter.label} has no forward pass yet`, file);
  const hidden = c.int('hidden_size');
  const layers = c.int('num_hidden_layers');
  const experts = requireConfigNumber(config, adapter.fields.expertCount, file).value;
  const topK = requireConfigNumber(config, adapter.fields.topK, file).value;
  if (topK < 1 || topK > experts) throw new MoePruneError('InvalidConfig', `num_experts_per_tok ${topK} must be in 1..${experts}`, file);
  const expertSize = requireConfigNumber(config, adapter.fields.expertIntermediate, file).value;
  fwd.check?.(c, topK);
  const routing = routingOf(adapter, config);
  const groups = groupedRouting(adapter, config);
  const shared = sharedExpertsOf(adapter, config);
  const attention = fwd.attention(c);
  const headDimForRope = attention.kind === 'mla' ? attention.ropeDim : attention.headDim;
  const rope = parseRope(c, headDimForRope, fwd.ropeInterleaved?.(c) ?? false);
  const qkHeadDim = attention.kind === 'mla' ? attention.nopeDim + attention.ropeDim : attention.headDim;
  let attnScale = qkHeadDim ** -0.5;
  // DeepSeek (yarn_apply_mscale): a non-default rope with mscale_all_dim scales the softmax by mscale².
  if (attention.kind === 'mla' && rope.type !== 'default' && rope.mscaleAllDim) {
    const m = yarnGetMscale(rope.factor, rope.mscaleAllDim);
    attnScale *= m * m;
  }
  const router: RouterSpec = {
    experts,
    topK,
    scoring: routing.scoring,
    normTopkProb: routing.normTopkProb,
    groups: groups ? { nGroup: groups.nGroup, topkGroup: groups.topkGroup, groupScore: groups.groupScore } : null,
    routedScalingFactor: routing.routedScalingFactor ?? 1,
    correctionBias: routing.correctionBias,
    jitterEps: routing.scoring === 'sparsemixer' ? c.num('router_jitter_noise', 0.01) : 0,
  };
  return {
    family: adapter.id,
    hidden,
    vocab: c.int('vocab_size'),
    layers,
    norm: fwd.norm,
    normEps: c.num('rms_norm_eps', 1e-6),
    attention,
    rope,
    attnScale,
    moeLayers: new Set(layerKinds(adapter, config).moe),
    expertsByLayer: perLayerExpertCounts(config, file),
    moe: {
      router,
      intermediate: expertSize,
      shared: shared ? { intermediate: shared.intermediateSize, sigmoidGate: adapter.shared?.gate !== undefined } : null,
    },
    denseIntermediate: adapter.fields.denseIntermediate ? c.int(adapter.fields.denseIntermediate, 0) : 0,
    parallelResidualMlp: (fwd.parallelResidualMlp?.(c) ?? false) && residualEnabled(adapter, config),
    tieEmbeddings: c.bool('tie_word_embeddings', false),
    lmHeadBias: fwd.lmHeadBias?.(c) ?? false,
    names: tensorNames(adapter, namingOf(adapter, tensorNames_)),
  };
}

/** The MoE block of one layer: the config's, with the layer's own expert count in a per-layer variant. */
export function moeSpecAt(arch: ArchConfig, layer: number): MoeSpec {
  const n = arch.expertsByLayer?.get(layer);
  return n === undefined || n === arch.moe.router.experts ? arch.moe : { ...arch.moe, router: { ...arch.moe.router, experts: n } };
}

export function yarnGetMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}
