"""Deterministic train / calibration / held-out split of the Austen novels.

Each novel is cut by character fraction: the last `heldout_frac` is held-out
evaluation text, the `calibration_frac` before it is calibration text, and only
the rest is used for training (tokenizer and model). Cuts are moved forward to
the next paragraph break so no slice starts mid-sentence.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_PATH = Path(__file__).resolve().parent / "settings.json"
SLICE_SEPARATOR = "\n\n\n"


def load_settings() -> dict:
    return json.loads(SETTINGS_PATH.read_text())


@dataclass(frozen=True)
class NovelSplit:
    name: str
    train: str
    calibration: str
    heldout: str


def _cut_at_paragraph(text: str, pos: int) -> int:
    """First paragraph start at or after `pos` (falls back to `pos`)."""
    found = text.find("\n\n", pos)
    if found < 0:
        return pos
    end = found
    while end < len(text) and text[end] == "\n":
        end += 1
    return end


def split_novel(name: str, text: str, heldout_frac: float, calibration_frac: float) -> NovelSplit:
    n = len(text)
    heldout_start = _cut_at_paragraph(text, int(n * (1.0 - heldout_frac)))
    calib_start = _cut_at_paragraph(text, int(n * (1.0 - heldout_frac - calibration_frac)))
    return NovelSplit(
        name=name,
        train=text[:calib_start].rstrip() + "\n",
        calibration=text[calib_start:heldout_start].strip() + "\n",
        heldout=text[heldout_start:].strip() + "\n",
    )


def load_splits(settings: dict | None = None) -> list[NovelSplit]:
    s = settings or load_settings()
    data = s["data"]
    data_dir = (REPO_ROOT / data["dir"]).resolve()
    out = []
    for name in data["novels"]:
        text = (data_dir / f"{name}.txt").read_text(encoding="utf-8").replace("\r\n", "\n")
        out.append(split_novel(name, text, data["heldout_frac"], data["calibration_frac"]))
    return out


def joined(splits: list[NovelSplit], part: str) -> str:
    return SLICE_SEPARATOR.join(getattr(sp, part).strip() for sp in splits) + "\n"


if __name__ == "__main__":
    for sp in load_splits():
        print(sp.name, len(sp.train), len(sp.calibration), len(sp.heldout))
