"""The models nirbridge ships as deltas on an offline base (workers/shipped.py): widened once into the cache,
complete and loadable, equal to delta + base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from nirbridge.workers.cross_encoder import CrossEncoder
from nirbridge.workers.errors import ModelNotFoundError
from nirbridge.workers.models import resolve_model
from nirbridge.workers.shipped import DELTA_MANIFEST, DELTA_WEIGHTS, SHIPPED

NAME = "nirbridge/reranker-nfcorpus"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NIRBRIDGE_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_the_shipped_reranker_is_listed_and_small() -> None:
    delta = SHIPPED[NAME]
    assert (delta / DELTA_WEIGHTS).stat().st_size < 20 * 2**20
    manifest = json.loads((delta / DELTA_MANIFEST).read_text())
    assert manifest["base"] == "all-MiniLM-L6-v2"
    card = json.loads((delta / "training.json").read_text())
    assert card["kind"] == "reranker" and card["metrics"]["dev ndcg@10"] > 0


def test_it_widens_once_into_the_cache_as_delta_plus_base(cache: Path) -> None:
    folder = resolve_model(NAME)
    assert folder.is_relative_to(cache / "shipped")
    weights = load_file(folder / "model.safetensors")
    delta = load_file(SHIPPED[NAME] / DELTA_WEIGHTS)
    base = load_file(resolve_model("all-MiniLM-L6-v2") / "model.safetensors")
    manifest = json.loads((SHIPPED[NAME] / DELTA_MANIFEST).read_text())
    assert set(weights) == set(delta) | set(manifest["tensors_from_base"])
    for key, value in delta.items():
        assert weights[key].dtype == value.float().dtype and weights[key].equal(value.float()), key
    for key, source in manifest["tensors_from_base"].items():
        assert weights[key].equal(base[source]), key
    for relative in manifest["files_from_base"]:
        assert (folder / relative).read_bytes() == (resolve_model("all-MiniLM-L6-v2") / relative).read_bytes()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(NAME) == folder  # the second use finds it
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_it_scores_relevant_passages_above_unrelated_ones(cache: Path) -> None:
    encoder = CrossEncoder(NAME, "torch-fp32", max_length=128)
    query = "vitamin D and breast cancer risk"
    scores = encoder.score(
        query,
        [
            "Serum vitamin D levels and the risk of breast cancer in postmenopausal women: a cohort study.",
            "A survey of railway timetables in nineteenth-century Europe.",
        ],
    )
    assert scores[0] > scores[1]


def test_a_name_that_is_no_model_is_named(cache: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model("nirbridge/no-such/model")
