"""Training away from the cluster: TrainingData files, the trainers' device, and the fp16 shards that bring a
model trained on a GPU machine back (scripts/train_prepared.py)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nirbridge.workers.models import resolve_model
from nirbridge.workers.train.data import TrainingData
from nirbridge.workers.train.validate import training_device

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_prepared.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_prepared", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(tag: str = "") -> TrainingData:
    corpus = {f"d{i}": f"{tag}document {i} ü" for i in range(6)}
    queries = {"q1": "first query", "q2": "second query", "q3": "third"}
    data = TrainingData.from_beir(
        corpus,
        queries,
        {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}},
        {"q3": {"d4": 1}},
        source={"dataset": tag},
    )
    return data.with_candidates({"q1": ["d5", "d1", "d0"], "q3": ["d4", "d2"]}, "BM25 top 3")


def test_training_data_survives_a_file(tmp_path: Path) -> None:
    data = _data()
    data.save(tmp_path / "data.json.gz")
    assert TrainingData.load(tmp_path / "data.json.gz") == data


def test_a_file_that_is_not_training_data_is_named(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("not gzip")
    with gzip.open(tmp_path / "other.json.gz", "wt") as f:
        f.write('{"corpus": {}}')
    for name in ("plain.txt", "other.json.gz", "missing.json.gz"):
        with pytest.raises(ValueError, match=f"{name} is not training data"):
            TrainingData.load(tmp_path / name)


def test_the_device_is_the_gpu_only_where_torch_sees_one() -> None:
    assert training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert training_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        training_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no GPU"):
            training_device("cuda")


def test_several_files_merge_with_prefixed_ids(tmp_path: Path) -> None:
    _data("a ").save(tmp_path / "scifact-train.json.gz")
    _data("b ").save(tmp_path / "nfcorpus-train.json.gz")
    merged = _script().merge([tmp_path / "scifact-train.json.gz", tmp_path / "nfcorpus-train.json.gz"])
    assert merged.train["scifact/q1"] == ("scifact/d1",)
    assert merged.dev["nfcorpus/q3"] == {"nfcorpus/d4": 1}
    assert merged.ranked["nfcorpus/q1"] == ("nfcorpus/d5", "nfcorpus/d1", "nfcorpus/d0")
    assert merged.corpus["nfcorpus/d0"].startswith("b ") and merged.corpus["scifact/d0"].startswith("a ")
    assert merged.hard_negatives("scifact/q1", skip_top=0) == ["scifact/d5", "scifact/d0"]


def test_the_card_names_the_base_given_not_its_widened_copy(tmp_path: Path) -> None:
    from nirbridge.workers.train.card import write_model_card

    given, used = tmp_path / "base-fp16", tmp_path / ".out-base"
    write_model_card(
        tmp_path, kind="reranker", base=str(used), data=_data(), settings={}, metrics={}, seconds=1.0
    )
    _script().name_base(tmp_path, used, given)
    card = json.loads((tmp_path / "training.json").read_text())
    assert card["base"] == str(given)
    readme = (tmp_path / "README.md").read_text()
    assert str(given) in readme and str(used) not in readme


def test_shards_bring_back_the_trained_weights_and_files(tmp_path: Path) -> None:
    """A half-size base, a 'trained' copy with one tensor changed and a new file: the shards hold only what
    differs, and widen() rebuilds the folder with every weight within fp16 rounding."""
    script = _script()
    source = resolve_model("all-MiniLM-L6-v2")
    base = tmp_path / "base"
    shutil.copytree(source, base, ignore=shutil.ignore_patterns("model.safetensors", "README.md", ".*"))
    weights = load_file(source / "model.safetensors")
    save_file({k: v.half() for k, v in weights.items()}, base / "model-fp16.safetensors")
    trained = tmp_path / "trained"
    shutil.copytree(script.fp32_base(base, tmp_path / "wide"), trained)
    state = load_file(trained / "model.safetensors")
    changed = "encoder.layer.5.output.dense.weight"
    state[changed] = state[changed] + torch.randn_like(state[changed]) * 0.01
    save_file(state, trained / "model.safetensors")
    (trained / "training.json").write_text('{"kind": "test"}')

    wide = tmp_path / "wide"
    counts = script.shard(trained, wide, tmp_path / "shards")
    assert counts == {"tensors written": 1, "tensors from the base": len(state) - 1}
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["files.tar", "weights.safetensors.00"]
    back = script.widen(tmp_path / "shards", wide, tmp_path / "back")
    files = sorted(str(p.relative_to(trained)) for p in trained.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file()) == files
    assert (back / "training.json").read_text() == '{"kind": "test"}'
    rebuilt = load_file(back / "model.safetensors")
    assert rebuilt.keys() == state.keys()
    for name, value in state.items():
        assert torch.allclose(rebuilt[name], value, rtol=1e-3, atol=1e-4), name
