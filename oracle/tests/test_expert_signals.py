"""Oracle: the expert-choice signals of the WebGPU engine (src/pipeline/expert-choice.ts, run by
oracle/js/expert-signals.ts in one Node process for all fixtures) against torch, on every generated fixture family.

Per fixture and per saliency criterion (reap, ean, frequency) our engine ran one sequential pass on the token windows
of test_forward_reference.py, keeping K experts per MoE layer (per routing group K / n_group). Torch recomputes, on
the same tokens and with OUR kept sets applied to the earlier layers (dropped experts' router logits −∞, and for
DeepSeek-V3 also their correction bias, so they leave the choice as in the pruned checkpoint):

- the MoE block's input of every MoE layer (hooked at the router's F.linear during one model forward, the plan on);
- the layer's dense routing on that input (the family's own router module: top-k, groups, normalisation, scaling —
  transformers 5.18's; Arctic: the torch reference's softmax top-k), every routed expert's output f(x) from the
  checkpoint weights, and per expert: tokens, Σ g·‖f‖₂, Σ ‖f‖₂ → REAP (mean of g·‖f‖), EAN, frequency;
- the K best by the run's criterion (ties: lower index), which must equal our kept set unless the boundary is a near
  tie;
- the reconstruction error ‖y − ŷ‖² / ‖y‖² of the MoE block's output (the family's own MoE module, shared experts
  included) with and without the layer's removal, on the same input.

Exhaustive (NAEE): with our exhaustive run's kept sets on the earlier layers, torch scores every subset of K experts
(per routing group K / n_group) of each MoE layer by that reconstruction error through the family's MoE module — the
same best subset (or one within float noise of it), the same error and the same number of subsets.
Output similarity (HC-SMoE): on the original model, every expert on every token of the layer's input, outputs averaged,
1 − cosine between experts: our distances within 1e-4; and L2 between each expert's mean over its routed tokens only.
"""

from __future__ import annotations

import itertools
import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from test_forward_reference import REPO, WINDOWS, arctic_forward, fixture_dirs, load_tensors_f32, run_js_forward
from test_gpu_engine import moe_names

SCORE_RTOL = 1e-4
RECON_RTOL = 1e-3
TIE_RTOL = 1e-5


@pytest.fixture(scope="module")
def ours() -> dict:
    return run_js_forward("oracle/js/expert-signals.ts", 1800)


class Removal:
    """F.linear patched: the output columns of a router weight (by data pointer) for the removed experts of its layer
    become −inf while those experts are removed; router inputs are recorded while `record` is on."""

    def __init__(self, routers: dict[int, torch.Tensor], biases: dict[int, torch.Tensor]) -> None:
        self.by_ptr = {w.data_ptr(): L for L, w in routers.items()}
        self.biases = biases
        self.removed: dict[int, list[int]] = {}
        self.record = False
        self.inputs: dict[int, torch.Tensor] = {}

    @contextmanager
    def active(self, removed: dict[int, list[int]], record: bool = False):
        orig = F.linear
        saved = {L: b.clone() for L, b in self.biases.items()}

        def lin(x, weight, bias=None):
            y = orig(x, weight, bias)
            L = self.by_ptr.get(weight.data_ptr())
            if L is None:
                return y
            if self.record:
                self.inputs[L] = x.detach().reshape(-1, x.shape[-1]).clone()
            r = self.removed.get(L)
            if r:
                y = y.clone()
                y[..., r] = float("-inf")
            return y

        self.removed, self.record = removed, record
        for L, b in self.biases.items():
            if removed.get(L):
                b[removed[L]] = float("-inf")  # V3: out of the choice, as in the pruned checkpoint
        F.linear = lin
        try:
            yield self
        finally:
            F.linear = orig
            for L, b in self.biases.items():
                b.copy_(saved[L])
            self.removed, self.record = {}, False


class HFFamily:
    """A transformers 5.18 model in f32: router module and MoE block per MoE layer."""

    def __init__(self, d: Path) -> None:
        import transformers

        self.cfg = json.loads((d / "config.json").read_text())
        self.w = load_tensors_f32(d)
        src, tmp = d, None
        if "quantization_config" in self.cfg:  # FP8: the dequantised weights in f32
            import shutil
            import tempfile

            from safetensors.torch import save_file

            tmp = Path(tempfile.mkdtemp(prefix="signals-deq-"))
            (tmp / "config.json").write_text(json.dumps({**{k: v for k, v in self.cfg.items() if k != "quantization_config"}, "dtype": "float32"}))
            save_file({k: v.contiguous() for k, v in self.w.items()}, str(tmp / "model.safetensors"))
            src = tmp
        try:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32, attn_implementation="eager").eval()
        finally:
            if tmp:
                shutil.rmtree(tmp)
        self.routers: dict[int, torch.nn.Module] = {}
        self.blocks: dict[int, torch.nn.Module] = {}
        for name, mod in self.model.named_modules():
            if type(mod).__name__.endswith("Router"):
                L = int(name.split("layers.")[1].split(".")[0])
                self.routers[L] = mod
                self.blocks[L] = self.model.get_submodule(name.rsplit(".", 1)[0])
        biases = {L: r.e_score_correction_bias for L, r in self.routers.items() if hasattr(r, "e_score_correction_bias")}
        self.patch = Removal({L: r.weight for L, r in self.routers.items()}, biases)

    def run(self, ids: torch.Tensor) -> None:
        self.model(input_ids=ids)

    def route(self, L: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.routers[L](x)
        return out[1].float(), out[2]

    def block(self, L: int, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks[L](x.view(1, *x.shape))
        return (y[0] if isinstance(y, tuple) else y).reshape(x.shape)


class ArcticFamily:
    """Arctic through the torch reference of test_forward_reference.py."""

    def __init__(self, d: Path) -> None:
        self.cfg = json.loads((d / "config.json").read_text())
        self.w = load_tensors_f32(d)
        f = self.cfg["moe_layer_frequency"]
        self.layers = [L for L in range(self.cfg["num_hidden_layers"]) if (L + 1) % f == 0]
        self.patch = Removal({L: self.w[f"model.layers.{L}.block_sparse_moe.gate.weight"] for L in self.layers}, {})

    def run(self, ids: torch.Tensor) -> None:
        arctic_forward(self.cfg, self.w, ids)

    def route(self, L: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(F.linear(x, self.w[f"model.layers.{L}.block_sparse_moe.gate.weight"]), -1)
        top_w, top_i = probs.topk(self.cfg["num_experts_per_tok"], -1)
        if top_w.shape[-1] > 1:
            top_w = top_w / top_w.sum(-1, keepdim=True)
        return top_w, top_i

    def block(self, L: int, x: torch.Tensor) -> torch.Tensor:
        p = f"model.layers.{L}.block_sparse_moe."
        top_w, top_i = self.route(L, x)
        out = torch.zeros_like(x)
        for e in range(self.cfg["num_local_experts"]):
            tok, slot = torch.where(top_i == e)
            if len(tok):
                h = F.linear(F.silu(F.linear(x[tok], self.w[p + f"experts.{e}.w1.weight"])) * F.linear(x[tok], self.w[p + f"experts.{e}.w3.weight"]), self.w[p + f"experts.{e}.w2.weight"])
                out.index_add_(0, tok, h * top_w[tok, slot, None])
        return out


def routing_groups(cfg: dict) -> int:
    """n_group when the family routes by groups (V3 always, V2 with group_limited_greedy), else 1."""
    n = cfg.get("n_group") or 1
    if cfg["model_type"] == "deepseek_v3" or (cfg["model_type"] == "deepseek_v2" and cfg.get("topk_method") == "group_limited_greedy"):
        return n
    return 1


def top_k(scores: list[float], K: int, groups: int) -> list[int]:
    """The K best (per group K / groups), ties to the lower index: a stable sort on −score."""
    n = len(scores)
    size, per = n // groups, K // groups
    kept = []
    for g in range(groups):
        idx = sorted(range(g * size, (g + 1) * size), key=lambda e: (-scores[e], e))
        kept += idx[:per]
    return sorted(kept)


def subsets(n: int, K: int, groups: int):
    """Every kept set in lexicographic order, K / groups per contiguous group (the product's enumeration)."""
    size, per = n // groups, K // groups
    per_group = [list(itertools.combinations(range(g * size, (g + 1) * size), per)) for g in range(groups)]
    for combo in itertools.product(*per_group):
        yield [e for c in combo for e in c]


def layer_inputs(fam, ids: torch.Tensor, removed: dict[int, list[int]]) -> dict[int, torch.Tensor]:
    with torch.no_grad(), fam.patch.active(removed, record=True):
        fam.run(ids)
    return dict(fam.patch.inputs)


def block_error(fam, L: int, x: torch.Tensor, removed: list[int], y: torch.Tensor) -> float:
    with fam.patch.active({L: removed}):
        yh = fam.block(L, x).double()
    return float(((y - yh) ** 2).sum() / (y**2).sum())


def torch_signals(fam, cfg: dict, ids: torch.Tensor, kept: dict[str, list[int]], n: int):
    """Per MoE layer (with our kept sets applied to every layer): input, scores and reconstruction sums."""
    removed = {int(L): [e for e in range(n) if e not in k] for L, k in kept.items()}
    with torch.no_grad():
        with fam.patch.active(removed, record=True):
            fam.run(ids)
        inputs = dict(fam.patch.inputs)
        _, _, expert_w = moe_names(cfg, fam.w)
        out = {}
        for L in sorted(removed):
            x = inputs[L]
            with fam.patch.active({}):
                g, idx = fam.route(L, x)
                y = fam.block(L, x).double()
            with fam.patch.active({L: removed[L]}):
                yh = fam.block(L, x).double()
            tokens, wnorm, norm = [0] * n, [0.0] * n, [0.0] * n
            for e in range(n):
                tok, slot = torch.where(idx == e)
                if len(tok) == 0:
                    continue
                wg, wu, wd = expert_w(L, e)
                f = F.linear(F.silu(F.linear(x[tok], wg)) * F.linear(x[tok], wu), wd)
                nrm = f.double().norm(dim=-1)
                tokens[e] = len(tok)
                norm[e] = float(nrm.sum())
                wnorm[e] = float((g[tok, slot].double() * nrm).sum())
            out[L] = {
                "tokens": tokens, "weightedNorm": wnorm, "norm": norm,
                "reap": [wnorm[e] / tokens[e] if tokens[e] else 0.0 for e in range(n)], "ean": norm, "frequency": [float(t) for t in tokens],
                "sumSqDiff": float(((y - yh) ** 2).sum()), "sumSqRef": float((y**2).sum()),
            }
    return out


def close(a: float, b: float, rtol: float, floor: float = 1e-9) -> bool:
    return abs(a - b) <= rtol * max(abs(b), floor)


@pytest.mark.parametrize("fixture", [d.name for d in fixture_dirs()])
def test_saliency_and_reconstruction_match_torch(ours: dict, fixture: str) -> None:
    d = REPO / "fixtures" / "models" / fixture
    r = ours[str(d.relative_to(REPO))]
    assert "error" not in r, r.get("error")
    cfg = json.loads((d / "config.json").read_text())
    fam = ArcticFamily(d) if cfg["model_type"] == "arctic" else HFFamily(d)
    ids = torch.tensor(WINDOWS)
    n = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    K, groups = r["K"], routing_groups(cfg)
    assert K % groups == 0 and K < n
    near_ties = 0
    for criterion, run in r["runs"].items():
        ref = torch_signals(fam, cfg, ids, run["kept"], n)
        assert sorted(ref) == [s["layer"] for s in run["scores"]], f"{fixture}: MoE layers differ"
        for s in run["scores"]:
            t = ref[s["layer"]]
            where = f"{fixture} {criterion} layer {s['layer']}"
            assert s["tokens"] == t["tokens"], f"{where}: tokens per expert {s['tokens']} vs torch {t['tokens']}"
            assert s["frequency"] == t["frequency"]
            for key in ("reap", "ean", "weightedNorm", "norm"):
                for e, (a, b) in enumerate(zip(s[key], t[key])):
                    assert close(a, b, SCORE_RTOL), f"{where}: {key}[{e}] {a} vs torch {b}"
            want = top_k(t[criterion], K, groups)
            assert len(s["kept"]) == K and s["kept"] == run["kept"][str(s["layer"])]
            if s["kept"] != want:
                diff = set(s["kept"]) ^ set(want)
                vals = [t[criterion][e] for e in diff]
                assert max(vals) - min(vals) <= TIE_RTOL * max(abs(v) for v in vals), f"{where}: kept {s['kept']} vs torch {want}"
                near_ties += 1
        for rec in run["reconstruction"]:
            t = ref[rec["layer"]]
            where = f"{fixture} {criterion} layer {rec['layer']}"
            assert rec["tokens"] == ids.numel()
            assert close(rec["sumSqRef"], t["sumSqRef"], RECON_RTOL), f"{where}: ‖y‖² {rec['sumSqRef']} vs torch {t['sumSqRef']}"
            want = t["sumSqDiff"] / t["sumSqRef"]
            assert close(rec["error"], want, RECON_RTOL, 1e-6), f"{where}: reconstruction error {rec['error']} vs torch {want}"
    assert near_ties <= 1, f"{fixture}: {near_ties} layers decided by near ties"


@pytest.mark.parametrize("fixture", [d.name for d in fixture_dirs()])
def test_exhaustive_choice_equals_torch_brute_force(ours: dict, fixture: str) -> None:
    d = REPO / "fixtures" / "models" / fixture
    r = ours[str(d.relative_to(REPO))]
    assert "error" not in r, r.get("error")
    cfg = json.loads((d / "config.json").read_text())
    fam = ArcticFamily(d) if cfg["model_type"] == "arctic" else HFFamily(d)
    n = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    K, groups = r["K"], routing_groups(cfg)
    ex = r["exhaustive"]
    removed = {int(L): [e for e in range(n) if e not in k] for L, k in ex["kept"].items()}
    ids = torch.tensor(WINDOWS)
    with torch.no_grad():
        inputs = layer_inputs(fam, ids, removed)
        total = 0
        for lay in ex["layers"]:
            L, x = lay["layer"], inputs[lay["layer"]]
            with fam.patch.active({}):
                y = fam.block(L, x).double()
            errs = [(block_error(fam, L, x, [e for e in range(n) if e not in s], y), s) for s in subsets(n, K, groups)]
            total += len(errs)
            assert lay["subsets"] == len(errs), f"{fixture} layer {L}: {lay['subsets']} subsets vs {len(errs)}"
            best_err, best = min(errs, key=lambda t: t[0])  # min keeps the first of equal errors
            mine = dict((tuple(s), e) for e, s in errs)[tuple(lay["kept"])]
            assert lay["kept"] == best or mine - best_err <= 1e-4 * best_err, f"{fixture} layer {L}: kept {lay['kept']} ({mine}) vs torch {best} ({best_err})"
            assert close(lay["error"], best_err, RECON_RTOL, 1e-6), f"{fixture} layer {L}: error {lay['error']} vs torch {best_err}"
        assert ex["subsets"] == total


@pytest.mark.parametrize("fixture", [d.name for d in fixture_dirs()])
def test_output_similarity_equals_torch(ours: dict, fixture: str) -> None:
    d = REPO / "fixtures" / "models" / fixture
    r = ours[str(d.relative_to(REPO))]
    assert "error" not in r, r.get("error")
    cfg = json.loads((d / "config.json").read_text())
    fam = ArcticFamily(d) if cfg["model_type"] == "arctic" else HFFamily(d)
    n = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    _, _, expert_w = moe_names(cfg, fam.w)
    with torch.no_grad():
        inputs = layer_inputs(fam, torch.tensor(WINDOWS), {})
        assert sorted(map(int, r["output"])) == sorted(inputs)
        for L, got in r["output"].items():
            x = inputs[int(L)]
            means = []
            for e in range(n):
                wg, wu, wd = expert_w(int(L), e)
                means.append(F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd).double().mean(0))
            m = torch.stack(means)
            cos = (m @ m.T) / (m.norm(dim=1)[:, None] * m.norm(dim=1)[None, :])
            for i in range(n):
                for j in range(n):
                    if i == j:
                        assert got[i][j] is None  # +Inf in JSON
                    else:
                        want = float(1 - cos[i, j])
                        assert abs(got[i][j] - want) < 1e-4, f"{fixture} layer {L} ({i}, {j}): {got[i][j]} vs torch {want}"
            # --output-tokens routed --output-distance l2: each expert's mean over the tokens the family's router sends
            # it (zero when none), L2 between the means.
            with fam.patch.active({}):
                _, idx = fam.route(int(L), x)
            routed_means = []
            for e in range(n):
                tok = torch.where((idx == e).any(-1))[0]
                wg, wu, wd = expert_w(int(L), e)
                f = F.linear(F.silu(F.linear(x[tok], wg)) * F.linear(x[tok], wu), wd).double()
                routed_means.append(f.mean(0) if len(tok) else torch.zeros(x.shape[-1], dtype=torch.float64))
            rm = torch.stack(routed_means)
            l2 = torch.cdist(rm, rm)
            got2 = r["outputRoutedL2"][L]
            for i in range(n):
                for j in range(n):
                    if i == j:
                        assert got2[i][j] is None
                    else:
                        want = float(l2[i, j])
                        assert abs(got2[i][j] - want) < 1e-4 * max(1.0, want), f"{fixture} layer {L} routed L2 ({i}, {j}): {got2[i][j]} vs torch {want}"


def test_tie_rule_keeps_the_lower_index() -> None:
    assert top_k([1.0, 3.0, 3.0, 0.0], 2, 1) == [1, 2]
    assert top_k([2.0, 2.0, 2.0, 2.0], 2, 1) == [0, 1]
    assert top_k([5.0, 1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 9.0], 4, 2) == [0, 1, 5, 7]
