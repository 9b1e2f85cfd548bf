"""Reference port of STUN stage 1 (expert clustering and selection), written from the method spec
(shared/reference/stun-method.md §2.3.2-§2.3.5), not copied from the official repository.

It is deliberately literal and slow: a full argmin over the n x n matrix on every step, Python sets for the
clusters, exactly as the spec's pseudocode reads. The TypeScript planner (src/prune/experts) is checked
against it by oracle/tests/test_stun_clustering.py. Everything runs in float64.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

INF = float("inf")


def select_expert_pairs(
    gate_weight: torch.Tensor,
    coactivation: torch.Tensor | None = None,
    division_by_norm: bool = True,
    divide_mean: bool = False,
    mix_weight: float | None = None,
) -> torch.Tensor:
    """Distance matrix D (n x n, float64, diagonal +inf); small = merge. Modes per spec §2.3.2:
    router L2 (optionally / ||W||_F), co-activation -a/|mean(-a)|, or mu * that + router L2."""
    w = gate_weight.to(torch.float64)
    n = w.shape[0]
    router = (w[:, None, :] - w[None, :, :]).pow(2).sum(-1).sqrt()
    if division_by_norm:
        router = router / w.pow(2).sum().sqrt()
    if coactivation is None:
        d = router.clone()
    else:
        a = coactivation.to(torch.float64)
        co = -a / (-a).mean().abs()
        if divide_mean and mix_weight is None:
            d = co
        else:
            d = (mix_weight if mix_weight is not None else 1.0) * co + router
    d = d.clone()
    d.fill_diagonal_(INF)
    return d


def greedy_but_reject_mixed(d: torch.Tensor, threshold: float, top_k: int) -> list[list[int]]:
    """The official greedy rule (spec §2.3.3). `top_k` is the per-layer cap c on removed experts."""
    n = d.shape[0]
    v = d.clone()
    cl: list[set[int]] = [{i} for i in range(n)]
    while v.min().item() < threshold:
        distinct = {frozenset(s) for s in cl}
        if len(distinct) <= n - top_k:
            break
        flat = int(torch.argmin(v).item())  # first minimal value in row-major order
        p, q = divmod(flat, n)
        lst = [v[m, q].item() for m in cl[p]] + [v[m, p].item() for m in cl[q]]
        if max(lst) < threshold:
            for m in cl[p]:
                v[m, q] = INF
            for m in cl[q]:
                v[m, p] = INF
            union = cl[p] | cl[q]
            for m in union:
                cl[m] = union
        else:
            v[p, q] = INF
            v[q, p] = INF
    clusters = {frozenset(s) for s in cl}
    return sorted((sorted(c) for c in clusters), key=lambda c: c[0])


def total_kept(ds: Sequence[torch.Tensor], threshold: float, top_k: int) -> int:
    return sum(len(greedy_but_reject_mixed(d, threshold, top_k)) for d in ds)


def binary_search_threshold(
    ds: Sequence[torch.Tensor], target: int, threshold: float, top_k: int, max_iterations: int = 1000
) -> tuple[float | None, list[tuple[float, int]]]:
    """Official global search (spec §2.3.4). Returns (tau or None when it gives up, history of (tau, total)).
    Step update before each move; a flip on this iteration already halves the step."""
    step = 0.1
    tau = threshold
    flipped = False
    prev_dir = 0
    history: list[tuple[float, int]] = []
    for _ in range(max_iterations):
        k = total_kept(ds, tau, top_k)
        history.append((tau, k))
        if k == target:
            return tau, history
        if len(history) >= 10 and all(h[1] == k for h in history[-10:]):
            return None, history  # the official script exits with status 1 here
        direction = -1 if k < target else 1
        if prev_dir != 0 and direction != prev_dir:
            flipped = True
        step = step / 2 if flipped else step * 2
        tau = tau + direction * step
        prev_dir = direction
    return None, history


def dsatur_select_mean_weight_merge(
    clusters: Sequence[Sequence[int]], expert_params: Callable[[int], torch.Tensor]
) -> list[int]:
    """Representative per cluster: argmin_i ||theta_i - mean theta|| (first index on exact ties).
    `expert_params(i)` returns theta_i = concat(vec(gate), vec(up), vec(down))."""
    reps = []
    for c in clusters:
        if len(c) == 1:
            reps.append(c[0])
            continue
        thetas = torch.stack([expert_params(i).to(torch.float64) for i in c])
        centroid = thetas.mean(0)
        dist = (thetas - centroid).pow(2).sum(-1)
        reps.append(c[int(torch.argmin(dist).item())])
    return reps


def reconstructs(rule: str, kappa: int, n_clusters: int, cluster_size: int) -> bool:
    """Whether a cluster is averaged: 'per-layer' (code: #clusters <= kappa_L), 'per-cluster-size'
    (paper summary: 2 <= |C| < kappa), 'none'."""
    if cluster_size < 2 or rule == "none":
        return False
    if rule == "per-layer":
        return n_clusters <= kappa
    if rule == "per-cluster-size":
        return cluster_size < kappa
    raise ValueError(rule)


def uniform_clusters(d: torch.Tensor, keep: int) -> list[list[int]]:
    """Uniform mode: tau = +inf, cap c = n - keep."""
    return greedy_but_reject_mixed(d, INF, d.shape[0] - keep)


def exact_threshold_candidates(ds: Sequence[torch.Tensor]) -> list[float]:
    vals = sorted({x for d in ds for x in d.flatten().tolist() if not math.isinf(x)})
    return vals + [INF]
