"""Perplexity of a causal LM on plain text, plus a unigram baseline.

Protocol (shared with the product's oracle tests): tokenize the whole text with
the model's tokenizer.json (no special tokens), cut it into non-overlapping
windows of `seq_len` tokens, keep the first `max_windows` full windows, and
score every token of a window except its first (each window starts without
context). Compute runs in float32 whatever the stored dtype.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from tokenizers import Tokenizer


def load_tokenizer(model_dir: str | Path) -> Tokenizer:
    return Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))


def window_ids(tokenizer: Tokenizer, text: str, seq_len: int = 128, max_windows: int | None = None) -> torch.Tensor:
    """[n_windows, seq_len] int64 token ids; the trailing partial window is dropped."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    n = len(ids) // seq_len
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"text has {len(ids)} tokens, fewer than one window of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


@torch.no_grad()
def model_perplexity(model: torch.nn.Module, windows: torch.Tensor, batch_size: int = 16) -> float:
    """exp(mean next-token NLL) over all windows, positions 1..seq_len-1."""
    model.eval()
    total_nll = 0.0
    total_count = 0
    for start in range(0, windows.shape[0], batch_size):
        batch = windows[start : start + batch_size]
        logits = model(input_ids=batch).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll = -logp.gather(-1, batch[:, 1:, None]).squeeze(-1)
        total_nll += nll.double().sum().item()
        total_count += nll.numel()
    return math.exp(total_nll / total_count)


def load_model_f32(model_dir: str | Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)


def perplexity(model_dir: str | Path, text: str, seq_len: int = 128, max_windows: int | None = 128) -> float:
    """Perplexity of the checkpoint in `model_dir` (weights + tokenizer.json) on `text`."""
    tokenizer = load_tokenizer(model_dir)
    windows = window_ids(tokenizer, text, seq_len, max_windows)
    return model_perplexity(load_model_f32(model_dir), windows)


def unigram_counts(tokenizer: Tokenizer, train_texts: list[str]) -> torch.Tensor:
    counts = torch.zeros(tokenizer.get_vocab_size(), dtype=torch.float64)
    for text in train_texts:
        ids = torch.tensor(tokenizer.encode(text, add_special_tokens=False).ids, dtype=torch.long)
        counts += torch.bincount(ids, minlength=counts.numel()).double()
    return counts


def unigram_perplexity(counts: torch.Tensor, windows: torch.Tensor) -> float:
    """Add-one smoothed unigram perplexity on exactly the tokens model_perplexity scores."""
    probs = (counts + 1.0) / (counts.sum() + counts.numel())
    targets = windows[:, 1:].reshape(-1)
    return math.exp(-torch.log(probs[targets]).mean().item())
