"""Tiny MoE fixture definitions shared by the generator and the oracle tests.

Each family is one genuine transformers config (or, for Arctic, a hand-written one) small enough that a
sharded checkpoint stays far below 1 MB. The fields chosen exercise the family differences the app's
adapter table must handle: dense layers, shared experts, q/k norms, explicit head_dim, MLA with and
without q_lora, group-limited routing, noaux_tc with a correction bias, LayerNorm with bias, tied
embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

VOCAB = 128
HIDDEN = 32
BOS, EOS, PAD = 1, 2, 0

# The fixed prompt every reference forward pass uses (token ids < VOCAB); its logits go into expected.json.
PROMPT_IDS = [1, 17, 42, 5, 99, 23, 64, 8]

COMMON: dict[str, Any] = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    bos_token_id=BOS,
    eos_token_id=EOS,
    pad_token_id=PAD,
)


@dataclass(frozen=True)
class FamilySpec:
    name: str  # fixture directory name (the model_type)
    config_class: str  # transformers class name; "" for Arctic
    kwargs: dict[str, Any]
    expert_count_field: str
    expert_size_field: str
    # Per-expert tensor name pattern transformers 5.18 writes with save_original_format=True ({L}, {e}, {p}).
    expert_tensor_pattern: str
    expert_projections: tuple[str, ...]
    router_tensor_pattern: str
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


MIXTRAL_EXPERT = "model.layers.{L}.block_sparse_moe.experts.{e}.{p}.weight"
MLP_EXPERT = "model.layers.{L}.mlp.experts.{e}.{p}.weight"
GATE_UP_DOWN = ("gate_proj", "up_proj", "down_proj")
W1_W3_W2 = ("w1", "w3", "w2")

FAMILIES: list[FamilySpec] = [
    FamilySpec(
        "mixtral",
        "MixtralConfig",
        dict(COMMON, num_hidden_layers=2, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2),
        "num_local_experts",
        "intermediate_size",
        MIXTRAL_EXPERT,
        W1_W3_W2,
        "model.layers.{L}.block_sparse_moe.gate.weight",
        "all layers MoE, renormalised top-2",
    ),
    FamilySpec(
        "qwen2_moe",
        "Qwen2MoeConfig",
        dict(
            COMMON,
            num_hidden_layers=3,
            intermediate_size=48,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=24,
            num_experts=6,
            num_experts_per_tok=2,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
            norm_topk_prob=False,
        ),
        "num_experts",
        "moe_intermediate_size",
        MLP_EXPERT,
        GATE_UP_DOWN,
        "model.layers.{L}.mlp.gate.weight",
        "layer 1 dense (mlp_only_layers), sigmoid-gated shared expert, q/k/v biases, no top-k renormalisation",
    ),
    FamilySpec(
        "qwen3_moe",
        "Qwen3MoeConfig",
        dict(
            COMMON,
            num_hidden_layers=2,
            intermediate_size=48,
            moe_intermediate_size=16,
            num_experts=8,
            num_experts_per_tok=2,
            head_dim=16,
            norm_topk_prob=True,
        ),
        "num_experts",
        "moe_intermediate_size",
        MLP_EXPERT,
        GATE_UP_DOWN,
        "model.layers.{L}.mlp.gate.weight",
        "explicit head_dim 16 (nh*hd = 64 != hidden 32), per-head q/k RMSNorm",
    ),
    FamilySpec(
        "olmoe",
        "OlmoeConfig",
        dict(COMMON, num_hidden_layers=2, intermediate_size=16, num_experts=4, num_experts_per_tok=2, tie_word_embeddings=True),
        "num_experts",
        "intermediate_size",
        MLP_EXPERT,
        GATE_UP_DOWN,
        "model.layers.{L}.mlp.gate.weight",
        "tied embeddings (no lm_head.weight in the files), q_norm over the whole projection",
    ),
    FamilySpec(
        "phimoe",
        "PhimoeConfig",
        dict(COMMON, num_hidden_layers=2, intermediate_size=16, num_local_experts=4, num_experts_per_tok=2),
        "num_local_experts",
        "intermediate_size",
        MIXTRAL_EXPERT,
        W1_W3_W2,
        "model.layers.{L}.block_sparse_moe.gate.weight",
        "LayerNorm with bias, sparsemixer top-2 routing",
    ),
    FamilySpec(
        "deepseek_v2",
        "DeepseekV2Config",
        dict(
            COMMON,
            num_key_value_heads=4,  # MLA: DeepSeek configs set kv heads = heads
            num_hidden_layers=3,
            intermediate_size=48,
            moe_intermediate_size=16,
            n_routed_experts=8,
            n_shared_experts=2,
            num_experts_per_tok=2,
            first_k_dense_replace=1,
            kv_lora_rank=16,
            q_lora_rank=None,
            qk_nope_head_dim=8,
            qk_rope_head_dim=8,
            v_head_dim=8,
            topk_method="group_limited_greedy",
            n_group=2,
            topk_group=1,
            routed_scaling_factor=1.0,
            norm_topk_prob=False,
        ),
        "n_routed_experts",
        "moe_intermediate_size",
        MLP_EXPERT,
        GATE_UP_DOWN,
        "model.layers.{L}.mlp.gate.weight",
        "MLA without q_lora (q_proj), layer 0 dense, 2 shared experts fused into one MLP, group_limited_greedy",
    ),
    FamilySpec(
        "deepseek_v3",
        "DeepseekV3Config",
        dict(
            COMMON,
            num_key_value_heads=4,
            num_hidden_layers=3,
            intermediate_size=160,  # dense MLP > 128: two FP8 scale blocks, the last one partial (as in real V3)
            moe_intermediate_size=16,
            n_routed_experts=8,
            n_shared_experts=1,
            num_experts_per_tok=2,
            first_k_dense_replace=1,
            kv_lora_rank=16,
            q_lora_rank=24,
            qk_nope_head_dim=8,
            qk_rope_head_dim=8,
            v_head_dim=8,
            n_group=2,
            topk_group=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
        ),
        "n_routed_experts",
        "moe_intermediate_size",
        MLP_EXPERT,
        GATE_UP_DOWN,
        "model.layers.{L}.mlp.gate.weight",
        "MLA with q_lora, layer 0 dense with intermediate 160 (FP8: a full and a partial 128-block), noaux_tc sigmoid routing "
        "with e_score_correction_bias (F32 buffer), n_group 2",
    ),
]

# Snowflake Arctic has no transformers class: config fields follow Snowflake's configuration_arctic.py and the
# published config.json; the module tree follows its modeling_arctic.py (names in moe-checkpoints.md §2.2).
ARCTIC_CONFIG: dict[str, Any] = {
    "architectures": ["ArcticForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_arctic.ArcticConfig",
        "AutoModelForCausalLM": "modeling_arctic.ArcticForCausalLM",
    },
    "attention_dropout": 0.0,
    "bos_token_id": BOS,
    "eos_token_id": EOS,
    "enable_expert_tensor_parallelism": False,
    "enable_moe_fp8": False,
    "hidden_act": "silu",
    "hidden_size": HIDDEN,
    "initializer_range": 0.02,
    "intermediate_size": 16,
    "max_position_embeddings": 128,
    "model_type": "arctic",
    "moe_eval_capacity_factor": 1,
    "moe_layer_frequency": 2,
    "moe_min_capacity": 0,
    "moe_token_dropping": True,
    "moe_train_capacity_factor": 1,
    "num_attention_heads": 4,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 4,
    "num_key_value_heads": 2,
    "num_local_experts": 4,
    "parallel_attn_mlp_res": True,
    "quantization": None,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "router_aux_loss_coef": 0.001,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "transformers_version": "4.39.0",
    "use_cache": True,
    "use_residual": True,
    "vocab_size": VOCAB,
}

FP8_QUANTIZATION_CONFIG: dict[str, Any] = {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128],
}


def arctic_moe_layers(cfg: dict[str, Any]) -> list[int]:
    """modeling_arctic.py: a layer is MoE when (i + 1) % moe_layer_frequency == 0."""
    return [i for i in range(cfg["num_hidden_layers"]) if (i + 1) % cfg["moe_layer_frequency"] == 0]


def moe_layers_of(model_type: str, cfg: dict[str, Any]) -> list[int]:
    """Which decoder layers hold routed experts, by each family's own rule (read from config.json values)."""
    n = cfg["num_hidden_layers"]
    if model_type in ("qwen2_moe", "qwen3_moe"):
        only = set(cfg.get("mlp_only_layers") or [])
        step = cfg.get("decoder_sparse_step", 1)
        return [i for i in range(n) if i not in only and step > 0 and (i + 1) % step == 0]
    if model_type in ("deepseek_v2", "deepseek_v3"):
        freq = cfg.get("moe_layer_freq", 1)
        return [i for i in range(n) if i >= cfg.get("first_k_dense_replace", 0) and i % freq == 0]
    if model_type == "arctic":
        return arctic_moe_layers(cfg)
    return list(range(n))


def fp8_scale_shape(out_features: int, in_features: int, block: int = 128) -> list[int]:
    return [math.ceil(out_features / block), math.ceil(in_features / block)]
