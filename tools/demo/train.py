"""Train the built-in demo MoE from scratch on the Austen novels (CPU, seeded).

Pipeline: split text (data.py) -> byte-level BPE tokenizer on the training split
-> dense Mistral-shaped model -> sparse upcycling (dense MLP copied into every
expert with small noise, small random router) -> continue training as Mixtral
-> save BF16 shards + tokenizer to public/demo/model, calibration/held-out
texts to public/demo/, and perplexities to public/demo/metrics.json.

Run from the repo root:  .venv/bin/python tools/demo/train.py
(`--bench N` only times N dense and N MoE steps and exits; `--from-dense` skips
the dense phase and reuses tools/demo/.work/dense from an earlier run, which
gives the same result because each phase has its own seeded generator.)
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import MistralConfig, MistralForCausalLM, MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import REPO_ROOT, joined, load_settings, load_splits  # noqa: E402
from eval_ppl import model_perplexity, unigram_counts, unigram_perplexity, window_ids  # noqa: E402

OUT_DIR = REPO_ROOT / "public" / "demo"
MODEL_DIR = OUT_DIR / "model"
WORK_DIR = Path(__file__).resolve().parent / ".work"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_tokenizer(texts: list[str], cfg: dict) -> Tokenizer:
    # Standard GPT-2 style byte-level BPE so JS tokenizer libraries reproduce it exactly.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg["vocab_size"],
        min_frequency=cfg["min_frequency"],
        special_tokens=cfg["special_tokens"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, cfg: dict, out: Path) -> None:
    unk, bos, eos = cfg["special_tokens"]
    # No clean-up of spaces on decode: keeps decode(encode(text)) == text in JS tokenizers too.
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=unk, bos_token=bos, eos_token=eos,
                                   clean_up_tokenization_spaces=False)
    fast.model_max_length = 512
    fast.save_pretrained(str(out))


def model_kwargs(cfg: dict, vocab_size: int, special_ids: list[int]) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"],
        max_position_embeddings=cfg["max_position_embeddings"],
        rope_parameters={"rope_type": "default", "rope_theta": cfg["rope_theta"]},
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=special_ids[1],
        eos_token_id=special_ids[2],
    )


def upcycle(dense: MistralForCausalLM, moe: MixtralForCausalLM, noise: float, router_std: float, gen: torch.Generator) -> None:
    """Copy shared weights, then every dense MLP into all experts (+ relative noise)."""
    dense_sd = dense.state_dict()
    shared = {k: v for k, v in dense_sd.items() if ".mlp." not in k}
    missing, unexpected = moe.load_state_dict(shared, strict=False)
    assert not unexpected, unexpected
    assert all(".mlp." in k for k in missing), missing
    with torch.no_grad():
        for i, layer in enumerate(moe.model.layers):
            mlp = dense.model.layers[i].mlp
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0)
            down = mlp.down_proj.weight
            experts = layer.mlp.experts
            for e in range(experts.num_experts):
                experts.gate_up_proj[e].copy_(gate_up + noise * gate_up.std() * torch.randn(gate_up.shape, generator=gen))
                experts.down_proj[e].copy_(down + noise * down.std() * torch.randn(down.shape, generator=gen))
            layer.mlp.gate.weight.copy_(router_std * torch.randn(layer.mlp.gate.weight.shape, generator=gen))


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train_phase(model, name: str, stream: torch.Tensor, steps: int, lr: float, warmup: int, tc: dict,
                gen: torch.Generator, val: torch.Tensor) -> list[dict]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=tc["weight_decay"])
    seq, bs = tc["seq_len"], tc["batch_size"]
    history = []
    t0 = time.time()
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        starts = torch.randint(0, stream.numel() - seq - 1, (bs,), generator=gen)
        batch = torch.stack([stream[s : s + seq] for s in starts.tolist()])
        out = model(input_ids=batch, labels=batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        if (step + 1) % tc["log_every"] == 0 or step + 1 == steps:
            elapsed = time.time() - t0
            entry = {"phase": name, "step": step + 1, "loss": round(out.loss.item(), 4), "elapsed_s": round(elapsed, 1)}
            if (step + 1) % (tc["log_every"] * 8) == 0 or step + 1 == steps:
                entry["val_ppl"] = round(model_perplexity(model, val), 3)
                model.train()
            history.append(entry)
            log(f"{name} step {step + 1}/{steps} loss {entry['loss']:.4f} "
                f"{(step + 1) / elapsed:.2f} steps/s" + (f" val_ppl {entry['val_ppl']}" if "val_ppl" in entry else ""))
    return history


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", type=int, default=0, help="time N steps of each phase and exit")
    ap.add_argument("--from-dense", action="store_true", help="reuse the dense phase saved in tools/demo/.work/dense")
    args = ap.parse_args()

    s = load_settings()
    tc, mc = s["train"], s["model"]
    torch.set_num_threads(tc["threads"])
    torch.manual_seed(s["seed"])
    # One generator per phase so a phase can be resumed without replaying the ones before it.
    dense_gen = torch.Generator().manual_seed(s["seed"])
    moe_gen = torch.Generator().manual_seed(s["seed"] + 1)

    splits = load_splits(s)
    train_texts = [sp.train for sp in splits]
    tok = train_tokenizer(train_texts, s["tokenizer"])
    special_ids = [tok.token_to_id(t) for t in s["tokenizer"]["special_tokens"]]
    eos = special_ids[2]
    stream_ids: list[int] = []
    for text in train_texts:
        stream_ids += tok.encode(text, add_special_tokens=False).ids + [eos]
    stream = torch.tensor(stream_ids, dtype=torch.long)
    calib_text, heldout_text = joined(splits, "calibration"), joined(splits, "heldout")
    # Validation during training uses calibration text, never the held-out text.
    val = window_ids(tok, calib_text, s["eval"]["seq_len"], 32)
    log(f"tokenizer vocab {tok.get_vocab_size()}, train tokens {stream.numel()}")

    kw = model_kwargs(mc, tok.get_vocab_size(), special_ids)
    dense = MistralForCausalLM(MistralConfig(**kw))
    moe_cfg = MixtralConfig(**kw, num_local_experts=mc["num_local_experts"], num_experts_per_tok=mc["num_experts_per_tok"],
                            router_aux_loss_coef=mc["router_aux_loss_coef"], output_router_logits=True)

    if args.bench:
        for name, model in (("dense", dense), ("moe", MixtralForCausalLM(moe_cfg))):
            t0 = time.time()
            train_phase(model, name, stream, args.bench, 1e-3, 1, {**tc, "log_every": 10**9}, dense_gen, val)
            log(f"bench {name}: {args.bench / (time.time() - t0):.2f} steps/s")
        return

    dense_dir = WORK_DIR / "dense"
    if args.from_dense:
        dense.load_state_dict(MistralForCausalLM.from_pretrained(str(dense_dir)).state_dict())
        history = json.loads((dense_dir / "history.json").read_text())
        log(f"dense phase loaded from {dense_dir.relative_to(REPO_ROOT)}")
    else:
        history = train_phase(dense, "dense", stream, tc["dense_steps"], tc["dense_lr"], tc["dense_warmup"], tc,
                              dense_gen, val)
        dense.save_pretrained(str(dense_dir))
        (dense_dir / "history.json").write_text(json.dumps(history))
    dense_seconds = history[-1]["elapsed_s"]
    dense_val = model_perplexity(dense, val)

    moe = MixtralForCausalLM(moe_cfg)
    upcycle(dense, moe, tc["upcycle_noise"], tc["router_init_std"], moe_gen)
    upcycled_val = model_perplexity(moe, val)
    log(f"dense val ppl {dense_val:.3f}; upcycled (untrained router) val ppl {upcycled_val:.3f}")
    moe_history = train_phase(moe, "moe", stream, tc["moe_steps"], tc["moe_lr"], tc["moe_warmup"], tc, moe_gen, val)
    history += moe_history
    moe_seconds = moe_history[-1]["elapsed_s"]

    # Export: BF16 shards with per-expert names, tokenizer, texts.
    if MODEL_DIR.exists():
        shutil.rmtree(MODEL_DIR)
    moe.config.output_router_logits = False
    moe.to(torch.bfloat16).save_pretrained(str(MODEL_DIR), max_shard_size=s["export"]["max_shard_size"])
    save_tokenizer(tok, s["tokenizer"], MODEL_DIR)
    (OUT_DIR / "calibration.txt").write_text(calib_text)
    (OUT_DIR / "heldout.txt").write_text(heldout_text)

    # Evaluate exactly what ships: reload from disk, f32 compute.
    from eval_ppl import load_model_f32

    ev = s["eval"]
    windows = window_ids(tok, heldout_text, ev["seq_len"], ev["max_windows"])
    model_ppl = model_perplexity(load_model_f32(MODEL_DIR), windows)
    uni_ppl = unigram_perplexity(unigram_counts(tok, train_texts), windows)
    log(f"held-out ppl: model {model_ppl:.3f}, unigram {uni_ppl:.3f}")

    metrics = {
        "heldout": {"file": "heldout.txt", "seq_len": ev["seq_len"], "max_windows": ev["max_windows"],
                    "windows": int(windows.shape[0]), "scored_tokens": int(windows.shape[0] * (ev["seq_len"] - 1)),
                    "model_ppl": round(model_ppl, 4), "unigram_ppl": round(uni_ppl, 4)},
        "calibration_ppl_during_training": {"dense": round(dense_val, 4), "upcycled_untrained": round(upcycled_val, 4)},
        "train_tokens": int(stream.numel()),
        "vocab_size": tok.get_vocab_size(),
        "parameters": sum(p.numel() for p in moe.parameters()),
        "train_seconds": {"dense": dense_seconds, "moe": moe_seconds, "total": round(dense_seconds + moe_seconds, 1)},
        "torch": torch.__version__,
        "history": history,
    }
    (OUT_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log("done")


if __name__ == "__main__":
    main()
