"""Our streaming safetensors writer against the official one: byte-identical files, identical tensors."""
import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
TSX = ROOT / "node_modules" / ".bin" / "tsx"

TORCH_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
WIDTH = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}

SPECS = {
    "mixed": [
        {"name": "model.layers.0.mlp.experts.0.down_proj.weight", "dtype": "BF16", "shape": [3, 5]},
        {"name": "b_f32", "dtype": "F32", "shape": [7]},
        {"name": "a_f16", "dtype": "F16", "shape": [2, 3]},
        {"name": "ids", "dtype": "I64", "shape": [4]},
        {"name": "mask", "dtype": "BOOL", "shape": [5]},
        {"name": "q", "dtype": "F8_E4M3", "shape": [3, 3]},
        {"name": "q2", "dtype": "F8_E5M2", "shape": [2]},
        {"name": "bytes", "dtype": "U8", "shape": [9]},
        {"name": "small", "dtype": "I8", "shape": [1]},
        {"name": "shorts", "dtype": "I16", "shape": [3]},
        {"name": "ints", "dtype": "I32", "shape": [2, 2]},
        {"name": "wide", "dtype": "F64", "shape": [2]},
        {"name": "scalar", "dtype": "F32", "shape": []},
        {"name": "empty", "dtype": "BF16", "shape": [0, 4]},
    ],
    "one_tensor_odd_header": [{"name": "x" * 13, "dtype": "F32", "shape": [1]}],
}


def pattern(i: int, spec: dict) -> torch.Tensor:
    n = WIDTH[spec["dtype"]]
    for d in spec["shape"]:
        n *= d
    raw = bytearray((k & 1) if spec["dtype"] == "BOOL" else (i * 37 + k * 11) & 0xFF for k in range(n))
    if n == 0:
        return torch.empty(spec["shape"], dtype=TORCH_DTYPES[spec["dtype"]])
    return torch.frombuffer(raw, dtype=TORCH_DTYPES[spec["dtype"]]).reshape(spec["shape"]).clone()


@pytest.mark.parametrize("case", sorted(SPECS))
def test_writer_matches_official(tmp_path: Path, case: str) -> None:
    spec = SPECS[case]
    ours = tmp_path / "ours.safetensors"
    subprocess.run([str(TSX), "oracle/js/write-safetensors.ts", str(ours), json.dumps(spec)], cwd=ROOT, check=True)
    tensors = {s["name"]: pattern(i, s) for i, s in enumerate(spec)}
    official = tmp_path / "official.safetensors"
    save_file(tensors, str(official), metadata={"format": "pt"})
    assert ours.read_bytes() == official.read_bytes()
    with safe_open(str(ours), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert sorted(f.keys()) == sorted(tensors)
        for name, t in tensors.items():
            got = f.get_tensor(name)
            assert got.dtype == t.dtype and list(got.shape) == list(t.shape)
            assert got.reshape(-1).view(torch.uint8).tolist() == t.reshape(-1).view(torch.uint8).tolist()
