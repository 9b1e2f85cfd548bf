"""Does *which* experts are kept matter on the demo model? Held-out perplexity after keeping K of 8 experts per
layer, chosen by STUN (the kept lists of `moe-prune prune --demo --experts-per-layer K`'s prune-report.json) versus
naive choices: the first K experts, and K random experts (3 seeds). Each choice is applied to the loaded model in
torch (router rows and experts sliced), so only the choice differs.

Usage (repo root): .venv/bin/python tools/demo/compare_choices.py <report-K6.json> <report-K4.json> <report-K2.json>
"""
import copy
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_ppl import load_model_f32, load_tokenizer, model_perplexity, window_ids  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "public" / "demo" / "model"


def keep(model: torch.nn.Module, kept: dict[int, list[int]]) -> torch.nn.Module:
    m = copy.deepcopy(model)
    with torch.no_grad():
        for layer, experts in kept.items():
            mlp = m.model.layers[layer].mlp
            idx = torch.tensor(experts)
            n = mlp.gate.weight.shape[0]
            mlp.experts.gate_up_proj = torch.nn.Parameter(mlp.experts.gate_up_proj[idx].contiguous())
            mlp.experts.down_proj = torch.nn.Parameter(mlp.experts.down_proj[idx].contiguous())
            mlp.gate.weight = torch.nn.Parameter(mlp.gate.weight[idx].contiguous())
            for mod in mlp.modules():
                if getattr(mod, "num_experts", None) == n:
                    mod.num_experts = len(experts)
    return m


def main() -> None:
    model = load_model_f32(MODEL)
    layers = len(model.model.layers)
    windows = window_ids(load_tokenizer(MODEL), (ROOT / "public" / "demo" / "heldout.txt").read_text(), 128, 128)
    rows = []
    for path in sys.argv[1:]:
        rep = json.loads(Path(path).read_text())
        k = rep["expertsPerLayer"]["after"]
        stun = {int(l): v for l, v in rep["keptExperts"].items()}
        first = {l: list(range(k)) for l in range(layers)}
        rand = []
        for seed in range(3):
            r = random.Random(seed)
            rand.append(model_perplexity(keep(model, {l: sorted(r.sample(range(8), k)) for l in range(layers)}), windows))
        rows.append((k, model_perplexity(keep(model, stun), windows), model_perplexity(keep(model, first), windows), sum(rand) / 3, min(rand), max(rand)))
    print("| experts kept | STUN | first K | random K (mean of 3; min–max) |")
    print("|---|---|---|---|")
    for k, s, f, rm, lo, hi in rows:
        print(f"| {k} of 8 | {s:.2f} | {f:.2f} | {rm:.2f} ({lo:.2f}–{hi:.2f}) |")


if __name__ == "__main__":
    main()
