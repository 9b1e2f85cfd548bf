import type { DType, Shape } from '../formats/dtype.ts';

/** Index of a decoder layer (0-based, as in tensor names). */
export type LayerIndex = number & { readonly __brand?: 'LayerIndex' };
/** Index of a routed expert inside one MoE layer (0-based, as in tensor names / fused dim 0). */
export type ExpertIndex = number & { readonly __brand?: 'ExpertIndex' };

export type FamilyId =
  | 'mixtral'
  | 'qwen2_moe'
  | 'qwen3_moe'
  | 'olmoe'
  | 'phimoe'
  | 'deepseek_v2'
  | 'deepseek_v3'
  | 'arctic'
  | 'granitemoe';

/** What a tensor is for. Expert projections carry the expert index (or 'fused' for a [E, ...] tensor). */
export type TensorRole =
  | { kind: 'embedding' }
  | { kind: 'lm_head' }
  | { kind: 'final_norm' }
  | { kind: 'attention'; layer: LayerIndex; part: string }
  | { kind: 'norm'; layer: LayerIndex; part: string }
  | { kind: 'router'; layer: LayerIndex; part: 'weight' | 'bias' | 'e_score_correction_bias' }
  | { kind: 'expert'; layer: LayerIndex; expert: ExpertIndex; proj: 'gate' | 'up' | 'down'; part: 'weight' | 'scale_inv' }
  | { kind: 'fused_experts'; layer: LayerIndex; proj: 'gate_up' | 'down'; part: 'weight' | 'scale_inv' }
  | { kind: 'shared_expert'; layer: LayerIndex; part: string }
  | { kind: 'dense_mlp'; layer: LayerIndex; part: string }
  | { kind: 'residual_mlp'; layer: LayerIndex; part: string }
  | { kind: 'other'; layer?: LayerIndex; part: string };

export interface TensorEntry {
  readonly name: string;
  readonly file: string;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly byteLength: number;
  readonly role: TensorRole;
}

export type ExpertLayout = 'per-expert' | 'fused';
export type RouterScoring = 'softmax' | 'sigmoid' | 'sparsemixer';

export interface MoeLayerInfo {
  readonly layer: LayerIndex;
  readonly experts: number;
  readonly layout: ExpertLayout;
  readonly routerTensor: string;
  readonly hasSharedExpert: boolean;
  readonly hasCorrectionBias: boolean;
}

/** How the router scores and combines experts, as the config sets it. */
export interface RoutingSummary {
  scoring: RouterScoring;
  normTopkProb: boolean;
  groups?: { nGroup: number; topkGroup: number };
  routedScalingFactor?: number;
  correctionBias: boolean;
}

/** Everything `moe-prune inspect` reports; JSON-serialisable. */
export interface CheckpointSummary {
  readonly family: FamilyId;
  readonly architecture: string;
  readonly modelType: string;
  readonly layers: number;
  readonly moeLayers: number[];
  readonly denseLayers: number[];
  readonly expertsPerLayer: number;
  /** A per-layer variant (layers keep different counts; expertsPerLayer is the largest): MoE layer → experts. */
  readonly expertsByLayer?: Record<string, number>;
  readonly topK: number;
  readonly routing: RoutingSummary;
  readonly sharedExperts: { count: number; intermediateSize: number } | null;
  readonly hiddenSize: number;
  readonly expertIntermediateSize: number;
  readonly vocabSize: number;
  readonly layout: ExpertLayout;
  readonly dtypes: Record<string, number>; // dtype -> tensor count
  readonly params: { total: number; routedExperts: number; perExpert: number };
  readonly bytesOnDisk: number; // sum of shard file sizes
  readonly tensorBytes: number; // sum of tensor data bytes
  readonly shards: string[];
  readonly missingTensors: string[];
  readonly extraTensors: string[];
  readonly expertCountField: string; // config key that holds the routed-expert count
  readonly quantization: string | null; // e.g. "fp8 e4m3, 128x128 block scales"
}
