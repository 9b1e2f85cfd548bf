"""Oracle: zero-shot multiple-choice scores of the product (oracle/js/task-logliks.ts → PruneJob.taskAccuracy on the
WebGPU engine, every choice of every item in one padded pass) against torch + transformers computing
lm-evaluation-harness's rules on its own, one unpadded sequence per choice:

- trailing spaces of the context move to the front of the choice; whole = tok(context + choice), ctx = tok(context)
  with the tokenizer's default special tokens (transformers' AutoTokenizer); the choice's tokens are whole[len(ctx):];
- the model reads (ctx + choice)[-(W+1):][:-1]; the log-likelihood is the sum of the choice tokens' log-probabilities
  at the last positions;
- acc: argmax (lowest index on ties) is the answer; acc_norm: the same after dividing by len(choice) in characters;
  stderr sqrt(p(1-p)/(n-1)).

Every fixture family (Arctic through the small torch reference of test_forward_reference.py); per-item
log-likelihoods within 1e-4 relative. The items include contexts with trailing spaces, single- and multi-token
choices, a tie (identical choices), items longer than the window and an empty context.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_forward_reference import FIXTURES, REPO, arctic_forward, fixture_dirs, fixture_result, load_tensors_f32, transformers_model_f32

WINDOW = 32
LL_RTOL = 1e-4

ITEMS = [
    # Trailing space: moves to the choices; the choices are single tokens ("▁a", "▁e", "▁i" are in the vocabulary).
    {"context": "she said it was the ", "choices": ["a", "e", "i"], "answer": 1},
    # Multi-token choices, context without trailing space.
    {"context": "the house and the garden were", "choices": [" quite still", " on fire tonight", " green"], "answer": 0},
    # Identical choices: equal log-likelihoods, the lower index wins (acc and acc_norm).
    {"context": "and so ", "choices": ["on", "on", "forth"], "answer": 1},
    # Longer than the window: the oldest context tokens are dropped.
    {"context": "it is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of ", "choices": ["a wife", "a horse", "tea"], "answer": 0},
    {"context": "emma woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite ", "choices": ["some of the best blessings of existence", "nothing"], "answer": 0, "id": "long-choice"},
    # Two trailing spaces and a newline.
    {"context": "question: what is it?\nanswer:  ", "choices": ["yes", "no"], "answer": 1},
    # Empty context: lm-eval conditions on its prefix token (BOS, else EOS) and encodes the choice alone.
    {"context": "", "choices": ["the house", "and so on", "a wife"], "answer": 2},
]


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("task") / "oracle-task.jsonl"
    p.write_text("".join(json.dumps(it) + "\n" for it in ITEMS), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def js_results(task_file: Path) -> dict:
    dirs = [str(d.relative_to(REPO)) for d in fixture_dirs()]
    assert dirs, "no fixture checkpoints under fixtures/models"
    npx = shutil.which("npx") or "npx"
    run = subprocess.run(
        [npx, "tsx", "oracle/js/task-logliks.ts", "--task", str(task_file), "--window", str(WINDOW), *dirs],
        cwd=REPO, capture_output=True, text=True, timeout=1500, env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout)["results"]


def encode_pair(tok, context: str, choice: str) -> tuple[list[int], list[int]]:
    """lm-eval's HFLM._encode_pair, with the tokenizer's own special-token rule; an empty context is lm-eval's
    loglikelihood case `context == ""`: [prefix_token_id] (bos_token_id, else eos_token_id) and tok_encode(choice)."""
    if context == "":
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        return [prefix], tok(choice, add_special_tokens=False)["input_ids"]
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        choice = context[-n_spaces:] + choice
        context = context[:-n_spaces]
    whole = tok(context + choice)["input_ids"]
    ctx = tok(context)["input_ids"]
    return ctx, whole[len(ctx):]


def torch_logliks(d: Path) -> tuple[list[list[float]], list[list[int]], int]:
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(d))
    cfg = json.loads((d / "config.json").read_text())
    if cfg["model_type"] == "arctic":
        w = load_tensors_f32(d)
        run = lambda ids: arctic_forward(cfg, w, ids)[0]  # noqa: E731
    else:
        model = transformers_model_f32(d)
        run = lambda ids: model(input_ids=ids).logits  # noqa: E731
    logliks, tokens, truncated = [], [], 0
    with torch.no_grad():
        for it in ITEMS:
            row, counts, cut = [], [], False
            for choice in it["choices"]:
                ctx, cont = encode_pair(tok, it["context"], choice)
                assert ctx and cont
                seq = (ctx + cont)[-(WINDOW + 1):]
                cut |= len(seq) < len(ctx) + len(cont)
                inp = torch.tensor([seq[:-1]])
                logp = F.log_softmax(run(inp)[0].double(), dim=-1)
                n = len(cont)
                pos = logp[len(seq) - 1 - n : len(seq) - 1]
                row.append(float(pos.gather(1, torch.tensor(cont).unsqueeze(1)).sum()))
                counts.append(n)
            logliks.append(row)
            tokens.append(counts)
            truncated += cut
    return logliks, tokens, truncated


def metrics(logliks: list[list[float]]) -> dict:
    n = len(ITEMS)
    acc = sum(int(np.argmax(ll)) == it["answer"] for ll, it in zip(logliks, ITEMS)) / n
    norm = sum(int(np.argmax(np.array(ll) / np.array([float(len(c)) for c in it["choices"]]))) == it["answer"] for ll, it in zip(logliks, ITEMS)) / n
    se = lambda p: math.sqrt(p * (1 - p) / (n - 1))  # noqa: E731
    return {"acc": acc, "acc_norm": norm, "acc_stderr": se(acc), "acc_norm_stderr": se(norm)}


def test_items_cover_the_rules() -> None:
    """The item set exercises what the issue asks for on the fixtures' tokenizer (checked once, on mixtral's)."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(FIXTURES / "mixtral"))
    pairs = [encode_pair(tok, it["context"], c) for it in ITEMS for c in it["choices"]]
    assert any(len(cont) == 1 for _, cont in pairs) and any(len(cont) > 3 for _, cont in pairs)
    assert any(len(ctx) + len(cont) > WINDOW + 1 for ctx, cont in pairs)
    assert any(it["context"] != it["context"].rstrip() for it in ITEMS)
    assert tok("a")["input_ids"][0] == tok.bos_token_id  # the special-token rule adds BOS
    assert any(it["context"] == "" for it in ITEMS) and encode_pair(tok, "", "a wife")[0] == [tok.bos_token_id]


@pytest.mark.parametrize("fixture", [d.name for d in fixture_dirs()])
def test_task_scores_match_torch(fixture: str, js_results: dict) -> None:
    d, ours = fixture_result(js_results, fixture)
    ref, tokens, truncated = torch_logliks(d)
    assert ours["tokens"] == tokens, f"{fixture}: scored token counts differ"
    assert ours["truncated"] == truncated and truncated >= 2
    for i, (got_row, ref_row) in enumerate(zip(ours["logliks"], ref)):
        for c, (got, want) in enumerate(zip(got_row, ref_row)):
            assert abs(got - want) <= LL_RTOL * abs(want), f"{fixture}: item {i} choice {c}: {got} vs {want}"
    m = metrics(ref)
    assert ours["n"] == len(ITEMS)
    for k, v in m.items():
        assert ours[k] == pytest.approx(v, abs=1e-12), f"{fixture}: {k} {ours[k]} vs {v}"
    # The tie (identical choices 0 and 1 of item 2) goes to index 0, which is not the answer in either metric.
    assert ours["logliks"][2][0] == ours["logliks"][2][1]
