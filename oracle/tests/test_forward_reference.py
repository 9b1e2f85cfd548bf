"""Oracle: the CPU reference forward pass (src/forward/reference) against transformers 5.18, for every fixture
checkpoint under fixtures/models (F32, BF16 copies, the fused expert layout and the FP8 copy).

- F32 / BF16: transformers loads the checkpoint with dtype=float32 (BF16 values widen exactly), eager attention.
- FP8: transformers' own FP8 path also quantises activations; we compare with transformers in f32 on the
  dequantised weights (fp8 × scale_inv), which is what the reference pass computes.
- Arctic has no transformers class: `arctic_forward` below is a small torch reference written from its
  architecture (Snowflake modeling_arctic.py as the project's reference notes on MoE checkpoint layouts describe it, §2.2).

Checks per checkpoint: logits at every position within 1e-3 relative (to the largest |logit| of that position),
per-layer top-k expert sets identical, perplexity within 0.1 %.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "models"
torch.set_num_threads(2)

# Two windows of 16 token ids (< vocab 128), shared by the JS and torch runs.
WINDOWS = [
    [1, 17, 42, 5, 99, 23, 64, 8, 3, 77, 120, 56, 11, 90, 31, 2],
    [1, 100, 7, 45, 88, 12, 63, 27, 110, 4, 9, 71, 38, 125, 50, 19],
]
LOGIT_RTOL = 1e-3
PPL_RTOL = 1e-3


def fixture_dirs() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(d for d in FIXTURES.iterdir() if (d / "config.json").is_file() and (d / "model.safetensors.index.json").is_file())


def load_tensors_f32(d: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint as f32; FP8 weights dequantised with their 128×128 block scale_inv."""
    index = json.loads((d / "model.safetensors.index.json").read_text())
    raw: dict[str, torch.Tensor] = {}
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(str(d / shard), framework="pt") as f:
            for k in f.keys():
                raw[k] = f.get_tensor(k)
    out: dict[str, torch.Tensor] = {}
    for k, t in raw.items():
        if k.endswith("_scale_inv"):
            continue
        s = raw.get(k + "_scale_inv")
        if s is not None and t.dtype == torch.float8_e4m3fn:
            full = s.float().repeat_interleave(128, 0).repeat_interleave(128, 1)[: t.shape[0], : t.shape[1]]
            out[k] = t.float() * full
        else:
            out[k] = t.float()
    return out


# ----------------------------------------------------------------------------------------- Arctic (torch)


def arctic_forward(cfg: dict, w: dict[str, torch.Tensor], ids: torch.Tensor):
    """Snowflake Arctic, f32: Llama attention + RMSNorm; MoE layers every moe_layer_frequency-th layer with
    softmax top-k (renormalised when k > 1); with parallel_attn_mlp_res, a dense residual MLP runs on the
    post-attention stream while the MoE reads post_attention_layernorm(layer input)."""
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, E, k = H // nh, cfg["rms_norm_eps"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    B, T = ids.shape

    def rms(x, name):
        return w[name] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def mlp(x, p):
        return F.linear(F.silu(F.linear(x, w[p + "w1.weight"])) * F.linear(x, w[p + "w3.weight"]), w[p + "w2.weight"])

    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rope(x):  # [B, heads, T, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    x = w["model.embed_tokens.weight"][ids]
    routing = {}
    mask = torch.full((T, T), float("-inf")).triu(1)
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        h = rms(x, p + "input_layernorm.weight")
        q = F.linear(h, w[p + "self_attn.q_proj.weight"]).view(B, T, nh, hd).transpose(1, 2)
        kk = F.linear(h, w[p + "self_attn.k_proj.weight"]).view(B, T, nkv, hd).transpose(1, 2)
        v = F.linear(h, w[p + "self_attn.v_proj.weight"]).view(B, T, nkv, hd).transpose(1, 2)
        q, kk = rope(q), rope(kk)
        kk, v = kk.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
        att = torch.softmax(q @ kk.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
        after_attn = x + F.linear(att.transpose(1, 2).reshape(B, T, nh * hd), w[p + "self_attn.o_proj.weight"])
        is_moe = (L + 1) % cfg["moe_layer_frequency"] == 0
        if not is_moe:
            x = after_attn + mlp(rms(after_attn, p + "post_attention_layernorm.weight"), p + "block_sparse_moe.mlp.")
            continue
        parallel = cfg.get("parallel_attn_mlp_res", False) and cfg.get("use_residual", True)
        m_in = rms(x if parallel else after_attn, p + "post_attention_layernorm.weight").reshape(B * T, H)
        probs = torch.softmax(F.linear(m_in, w[p + "block_sparse_moe.gate.weight"]), -1)
        top_w, top_i = probs.topk(k, -1)
        if k > 1:
            top_w = top_w / top_w.sum(-1, keepdim=True)
        routing[L] = top_i
        moe = torch.zeros_like(m_in)
        for e in range(E):
            tok, slot = torch.where(top_i == e)
            if len(tok):
                moe.index_add_(0, tok, mlp(m_in[tok], p + f"block_sparse_moe.experts.{e}.") * top_w[tok, slot, None])
        out = after_attn + moe.view(B, T, H)
        if parallel:
            out = out + mlp(rms(after_attn, p + "residual_layernorm.weight"), p + "residual_mlp.")
        x = out
    x = rms(x, "model.norm.weight")
    return F.linear(x, w["lm_head.weight"]), routing


# ------------------------------------------------------------------------------------- transformers runs


def transformers_model_f32(d: Path):
    """The checkpoint as a transformers model in f32 (FP8: loaded from its dequantised f32 weights), in eval mode."""
    import transformers

    cfg = json.loads((d / "config.json").read_text())
    src = d
    tmp = None
    if "quantization_config" in cfg:  # FP8: materialise the dequantised f32 weights for transformers
        tmp = Path(tempfile.mkdtemp(prefix="fp8-deq-"))
        cfg = {k: v for k, v in cfg.items() if k != "quantization_config"}
        cfg["dtype"] = "float32"
        (tmp / "config.json").write_text(json.dumps(cfg))
        save_file({k: v.contiguous() for k, v in load_tensors_f32(d).items()}, str(tmp / "model.safetensors"))
        src = tmp
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32, attn_implementation="eager")
    finally:
        if tmp:
            shutil.rmtree(tmp)
    model.eval()
    return model


def transformers_forward(d: Path, ids: torch.Tensor):
    return forward_with_routing(transformers_model_f32(d), ids)


def forward_with_routing(model, ids: torch.Tensor):
    """Logits, each MoE layer's chosen experts per token (from the router modules) and the loss of a loaded model."""
    model.eval()
    routing: dict[int, torch.Tensor] = {}
    hooks = []
    for name, mod in model.named_modules():
        if type(mod).__name__.endswith("Router"):
            layer = int(name.split("layers.")[1].split(".")[0])

            def keep(_m, _inp, out, layer=layer):
                routing[layer] = out[2].detach().reshape(-1, out[2].shape[-1])

            hooks.append(mod.register_forward_hook(keep))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    for h in hooks:
        h.remove()
    return out.logits.float(), routing, float(out.loss)


def torch_reference(d: Path):
    ids = torch.tensor(WINDOWS)
    cfg = json.loads((d / "config.json").read_text())
    if cfg["model_type"] == "arctic":
        with torch.no_grad():
            logits, routing = arctic_forward(cfg, load_tensors_f32(d), ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        return logits, routing, float(loss)
    return transformers_forward(d, ids)


# ------------------------------------------------------------------------------------------------- tests


def run_js_forward(script: str, timeout: int, dirs: list[str] | None = None) -> dict:
    """Runs one of the oracle/js forward drivers over every fixture (or `dirs`) on WINDOWS, in one process: its
    results by checkpoint dir (both drivers print {"adapter": ..., "results": {dir: ...}})."""
    dirs = dirs or [str(d.relative_to(REPO)) for d in fixture_dirs()]
    assert dirs, "no fixture checkpoints under fixtures/models"
    args = [a for w in WINDOWS for a in ("--ids", ",".join(map(str, w)))]
    npx = shutil.which("npx") or "npx"
    run = subprocess.run(
        [npx, "tsx", script, *args, *dirs],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout)["results"]


def fixture_result(results: dict, fixture: str) -> tuple[Path, dict]:
    """A JS driver's result for one fixture of fixtures/models (and its folder); the driver's own error fails the test."""
    d = FIXTURES / fixture
    ours = results[str(d.relative_to(REPO))]
    assert "error" not in ours, ours.get("error")
    return d, ours


def assert_matches_torch(fixture: str, ours: dict, logits: torch.Tensor, routing: dict, loss: float) -> None:
    """A JS driver's result for one fixture against torch: logits, perplexity and each MoE layer's expert sets."""
    ref = logits.reshape(-1, logits.shape[-1]).numpy()
    got = np.asarray(ours["logits"], dtype=np.float64)
    assert got.shape == ref.shape
    rel = np.abs(got - ref) / np.abs(ref).max(axis=1, keepdims=True)
    assert rel.max() < LOGIT_RTOL, f"{fixture}: logits differ by {rel.max():.2e} of the row scale"

    ppl_ref, ppl = math.exp(loss), ours["perplexity"]
    assert abs(ppl - ppl_ref) / ppl_ref < PPL_RTOL, f"{fixture}: perplexity {ppl} vs {ppl_ref}"

    assert sorted(routing) == [r["layer"] for r in ours["routing"]], f"{fixture}: MoE layers differ"
    for r in ours["routing"]:
        want = [sorted(map(int, row)) for row in routing[r["layer"]].tolist()]
        have = [sorted(row) for row in r["experts"]]
        bad = [t for t in range(len(want)) if want[t] != have[t]]
        assert not bad, f"{fixture}: layer {r['layer']} routes tokens {bad} differently: {[(want[t], have[t]) for t in bad]}"


@pytest.fixture(scope="module")
def js_results() -> dict:
    return run_js_forward("oracle/js/forward-logits.ts", 900)


@pytest.mark.parametrize("fixture", [d.name for d in fixture_dirs()])
def test_reference_forward_matches_torch(fixture: str, js_results: dict) -> None:
    d, ours = fixture_result(js_results, fixture)
    logits, routing, loss = torch_reference(d)
    assert_matches_torch(fixture, ours, logits, routing, loss)
