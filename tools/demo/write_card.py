"""Write public/demo/README.md (model card) from settings.json and metrics.json.

Run after train.py:  .venv/bin/python tools/demo/write_card.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import REPO_ROOT, load_settings  # noqa: E402

DEMO_DIR = REPO_ROOT / "public" / "demo"


def kib(path: Path) -> str:
    return f"{path.stat().st_size / 1024:.0f} KiB"


def expert_spread(model_dir: Path, layers: int, experts: int) -> list[float]:
    """Per layer: mean over experts of ||expert - mean expert|| / ||mean expert|| (w1, w2, w3 flattened)."""
    import torch
    from safetensors.torch import load_file

    sd: dict = {}
    for shard in sorted(model_dir.glob("model-*.safetensors")):
        sd.update(load_file(str(shard)))
    out = []
    for layer in range(layers):
        w = torch.stack([
            torch.cat([sd[f"model.layers.{layer}.block_sparse_moe.experts.{e}.{k}.weight"].float().flatten()
                       for k in ("w1", "w2", "w3")])
            for e in range(experts)
        ])
        mean = w.mean(0)
        out.append(((w - mean).norm(dim=1) / mean.norm()).mean().item())
    return out


def main() -> None:
    s = load_settings()
    m = json.loads((DEMO_DIR / "metrics.json").read_text())
    mc, tc, h = s["model"], s["train"], m["heldout"]
    model_dir = DEMO_DIR / "model"
    shards = sorted(model_dir.glob("model-*.safetensors"))
    shard_bytes = sum(p.stat().st_size for p in shards)
    tokens_per_step = tc["batch_size"] * tc["seq_len"]
    spread = ", ".join(f"{v:.2f}" for v in expert_spread(model_dir, mc["num_hidden_layers"], mc["num_local_experts"]))
    lines = [
        "# Austen-MoE demo model",
        "",
        "A tiny Mixtral-architecture mixture-of-experts language model trained from scratch on four",
        "Jane Austen novels. It is MoE Prune Studio's built-in demo checkpoint: small enough to ship with",
        "the app, but a real trained model, so pruning experts measurably changes its perplexity.",
        "",
        "## Architecture",
        "",
        f"- `MixtralForCausalLM`, {mc['num_hidden_layers']} layers, hidden {mc['hidden_size']}, "
        f"{mc['num_attention_heads']} attention heads / {mc['num_key_value_heads']} KV heads, RoPE theta {mc['rope_theta']:g}",
        f"- {mc['num_local_experts']} experts per layer, top-{mc['num_experts_per_tok']} routing, "
        f"expert intermediate size {mc['intermediate_size']} (SwiGLU), untied embeddings",
        f"- vocabulary {m['vocab_size']} (byte-level BPE, `tokenizer.json`), {m['parameters']:,} parameters",
        f"- stored as BF16 safetensors in {len(shards)} shards ({shard_bytes / 1e6:.1f} MB) with per-expert tensor",
        "  names (`model.layers.N.block_sparse_moe.experts.E.w1/w2/w3.weight`, router `...block_sparse_moe.gate.weight`)",
        "",
        "## Data and split",
        "",
        "Emma, Mansfield Park, Pride and Prejudice, Sense and Sensibility (Project Gutenberg texts, public domain).",
        f"Each novel is split by characters at paragraph breaks: the last {s['data']['heldout_frac']:.1%} is held-out",
        f"evaluation text (`heldout.txt`, {kib(DEMO_DIR / 'heldout.txt')}), the {s['data']['calibration_frac']:.1%} before it",
        f"is calibration text (`calibration.txt`, {kib(DEMO_DIR / 'calibration.txt')}); neither is seen by the tokenizer",
        f"or by training. Training uses the remaining text ({m['train_tokens']:,} tokens).",
        "",
        "## Training (CPU, seeded)",
        "",
        f"Sparse upcycling, seed {s['seed']}, AdamW (betas 0.9/0.95, weight decay {tc['weight_decay']}), grad clip",
        f"{tc['grad_clip']}, batch {tc['batch_size']} x {tc['seq_len']} tokens ({tokens_per_step} tokens/step), warmup then cosine to 10 %:",
        "",
        f"1. dense model of the same shape (one SwiGLU MLP per layer, `MistralForCausalLM`): {tc['dense_steps']} steps, lr {tc['dense_lr']}",
        f"2. upcycle: the dense MLP is copied into all {mc['num_local_experts']} experts plus Gaussian noise of "
        f"{tc['upcycle_noise']} x the weight's std; router initialised N(0, {tc['router_init_std']}^2)",
        f"3. MoE training: {tc['moe_steps']} steps, lr {tc['moe_lr']}, load-balancing loss coefficient {mc['router_aux_loss_coef']}",
        "",
        f"Training wall time {m['train_seconds']['total'] / 60:.1f} min (dense {m['train_seconds']['dense'] / 60:.1f} min, "
        f"MoE {m['train_seconds']['moe'] / 60:.1f} min) on 2 CPU threads of a shared machine (torch {m['torch']}).",
        "Because the experts share one parent they stay related, yet MoE training moved them apart: per layer, the",
        f"mean relative distance of an expert from the layer's mean expert is {spread} (it was 0.02 right after",
        "upcycling). That mix of similarity and specialisation is what expert pruning exploits.",
        "",
        "Reproduce from the repo root: `.venv/bin/python tools/demo/train.py && .venv/bin/python tools/demo/write_card.py`",
        "(all settings are in `tools/demo/settings.json`). The shipped weights came from that script run as two",
        "invocations, the dense phase and then `train.py --from-dense` for the MoE phase; this is equivalent because",
        "each phase has its own seeded generator. Wall times depend on the machine's load.",
        "",
        "## Evaluation",
        "",
        f"Held-out perplexity, first {h['windows']} non-overlapping windows of {h['seq_len']} tokens of `heldout.txt`",
        f"({h['scored_tokens']:,} scored tokens; each window's first token is context only), model loaded from this",
        "folder and run in float32:",
        "",
        "| model | perplexity |",
        "| --- | --- |",
        f"| Austen-MoE, 8 of 8 experts | {h['model_ppl']:.2f} |",
        f"| unigram baseline (training-split token frequencies, add-one) | {h['unigram_ppl']:.2f} |",
        "",
        "`tools/demo/eval_ppl.py` exposes `perplexity(model_dir, text, seq_len=128, max_windows=N)` for this protocol.",
        "",
        "## Licence",
        "",
        "The novels are in the public domain. The model weights and tokenizer are released with this project.",
        "",
    ]
    (DEMO_DIR / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
