"""Oracle checks for the shipped demo MoE in public/demo (see docs/demo-model.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "public" / "demo"
MODEL_DIR = DEMO_DIR / "model"
sys.path.insert(0, str(REPO_ROOT / "tools" / "demo"))

import eval_ppl  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((DEMO_DIR / "metrics.json").read_text())


@pytest.fixture(scope="module")
def heldout() -> str:
    return (DEMO_DIR / "heldout.txt").read_text(encoding="utf-8")


def test_checkpoint_layout() -> None:
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "mixtral"
    assert config["num_local_experts"] == 8
    assert config["num_experts_per_tok"] == 2
    assert config["tie_word_embeddings"] is False
    assert config["dtype"] == "bfloat16"

    index = json.loads((MODEL_DIR / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert 2 <= len(shards) <= 3
    total = sum((MODEL_DIR / s).stat().st_size for s in shards)
    assert 1_000_000 < total < 15_000_000
    names = set(index["weight_map"])
    layers = config["num_hidden_layers"]
    for layer in range(layers):
        for e in range(8):
            for w in ("w1", "w2", "w3"):
                assert f"model.layers.{layer}.block_sparse_moe.experts.{e}.{w}.weight" in names
        assert f"model.layers.{layer}.block_sparse_moe.gate.weight" in names
    assert "lm_head.weight" in names and "model.embed_tokens.weight" in names
    # No fused (transformers-internal) expert tensors in the shipped files.
    assert not any("gate_up_proj" in n for n in names)


def test_loads_without_missing_or_unexpected_keys() -> None:
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    assert type(model).__name__ == "MixtralForCausalLM"


def test_tokenizer_round_trips_heldout(heldout: str) -> None:
    tok = eval_ppl.load_tokenizer(MODEL_DIR)
    assert 2048 <= tok.get_vocab_size() <= 4096
    sample = heldout[:5000]
    assert tok.decode(tok.encode(sample, add_special_tokens=False).ids) == sample
    config = json.loads((MODEL_DIR / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"]) == ("<s>", "</s>")


def test_heldout_perplexity_beats_unigram_and_matches_metrics(metrics: dict, heldout: str) -> None:
    m = metrics["heldout"]
    ppl = eval_ppl.perplexity(MODEL_DIR, heldout, seq_len=m["seq_len"], max_windows=m["max_windows"])
    assert ppl < 0.5 * m["unigram_ppl"]
    assert ppl == pytest.approx(m["model_ppl"], rel=0.01)


def test_texts_are_small_and_disjoint_from_training() -> None:
    calibration = (DEMO_DIR / "calibration.txt").read_text(encoding="utf-8")
    heldout = (DEMO_DIR / "heldout.txt").read_text(encoding="utf-8")
    assert 50_000 < len(heldout.encode()) <= 160_000
    assert 50_000 < len(calibration.encode()) <= 160_000
    import data

    # The novels are committed (fixtures/austen): a clone alone must run this check, so their absence fails.
    assert (data.REPO_ROOT / data.load_settings()["data"]["dir"]).is_dir(), "fixtures/austen is missing"
    splits = data.load_splits()
    assert data.joined(splits, "heldout") == heldout
    assert data.joined(splits, "calibration") == calibration
    for sp in splits:
        probe = sp.heldout[1000:1200]
        assert probe not in sp.train and probe not in sp.calibration


def test_our_engine_and_prune_eval_agree_with_transformers(tmp_path: Path, heldout: str) -> None:
    """The method behind the README's demo table: `moe-prune eval` on the original and the perplexity `prune
    --eval-text` records for the plan applied on the fly both equal transformers' perplexity (of the original, and
    of the exported pruned checkpoint) on the same windows. Fewer windows than the README to stay quick."""
    import subprocess

    windows = 8
    text = str(DEMO_DIR / "heldout.txt")
    ev = subprocess.run(
        ["node", "bin/moe-prune.mjs", "eval", str(MODEL_DIR), "--text", text, "--seq-len", "128", "--max-windows", str(windows), "--json"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    )
    ours = json.loads(ev.stdout)["perplexity"]
    ref = eval_ppl.perplexity(MODEL_DIR, heldout, seq_len=128, max_windows=windows)
    assert abs(ours - ref) / ref < 1e-3, (ours, ref)

    out = tmp_path / "k4"
    subprocess.run(
        ["node", "bin/moe-prune.mjs", "prune", "--demo", "--out", str(out), "--experts-per-layer", "4",
         "--eval-text", text, "--seq-len", "128", "--max-windows", str(windows), "--quiet"],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    )
    ppl = json.loads((out / "prune-report.json").read_text())["perplexity"]
    assert abs(ppl["before"] - ref) / ref < 1e-3, (ppl, ref)
    pruned = eval_ppl.perplexity(out, heldout, seq_len=128, max_windows=windows)
    assert abs(ppl["after"] - pruned) / pruned < 1e-3, (ppl, pruned)
    assert ppl["after"] != ppl["before"]
