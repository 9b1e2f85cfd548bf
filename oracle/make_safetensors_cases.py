"""Write one small .safetensors file per header/data rule of the reference reader (moe-checkpoints.md §3.3),
plus files it must accept, and record what safetensors (Rust, through Python's safe_open) decides for each.

    .venv/bin/python oracle/make_safetensors_cases.py [--out fixtures/safetensors-cases]

Output: <case>.safetensors files and cases.json = [{file, rule, accept, python_accepts, python_error,
python_error_kind}], where `accept` is what the spec says, python_* is what safetensors 0.8 actually did and
python_error_kind names the Rust error variant. Deterministic; the files are rebuilt byte for byte by the tests.
"""

from __future__ import annotations

import argparse
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    rule: str
    accept: bool  # what the safetensors spec / reference reader rule says
    data: bytes


def pattern(n: int) -> bytes:
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def file_of(header: bytes, data: bytes = b"", pad: bool = True) -> bytes:
    """8-byte LE length + header (space-padded to a multiple of 8 like the official writer) + data."""
    if pad:
        header = header + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def entry(dtype: str, shape: list[Any], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def two_f32(a_offsets: tuple[int, int], b_offsets: tuple[int, int], data_len: int) -> bytes:
    h = {"a": entry("F32", [2], *a_offsets), "b": entry("F32", [2], *b_offsets)}
    return file_of(compact(h), pattern(data_len))


OK_HEADER = {"__metadata__": {"format": "pt"}, "w": entry("F32", [2, 2], 0, 16)}


def build_cases() -> list[Case]:
    c: list[Case] = []

    def add(name: str, rule: str, accept: bool, data: bytes) -> None:
        c.append(Case(name, rule, accept, data))

    ok = compact(OK_HEADER)
    # ---- rejected: the 8-byte length prefix
    add("reject_file_too_small", "file shorter than 8 bytes (HeaderTooSmall)", False, b"\x05\x00\x00\x00\x00")
    add("reject_header_too_large", "header length 100,000,001 > 100,000,000 (HeaderTooLarge)", False, struct.pack("<Q", 100_000_001))
    add(
        "reject_header_length_past_eof",
        "8 + N larger than the file (InvalidHeaderLength)",
        False,
        struct.pack("<Q", 4096) + ok,
    )
    add("reject_header_length_zero", "N = 0: an empty header is not JSON (InvalidHeaderDeserialization)", False, struct.pack("<Q", 0))
    # ---- rejected: header text
    add("reject_header_not_utf8", "header bytes are not UTF-8 (InvalidHeader)", False, file_of(b'{"__metadata__":{"k":"\xff\xfe"}}'))
    add("reject_header_not_json", "header is not JSON (InvalidHeaderDeserialization)", False, file_of(b"this is not json"))
    add(
        "reject_trailing_non_whitespace",
        "non-whitespace after the JSON object (InvalidHeaderDeserialization)",
        False,
        file_of(ok + b"x", pattern(16), pad=False),
    )
    add(
        "reject_nul_padding",
        "header padded with NUL bytes instead of spaces (InvalidHeaderDeserialization)",
        False,
        file_of(ok + b"\x00" * 6, pattern(16), pad=False),
    )
    add("reject_header_is_array", "header is a JSON array, not an object (InvalidHeaderDeserialization)", False, file_of(b"[]"))
    add("reject_header_is_string", "header is a JSON string (InvalidHeaderDeserialization)", False, file_of(b'"abc"'))
    # ---- rejected: tensor entries
    add("reject_unknown_dtype", "dtype F128 is not a known dtype", False, file_of(compact({"w": entry("F128", [2], 0, 32)}), pattern(32)))
    add("reject_lowercase_dtype", "dtype names are case-sensitive (f32)", False, file_of(compact({"w": entry("f32", [2], 0, 8)}), pattern(8)))
    add("reject_negative_dim", "shape has a negative dimension", False, file_of(compact({"w": entry("F32", [-2], 0, 8)}), pattern(8)))
    add("reject_non_integer_dim", "shape has a non-integer dimension (2.5)", False, file_of(compact({"w": entry("F32", [2.5], 0, 10)}), pattern(10)))
    add("reject_string_dim", "shape has a string dimension", False, file_of(compact({"w": entry("F32", ["2"], 0, 8)}), pattern(8)))
    add(
        "reject_missing_data_offsets",
        "tensor entry has no data_offsets",
        False,
        file_of(compact({"w": {"dtype": "F32", "shape": [2]}}), pattern(8)),
    )
    add(
        "reject_missing_dtype",
        "tensor entry has no dtype",
        False,
        file_of(compact({"w": {"shape": [2], "data_offsets": [0, 8]}}), pattern(8)),
    )
    add(
        "reject_data_offsets_three_values",
        "data_offsets must be exactly [BEGIN, END]",
        False,
        file_of(compact({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}), pattern(8)),
    )
    add("reject_tensor_entry_not_object", "a tensor entry is not an object", False, file_of(compact({"w": [1, 2, 3]})))
    # ---- rejected: offsets (InvalidOffset)
    add("reject_gap_between_tensors", "gap: second tensor does not start where the first ends", False, two_f32((0, 8), (12, 20), 20))
    add("reject_overlap", "overlap: tensors share part of their bytes", False, two_f32((0, 8), (4, 12), 12))
    add("reject_alias_same_bytes", "alias: two tensors on exactly the same bytes", False, two_f32((0, 8), (0, 8), 8))
    add("reject_first_not_at_zero", "the first tensor does not start at byte 0 of the data", False, file_of(compact({"w": entry("F32", [2], 4, 12)}), pattern(12)))
    add(
        "reject_end_before_begin",
        "END < BEGIN (the tensor starts where the previous one ends)",
        False,
        file_of(compact({"a": entry("F32", [2], 0, 8), "b": entry("U8", [0], 8, 0)}), pattern(8)),
    )
    # ---- rejected: sizes
    add("reject_byte_count_mismatch", "END-BEGIN differs from prod(shape) x dtype size (TensorInvalidInfo)", False, file_of(compact({"w": entry("F32", [3], 0, 8)}), pattern(8)))
    add("reject_f4_odd_elements", "F4 with 3 elements is not a whole number of bytes (MisalignedSlice)", False, file_of(compact({"w": entry("F4", [3], 0, 2)}), pattern(2)))
    add("reject_f6_partial_byte", "F6_E2M3 with 3 elements (18 bits) is not a whole number of bytes (MisalignedSlice)", False, file_of(compact({"w": entry("F6_E2M3", [3], 0, 3)}), pattern(3)))
    add(
        "reject_shape_overflow",
        "prod(shape) x bits overflows 64 bits (ValidationOverflow)",
        False,
        file_of(compact({"w": entry("F32", [2**40, 2**40], 0, 8)}), pattern(8)),
    )
    add(
        "reject_offset_beyond_2_53",
        "END = 2^53 + 1 (not exact as a JS number) with a 16-byte data buffer",
        False,
        file_of(compact({"w": entry("U8", [2**53 + 1], 0, 2**53 + 1)}), pattern(16)),
    )
    add("reject_trailing_bytes_after_data", "bytes after the last tensor (MetadataIncompleteBuffer)", False, file_of(ok, pattern(20)))
    add("reject_truncated_data", "data shorter than the last END (MetadataIncompleteBuffer)", False, file_of(ok, pattern(12)))
    add("reject_header_only_but_tensor", "a tensor and no data at all (MetadataIncompleteBuffer)", False, file_of(ok))
    # ---- rejected: metadata
    add(
        "reject_metadata_non_string_value",
        "__metadata__ value is a number, not a string (InvalidMetadata)",
        False,
        file_of(compact({"__metadata__": {"format": "pt", "step": 3}, "w": entry("F32", [2, 2], 0, 16)}), pattern(16)),
    )
    add(
        "reject_metadata_not_object",
        "__metadata__ is a string, not an object",
        False,
        file_of(compact({"__metadata__": "pt", "w": entry("F32", [2, 2], 0, 16)}), pattern(16)),
    )
    # ---- duplicates: forbidden by the spec; JSON parsing keeps the last one (see cases.json for what Python does)
    dup_same = b'{"w":' + compact(entry("F32", [2], 0, 8)) + b',"w":' + compact(entry("F32", [2], 0, 8)) + b"}"
    add("reject_duplicate_name_same_offsets", "the same tensor name twice, same entry (spec: names are unique)", False, file_of(dup_same, pattern(8)))
    dup_diff = (
        b'{"w":' + compact(entry("F32", [2], 0, 8)) + b',"v":' + compact(entry("F32", [2], 8, 16)) + b',"w":' + compact(entry("F32", [2], 16, 24)) + b"}"
    )
    add("reject_duplicate_name_different_offsets", "the same tensor name twice with different offsets", False, file_of(dup_diff, pattern(24)))

    # ---- accepted
    add("accept_official_layout", "as the official writer lays it out: metadata first, space padding", True, file_of(ok, pattern(16)))
    add("accept_unpadded_header", "header length not a multiple of 8 (data not 8-aligned)", True, file_of(compact({"w": entry("F32", [1], 0, 4)}), pattern(4), pad=False))
    add("accept_leading_whitespace", "spaces before the opening brace", True, file_of(b"   " + ok, pattern(16)))
    add("accept_crlf_tab_whitespace", "\\r \\t \\n around and inside the JSON", True, file_of(b"\r\n\t" + ok.replace(b",", b",\r\n\t") + b"\n\t\r ", pattern(16), pad=False))
    add(
        "accept_extra_field_in_tensor",
        "unknown extra field in a tensor entry is ignored",
        True,
        file_of(compact({"w": dict(entry("F32", [2], 0, 8), note="extra")}), pattern(8)),
    )
    add("accept_empty_header", "header {} with no tensors and no data", True, file_of(b"{}"))
    add("accept_metadata_null", "__metadata__: null", True, file_of(compact({"__metadata__": None, "w": entry("F32", [2], 0, 8)}), pattern(8)))
    add("accept_metadata_only", "only __metadata__, no tensors", True, file_of(compact({"__metadata__": {"format": "pt"}})))
    add(
        "accept_zero_size_tensor",
        "a tensor with a 0 dimension and BEGIN == END, between two others",
        True,
        file_of(compact({"a": entry("F32", [1], 0, 4), "z": entry("F32", [0, 4], 4, 4), "b": entry("F32", [1], 4, 8)}), pattern(8)),
    )
    add("accept_rank0_tensor", "shape [] holds one element", True, file_of(compact({"s": entry("F64", [], 0, 8)}), pattern(8)))
    add(
        "accept_keys_not_in_offset_order",
        "JSON key order differs from offset order",
        True,
        file_of(compact({"b": entry("F32", [2], 8, 16), "__metadata__": {"format": "pt"}, "a": entry("F32", [2], 0, 8)}), pattern(16)),
    )
    add(
        "accept_unicode_names",
        "tensor names with non-ASCII characters",
        True,
        file_of(compact({"couche.é.ß": entry("U8", [2], 0, 2), "层": entry("U8", [2], 2, 4)}), pattern(4)),
    )
    # every dtype name, with an element count that fills whole bytes
    offs = 0
    h: dict[str, Any] = {}
    for dt, bits in DTYPE_BITS.items():
        n = 8  # 8 elements: whole bytes for 4- and 6-bit types too
        nbytes = n * bits // 8
        h[f"t_{dt}"] = entry(dt, [2, 4], offs, offs + nbytes)
        offs += nbytes
    add("accept_every_dtype", "one tensor of each of the 22 dtype names, incl. F4, F6_*, F8_E8M0", True, file_of(compact(h), pattern(offs)))
    return c


# The Rust SafeTensorError variant behind each message safetensors 0.8 prints (safetensors/src/tensor.rs).
RUST_ERROR_KINDS = [
    ("header too small", "HeaderTooSmall"),
    ("header too large", "HeaderTooLarge"),
    ("invalid header length", "InvalidHeaderLength"),
    ("invalid UTF-8", "InvalidHeader"),
    ("invalid JSON", "InvalidHeaderDeserialization"),
    ("invalid offset", "InvalidOffset"),
    ("invalid shape, data type, or offset", "TensorInvalidInfo"),
    ("slicing for subbyte", "MisalignedSlice"),
    ("overflow", "ValidationOverflow"),
    ("incomplete metadata", "MetadataIncompleteBuffer"),
]


def rust_error_kind(message: str) -> str | None:
    if not message:
        return None
    return next((kind for needle, kind in RUST_ERROR_KINDS if needle in message), "Unknown")


def python_decision(path: Path) -> tuple[bool, str]:
    """Opens with safe_open, which runs the Rust header/offset validation on the whole file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            list(f.keys())
            f.metadata()
        return True, ""
    except Exception as e:  # the Rust errors surface as SafetensorError
        return False, f"{type(e).__name__}: {e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "fixtures" / "safetensors-cases"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.safetensors"):
        old.unlink()
    rows = []
    for case in build_cases():
        path = out / f"{case.name}.safetensors"
        path.write_bytes(case.data)
        accepts, err = python_decision(path)
        rows.append(
            {
                "file": path.name,
                "rule": case.rule,
                "accept": case.accept,
                "python_accepts": accepts,
                "python_error": err,
                "python_error_kind": rust_error_kind(err),
            }
        )
        flag = "" if accepts == case.accept else "   <-- python differs from the spec"
        print(f"{case.name:42s} python {'ACCEPT' if accepts else 'reject'} {err[:80]}{flag}")
    (out / "cases.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
