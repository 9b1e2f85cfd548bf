"""The committed malformed/accepted safetensors cases agree with a fresh run of the reference reader, and our
TypeScript reader (src/formats/safetensors/reader.ts) makes the same accept/reject decision on every file."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "fixtures" / "safetensors-cases"
sys.path.insert(0, str(REPO / "oracle"))

import make_safetensors_cases as gen  # noqa: E402

# Our reader rejects every duplicate tensor name (the format forbids them); the Rust reader keeps the last JSON
# entry, so it silently accepts a duplicate whose entries are identical. This is the one intended disagreement.
DUPLICATE_SAME = "reject_duplicate_name_same_offsets.safetensors"

# Our codes are finer than the Rust variants for what serde reports as one JSON error.
TS_CODES_FOR_RUST_KIND = {
    "HeaderTooSmall": {"HeaderTooSmall"},
    "HeaderTooLarge": {"HeaderTooLarge"},
    "InvalidHeaderLength": {"InvalidHeaderLength"},
    "InvalidHeader": {"InvalidHeader"},
    "InvalidHeaderDeserialization": {"InvalidHeaderDeserialization", "UnknownDtype", "InvalidShape", "InvalidMetadata"},
    "InvalidOffset": {"InvalidOffset", "DuplicateTensor"},
    "TensorInvalidInfo": {"TensorInvalidInfo"},
    "MisalignedSlice": {"MisalignedSlice"},
    "ValidationOverflow": {"ValidationOverflow"},
    "MetadataIncompleteBuffer": {"MetadataIncompleteBuffer"},
}


@pytest.fixture(scope="module")
def committed() -> list[dict]:
    return json.loads((CASES_DIR / "cases.json").read_text())


def test_committed_files_are_what_the_generator_builds(committed: list[dict]) -> None:
    cases = gen.build_cases()
    assert [f"{c.name}.safetensors" for c in cases] == [row["file"] for row in committed]
    on_disk = sorted(p.name for p in CASES_DIR.glob("*.safetensors"))
    assert on_disk == sorted(row["file"] for row in committed)
    for c in cases:
        assert (CASES_DIR / f"{c.name}.safetensors").read_bytes() == c.data, c.name


def without_tensor_name(message: str) -> str:
    # With two tensors on the same offsets the Rust reader names either one (hash-map order), so drop the name.
    return re.sub(r"tensor `[^`]*`", "tensor `?`", message)


def test_cases_json_matches_a_fresh_python_run(committed: list[dict]) -> None:
    for row in committed:
        accepts, err = gen.python_decision(CASES_DIR / row["file"])
        assert accepts == row["python_accepts"], row["file"]
        assert without_tensor_name(err) == without_tensor_name(row["python_error"]), row["file"]
        assert gen.rust_error_kind(err) == row["python_error_kind"], row["file"]


def test_reference_reader_follows_the_spec_except_identical_duplicates(committed: list[dict]) -> None:
    differing = [row["file"] for row in committed if row["python_accepts"] != row["accept"]]
    assert differing == [DUPLICATE_SAME]
    # every rule is exercised at least once each way
    assert sum(row["accept"] for row in committed) >= 10
    assert sum(not row["accept"] for row in committed) >= 25
    kinds = {row["python_error_kind"] for row in committed if row["python_error_kind"]}
    assert kinds == set(TS_CODES_FOR_RUST_KIND)


@pytest.fixture(scope="module")
def ts_decisions() -> dict[str, dict]:
    tsx = REPO / "node_modules" / ".bin" / "tsx"
    assert tsx.exists(), "node_modules/.bin/tsx is missing: run npm ci"
    proc = subprocess.run(
        [str(tsx), "oracle/js/reader-decisions.ts", str(CASES_DIR)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ts_reader_decides_like_the_reference_reader(committed: list[dict], ts_decisions: dict[str, dict]) -> None:
    assert sorted(ts_decisions) == sorted(row["file"] for row in committed)
    mismatches = []
    for row in committed:
        ts = ts_decisions[row["file"]]
        if row["file"] == DUPLICATE_SAME:
            continue
        if ts["accepts"] != row["python_accepts"]:
            mismatches.append(f"{row['file']}: reference {'accepts' if row['python_accepts'] else 'rejects'}, ours {ts}")
        elif not ts["accepts"] and ts["code"] not in TS_CODES_FOR_RUST_KIND[row["python_error_kind"]]:
            mismatches.append(f"{row['file']}: reference {row['python_error_kind']}, ours {ts['code']}")
    assert mismatches == []


def test_ts_reader_rejects_every_duplicate_name(ts_decisions: dict[str, dict]) -> None:
    for f in (DUPLICATE_SAME, "reject_duplicate_name_different_offsets.safetensors"):
        assert ts_decisions[f]["accepts"] is False
        assert ts_decisions[f]["code"] == "DuplicateTensor", ts_decisions[f]
