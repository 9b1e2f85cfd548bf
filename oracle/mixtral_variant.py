"""Shared by the generators of the Mixtral variant fixtures beside fixtures/models (make_copy_fixture.py,
make_parent_fixture.py): the stock Mixtral spec with another expert count, and the one way such a folder is written
(weights, tokenizer, a JSON note of how its experts were built), so every variant stays loadable like the stock ones."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Callable

import torch

from fixture_specs import FAMILIES
from make_fixtures import build_tokenizer, fresh_dir, make_model, report, save_tokenizer, save_transformers, write_json

REPO = Path(__file__).resolve().parent.parent


def mixtral_model(name: str, experts: int):
    """The stock Mixtral fixture model, renamed, with `experts` experts per MoE layer, as make_model draws it."""
    spec = next(f for f in FAMILIES if f.name == "mixtral")
    spec = dataclasses.replace(spec, name=name, kwargs=dict(spec.kwargs, num_local_experts=experts))
    return make_model(spec), spec


def write_variant(doc: str, name: str, build: Callable[[], tuple], note_file: str, note: Callable[[object], dict]) -> None:
    """Command-line entry: `--out` (default fixtures/<name>), deterministic torch, then the model `build` returns,
    the tokenizer and `note(spec)` as <note_file>, replacing whatever the folder held."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "fixtures" / name))
    out = Path(ap.parse_args().out)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    torch.use_deterministic_algorithms(True)
    model, spec = build()
    fresh_dir(out)
    save_transformers(model, out)
    save_tokenizer(build_tokenizer(), out)
    write_json(out / note_file, note(spec))
    report(out)
