"""The demo's multiple-choice task (public/demo/task.jsonl): pick the true next sentence of an Austen passage.

Built only from the held-out slice of each novel (tools/demo/data.py: the last 4.5 %, which neither the tokenizer
nor the model saw in training). For each item a paragraph of the held-out slice with at least two sentences is
chosen; the context is the sentences before a chosen one (at most MAX_CONTEXT characters, whole sentences, ending
with a space), the answer is that sentence, and the three distractors are sentences within 20 % of its length drawn from
other paragraphs of the same novel's held-out slice. Choice order is shuffled. Everything is drawn from
random.Random(SEED), so the file is the same on every run:

    .venv/bin/python tools/demo/make_task.py        (or python3: it needs only the standard library)
"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import REPO_ROOT, load_splits  # noqa: E402

SEED = 20250
ITEMS_PER_NOVEL = 10
MAX_CONTEXT = 200
MIN_SENTENCE, MAX_SENTENCE = 25, 160
OUT = REPO_ROOT / "public" / "demo" / "task.jsonl"

# A sentence ends at . ! or ? (optionally followed by closing quotes) before whitespace and a capital or an opening quote.
SENTENCE_END = re.compile(r'(?<=[.!?])["\u201d\u2019\']?\s+(?=["\u201c\u2018\']?[A-Z])')


ABBREVIATION = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Col|Capt|Sir)\.$")


def sentences(paragraph: str) -> list[str]:
    flat = " ".join(paragraph.split())
    out, start = [], 0
    for m in SENTENCE_END.finditer(flat):
        out.append(flat[start : m.end()].strip())
        start = m.end()
    out.append(flat[start:].strip())
    # "Mr. Knightley" is one sentence: a piece ending in a title's abbreviation joins the next one.
    merged: list[str] = []
    for s in out:
        if merged and ABBREVIATION.search(merged[-1]):
            merged[-1] += " " + s
        else:
            merged.append(s)
    return [s for s in merged if s]


def novel_items(name: str, heldout: str, rng: random.Random) -> list[dict]:
    paragraphs = [sentences(p) for p in re.split(r"\n\s*\n", heldout) if p.strip()]
    pool = [(pi, s) for pi, ss in enumerate(paragraphs) for s in ss if MIN_SENTENCE <= len(s) <= MAX_SENTENCE]
    candidates = [(pi, si) for pi, ss in enumerate(paragraphs) for si in range(1, len(ss)) if MIN_SENTENCE <= len(ss[si]) <= MAX_SENTENCE]
    rng.shuffle(candidates)
    items, used = [], set()
    for pi, si in candidates:
        if len(items) == ITEMS_PER_NOVEL:
            break
        if pi in used:
            continue
        ctx: list[str] = []
        for s in reversed(paragraphs[pi][:si]):
            if len(" ".join([s, *ctx])) > MAX_CONTEXT:
                break
            ctx.insert(0, s)
        if len(ctx) < 1:
            continue
        answer = paragraphs[pi][si]
        # Distractors: other paragraphs, within 20 % of the answer's length (so length alone does not give it away), all different.
        others = [s for p, s in pool if p != pi and 0.8 * len(answer) <= len(s) <= 1.25 * len(answer) and s != answer]
        if len(set(others)) < 3:
            continue
        distractors = rng.sample(sorted(set(others)), 3)
        choices = [answer, *distractors]
        rng.shuffle(choices)
        used.add(pi)
        items.append({"id": f"{name}-{len(items) + 1}", "context": " ".join(ctx) + " ", "choices": choices, "answer": choices.index(answer)})
    if len(items) < ITEMS_PER_NOVEL:
        raise SystemExit(f"{name}: only {len(items)} items could be made")
    return items


def main() -> None:
    rng = random.Random(SEED)
    items = [it for sp in load_splits() for it in novel_items(sp.name, sp.heldout, rng)]
    OUT.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO_ROOT)}: {len(items)} items")


if __name__ == "__main__":
    main()
