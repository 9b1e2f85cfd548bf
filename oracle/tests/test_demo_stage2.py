"""Oracle for the README's stage-2 demo table (docs/results/demo-stage2.json, written by tools/demo/stage2-table.mjs).

The numbers must come from the files the product wrote: for a magnitude row and a STUN row, `moe-prune prune
--from-report` re-creates the checkpoint from the row's recorded report, its shards must have the recorded SHA-256
digests (so they are the files that were measured), transformers' held-out perplexity of those files must equal the
recorded perplexity, and the zeros and removed experts counted in the files must give the recorded sparsity.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "public" / "demo"
RESULTS = REPO_ROOT / "docs" / "results" / "demo-stage2.json"
sys.path.insert(0, str(REPO_ROOT / "tools" / "demo"))

import eval_ppl  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def results() -> dict:
    assert RESULTS.exists(), "docs/results/demo-stage2.json is missing: run node tools/demo/stage2-table.mjs"
    return json.loads(RESULTS.read_text())


def routed_expert_params(model_dir: Path) -> tuple[int, int]:
    """(routed-expert weights in the files, zeros among them)."""
    total = zeros = 0
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            for name in f.keys():
                if ".experts." in name:
                    t = f.get_tensor(name)
                    total += t.numel()
                    zeros += int((t == 0).sum())
    return total, zeros


def pick(results: dict, label: str) -> dict:
    rows = [r for r in results["rows"] if r["label"] == label]
    assert rows, f"no {label} row in {RESULTS}"
    return min(rows, key=lambda r: r["target"])


@pytest.mark.parametrize("label", ["magnitude", "STUN"])
def test_row_is_measured_on_the_files_it_names(tmp_path: Path, results: dict, label: str) -> None:
    row = pick(results, label)
    report_path = RESULTS.parent / "demo-stage2" / row["report"]
    report = json.loads(report_path.read_text())
    out = tmp_path / "run"
    cmd = ["node", "bin/moe-prune.mjs", "prune", "--demo", "--out", str(out), "--from-report", str(report_path), "--quiet"]
    if report["settings"].get("calibration"):
        cmd += ["--calib-text", str(DEMO_DIR / report["settings"]["calibration"]["text"])]
    subprocess.run(cmd, cwd=REPO_ROOT, check=True, capture_output=True, text=True)

    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.safetensors"))}
    assert digests == row["shards"], "the re-created checkpoint is not the one the table was measured on"

    heldout = (DEMO_DIR / "heldout.txt").read_text(encoding="utf-8")
    ppl = eval_ppl.perplexity(out, heldout, seq_len=results["heldout"]["seqLen"], max_windows=results["heldout"]["windows"])
    assert abs(ppl - row["perplexity"]) / ppl < 1e-3, (ppl, row["perplexity"])
    original = eval_ppl.perplexity(DEMO_DIR / "model", heldout, seq_len=results["heldout"]["seqLen"], max_windows=results["heldout"]["windows"])
    assert abs(original - results["original"]) / original < 1e-3, (original, results["original"])

    before, _ = routed_expert_params(DEMO_DIR / "model")
    after, zeros = routed_expert_params(out)
    achieved = (before - after + zeros) / before
    assert abs(achieved - row["achieved"]) < 1e-9, (achieved, row["achieved"])
    assert abs(report["sparsity"]["achieved"] - row["achieved"]) < 1e-12
    assert abs(report["perplexity"]["after"] - row["perplexity"]) < 1e-9
