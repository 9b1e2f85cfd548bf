"""Oracle: the WebGPU forward engine (src/forward, run by oracle/js/gpu-forward.ts in one Node process for all
fixtures) against transformers 5.18 in f32 (BF16 checkpoints: the same BF16 values widened; FP8: the dequantised
weights; Arctic: the small torch reference of test_forward_reference.py).

Per fixture: logits at every position within 1e-3 of the row's largest |logit|, perplexity within 0.1 %, per-layer
top-k expert sets identical, and the per-input-channel squared norms Σ x_j² of the inputs of every linear map
(attention, dense/shared MLPs, routers, and each routed expert's gate/up/down over ITS tokens) within 1e-3 relative.
Torch side: forward hooks on nn.Linear modules and on the routers; the experts' inputs are rebuilt from the router
inputs, the chosen experts and the checkpoint's expert weights (transformers 5 runs experts as fused tensors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_forward_reference import WINDOWS, arctic_forward, assert_matches_torch, fixture_dirs, fixture_result, load_tensors_f32, run_js_forward, transformers_model_f32

NORM_RTOL = 1e-3


class NormSums:
    """Σ x² per input channel and row counts, keyed by the weight name our engine reports."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.rows: dict[str, int] = {}

    def add(self, name: str, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).double()
        self.sums[name] = self.sums.get(name, 0) + (x * x).sum(0)
        self.rows[name] = self.rows.get(name, 0) + x.shape[0]


def moe_names(cfg: dict, w: dict[str, torch.Tensor]):
    """(block path, expert tensor names for expert e, reader of expert e's [gate, up, down] f32 weights)."""
    mixtral_style = cfg["model_type"] in ("mixtral", "phimoe", "arctic")
    blk = "block_sparse_moe" if mixtral_style else "mlp"
    g, u, dn = ("w1", "w3", "w2") if mixtral_style else ("gate_proj", "up_proj", "down_proj")

    def names(layer: int, e: int) -> tuple[str, str, str]:
        p = f"model.layers.{layer}.{blk}.experts"
        if f"{p}.gate_up_proj" in w:
            return f"{p}.gate_up_proj[{e}].gate", f"{p}.gate_up_proj[{e}].up", f"{p}.down_proj[{e}]"
        return f"{p}.{e}.{g}.weight", f"{p}.{e}.{u}.weight", f"{p}.{e}.{dn}.weight"

    def weights(layer: int, e: int):
        p = f"model.layers.{layer}.{blk}.experts"
        if f"{p}.gate_up_proj" in w:
            gu = w[f"{p}.gate_up_proj"][e]
            inter = gu.shape[0] // 2
            return gu[:inter], gu[inter:], w[f"{p}.down_proj"][e]
        return tuple(w[n] for n in names(layer, e))

    return blk, names, weights


def expert_norms(sums: NormSums, cfg: dict, w: dict[str, torch.Tensor], layer: int, x: torch.Tensor, top: torch.Tensor) -> None:
    """Inputs of each routed expert's gate/up (its tokens of the MoE input) and down (silu(gate)·up of them)."""
    blk, names, weights = moe_names(cfg, w)
    sums.add(f"model.layers.{layer}.{blk}.gate.weight", x)
    for e in sorted(set(top.flatten().tolist())):
        tok = torch.where((top == e).any(-1))[0]
        xe = x[tok]
        wg, wu, _ = weights(layer, e)
        ng, nu, nd = names(layer, e)
        sums.add(ng, xe)
        sums.add(nu, xe)
        sums.add(nd, F.silu(F.linear(xe, wg)) * F.linear(xe, wu))


def transformers_run(d: Path, ids: torch.Tensor):
    cfg = json.loads((d / "config.json").read_text())
    w = load_tensors_f32(d)
    model = transformers_model_f32(d)
    sums = NormSums()
    routing: dict[int, torch.Tensor] = {}
    router_in: dict[int, torch.Tensor] = {}
    hooks = []
    for name, mod in model.named_modules():
        if type(mod).__name__.endswith("Router"):  # before nn.Linear: some routers subclass it (PhiMoE)
            layer = int(name.split("layers.")[1].split(".")[0])

            def keep(_m, inp, out, layer=layer):
                router_in[layer] = inp[0].detach().reshape(-1, inp[0].shape[-1])
                routing[layer] = out[2].detach().reshape(-1, out[2].shape[-1])

            hooks.append(mod.register_forward_hook(keep))
        elif isinstance(mod, torch.nn.Linear) and name != "lm_head":
            hooks.append(mod.register_forward_pre_hook(lambda _m, inp, name=name: sums.add(name + ".weight", inp[0])))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
        for layer in routing:
            expert_norms(sums, cfg, w, layer, router_in[layer], routing[layer])
    for h in hooks:
        h.remove()
    return out.logits.float(), routing, float(out.loss), sums


def arctic_run(d: Path, ids: torch.Tensor):
    """Arctic's torch reference with F.linear patched to record every linear input by weight name."""
    cfg = json.loads((d / "config.json").read_text())
    w = load_tensors_f32(d)
    by_ptr = {t.data_ptr(): k for k, t in w.items()}
    sums = NormSums()
    orig = F.linear

    def recording(x, weight, bias=None):
        k = by_ptr.get(weight.data_ptr())
        if k is not None and k != "lm_head.weight":
            sums.add(k, x)
        return orig(x, weight, bias)

    F.linear = recording
    try:
        with torch.no_grad():
            logits, routing = arctic_forward(cfg, w, ids)
    finally:
        F.linear = orig
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return logits, routing, float(loss), sums


@pytest.fixture(scope="module")
def gpu_results() -> dict:
    return run_js_forward("oracle/js/gpu-forward.ts", 1200)


@pytest.mark.parametrize("fixture", [d.name for d in fixture_dirs()])
def test_gpu_engine_matches_torch(fixture: str, gpu_results: dict) -> None:
    d, ours = fixture_result(gpu_results, fixture)
    ids = torch.tensor(WINDOWS)
    is_arctic = json.loads((d / "config.json").read_text())["model_type"] == "arctic"
    logits, routing, loss, sums = (arctic_run if is_arctic else transformers_run)(d, ids)
    assert_matches_torch(fixture, ours, logits, routing, loss)

    norms = ours["input_norms"]
    expert_keys = {k for k in sums.sums if ".experts." in k}
    assert expert_keys and expert_keys == {k for k in norms if ".experts." in k}, f"{fixture}: routed experts with tokens differ"
    attn = [k for k in sums.sums if ".self_attn." in k]
    assert len(attn) >= 4 * json.loads((d / "config.json").read_text())["num_hidden_layers"]
    compared = 0
    for k, s in sums.sums.items():
        if k not in norms:
            continue  # transformers-only module names (none for attention/experts, checked above)
        want = s.numpy()
        have = np.asarray(norms[k]["sum_sq"], dtype=np.float64)
        assert norms[k]["rows"] == sums.rows[k], f"{fixture}: {k} rows {norms[k]['rows']} vs {sums.rows[k]}"
        err = np.abs(have - want).max() / np.abs(want).max()
        assert err < NORM_RTOL, f"{fixture}: input norms of {k} differ by {err:.2e}"
        compared += 1
    assert all(k in norms for k in attn), f"{fixture}: attention inputs missing from our statistics"
    assert compared >= len(attn) + len(expert_keys)
