"""Reference port of STUN stage 2 (unstructured pruning of what stage 1 kept): Wanda, OWL, magnitude and N:M,
sequential layer by layer on calibration windows. Written from the product's stage-2 rules (see
oracle/tests/test_unstructured_export.py for the rule text), independently of the TypeScript code.

Models: every transformers family through its stock class in f32 (BF16 values widen exactly, FP8 weights are
dequantised with their block scales), Arctic through the small torch reference of test_forward_reference.py. The
weights are edited in place; every linear map ("matrix") is addressed by the name the product's engine gives it
(checkpoint tensor names; fused experts `…experts.gate_up_proj[e].gate` / `.up` and `…experts.down_proj[e]`).

Compute: activations in f32 (the models' own forward), Σx² per input channel in f64, keys in f64.
Tie rule everywhere: a stable ascending sort of the keys (equal keys: lower index pruned first).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from test_forward_reference import arctic_forward, load_tensors_f32, transformers_model_f32  # noqa: E402

KINDS = ("expert", "shared", "attention", "dense", "router")
SCOPES = {"experts": ("expert",), "experts+shared": ("expert", "shared"), "all": KINDS}

# Per-expert checkpoint names and the fused layout's names as the engine reports them.
EXPERT_RE = re.compile(r"^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts\.(\d+)\.(w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$")
FUSED_RE = re.compile(r"^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.experts\.(gate_up_proj|down_proj)\[(\d+)\](\.gate|\.up)?$")
ROUTER_RE = re.compile(r"^model\.layers\.(\d+)\.(mlp|block_sparse_moe)\.gate\.weight$")
ROLE = {"w1": "gate", "gate_proj": "gate", "w3": "up", "up_proj": "up", "w2": "down", "down_proj": "down"}


def kind_of(name: str) -> str:
    """The kind of a matrix from its (product) name."""
    if EXPERT_RE.match(name) or FUSED_RE.match(name):
        return "expert"
    if ROUTER_RE.match(name):
        return "router"
    if "shared_expert" in name:  # Qwen2-MoE shared_expert(_gate), DeepSeek shared_experts
        return "shared"
    if ".self_attn." in name:
        return "attention"
    return "dense"


def expert_of(name: str) -> tuple[int, int, str] | None:
    """(layer, expert, role gate|up|down) of a routed expert matrix name, else None."""
    m = EXPERT_RE.match(name)
    if m:
        return int(m.group(1)), int(m.group(3)), ROLE[m.group(4)]
    m = FUSED_RE.match(name)
    if m:
        return int(m.group(1)), int(m.group(4)), ("down" if m.group(3) == "down_proj" else m.group(5)[1:])
    return None


def layer_of(name: str) -> int:
    return int(name.split(".")[2])


@dataclass
class Matrix:
    name: str
    layer: int
    kind: str
    w: torch.Tensor  # live f32 view [out, in] inside the model: pruning writes zeros into it
    expert: int | None = None
    role: str | None = None


@dataclass
class Capture:
    """One forward pass: every non-expert linear map's input rows by matrix name; per MoE layer the router input
    (the MoE block's input tokens) and the chosen experts [tokens, k]."""

    inputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    router_in: dict[int, torch.Tensor] = field(default_factory=dict)
    top: dict[int, torch.Tensor] = field(default_factory=dict)

    def add(self, name: str, x: torch.Tensor) -> None:
        self.inputs.setdefault(name, []).append(x.detach().reshape(-1, x.shape[-1]).float().clone())


# ------------------------------------------------------------------------------------------------- models


class RefModel:
    """A checkpoint in f32 with its matrices as live views. `forward(ids)` returns a Capture."""

    matrices: dict[str, Matrix]
    moe_layers: list[int]
    num_layers: int

    def experts(self, layer: int) -> dict[int, dict[str, Matrix]]:
        out: dict[int, dict[str, Matrix]] = {}
        for m in self.matrices.values():
            if m.kind == "expert" and m.layer == layer:
                out.setdefault(m.expert, {})[m.role] = m
        return dict(sorted(out.items()))

    def forward(self, ids: torch.Tensor) -> Capture:  # pragma: no cover - abstract
        raise NotImplementedError


class HFModel(RefModel):
    """transformers 5.18 stock class; checkpoint matrices mapped onto its (fused) parameters and checked equal."""

    def __init__(self, d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        w = load_tensors_f32(d)
        model = transformers_model_f32(d)  # FP8: the dequantised weights in f32
        self.model, self.cfg = model, cfg
        self.num_layers = cfg["num_hidden_layers"]
        params = dict(model.named_parameters())
        self.matrices = {}
        self.module_to_name: dict[str, str] = {}

        def add(name: str, view: torch.Tensor, want: torch.Tensor, expert: int | None = None, role: str | None = None) -> None:
            assert view.shape == want.shape and torch.equal(view, want), f"{name}: model parameter differs from the checkpoint"
            self.matrices[name] = Matrix(name, layer_of(name), kind_of(name), view, expert, role)

        for name, t in w.items():
            if t.ndim != 2 and not name.endswith(("experts.gate_up_proj", "experts.down_proj")):
                continue
            if not name.startswith("model.layers.") or name.endswith("_scale_inv"):
                continue
            L = layer_of(name)
            fused = f"model.layers.{L}.mlp.experts."
            m = EXPERT_RE.match(name)
            if m:
                e, role = int(m.group(3)), ROLE[m.group(4)]
                gu = params[fused + "gate_up_proj"].data[e]
                inter = gu.shape[0] // 2
                view = {"gate": gu[:inter], "up": gu[inter:], "down": params[fused + "down_proj"].data[e]}[role]
                add(name, view, t, e, role)
                continue
            if name.endswith("experts.gate_up_proj"):
                for e in range(t.shape[0]):
                    gu = params[fused + "gate_up_proj"].data[e]
                    inter = gu.shape[0] // 2
                    add(f"{name}[{e}].gate", gu[:inter], t[e][:inter], e, "gate")
                    add(f"{name}[{e}].up", gu[inter:], t[e][inter:], e, "up")
                continue
            if name.endswith("experts.down_proj"):
                for e in range(t.shape[0]):
                    add(f"{name}[{e}]", params[fused + "down_proj"].data[e], t[e], e, "down")
                continue
            mem = name.replace(".block_sparse_moe.", ".mlp.")
            if mem not in params and mem.endswith(".mlp.gate.weight"):
                mem = mem[: -len("gate.weight")] + "router.weight"  # PhiMoE
            assert mem in params, f"{name}: no such parameter in {type(model).__name__}"
            add(name, params[mem].data, t)
            self.module_to_name[mem[: -len(".weight")]] = name
        self.moe_layers = sorted({m.layer for m in self.matrices.values() if m.kind == "expert"})

    def forward(self, ids: torch.Tensor) -> Capture:
        cap = Capture()
        hooks = []
        for mname, mod in self.model.named_modules():
            if type(mod).__name__.endswith("Router"):  # before nn.Linear: PhiMoE's router subclasses it
                layer = int(mname.split("layers.")[1].split(".")[0])
                rname = self.module_to_name[mname]

                def keep(_m, inp, out, layer=layer, rname=rname):
                    x = inp[0].detach().reshape(-1, inp[0].shape[-1]).float().clone()
                    cap.router_in[layer] = x
                    cap.top[layer] = out[2].detach().reshape(-1, out[2].shape[-1]).clone()
                    cap.add(rname, x)

                hooks.append(mod.register_forward_hook(keep))
            elif isinstance(mod, torch.nn.Linear) and mname in self.module_to_name:
                hooks.append(mod.register_forward_pre_hook(lambda _m, inp, n=self.module_to_name[mname]: cap.add(n, inp[0])))
        try:
            with torch.no_grad():
                self.model(input_ids=ids)
        finally:
            for h in hooks:
                h.remove()
        return cap


class ArcticModel(RefModel):
    """Arctic through the torch reference; the matrices are the weight dict's own tensors."""

    def __init__(self, d: Path) -> None:
        self.cfg = json.loads((d / "config.json").read_text())
        self.w = load_tensors_f32(d)
        self.num_layers = self.cfg["num_hidden_layers"]
        self.matrices = {}
        for name, t in self.w.items():
            if t.ndim == 2 and name.startswith("model.layers."):
                ex = expert_of(name)
                self.matrices[name] = Matrix(name, layer_of(name), kind_of(name), t, *(ex[1:] if ex else (None, None)))
        self.moe_layers = sorted({m.layer for m in self.matrices.values() if m.kind == "expert"})

    def forward(self, ids: torch.Tensor) -> Capture:
        cap = Capture()
        by_ptr = {m.w.data_ptr(): m.name for m in self.matrices.values() if m.kind != "expert"}
        orig = F.linear

        def recording(x, weight, bias=None):
            k = by_ptr.get(weight.data_ptr())
            if k is not None:
                cap.add(k, x)
                if kind_of(k) == "router":
                    cap.router_in[layer_of(k)] = x.detach().reshape(-1, x.shape[-1]).float().clone()
            return orig(x, weight, bias)

        F.linear = recording
        try:
            with torch.no_grad():
                _, routing = arctic_forward(self.cfg, self.w, ids)
        finally:
            F.linear = orig
        cap.top = {L: t.clone() for L, t in routing.items()}
        return cap


def load_model(d: Path) -> RefModel:
    cfg = json.loads((Path(d) / "config.json").read_text())
    return ArcticModel(Path(d)) if cfg["model_type"] == "arctic" else HFModel(Path(d))


# ---------------------------------------------------------------------------------------- calibration data


def calibration_windows(tokenizer_json: Path, text: str, samples: int, seq_len: int) -> torch.Tensor:
    """The text as one document, tokenized with the checkpoint's tokenizer.json and its default special-token
    handling (the post-processor: BOS first for the fixtures); the first N non-overlapping windows of L tokens."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_json)).encode(text).ids
    n = min(samples, len(ids) // seq_len)
    assert n >= 1, f"text has {len(ids)} tokens, fewer than one window of {seq_len}"
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


# ------------------------------------------------------------------------------------------------ statistics


@dataclass
class Stat:
    sum_sq: torch.Tensor  # f64 [in]
    rows: int


def _stat(xs: list[torch.Tensor] | torch.Tensor) -> Stat:
    x = torch.cat(xs, 0) if isinstance(xs, list) else xs
    x = x.double()
    return Stat((x * x).sum(0), x.shape[0])


def layer_stats(model: RefModel, cap: Capture, layer: int) -> tuple[dict[str, Stat], list[tuple[int, int]]]:
    """Statistics of every matrix of `layer` from one pass; routed experts over their own tokens only. Experts
    without tokens get no entry; they are returned as (layer, expert) pairs."""
    stats: dict[str, Stat] = {}
    for m in model.matrices.values():
        if m.layer == layer and m.kind != "expert":
            assert m.name in cap.inputs, f"{m.name}: the forward pass never used it"
            stats[m.name] = _stat(cap.inputs[m.name])
    unrouted = []
    if layer in cap.top:
        x, top = cap.router_in[layer], cap.top[layer]
        for e, mats in model.experts(layer).items():
            tok = torch.where((top == e).any(-1))[0]
            if len(tok) == 0:
                unrouted.append((layer, e))
                continue
            xe = x[tok]
            act = F.silu(F.linear(xe, mats["gate"].w)) * F.linear(xe, mats["up"].w)
            stats[mats["gate"].name] = stats[mats["up"].name] = _stat(xe)
            stats[mats["down"].name] = _stat(act)
    return stats, unrouted


def all_token_stats(model: RefModel, cap: Capture, layer: int, expert: int) -> dict[str, Stat]:
    """Policy all-tokens: an unrouted expert's gate/up over every token entering the MoE block, its down over
    its own activation of those tokens."""
    x = cap.router_in[layer]
    mats = model.experts(layer)[expert]
    act = F.silu(F.linear(x, mats["gate"].w)) * F.linear(x, mats["up"].w)
    s = _stat(x)
    return {mats["gate"].name: s, mats["up"].name: s, mats["down"].name: _stat(act)}


# -------------------------------------------------------------------------------------------------- masks


@dataclass
class Decision:
    """One matrix's pruning: the keys used (f64, [out, in]), the rule and the mask (True = pruned)."""

    name: str
    keys: torch.Tensor
    rule: str  # 'row' (count per row), 'matrix' (count per matrix), 'nm' (n per group of m)
    count: int  # per row / per matrix; n for nm
    group: int  # m for nm, else 0
    mask: torch.Tensor
    ratio: float
    key_kind: str  # 'wanda' | 'magnitude'


def wanda_keys(w: torch.Tensor, st: Stat) -> torch.Tensor:
    w64 = w.double()
    return w64 * w64 * st.sum_sq[None, :]


def magnitude_keys(w: torch.Tensor) -> torch.Tensor:
    w64 = w.double()
    return w64 * w64


def row_mask(keys: torch.Tensor, count: int) -> torch.Tensor:
    mask = torch.zeros_like(keys, dtype=torch.bool)
    if count > 0:
        idx = torch.sort(keys, dim=1, stable=True).indices[:, :count]
        mask.scatter_(1, idx, True)
    return mask


def matrix_mask(keys: torch.Tensor, count: int) -> torch.Tensor:
    mask = torch.zeros(keys.numel(), dtype=torch.bool)
    if count > 0:
        mask[torch.sort(keys.reshape(-1), stable=True).indices[:count]] = True
    return mask.view(keys.shape)


def nm_mask(keys: torch.Tensor, n: int, m: int) -> torch.Tensor:
    out, cols = keys.shape
    assert cols % m == 0, f"{cols} inputs are not a multiple of m={m}"
    g = keys.reshape(out, cols // m, m)
    idx = torch.sort(g, dim=2, stable=True).indices[:, :, :n]
    mask = torch.zeros_like(g, dtype=torch.bool)
    mask.scatter_(2, idx, True)
    return mask.view(out, cols)


def decide(name: str, keys: torch.Tensor, ratio: float, per_matrix: bool, nm: tuple[int, int] | None, key_kind: str) -> Decision:
    if nm is not None:
        return Decision(name, keys, "nm", nm[0], nm[1], nm_mask(keys, *nm), nm[0] / nm[1], key_kind)
    if per_matrix:
        k = math.floor(keys.numel() * ratio)
        return Decision(name, keys, "matrix", k, 0, matrix_mask(keys, k), ratio, key_kind)
    k = math.floor(keys.shape[1] * ratio)
    return Decision(name, keys, "row", k, 0, row_mask(keys, k), ratio, key_kind)


# ------------------------------------------------------------------------------------------------ pruning


@dataclass
class Result:
    decisions: dict[str, Decision] = field(default_factory=dict)
    unrouted: list[tuple[int, int]] = field(default_factory=list)  # (layer, expert) without tokens in its dense pass
    unrouted_stats: dict[str, Stat] = field(default_factory=dict)
    lod: dict[int, float] = field(default_factory=dict)
    ratios: dict[int, float] = field(default_factory=dict)  # per layer unstructured ratio used (OWL or uniform)
    stats: dict[str, Stat] = field(default_factory=dict)  # statistics each decision used (Wanda keys)


def in_scope(model: RefModel, scope: str) -> list[Matrix]:
    kinds = SCOPES[scope]
    return [m for m in model.matrices.values() if m.kind in kinds]


def owl_ratios(model: RefModel, windows: torch.Tensor, scope: str, target: float, m_owl: float, lam: float) -> tuple[dict[int, float], dict[int, float]]:
    """OWL pass 1 (dense forward): per-layer outlier ratio LOD_ℓ over the scores |W|·sqrt(Σx²/rows) of the layer's
    in-scope matrices that have input rows, and the layer ratios s_ℓ = S − (r_ℓ − mean r) (≤ 0 → 0.01)."""
    cap = model.forward(windows)
    mats = in_scope(model, scope)
    lod: dict[int, float] = {}
    for layer in sorted({m.layer for m in mats}):
        stats, _ = layer_stats(model, cap, layer)
        scores = []
        for m in mats:
            if m.layer == layer and m.name in stats and stats[m.name].rows > 0:
                st = stats[m.name]
                scores.append((m.w.double().abs() * (st.sum_sq / st.rows).sqrt()[None, :]).reshape(-1))
        if not scores:
            continue
        a = torch.cat(scores)
        lod[layer] = 100.0 * float((a > m_owl * a.mean()).sum()) / a.numel()
    lo, hi = min(lod.values()), max(lod.values())
    r = {L: ((v - lo) / (hi - lo) * 2 * lam if hi > lo else 0.0) for L, v in lod.items()}
    mean_r = sum(r.values()) / len(r)
    ratios = {}
    for L in lod:
        s = target - (r[L] - mean_r)
        ratios[L] = 0.01 if s <= 0 else s
    return lod, ratios


def prune(
    model: RefModel,
    windows: torch.Tensor | None,
    method: str,
    ratio: float,
    scope: str = "experts",
    nm: tuple[int, int] | None = None,
    unrouted: str = "all-tokens",
    owl_m: float = 5.0,
    owl_lambda: float = 0.08,
    forced: Callable[[str], torch.Tensor | None] | None = None,
) -> Result:
    """Stage 2 on `model` in place. `ratio` is the unstructured ratio s_u (ignored with nm: n/m).

    forced: when given, after layer ℓ's decisions are made its matrices receive forced(name) instead of our own
    mask (None: our own). The comparison tests pass the product's exported zeros here, so layer ℓ's reference
    decisions are computed from exactly the pruned earlier layers the product used."""
    assert method in ("wanda", "owl", "magnitude") and unrouted in ("all-tokens", "magnitude", "dense")
    res = Result()
    mats = in_scope(model, scope)

    def apply(m: Matrix, d: Decision | None) -> None:
        mask = forced(m.name) if forced else None
        if mask is None:
            mask = d.mask if d is not None else None
        if mask is not None:
            m.w[mask] = 0.0

    if method == "magnitude":
        for m in mats:
            d = decide(m.name, magnitude_keys(m.w), ratio, nm is None, nm, "magnitude")
            res.decisions[m.name] = d
        for m in mats:
            apply(m, res.decisions[m.name])
        res.ratios = {L: (nm[0] / nm[1] if nm else ratio) for L in sorted({m.layer for m in mats})}
        return res

    assert windows is not None
    layers = sorted({m.layer for m in mats})
    if method == "owl":
        assert nm is None, "OWL with N:M is not a rule here"
        res.lod, res.ratios = owl_ratios(model, windows, scope, ratio, owl_m, owl_lambda)
    for layer in layers:
        s_l = nm[0] / nm[1] if nm else res.ratios.get(layer, ratio)
        res.ratios.setdefault(layer, s_l)
        cap = model.forward(windows)
        stats, none = layer_stats(model, cap, layer)
        here = [m for m in mats if m.layer == layer]
        none_here = [(L, e) for (L, e) in none if any(m.kind == "expert" and m.expert == e for m in here)]
        res.unrouted += none_here
        for L, e in none_here:
            if unrouted == "all-tokens":
                extra = all_token_stats(model, cap, L, e)
                res.unrouted_stats.update(extra)
                stats.update(extra)
        for m in here:
            if m.name in stats:
                res.stats[m.name] = stats[m.name]
                res.decisions[m.name] = decide(m.name, wanda_keys(m.w, stats[m.name]), s_l, False, nm, "wanda")
            elif unrouted == "magnitude":
                res.decisions[m.name] = decide(m.name, magnitude_keys(m.w), s_l, False, nm, "magnitude")
            else:
                assert unrouted == "dense" and m.kind == "expert", m.name
        for m in here:
            apply(m, res.decisions.get(m.name))
    return res


def scope_params(model: RefModel, scope: str) -> int:
    return sum(m.w.numel() for m in in_scope(model, scope))


def scope_params_by_layer(model: RefModel, scope: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for m in in_scope(model, scope):
        out[m.layer] = out.get(m.layer, 0) + m.w.numel()
    return out
