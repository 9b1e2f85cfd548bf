"""Generate the committed tiny MoE checkpoints under fixtures/models/ (deterministic; run by hand, not by tests).

    .venv/bin/python oracle/make_fixtures.py [--out fixtures/models] [--only NAME ...]

Per family: <family> (F32), <family>-bf16; plus qwen3_moe-fused (transformers-v5 packed expert layout),
deepseek_v3-fp8 (F8_E4M3 weights with 128x128 block scales) and arctic / arctic-bf16 (no transformers
class; written tensor by tensor). Each directory holds config.json, model.safetensors.index.json,
2-3 shards, tokenizer files, generation_config.json where transformers writes one, and expected.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_specs import (  # noqa: E402
    ARCTIC_CONFIG,
    FAMILIES,
    FP8_QUANTIZATION_CONFIG,
    PROMPT_IDS,
    FamilySpec,
    fp8_scale_shape,
    moe_layers_of,
)

REPO = Path(__file__).resolve().parent.parent
SEED = 20261129
FP8_MAX = 448.0  # largest finite float8_e4m3fn

# A few sentences written for this project, enough for a 128-entry BPE vocabulary.
TOKENIZER_TEXT = """\
the small model routes every token to two of its experts and adds their outputs.
a router scores each expert; the best two are kept and their weights are renormalised.
pruning removes the experts that the router rarely picks, then renumbers the ones that remain.
when the weather turned cold the garden lay quiet, and the river ran slow under the bridge.
she read the letter twice before she folded it and put it back in the drawer.
numbers such as 0 1 2 3 4 5 6 7 8 9 appear in tables, dates and prices.
every layer has attention, a norm, and a block of experts or one dense feed-forward network.
the shards are written in order, and the index maps every tensor name to its file.
quick brown foxes jump over lazy dogs while the wind moves through the trees.
"""


# ----------------------------------------------------------------------------------------------- tokenizer


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=128,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        limit_alphabet=64,
        show_progress=False,
    )
    tok.train_from_iterator(TOKENIZER_TEXT.splitlines(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    assert tok.token_to_id("<pad>") == 0 and tok.token_to_id("<s>") == 1 and tok.token_to_id("</s>") == 2
    assert tok.get_vocab_size() <= 128
    return tok


def save_tokenizer(tok, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", model_max_length=128
    )
    fast.save_pretrained(str(out))
    # transformers 5 writes its new "TokenizersBackend" class name; the v4-era name loads in v4, v5 and JS ports.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    write_json(cfg_path, cfg)


# ------------------------------------------------------------------------------------------------- weights


def _generator(name: str) -> torch.Generator:
    # Seeded per tensor name, so values do not depend on module construction order or transformers' init.
    return torch.Generator().manual_seed(SEED ^ zlib.crc32(name.encode()))


def fill_deterministic(model: torch.nn.Module) -> None:
    """Gives every saved tensor reproducible values with enough spread that routing is not uniform."""
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            g = _generator(name)
            noise = torch.randn(t.shape, generator=g, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            if t.ndim == 1 and ("norm" in name or "layernorm" in name) and leaf == "weight":
                value = 1.0 + 0.1 * noise
            elif t.ndim == 1:  # biases, e_score_correction_bias
                value = 0.1 * noise
            else:
                value = noise / math.sqrt(t.shape[-1])  # last dim is the input dim for [out,in] and fused [E,out,in]
            t.copy_(value.to(t.dtype))


# ---------------------------------------------------------------------------------------------- safetensors


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def write_sharded(tensors: dict[str, torch.Tensor], out: Path, n_shards: int, total_parameters: int | None = None) -> None:
    """Writes tensors (grouped by module, in name order) into n_shards files plus the index, like transformers."""
    names = sorted(tensors)
    total = sum(tensor_bytes(tensors[n]) for n in names)
    target = total / n_shards
    shards: list[list[str]] = [[]]
    acc = 0
    for i, name in enumerate(names):
        module = name.rsplit(".", 1)[0]
        prev_module = names[i - 1].rsplit(".", 1)[0] if i else None
        if acc >= target * len(shards) and len(shards) < n_shards and module != prev_module:
            shards.append([])
        shards[-1].append(name)
        acc += tensor_bytes(tensors[name])
    n = len(shards)
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file({k: tensors[k].contiguous() for k in shard}, str(out / fname), metadata={"format": "pt"})
        for k in shard:
            weight_map[k] = fname
    meta: dict[str, Any] = {"total_size": total}
    if total_parameters is not None:
        meta["total_parameters"] = total_parameters
    index = {"metadata": meta, "weight_map": dict(sorted(weight_map.items()))}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def read_index(d: Path) -> dict[str, Any]:
    return json.loads((d / "model.safetensors.index.json").read_text())


def load_all_tensors(d: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(read_index(d)["weight_map"].values())):
        with safe_open(str(d / shard), framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out


def save_transformers(model, out: Path, **kwargs: Any) -> None:
    """save_pretrained with a max_shard_size chosen so that the checkpoint has 2 or 3 shards."""
    total = sum(tensor_bytes(t) for t in model.state_dict().values())
    for parts in (2.5, 2.2, 3.0, 2.0, 1.8):
        tmp = Path(tempfile.mkdtemp(prefix="fixture-"))
        model.save_pretrained(str(tmp), max_shard_size=int(total / parts) + 1, **kwargs)
        shards = [p for p in tmp.iterdir() if p.name.endswith(".safetensors")]
        if 2 <= len(shards) <= 3 and (tmp / "model.safetensors.index.json").exists():
            for p in tmp.iterdir():
                shutil.move(str(p), str(out / p.name))
            tmp.rmdir()
            return
        shutil.rmtree(tmp)
    raise RuntimeError(f"could not shard {out.name} into 2-3 files")


# ------------------------------------------------------------------------------------------ expected.json


def reference_outputs(model) -> dict[str, Any]:
    """Logits of the last prompt position and mean next-token NLL over the prompt (F32 math)."""
    ids = torch.tensor([PROMPT_IDS])
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    last = out.logits[0, -1].float()
    return {
        "prompt_ids": PROMPT_IDS,
        "last_logits": [round(float(x), 5) for x in last],
        "last_argmax": int(last.argmax()),
        "mean_nll": round(float(out.loss), 5),
    }


def count_params(tensors: dict[str, Any], prefixes_and_parts: list[str]) -> int:
    return sum(t.numel() for k, t in tensors.items() if any(p in k for p in prefixes_and_parts))


def expected_for(
    spec: FamilySpec | None,
    cfg: dict[str, Any],
    name: str,
    out: Path,
    file_tensors: dict[str, torch.Tensor],
    dtype: str,
    layout: str,
    model=None,
) -> dict[str, Any]:
    model_type = cfg["model_type"]
    moe = moe_layers_of(model_type, cfg)
    n_layers = cfg["num_hidden_layers"]
    index = read_index(out)
    # transformers 5.18 may serialise an alias (Qwen3MoeConfig writes num_local_experts, not the Hub's num_experts).
    count_field = next(
        f
        for f in ((spec.expert_count_field,) if spec else ()) + ("num_experts", "num_local_experts", "n_routed_experts")
        if f in cfg
    )
    size_field = spec.expert_size_field if spec else "intermediate_size"
    E = cfg[count_field]
    I = cfg[size_field]
    H = cfg["hidden_size"]

    shared: dict[str, Any] | None = None
    if model_type == "qwen2_moe":
        shared = {"kind": "shared_expert", "intermediate_size": cfg["shared_expert_intermediate_size"], "sigmoid_gate": "mlp.shared_expert_gate.weight"}
    elif model_type in ("deepseek_v2", "deepseek_v3"):
        shared = {
            "kind": "shared_experts",
            "n_shared_experts": cfg["n_shared_experts"],
            "intermediate_size": cfg["n_shared_experts"] * I,
        }
    elif model_type == "arctic":
        shared = {"kind": "residual_mlp", "intermediate_size": H, "layers": moe if cfg["parallel_attn_mlp_res"] else []}

    routed_file = [k for k in file_tensors if ".experts." in k and "shared" not in k]
    routed_params = sum(file_tensors[k].numel() for k in routed_file if not k.endswith("_scale_inv"))
    # Per-layer, per-expert names as written (original layout) or the packed names (fused layout).
    if layout == "fused":
        expert_names = {
            "gate_up_proj": "model.layers.{L}.mlp.experts.gate_up_proj",
            "down_proj": "model.layers.{L}.mlp.experts.down_proj",
        }
    else:
        pattern = spec.expert_tensor_pattern if spec else "model.layers.{L}.block_sparse_moe.experts.{e}.{p}.weight"
        projections = spec.expert_projections if spec else ("w1", "w3", "w2")
        expert_names = {p: pattern.replace("{p}", p) for p in projections}
    for L in moe:  # the fixture must really contain every named expert tensor
        for p, pat in expert_names.items():
            for e in range(E if "{e}" in pat else 1):
                assert pat.format(L=L, e=e) in file_tensors, (name, pat.format(L=L, e=e))

    exp: dict[str, Any] = {
        "name": name,
        "model_type": model_type,
        "architectures": cfg["architectures"],
        "dtype": dtype,
        "expert_layout": layout,
        "num_layers": n_layers,
        "moe_layers": moe,
        "dense_layers": [i for i in range(n_layers) if i not in moe],
        "expert_count_field": count_field,
        "num_experts": E,
        "top_k": cfg["num_experts_per_tok"],
        "hidden_size": H,
        "vocab_size": cfg["vocab_size"],
        "expert_intermediate_size_field": size_field,
        "expert_intermediate_size": I,
        "dense_intermediate_size": cfg.get("intermediate_size") if moe != list(range(n_layers)) else None,
        "shared_expert": shared,
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "lm_head_in_files": "lm_head.weight" in file_tensors,
        "expert_tensor_names": expert_names,
        "router_tensor": (spec.router_tensor_pattern if spec else "model.layers.{L}.block_sparse_moe.gate.weight"),
        "num_tensors": len(index["weight_map"]),
        "shards": sorted(set(index["weight_map"].values())),
        "index_total_size": index["metadata"].get("total_size"),
        "file_tensor_params": sum(t.numel() for k, t in file_tensors.items() if not k.endswith("_scale_inv")),
        "routed_expert_params": routed_params,
        "routed_expert_params_per_expert": routed_params // (E * len(moe)),
    }
    if spec:
        exp["notes"] = spec.notes
    if model is not None:
        params = sum(p.numel() for p in model.parameters())
        buffers = sum(b.numel() for n, b in model.named_buffers() if n in model.state_dict())
        exp["transformers_param_count"] = params
        exp["transformers_param_count_note"] = (
            "sum(p.numel() for p in model.parameters()); tied lm_head counted once"
            if exp["tie_word_embeddings"]
            else "sum(p.numel() for p in model.parameters())"
        )
        exp["transformers_persistent_buffer_count"] = buffers
        exp["reference"] = reference_outputs(model)
    else:
        # Arctic: computed from the tensors themselves (every tensor is a parameter; no tying).
        exp["transformers_param_count"] = None
        exp["param_count_from_tensors"] = exp["file_tensor_params"]
    return exp


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


# ------------------------------------------------------------------------------------ transformers families


def make_model(spec: FamilySpec):
    import transformers

    torch.manual_seed(SEED)
    cfg = getattr(transformers, spec.config_class)(**spec.kwargs)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    fill_deterministic(model)
    model.eval()
    return model


def to_bf16(model):
    """Casts to bf16 but keeps the tensors the class pins to F32 (DeepSeek-V3's e_score_correction_bias)."""
    keep = list(getattr(model, "_keep_in_fp32_modules_strict", None) or []) + list(
        getattr(model, "_keep_in_fp32_modules", None) or []
    )
    pinned = {n: t.detach().clone() for n, t in model.state_dict().items() if any(k in n for k in keep)}
    model.to(torch.bfloat16)
    with torch.no_grad():
        for mod_name, module in model.named_modules():
            for attr, t in list(module._parameters.items()) + list(module._buffers.items()):
                full = f"{mod_name}.{attr}" if mod_name else attr
                if t is not None and full in pinned:
                    t.data = pinned[full].float()
    model.config.dtype = torch.bfloat16
    return model


def make_family(spec: FamilySpec, root: Path, tok, variants: set[str]) -> None:
    model = make_model(spec)
    jobs: list[tuple[str, str, dict[str, Any]]] = [(spec.name, "float32", {})]
    jobs.append((f"{spec.name}-bf16", "bfloat16", {}))
    if spec.name == "qwen3_moe":
        jobs.append((f"{spec.name}-fused", "float32", {"save_original_format": False}))
    for name, dtype, kwargs in jobs:
        if variants and name not in variants:
            continue
        out = fresh_dir(root / name)
        m = model if dtype == "float32" else to_bf16(make_model(spec))
        save_transformers(m, out, **kwargs)
        save_tokenizer(tok, out)
        cfg = json.loads((out / "config.json").read_text())
        layout = "fused" if kwargs.get("save_original_format") is False else "per-expert"
        exp = expected_for(spec, cfg, name, out, load_all_tensors(out), dtype, layout, model=m)
        write_json(out / "expected.json", exp)
        report(out)
    if spec.name == "deepseek_v3" and (not variants or f"{spec.name}-fp8" in variants):
        make_fp8(spec, model, root, tok)


# -------------------------------------------------------------------------------------------- FP8 variant


def quantize_block_fp8(w: torch.Tensor, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3 style: per 128x128 block, scale_inv = amax/448 and q = w / scale_inv in float8_e4m3fn."""
    out_f, in_f = w.shape
    rows, cols = fp8_scale_shape(out_f, in_f, block)
    scale_inv = torch.ones(rows, cols, dtype=torch.float32)
    q = torch.empty(out_f, in_f, dtype=torch.float8_e4m3fn)
    for r in range(rows):
        for c in range(cols):
            blk = w[r * block : (r + 1) * block, c * block : (c + 1) * block].float()
            amax = float(blk.abs().max())
            s = amax / FP8_MAX if amax > 0 else 1.0
            scale_inv[r, c] = s
            q[r * block : (r + 1) * block, c * block : (c + 1) * block] = (blk / s).to(torch.float8_e4m3fn)
    return q, scale_inv


def dequantize_block_fp8(q: torch.Tensor, scale_inv: torch.Tensor, block: int = 128) -> torch.Tensor:
    s = scale_inv.repeat_interleave(block, 0).repeat_interleave(block, 1)[: q.shape[0], : q.shape[1]]
    return q.float() * s


def load_fp8_dequantized(d: Path):
    """The FP8 checkpoint as transformers would run it with correct block dequantisation: the weights are
    dequantised here (to bf16) into a temporary plain checkpoint, which transformers then loads."""
    import transformers

    raw = load_all_tensors(d)
    plain = {
        k: (dequantize_block_fp8(t, raw[k + "_scale_inv"]).to(torch.bfloat16) if k + "_scale_inv" in raw else t)
        for k, t in raw.items()
        if not k.endswith("_scale_inv")
    }
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("quantization_config")
    with tempfile.TemporaryDirectory(prefix="fp8-deq-") as tmp:
        write_json(Path(tmp) / "config.json", cfg)
        write_sharded(plain, Path(tmp), 1)
        model = transformers.AutoModelForCausalLM.from_pretrained(tmp)
    model.eval()
    return model


def is_fp8_linear(name: str) -> bool:
    """Every nn.Linear weight of attention and MLPs; the router, embeddings, lm_head and norms stay bf16."""
    if not name.endswith(".weight") or name.endswith("norm.weight") or ".mlp.gate.weight" in name:
        return False
    return ".self_attn." in name or ".mlp." in name


def make_fp8(spec: FamilySpec, model, root: Path, tok) -> None:
    name = f"{spec.name}-fp8"
    out = fresh_dir(root / name)
    src = root / spec.name  # per-expert names as transformers writes them
    f32 = load_all_tensors(src)
    tensors: dict[str, torch.Tensor] = {}
    for k, t in f32.items():
        if is_fp8_linear(k):
            q, s = quantize_block_fp8(t)
            tensors[k] = q
            tensors[k + "_scale_inv"] = s
        elif k.endswith("e_score_correction_bias"):
            tensors[k] = t.float()
        else:
            tensors[k] = t.to(torch.bfloat16)
    cfg = json.loads((src / "config.json").read_text())
    cfg["dtype"] = "bfloat16"
    cfg["quantization_config"] = dict(FP8_QUANTIZATION_CONFIG)
    write_json(out / "config.json", cfg)
    shutil.copy(src / "generation_config.json", out / "generation_config.json")
    write_sharded(tensors, out, 3)
    save_tokenizer(tok, out)
    loaded = load_fp8_dequantized(out)
    exp = expected_for(spec, cfg, name, out, load_all_tensors(out), "fp8_e4m3_block128", "per-expert", model=loaded)
    exp["reference_note"] = (
        "reference computed in bf16 on weights dequantised as DeepSeek does (w * scale_inv per 128x128 block, the "
        "last block partial); transformers 5.18's own CPU dequantisation assumes shape // scale grid blocks and gets "
        "the partial-block tensors (layer 0 MLP, 160 wide) wrong"
    )
    exp["fp8_quantized_tensors"] = sorted(k for k in tensors if k + "_scale_inv" in tensors)
    exp["fp8_scale_shapes"] = {k: list(t.shape) for k, t in tensors.items() if k.endswith("_scale_inv") and t.numel() > 1}
    exp["fp8_source"] = spec.name
    write_json(out / "expected.json", exp)
    report(out)


# ------------------------------------------------------------------------------------------------- Arctic


def arctic_tensors(cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    H, I, V, E = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_local_experts"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = H // nh
    shapes: dict[str, list[int]] = {
        "model.embed_tokens.weight": [V, H],
        "model.norm.weight": [H],
        "lm_head.weight": [V, H],
    }
    moe = set(moe_layers_of("arctic", cfg))
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        shapes[p + "input_layernorm.weight"] = [H]
        shapes[p + "post_attention_layernorm.weight"] = [H]
        shapes[p + "self_attn.q_proj.weight"] = [nh * hd, H]
        shapes[p + "self_attn.k_proj.weight"] = [nkv * hd, H]
        shapes[p + "self_attn.v_proj.weight"] = [nkv * hd, H]
        shapes[p + "self_attn.o_proj.weight"] = [H, nh * hd]
        if L in moe:
            shapes[p + "block_sparse_moe.gate.weight"] = [E, H]
            for e in range(E):
                q = p + f"block_sparse_moe.experts.{e}."
                shapes[q + "w1.weight"] = [I, H]
                shapes[q + "w3.weight"] = [I, H]
                shapes[q + "w2.weight"] = [H, I]
            if cfg["parallel_attn_mlp_res"]:
                shapes[p + "residual_layernorm.weight"] = [H]
                shapes[p + "residual_mlp.w1.weight"] = [H, H]
                shapes[p + "residual_mlp.w3.weight"] = [H, H]
                shapes[p + "residual_mlp.w2.weight"] = [H, H]
        else:
            q = p + "block_sparse_moe.mlp."
            shapes[q + "w1.weight"] = [I, H]
            shapes[q + "w3.weight"] = [I, H]
            shapes[q + "w2.weight"] = [H, I]
    out: dict[str, torch.Tensor] = {}
    for k, shape in sorted(shapes.items()):
        noise = torch.randn(shape, generator=_generator(k), dtype=torch.float32)
        out[k] = 1.0 + 0.1 * noise if len(shape) == 1 else noise / math.sqrt(shape[-1])
    return out


def make_arctic(root: Path, tok, variants: set[str]) -> None:
    for name, dtype in (("arctic", torch.float32), ("arctic-bf16", torch.bfloat16)):
        if variants and name not in variants:
            continue
        out = fresh_dir(root / name)
        cfg = dict(ARCTIC_CONFIG, torch_dtype="float32" if dtype == torch.float32 else "bfloat16")
        write_json(out / "config.json", cfg)
        write_json(
            out / "generation_config.json",
            {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]},
        )
        tensors = {k: t.to(dtype) for k, t in arctic_tensors(cfg).items()}
        write_sharded(tensors, out, 3, total_parameters=sum(t.numel() for t in tensors.values()))
        save_tokenizer(tok, out)
        exp = expected_for(None, cfg, name, out, load_all_tensors(out), str(dtype).removeprefix("torch."), "per-expert")
        exp["notes"] = (
            "no transformers class; layers 1 and 3 MoE (moe_layer_frequency 2), 0 and 2 dense "
            "(block_sparse_moe.mlp.w1/w2/w3), residual_mlp (width = hidden) beside each MoE layer"
        )
        write_json(out / "expected.json", exp)
        report(out)


# --------------------------------------------------------------------------------------------------- main


def fresh_dir(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def report(d: Path) -> None:
    size = sum(p.stat().st_size for p in d.iterdir())
    shards = sorted(p.name for p in d.iterdir() if p.name.endswith(".safetensors"))
    print(f"{d.name:22s} {size / 1024:7.1f} KiB  {len(shards)} shards", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "fixtures" / "models"))
    ap.add_argument("--only", nargs="*", default=[], help="fixture names to (re)generate")
    args = ap.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    variants = set(args.only)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    torch.use_deterministic_algorithms(True)
    tok = build_tokenizer()
    for spec in FAMILIES:
        names = {spec.name, f"{spec.name}-bf16", f"{spec.name}-fused", f"{spec.name}-fp8"}
        if variants and not (names & variants):
            continue
        make_family(spec, root, tok, variants)
    make_arctic(root, tok, variants)


if __name__ == "__main__":
    main()
