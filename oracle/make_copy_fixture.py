"""Generate fixtures/mixtral-copies/: a tiny Mixtral checkpoint whose experts are exact copies of one MLP per layer.

    .venv/bin/python oracle/make_copy_fixture.py [--out fixtures/mixtral-copies]

Mixtral renormalises its top-k weights to sum to one, so when every expert of a layer computes the same function the
layer's output is that function, whatever the router picks. Pruning any K >= top-k experts must then leave the
logits unchanged, which oracle/tests/test_expert_prune_export.py checks. The router rows stay distinct and random
(so clustering has real distances to work with); every other tensor is filled like the committed fixtures.

It lives beside fixtures/models, not inside it: fixtures/models is the exact set oracle/make_fixtures.py produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixtral_variant import mixtral_model, write_variant  # noqa: E402

NAME = "mixtral-copies"
EXPERTS = 6  # more than the stock fixture's 4, so several K >= top-k can be tried


def make_copies_model():
    model, spec = mixtral_model(NAME, EXPERTS)
    with torch.no_grad():
        for layer in model.model.layers:
            experts = layer.mlp.experts  # fused in memory: gate_up_proj [E, 2I, H], down_proj [E, H, I]
            experts.gate_up_proj.copy_(experts.gate_up_proj[0].expand_as(experts.gate_up_proj))
            experts.down_proj.copy_(experts.down_proj[0].expand_as(experts.down_proj))
            router = layer.mlp.gate.weight
            assert torch.cdist(router, router).add(torch.eye(EXPERTS)).min() > 0, "router rows must be distinct"
    return model, spec


def main() -> None:
    write_variant(__doc__, NAME, make_copies_model, "copies.json", lambda spec: {
        "name": NAME,
        "notes": "every MoE layer's experts are exact copies of expert 0; router rows distinct and random; renormalised top-k",
        "num_experts": EXPERTS,
        "top_k": spec.kwargs["num_experts_per_tok"],
        "expert_count_field": spec.expert_count_field,
    })


if __name__ == "__main__":
    main()
