"""Regenerates a representative subset of the fixtures into a temporary folder and compares it with the committed
files, so a change to the generator, the specs or the pinned transformers that is not re-committed fails here.
(The full set takes ~3x longer; every fixture goes through the same code paths as one of these.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "fixtures" / "models"

SUBSET = ["qwen2_moe", "qwen3_moe-fused", "deepseek_v3", "deepseek_v3-fp8", "arctic-bf16"]

# Values produced by a forward pass may differ in the last digit across CPUs; everything else must be identical.
REFERENCE_TOL = 1e-3


def compare_expected(name: str, got: dict, want: dict) -> list[str]:
    problems = []
    g_ref, w_ref = got.pop("reference", None), want.pop("reference", None)
    if got != want:
        problems.append(f"{name}/expected.json differs outside 'reference'")
    if (g_ref is None) != (w_ref is None):
        problems.append(f"{name}/expected.json reference present in one only")
    elif g_ref is not None and w_ref is not None:
        if g_ref["prompt_ids"] != w_ref["prompt_ids"]:
            problems.append(f"{name}: prompt differs")
        diff = max(abs(a - b) for a, b in zip(g_ref["last_logits"], w_ref["last_logits"], strict=True))
        if diff > REFERENCE_TOL or abs(g_ref["mean_nll"] - w_ref["mean_nll"]) > REFERENCE_TOL:
            problems.append(f"{name}: reference logits moved by {diff}")
    return problems


def test_regenerated_fixtures_equal_the_committed_ones(tmp_path: Path) -> None:
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "oracle" / "make_fixtures.py"), "--out", str(tmp_path), "--only", *SUBSET],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    committed = sorted(
        p.relative_to(MODELS).as_posix() for name in SUBSET for p in (MODELS / name).rglob("*") if p.is_file()
    )
    fresh = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert fresh == committed
    problems: list[str] = []
    for rel in committed:
        a, b = (tmp_path / rel).read_bytes(), (MODELS / rel).read_bytes()
        if rel.endswith("expected.json"):
            problems += compare_expected(rel.split("/")[0], json.loads(a), json.loads(b))
        elif a != b:
            problems.append(f"{rel} differs")
    assert problems == [], "fixtures are stale; rerun oracle/make_fixtures.py and commit:\n" + "\n".join(problems)
