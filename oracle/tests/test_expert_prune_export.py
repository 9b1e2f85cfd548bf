"""Oracle for `moe-prune prune` (STUN stage 1 export, issue 3): the pruned checkpoint is what an independent edit of
the original model gives, it loads in stock transformers 5.18, and its files follow the formats exactly.

Per case the CLI prunes a committed fixture (all with --cpu except one run on the WebGPU adapter). Then:
- files: every shard passes our strict reader and the catalogue (oracle/js/check-exports.ts); every tensor is, byte
  for byte, the original tensor, its rows sliced to the kept experts, or a kept expert renamed to its new index
  (an independent numpy slice of the raw shard bytes: covers Arctic and the FP8 block scales); the index maps exactly
  the tensors in the shards and its total_size is their byte sum; config.json differs only in the count field;
  tokenizer/generation files are copied unchanged.
- transformers: the export loads with no missing/unexpected keys and generates; its weights and logits equal the
  ORIGINAL model edited in torch from the report's keptExperts/mergedExperts (router rows and correction bias
  sliced or averaged, fused expert rows taken or averaged, counts updated) — an edit written from the module tree,
  never by reading our files. BF16 checkpoints are compared in f32 compute on the same bf16 values.
- exact copies: on fixtures/mixtral-copies (every expert a copy of one MLP, renormalised top-k) pruning to any
  K >= top-k leaves the logits unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "fixtures" / "models"
COPIES = REPO / "fixtures" / "mixtral-copies"
CLI = [shutil.which("node") or "node", str(REPO / "bin" / "moe-prune.mjs")]
TSX = REPO / "node_modules" / ".bin" / "tsx"
torch.set_num_threads(2)

# Token ids (< vocab 128) for the logit comparisons; generation starts from the first four.
IDS = [1, 17, 42, 5, 99, 23, 64, 8, 3, 77, 120, 56, 11, 90, 31, 2]
ATOL = 1e-5
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


@dataclass(frozen=True)
class Case:
    fixture: str
    k: int
    extra: tuple[str, ...] = ()
    gpu: bool = False
    loadable: bool = True  # has a transformers class whose in-memory experts we edit
    merges: bool = False  # the reconstruction rule must fire (mergedExperts non-empty)
    notes: str = field(default="", compare=False)


# K per family: >= top-k (2), a multiple of n_group=2 with >= 2 per group for DeepSeek, and chosen so that most cases
# drop experts from the middle (renumbering), not only the last ones.
CASES: dict[str, Case] = {
    "mixtral": Case("mixtral", 3),
    "mixtral-bf16": Case("mixtral-bf16", 2),
    "qwen2_moe": Case("qwen2_moe", 4),
    "qwen2_moe-bf16": Case("qwen2_moe-bf16", 3),
    "qwen3_moe": Case("qwen3_moe", 5),
    "qwen3_moe-bf16": Case("qwen3_moe-bf16", 3),
    "qwen3_moe-fused": Case("qwen3_moe-fused", 4),
    "olmoe": Case("olmoe", 2),
    "olmoe-bf16": Case("olmoe-bf16", 3),
    "phimoe": Case("phimoe", 3),
    "phimoe-bf16": Case("phimoe-bf16", 2),
    "deepseek_v2": Case("deepseek_v2", 4),
    "deepseek_v2-bf16": Case("deepseek_v2-bf16", 6),
    "deepseek_v3": Case("deepseek_v3", 4),
    "deepseek_v3-bf16": Case("deepseek_v3-bf16", 6),
    "deepseek_v3-fp8": Case("deepseek_v3-fp8", 4, loadable=False),
    "arctic": Case("arctic", 3, loadable=False),
    "arctic-bf16": Case("arctic-bf16", 2, loadable=False),
    # Reconstruction (merged slots): per-layer rule fires when a layer has <= kappa clusters.
    "mixtral-merge": Case("mixtral", 2, ("--reconstruct", "per-layer"), merges=True),
    "qwen3_moe-fused-merge": Case("qwen3_moe-fused", 4, ("--reconstruct", "per-layer", "--kappa", "4"), merges=True),
    "qwen2_moe-bf16-merge": Case("qwen2_moe-bf16", 3, ("--reconstruct", "per-cluster-size", "--kappa", "6"), merges=True),
    "deepseek_v3-merge": Case("deepseek_v3", 4, ("--reconstruct", "per-layer", "--kappa", "4"), merges=True),
    # The GPU path (WebGPU through Dawn; SwiftShader where there is no hardware adapter).
    "qwen3_moe-gpu": Case("qwen3_moe", 5, gpu=True),
}
LOADABLE = [n for n, c in CASES.items() if c.loadable]
MERGES = [n for n, c in CASES.items() if c.merges]


# ------------------------------------------------------------------------------------------------- raw files


def read_raw(path: Path) -> dict[str, tuple[str, list[int], np.ndarray]]:
    """name -> (dtype, shape, raw bytes as uint8 [*shape, itemsize]) straight from a .safetensors file."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        raw = np.frombuffer(data, dtype=np.uint8, count=e - b, offset=8 + n + b)
        count = int(np.prod(h["shape"], dtype=np.int64))
        out[name] = (h["dtype"], h["shape"], raw.reshape(*h["shape"], (e - b) // count if count else 1))
    return out


def read_folder(d: Path) -> tuple[dict[str, tuple[str, list[int], np.ndarray]], dict[str, str]]:
    """All tensors of a sharded folder and the shard each one is in."""
    tensors, where = {}, {}
    for shard in sorted(d.glob("*.safetensors")):
        for k, v in read_raw(shard).items():
            assert k not in tensors, f"{k} in two shards"
            tensors[k], where[k] = v, shard.name
    return tensors, where


def expected_json(fixture: str) -> dict:
    return json.loads((MODELS / fixture / "expected.json").read_text())


# ---------------------------------------------------------------------------------------------- CLI runs


@dataclass
class Run:
    out: Path
    rc: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict:
        return json.loads((self.out / "prune-report.json").read_text())


def prune(src: Path, out: Path, k: int | None, *extra: str, gpu: bool = False, timeout: int = 120) -> Run:
    """`moe-prune prune`; k None leaves the target to `extra` (global mode)."""
    keep = [] if k is None else ["--experts-per-layer", str(k)]
    args = [*CLI, "prune", str(src), "--out", str(out), *keep, *extra, "--quiet"]
    if not gpu:
        args.append("--cpu")
    env = dict(os.environ, NODE_NO_WARNINGS="1")
    p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    return Run(out, p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("pruned")
    jobs = {name: (MODELS / c.fixture, root / name, c.k, *c.extra) for name, c in CASES.items()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(prune, *job, gpu=CASES[name].gpu) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def checks(runs) -> dict[str, dict]:
    """Our strict reader and catalogue over every export, in one process."""
    ok = {n: r for n, r in runs.items() if r.rc == 0}
    assert TSX.exists(), "node_modules/.bin/tsx is missing"
    p = subprocess.run([str(TSX), "oracle/js/check-exports.ts", *(str(r.out) for r in ok.values())], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    by_dir = json.loads(p.stdout)
    return {n: by_dir[str(r.out)] for n, r in ok.items()}


def ok_run(runs: dict[str, Run], name: str) -> Run:
    r = runs[name]
    assert r.rc == 0, f"moe-prune prune failed ({r.rc}): {r.stderr.strip()[-1500:]}"
    return r


# ------------------------------------------------------------------------------ report sanity, files, bytes


@pytest.mark.parametrize("name", list(CASES))
def test_cli_writes_a_complete_export_and_report(runs, name: str) -> None:
    case, r = CASES[name], ok_run(runs, name)
    assert not Path(f"{r.out}.partial").exists()
    rep = r.report
    exp = expected_json(case.fixture)
    assert sorted(rep["keptExperts"], key=int) == [str(L) for L in exp["moe_layers"]]
    for L, kept in rep["keptExperts"].items():
        assert len(kept) == case.k and kept == sorted(set(kept)) and all(0 <= e < exp["num_experts"] for e in kept), (L, kept)
    merged = [m for ms in rep["mergedExperts"].values() for m in ms]
    assert bool(merged) == case.merges, rep["mergedExperts"]
    for L, ms in rep["mergedExperts"].items():
        for m in ms:
            assert rep["keptExperts"][L][m["slot"]] in m["members"] and len(m["members"]) >= 2
    assert rep["expertsPerLayer"] == {"before": exp["num_experts"], "after": case.k}
    s = rep["settings"]
    assert s["keepPerLayer"] == case.k and s["mode"] == "uniform"
    assert s["reconstruct"] == (case.extra[1] if case.extra else "none")
    assert (s["device"] == "cpu") != case.gpu
    assert rep["params"]["after"] < rep["params"]["before"] or case.k == exp["num_experts"]
    assert (r.out / "README.md").read_text().startswith("---\n")


@pytest.mark.parametrize("name", list(CASES))
def test_headers_pass_the_strict_reader_and_catalogue(runs, checks, name: str) -> None:
    case, r = CASES[name], ok_run(runs, name)
    c = checks[name]
    shards = sorted(p.name for p in r.out.glob("*.safetensors"))
    assert sorted(c["shards"]) == shards and shards
    assert all(d["accepts"] for d in c["shards"].values()), c["shards"]
    assert c["error"] is None, c["error"]
    summary = c["summary"]
    exp = expected_json(case.fixture)
    assert summary["expertsPerLayer"] == case.k
    assert summary["missingTensors"] == [] and summary["extraTensors"] == []
    assert summary["moeLayers"] == exp["moe_layers"] and summary["layout"] == exp["expert_layout"]
    assert summary["params"]["total"] == r.report["params"]["after"]
    assert summary["tensorBytes"] == r.report["bytes"]["after"]


@pytest.mark.parametrize("name", list(CASES))
def test_index_config_and_copied_files(runs, name: str) -> None:
    case, r = CASES[name], ok_run(runs, name)
    src = MODELS / case.fixture
    tensors, where = read_folder(r.out)
    index = json.loads((r.out / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == where
    assert index["metadata"]["total_size"] == sum(t[2].nbytes for t in tensors.values()) == r.report["bytes"]["after"]
    in_meta = json.loads((src / "model.safetensors.index.json").read_text())["metadata"]
    assert sorted(index["metadata"]) == sorted(in_meta)
    cfg_in = json.loads((src / "config.json").read_text())
    cfg_out = json.loads((r.out / "config.json").read_text())
    field_ = expected_json(case.fixture)["expert_count_field"]
    assert list(cfg_out) == list(cfg_in)
    # Compared as JSON text per key: 0.0 and 0 are equal in Python but transformers 5 rejects an int for a float field.
    assert {k for k in cfg_in if json.dumps(cfg_in[k]) != json.dumps(cfg_out[k])} == {field_}
    assert cfg_out[field_] == case.k
    for f in COPIED_FILES:
        assert (r.out / f).read_bytes() == (src / f).read_bytes(), f


EXPERT_RE = re.compile(r"^(model\.layers\.(\d+)\..*\.experts\.)(\d+)(\..+)$")


def slots_of(rep: dict, layer: str) -> list[list[int]]:
    slots = [[e] for e in rep["keptExperts"][layer]]
    for m in rep["mergedExperts"][layer]:
        slots[m["slot"]] = m["members"]
    return slots


def is_row_sliced(name: str, layer: str, router_pattern: str) -> bool:
    """Tensors with one row per routed expert: the router weight, its correction bias, fused expert tensors."""
    base = f"model.layers.{layer}."
    return name in (router_pattern.format(L=layer), f"{base}mlp.gate.e_score_correction_bias") or bool(
        re.fullmatch(re.escape(base) + r".*\.experts\.(gate_up_proj|down_proj)(_scale_inv)?", name)
    )


@pytest.mark.parametrize("name", list(CASES))
def test_every_tensor_is_a_copy_a_row_slice_or_a_renamed_expert(runs, name: str) -> None:
    case, r = CASES[name], ok_run(runs, name)
    check_raw_edit(case.fixture, r.out, r.report)


def check_raw_edit(fixture: str, out: Path, rep: dict) -> None:
    """An independent numpy edit of the raw original bytes, layer by layer from the report (so it holds for per-layer
    variants too); merged slots are checked in torch below."""
    orig, _ = read_folder(MODELS / fixture)
    got, _ = read_folder(out)
    router_pattern = expected_json(fixture)["router_tensor"]
    want: dict[str, tuple[str, list[int], np.ndarray | None]] = {}
    for tname, (dtype, shape, raw) in orig.items():
        m = EXPERT_RE.match(tname)
        layer = m.group(2) if m else (tname.split(".")[2] if tname.startswith("model.layers.") else None)
        if layer not in rep["keptExperts"]:
            want[tname] = (dtype, shape, raw)
            continue
        slots = slots_of(rep, layer)
        if m and "shared" not in tname:
            e = int(m.group(3))
            if e in rep["keptExperts"][layer]:
                slot = rep["keptExperts"][layer].index(e)
                new = f"{m.group(1)}{slot}{m.group(4)}"
                want[new] = (dtype, shape, raw if len(slots[slot]) == 1 else None)
        elif is_row_sliced(tname, layer, router_pattern):
            if any(len(s) > 1 for s in slots):
                want[tname] = (dtype, [len(slots), *shape[1:]], None)
            else:
                want[tname] = (dtype, [len(slots), *shape[1:]], raw[[s[0] for s in slots]])
        else:
            want[tname] = (dtype, shape, raw)
    assert sorted(got) == sorted(want)
    for tname, (dtype, shape, raw) in want.items():
        g = got[tname]
        assert (g[0], list(g[1])) == (dtype, list(shape)), tname
        if raw is not None:
            assert np.array_equal(g[2], raw), f"{tname} bytes differ"


def test_fp8_keeps_quantised_experts_and_scales_byte_identical(runs) -> None:
    r = ok_run(runs, "deepseek_v3-fp8")
    got, _ = read_folder(r.out)
    orig, _ = read_folder(MODELS / "deepseek_v3-fp8")
    n = 0
    for L, kept in r.report["keptExperts"].items():
        for slot, e in enumerate(kept):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                for part in ("weight", "weight_scale_inv"):
                    a = got[f"model.layers.{L}.mlp.experts.{slot}.{proj}.{part}"]
                    b = orig[f"model.layers.{L}.mlp.experts.{e}.{proj}.{part}"]
                    assert a[0] == ("F8_E4M3" if part == "weight" else "F32") == b[0]
                    assert np.array_equal(a[2], b[2])
                    n += 1
    assert n == 2 * 4 * 3 * 2
    cfg = json.loads((r.out / "config.json").read_text())
    assert cfg["quantization_config"]["weight_block_size"] == [128, 128]


def test_fp8_export_loads_in_transformers(runs) -> None:
    from transformers import AutoModelForCausalLM

    r = ok_run(runs, "deepseek_v3-fp8")
    model, info = AutoModelForCausalLM.from_pretrained(str(r.out), output_loading_info=True)
    assert {k: list(v) for k, v in info.items() if v} == {}
    assert model.model.layers[1].mlp.gate.weight.shape[0] == 4


def test_merging_fp8_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "fp8-merged"
    r = prune(MODELS / "deepseek_v3-fp8", out, 4, "--reconstruct", "per-layer", "--kappa", "4")
    assert r.rc == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "F8_E4M3" in last and "averag" in last, last
    assert r.stdout == ""
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_gpu_and_cpu_runs_write_identical_weights(runs) -> None:
    gpu, cpu = ok_run(runs, "qwen3_moe-gpu"), ok_run(runs, "qwen3_moe")
    assert gpu.report["settings"]["device"] not in ("", "cpu")
    assert gpu.report["keptExperts"] == cpu.report["keptExperts"]
    for f in sorted(cpu.out.glob("*.safetensors")):
        assert (gpu.out / f.name).read_bytes() == f.read_bytes(), f.name


# --------------------------------------------------------------------------------- transformers: the torch edit


_models: dict[str, object] = {}


def load(path: Path):
    """Any checkpoint in f32 compute (bf16 values widen exactly), eager and deterministic."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(str(path), output_loading_info=True, dtype=torch.float32)
    model.eval()
    return model, info


def original(fixture: str):
    if fixture not in _models:
        _models[fixture] = load(MODELS / fixture)[0]
    return _models[fixture]


def file_dtype(fixture: str) -> torch.dtype:
    return torch.bfloat16 if fixture.endswith("-bf16") else torch.float32


def router_of(mlp: torch.nn.Module) -> torch.nn.Module:
    for name in ("gate", "router"):
        mod = getattr(mlp, name, None)
        if isinstance(mod, torch.nn.Module) and getattr(mod, "weight", None) is not None and mod.weight.ndim == 2:
            return mod
    raise AssertionError(f"no router module in {type(mlp).__name__}")


def edited_copy(fixture: str, rep: dict):
    """The original model with the report's plan applied to its in-memory modules."""
    import copy

    model = copy.deepcopy(original(fixture))
    stored = file_dtype(fixture)
    count_field = expected_json(fixture)["expert_count_field"]
    n_before = getattr(model.config, count_field)
    k = None

    def take(t: torch.Tensor, slots: list[list[int]], dtype: torch.dtype) -> torch.Tensor:
        # A merged slot is the f32 mean of its members, stored in the checkpoint's dtype.
        rows = [t[s[0]] if len(s) == 1 else t[s].float().mean(0).to(dtype).to(t.dtype) for s in slots]
        return torch.stack(rows).contiguous()

    with torch.no_grad():
        for L, kept in rep["keptExperts"].items():
            slots = slots_of(rep, L)
            k = len(kept)
            mlp = model.model.layers[int(L)].mlp
            experts, router = mlp.experts, router_of(mlp)
            experts.gate_up_proj = torch.nn.Parameter(take(experts.gate_up_proj, slots, stored))
            experts.down_proj = torch.nn.Parameter(take(experts.down_proj, slots, stored))
            router.weight = torch.nn.Parameter(take(router.weight, slots, stored))
            if getattr(router, "e_score_correction_bias", None) is not None:
                router.e_score_correction_bias = take(router.e_score_correction_bias, slots, torch.float32)
            for mod in mlp.modules():
                if getattr(mod, "num_experts", None) == n_before:
                    mod.num_experts = k
    setattr(model.config, count_field, k)
    for mod in model.modules():
        if getattr(mod, "num_experts", None) == n_before:
            mod.num_experts = k
    return model


def logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


@pytest.mark.parametrize("name", LOADABLE)
def test_export_loads_generates_and_equals_the_torch_edit(runs, name: str) -> None:
    case, r = CASES[name], ok_run(runs, name)
    model, info = load(r.out)
    assert {k: list(v) for k, v in info.items() if v} == {}
    edited = edited_copy(case.fixture, r.report)

    # Same weights, tensor by tensor (merged means may differ in the last f32 bit from summation order).
    a, b = model.state_dict(), edited.state_dict()
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        if case.merges:
            rtol = 2e-7 if file_dtype(case.fixture) == torch.float32 else 2**-8
            torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=1e-7, msg=key)
        else:
            assert torch.equal(a[key], b[key]), key

    got, want = logits(model, IDS), logits(edited, IDS)
    assert (got - want).abs().max().item() <= ATOL
    # The edit is not a no-op: the pruned model computes something else than the original.
    assert (want - logits(original(case.fixture), IDS)).abs().max().item() > 1e-4

    with torch.no_grad():
        out = model.generate(torch.tensor([IDS[:4]]), max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0)
        ref = edited.generate(torch.tensor([IDS[:4]]), max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 7) and torch.equal(out, ref)
    total = json.loads((r.out / "model.safetensors.index.json").read_text())["metadata"].get("total_parameters")
    if total is not None:
        assert total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MERGES)
def test_merged_slot_is_the_mean_of_its_members(runs, name: str) -> None:
    """Read back from the export's files: each merged slot is the members' mean (router row and expert weights)."""
    from safetensors import safe_open

    case, r = CASES[name], ok_run(runs, name)
    exp = expected_json(case.fixture)
    orig = {}
    for f in sorted((MODELS / case.fixture).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            orig.update({k: h.get_tensor(k) for k in h.keys()})
    out = {}
    for f in sorted(r.out.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            out.update({k: h.get_tensor(k) for k in h.keys()})

    def mean_of(ts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([t.float() for t in ts]).mean(0).to(ts[0].dtype)

    checked = 0
    for L, ms in r.report["mergedExperts"].items():
        router = exp["router_tensor"].format(L=L)
        for m in ms:
            pairs = [(out[router][m["slot"]], mean_of([orig[router][e] for e in m["members"]]))]
            bias = f"model.layers.{L}.mlp.gate.e_score_correction_bias"
            if bias in orig:
                pairs.append((out[bias][m["slot"]], mean_of([orig[bias][e] for e in m["members"]])))
            if exp["expert_layout"] == "fused":
                for p in ("gate_up_proj", "down_proj"):
                    t = f"model.layers.{L}.mlp.experts.{p}"
                    pairs.append((out[t][m["slot"]], mean_of([orig[t][e] for e in m["members"]])))
            else:
                for pattern in exp["expert_tensor_names"].values():
                    pairs.append((out[pattern.format(L=L, e=m["slot"])], mean_of([orig[pattern.format(L=L, e=e)] for e in m["members"]])))
            for got, want in pairs:
                assert got.dtype == want.dtype
                # f32: the last bit may differ with summation order; bf16: rounded once from the f32 mean, like torch.
                rtol = 2e-7 if got.dtype == torch.float32 else 2**-8
                torch.testing.assert_close(got.float(), want.float(), rtol=rtol, atol=1e-7)
                checked += 1
    assert checked > 0


# ------------------------------------------------------------------------------------------- exact copies


def test_copies_fixture_is_what_it_claims() -> None:
    meta = json.loads((COPIES / "copies.json").read_text())
    tensors, _ = read_folder(COPIES)
    cfg = json.loads((COPIES / "config.json").read_text())
    assert cfg[meta["expert_count_field"]] == meta["num_experts"] and cfg["num_experts_per_tok"] == meta["top_k"]
    for L in range(cfg["num_hidden_layers"]):
        for w in ("w1", "w2", "w3"):
            first = tensors[f"model.layers.{L}.block_sparse_moe.experts.0.{w}.weight"][2]
            for e in range(1, meta["num_experts"]):
                assert np.array_equal(tensors[f"model.layers.{L}.block_sparse_moe.experts.{e}.{w}.weight"][2], first)
        router = torch.from_numpy(tensors[f"model.layers.{L}.block_sparse_moe.gate.weight"][2].copy().view(np.float32)).squeeze(-1)
        d = torch.cdist(router, router) + torch.eye(router.shape[0])
        assert d.min() > 0.1


@pytest.mark.parametrize("k", [2, 3, 5])
def test_pruning_exact_copies_leaves_logits_unchanged(tmp_path: Path, k: int) -> None:
    meta = json.loads((COPIES / "copies.json").read_text())
    assert meta["top_k"] <= k < meta["num_experts"]
    r = prune(COPIES, tmp_path / f"copies-k{k}", k)
    assert r.rc == 0, r.stderr
    model, info = load(r.out)
    assert {x: list(v) for x, v in info.items() if v} == {}
    assert model.config.num_local_experts == k
    before = logits(original_path(COPIES), IDS)
    assert (logits(model, IDS) - before).abs().max().item() <= ATOL


def original_path(path: Path):
    key = str(path)
    if key not in _models:
        _models[key] = load(path)[0]
    return _models[key]
