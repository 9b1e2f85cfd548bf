"""Per-layer variants (issue 3, item 4): a global-mode plan whose MoE layers keep different numbers of experts is
exported, on request, as a variant labelled as needing custom code. Here:
- stock transformers refuses it loudly (it never loads with silently re-initialised experts);
- every tensor is the independent numpy edit of the original, layer by layer;
- config.json differs from the original only in the count field (the largest count) and the added per-layer map;
- custom code — the original model with each layer's experts and router resized by an independent torch edit — takes
  the exported weights with strict loading and computes the same logits (fused layout, where file names are module
  names). The page's own variant export (saved by the Chromium end-to-end test) is checked the same way;
- our own engines (CPU reference and WebGPU) run the variant itself like the torch edit: logits, perplexity, routing.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch

from test_expert_prune_export import IDS, MODELS, check_raw_edit, edited_copy, expected_json, load, logits, original, prune
from test_forward_reference import WINDOWS, assert_matches_torch, forward_with_routing, run_js_forward

REPO = Path(__file__).resolve().parents[2]
PER_LAYER_KEY = "moe_prune_experts_per_layer"
BASE_TYPE_KEY = "moe_prune_base_model_type"
PAGE_EXPORT = Path(__file__).resolve().parents[2] / "e2e" / ".artifacts" / "export-qwen3_moe-fused-per-layer"

# (fixture, expert sparsity): 2 MoE layers of 4 (mixtral) or 8 (qwen3 fused) experts, targets that cannot split evenly.
CASES = {"mixtral": ("mixtral", "0.375"), "qwen3_moe-fused": ("qwen3_moe-fused", "0.4375")}


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, tuple[str, Path, dict]]:
    root = tmp_path_factory.mktemp("per-layer")
    out = {}
    for name, (fixture, sparsity) in CASES.items():
        # Without the flag the plan is refused; with it, the variant is written.
        refused = prune(MODELS / fixture, root / f"{name}-refused", None, "--mode", "global", "--expert-sparsity", sparsity)
        assert refused.rc == 2 and "--per-layer-variant" in refused.stderr, refused.stderr
        r = prune(MODELS / fixture, root / name, None, "--mode", "global", "--expert-sparsity", sparsity, "--per-layer-variant")
        assert r.rc == 0, r.stderr
        out[name] = (fixture, r.out, r.report)
    if PAGE_EXPORT.exists():
        out["page:qwen3_moe-fused"] = ("qwen3_moe-fused", PAGE_EXPORT, json.loads((PAGE_EXPORT / "prune-report.json").read_text()))
    elif os.environ.get("MOE_PRUNE_REQUIRE_E2E_EXPORTS"):
        pytest.fail(f"the end-to-end tests did not leave {PAGE_EXPORT.name}")
    return out


def counts(rep: dict) -> dict[str, int]:
    return {L: len(k) for L, k in rep["keptExperts"].items()}


@pytest.fixture(params=[*CASES, "page:qwen3_moe-fused"])
def variant(request, variants):
    if request.param not in variants:
        pytest.skip("the page export is made by the end-to-end tests")
    return variants[request.param]


def test_report_config_and_card_say_per_layer(variant) -> None:
    fixture, out, rep = variant
    c = counts(rep)
    assert len(set(c.values())) > 1, c
    assert rep["variant"] == "per-layer"
    assert rep["expertsPerLayer"]["afterByLayer"] == c and rep["expertsPerLayer"]["after"] == max(c.values())
    assert rep["loadableBy"][0].startswith("custom code only")
    field = expected_json(fixture)["expert_count_field"]
    cfg_in = json.loads((MODELS / fixture / "config.json").read_text())
    cfg_out = json.loads((out / "config.json").read_text())
    assert list(cfg_out) == [*cfg_in, BASE_TYPE_KEY, PER_LAYER_KEY]
    assert {k for k in cfg_in if json.dumps(cfg_in[k]) != json.dumps(cfg_out[k])} == {field, "model_type"}
    assert cfg_out[field] == max(c.values()) and cfg_out[PER_LAYER_KEY] == c
    assert cfg_out[BASE_TYPE_KEY] == cfg_in["model_type"] and cfg_out["model_type"] == cfg_in["model_type"] + "_per_layer_experts"
    assert "Needs custom code" in (out / "README.md").read_text()


def test_every_tensor_is_the_layer_by_layer_edit(variant) -> None:
    fixture, out, rep = variant
    check_raw_edit(fixture, out, rep)


def test_stock_transformers_refuses_it_loudly(variant) -> None:
    """With the stock model_type, transformers 5.18 would re-initialise the mismatched experts with only a warning."""
    _, out, _ = variant
    with pytest.raises(ValueError, match="model type `[a-z0-9_]+_per_layer_experts`"):
        load(out)


@pytest.mark.parametrize("name", ["qwen3_moe-fused", "page:qwen3_moe-fused"])
def test_custom_code_loads_it_strictly_and_computes_the_edit(variants, name: str) -> None:
    """Fused layout only: there file names are module names (per-expert files need transformers' own key conversion;
    their bytes are checked above)."""
    from safetensors.torch import load_file

    if name not in variants:
        pytest.skip("the page export is made by the end-to-end tests")
    fixture, out, rep = variants[name]
    assert expected_json(fixture)["expert_layout"] == "fused"
    edited = edited_copy(fixture, rep)
    for L, n in counts(rep).items():
        assert edited.model.layers[int(L)].mlp.experts.gate_up_proj.shape[0] == n
    skeleton = copy.deepcopy(edited)
    weights = {}
    for f in sorted(out.glob("*.safetensors")):
        weights.update(load_file(str(f)))
    skeleton.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()}, strict=True)
    got, want = logits(skeleton, IDS), logits(edited, IDS)
    assert (got - want).abs().max().item() <= 1e-5
    assert (want - logits(original(fixture), IDS)).abs().max().item() > 1e-4


@pytest.mark.parametrize("driver", ["oracle/js/forward-logits.ts", "oracle/js/gpu-forward.ts"])
def test_our_engine_runs_the_variant_like_the_torch_edit(variants, driver: str) -> None:
    """CPU reference and WebGPU engine on the variant itself: logits, perplexity and routing equal the torch edit."""
    fixture, out, rep = variants["qwen3_moe-fused"]
    ours = run_js_forward(driver, 300, [str(out)])[str(out)]
    assert "error" not in ours, ours.get("error")
    logits, routing, loss = forward_with_routing(edited_copy(fixture, rep), torch.tensor(WINDOWS))
    assert_matches_torch(f"{fixture} per-layer variant", ours, logits, routing, loss)
    for r in ours["routing"]:
        assert max(e for row in r["experts"] for e in row) < counts(rep)[str(r["layer"])]
