"""Generate fixtures/mixtral-parents/: a tiny Mixtral checkpoint whose 8 experts per layer are noisy copies of 4 parents.

    .venv/bin/python oracle/make_parent_fixture.py [--out fixtures/mixtral-parents]

Expert e is a child of parent e // 2: its gate, up and down weights are the parent's plus independent noise of 5 % of
the parent's scale, so the two children of a parent compute nearly the same function and children of different
parents do not. Expert-output similarity must therefore pair the children of each parent (src/prune/experts tests).

Routing is built so that co-activation can see the parents too. Each child's router row is its parent's row plus
small noise; with top-2 routing a token's two largest logits are then (almost always) the two children of the parent
whose row best matches it, so the children of one parent are chosen together. With independent random router rows the
top-2 pairs would be arbitrary and co-activation could not recover anything by construction. The four parent rows
are random and of equal norm, so tokens spread over all parents (every expert is routed to).

It lives beside fixtures/models (as fixtures/mixtral-copies does): fixtures/models is the exact set make_fixtures.py
produces. parents.json records which parent each expert came from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixtral_variant import mixtral_model, write_variant  # noqa: E402

NAME = "mixtral-parents"
PARENTS = 4
CHILDREN = 2
EXPERTS = PARENTS * CHILDREN
WEIGHT_NOISE = 0.05
ROUTER_NOISE = 0.05
SEED = 9


def make_parents_model():
    model, spec = mixtral_model(NAME, EXPERTS)
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for layer in model.model.layers:
            experts = layer.mlp.experts  # fused in memory: gate_up_proj [E, 2I, H], down_proj [E, H, I]
            for w in (experts.gate_up_proj, experts.down_proj):
                parents = w[::CHILDREN][:PARENTS].clone()  # experts 0, 2, 4, 6 as drawn by make_model
                scale = parents.std()
                for e in range(EXPERTS):
                    w[e].copy_(parents[e // CHILDREN] + WEIGHT_NOISE * scale * torch.randn(w[e].shape, generator=g))
            router = layer.mlp.gate.weight  # [E, H]
            rows = torch.randn(PARENTS, router.shape[1], generator=g)
            rows = rows / rows.norm(dim=1, keepdim=True) * router.norm(dim=1).mean() * 4
            for e in range(EXPERTS):
                p = rows[e // CHILDREN]
                router[e].copy_(p + ROUTER_NOISE * p.norm() / p.numel() ** 0.5 * torch.randn(p.shape, generator=g))
    return model, spec


def main() -> None:
    write_variant(__doc__, NAME, make_parents_model, "parents.json", lambda spec: {
        "name": NAME,
        "notes": f"expert e = parent e // {CHILDREN} + {WEIGHT_NOISE:g} x scale noise; router rows = parent row + noise (children co-activate); renormalised top-k",
        "num_experts": EXPERTS,
        "top_k": spec.kwargs["num_experts_per_tok"],
        "parent_of_expert": [e // CHILDREN for e in range(EXPERTS)],
    })


if __name__ == "__main__":
    main()
