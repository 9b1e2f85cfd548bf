"""STUN stage 1: the TypeScript planner (src/prune/experts via oracle/js/plan-experts.ts) against the Python port
of the official clustering (oracle/stun_reference.py), on random routers, tie-heavy routers, co-activation
counts and routers with planted clusters."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "oracle"))
import stun_reference as ref  # noqa: E402

INF = float("inf")


def run_ts(cases: list[dict]) -> list[dict]:
    tsx = ROOT / "node_modules" / ".bin" / "tsx"
    proc = subprocess.run(
        [str(tsx), str(ROOT / "oracle" / "js" / "plan-experts.ts")],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["results"]


def fnum(x):
    return INF if x == "inf" else x


def layer_json(i: int, w: torch.Tensor, top_k: int = 1, coact: torch.Tensor | None = None) -> dict:
    n, d = w.shape
    out = {"layer": i, "n": n, "d": d, "topK": top_k, "routerRows": w.flatten().tolist()}
    if coact is not None:
        out["coactivation"] = coact.flatten().tolist()
    return out


def planted_router(sizes: list[int], d: int, gen: torch.Generator, noise: float = 1e-3):
    """Rows = one random center per planted group + tiny noise, experts shuffled. Returns (w, groups)."""
    n = sum(sizes)
    perm = torch.randperm(n, generator=gen).tolist()
    w = torch.empty(n, d)
    groups = []
    pos = 0
    for s in sizes:
        center = torch.randn(d, generator=gen)
        members = sorted(perm[pos : pos + s])
        for m in members:
            w[m] = center + noise * torch.randn(d, generator=gen)
        groups.append(members)
        pos += s
    return w, sorted(groups, key=lambda g: g[0])


def test_uniform_matches_reference_random_and_ties():
    gen = torch.Generator().manual_seed(1)
    cases, expected = [], []
    for trial in range(12):
        n = [8, 16, 24][trial % 3]
        if trial % 2 == 0:
            w = torch.randn(n, 12, generator=gen)
        else:  # 0/1 routers: many exactly equal distances, so torch.argmin tie-breaking decides
            w = torch.randint(0, 2, (n, 6), generator=gen).float()
        keep = [1, 2, n // 2, n - 1, n][trial % 5]
        d = ref.select_expert_pairs(w, division_by_norm=True)
        expected.append(ref.uniform_clusters(d, keep))
        cases.append({"settings": {"mode": "uniform", "keepPerLayer": keep}, "layers": [layer_json(0, w)]})
    for got, want in zip(run_ts(cases), expected):
        assert got["ok"], got
        assert got["layers"][0]["clusters"] == want
        assert len(got["layers"][0]["kept"]) == len(want)


def test_global_official_search_matches_reference():
    gen = torch.Generator().manual_seed(2)
    cases, expected = [], []
    for trial in range(6):
        ws = [torch.randn(16, 10, generator=gen) for _ in range(4)]
        ds = [ref.select_expert_pairs(w, division_by_norm=True) for w in ws]
        cap = [15, 8][trial % 2]
        target = 64 - 6 - 3 * trial
        tau, hist = ref.binary_search_threshold(ds, target, 0.5, cap)
        used = tau if tau is not None else None
        expected.append((tau, hist, [ref.greedy_but_reject_mixed(d, used, cap) for d in ds] if used is not None else None))
        cases.append({
            "settings": {"mode": "global", "targetTotal": target, "search": "official", "startThreshold": 0.5, "maxRemovedPerLayer": cap, "normalize": True},
            "layers": [layer_json(i, w) for i, w in enumerate(ws)],
        })
    hits = 0
    for got, (tau, hist, clusters) in zip(run_ts(cases), expected):
        assert got["ok"], got
        s = got["search"]
        assert s["evaluations"] == len(hist)
        if tau is None:
            assert s["exact"] is False
        else:
            hits += 1
            assert s["exact"] is True and fnum(s["tau"]) == tau
            assert [l["clusters"] for l in got["layers"]] == clusters
    assert hits >= 3  # the comparison must exercise successful searches


def test_global_exact_search_hits_target_or_proves_impossible():
    gen = torch.Generator().manual_seed(3)
    cases, inputs = [], []
    for trial in range(8):
        ws = [torch.randn(8, 6, generator=gen) for _ in range(3)]
        target = [23, 20, 16, 12, 9, 5, 3, 24][trial]
        inputs.append((ws, target))
        cases.append({
            "settings": {"mode": "global", "targetTotal": target, "search": "exact", "normalize": False},
            "layers": [layer_json(i, w) for i, w in enumerate(ws)],
        })
    for got, (ws, target) in zip(run_ts(cases), inputs):
        assert got["ok"], got
        ds = [ref.select_expert_pairs(w, division_by_norm=False) for w in ws]
        cap = 7  # floor max(top_k, 1) = 1 keeps >= 1 per layer
        s = got["search"]
        tau = fnum(s["tau"])
        assert [ref.greedy_but_reject_mixed(d, tau, cap) for d in ds] == [l["clusters"] for l in got["layers"]]
        totals = {ref.total_kept(ds, t, cap) for t in ref.exact_threshold_candidates(ds)}
        if s["exact"]:
            assert ref.total_kept(ds, tau, cap) == target
        else:  # brute force over every candidate threshold: no total equals the target
            assert target not in totals
            assert got["totalKept"] in totals


def test_planted_clusters_recovered_uniform_and_global():
    gen = torch.Generator().manual_seed(4)
    cases, want = [], []
    for trial in range(4):
        sizes = [[3, 1, 4, 2, 2, 4], [5, 5, 1, 1, 4], [2, 2, 2, 2, 2, 2, 2, 2], [6, 3, 3, 2, 1, 1]][trial]
        w, groups = planted_router(sizes, 32, gen)
        want.append(groups)
        d = ref.select_expert_pairs(w, division_by_norm=False)
        assert ref.uniform_clusters(d, len(groups)) == groups  # the reference recovers them too
        cases.append({"settings": {"mode": "uniform", "keepPerLayer": len(groups)}, "layers": [layer_json(0, w)]})
        cases.append({
            "settings": {"mode": "global", "targetTotal": len(groups), "search": "exact", "normalize": False},
            "layers": [layer_json(0, w)],
        })
    got = run_ts(cases)
    for i, groups in enumerate(want):
        for g in got[2 * i : 2 * i + 2]:
            assert g["ok"], g
            assert g["layers"][0]["clusters"] == groups
    # global mode over several layers with planted structure: one tau recovers every layer's groups
    layers, all_groups = [], []
    for i in range(3):
        w, groups = planted_router([4, 3, 3, 2, 2, 1, 1], 24, gen)
        layers.append(layer_json(i, w))
        all_groups.append(groups)
    target = sum(len(g) for g in all_groups)
    (g,) = run_ts([{"settings": {"mode": "global", "targetTotal": target, "search": "exact"}, "layers": layers}])
    assert g["ok"] and g["search"]["exact"], g
    assert [l["clusters"] for l in g["layers"]] == all_groups


def test_representatives_match_reference_selection():
    gen = torch.Generator().manual_seed(5)
    w, groups = planted_router([4, 3, 5, 2, 1, 3], 16, gen)
    n = w.shape[0]
    thetas = torch.randn(n, 61, generator=gen)
    want = ref.dsatur_select_mean_weight_merge(groups, lambda i: thetas[i])
    case = {
        "settings": {"mode": "uniform", "keepPerLayer": len(groups)},
        "layers": [layer_json(0, w)],
        "thetas": [thetas.tolist()],
        "chunkSize": 7,
    }
    (got,) = run_ts([case])
    assert got["ok"], got
    layer = got["layers"][0]
    assert layer["clusters"] == groups
    assert layer["representatives"] == want
    assert layer["kept"] == sorted(want)
    # every original maps to its cluster's slot (rank of the representative)
    for g, r in zip(groups, want):
        for m in g:
            assert layer["slotOf"][m] == sorted(want).index(r)


def test_coactivation_modes_match_reference():
    gen = torch.Generator().manual_seed(6)
    cases, expected = [], []
    for trial in range(4):
        n = 12
        a = torch.randint(0, 50, (n, n), generator=gen).double()
        a = a + a.T
        a.fill_diagonal_(0)
        w = torch.randn(n, 8, generator=gen)
        mode = ["coactivation", "mixed"][trial % 2]
        if mode == "coactivation":
            d = ref.select_expert_pairs(w, coactivation=a, divide_mean=True)
        else:
            d = ref.select_expert_pairs(w, coactivation=a, mix_weight=0.3, division_by_norm=True)
        keep = [3, 6, 9, 1][trial]
        expected.append(ref.uniform_clusters(d, keep))
        cases.append({
            "settings": {"mode": "uniform", "keepPerLayer": keep, "similarity": mode, "mixWeight": 0.3, "normalize": True},
            "layers": [layer_json(0, w, coact=a)],
        })
    for got, want in zip(run_ts(cases), expected):
        assert got["ok"], got
        assert got["layers"][0]["clusters"] == want


def test_invalid_uniform_keep_is_rejected_with_reason():
    w = torch.randn(8, 4)
    cases = [
        {"settings": {"mode": "uniform", "keepPerLayer": 1}, "layers": [layer_json(0, w, top_k=2)]},
        {"settings": {"mode": "uniform", "keepPerLayer": 9}, "layers": [layer_json(0, w, top_k=2)]},
    ]
    a, b = run_ts(cases)
    assert not a["ok"] and "top-k floor of 2" in a["error"] and "InvalidPlan" in a["error"]
    assert not b["ok"] and "[1, 8]" in b["error"]
