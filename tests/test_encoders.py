"""The encoders on their real models (SPLADE-tiny, all-MiniLM-L6-v2), each backend against an independent
reference.

The references are written here from the formulas, on the Hugging Face models directly: SPLADE as
max over masked positions of log(1 + ReLU(MLM logits)), the bi-encoder as masked mean pooling + L2
normalisation (all-MiniLM-L6-v2's modules.json).  torch-fp32 must match them to float rounding; the other
backends match torch-fp32 within the tolerances stated in each test.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from nirbridge.workers import backends  # noqa: E402
from nirbridge.workers.backends import length_batches  # noqa: E402
from nirbridge.workers.dense import DenseEncoder  # noqa: E402
from nirbridge.workers.errors import (  # noqa: E402
    BackendUnavailableError,
    BadInputError,
    InputFailure,
    ModelNotFoundError,
    split_valid,
)
from nirbridge.workers.models import fingerprint, resolve_model  # noqa: E402
from nirbridge.workers.sparse import SparseEncoder  # noqa: E402
from nirbridge.workers.term_weights import TermWeighter, pseudo_text  # noqa: E402

TEXTS = [
    "Statin use and breast cancer survival: a nationwide cohort study from Finland.",
    "hello",
    "Recent studies have suggested that statins, an established drug group in the prevention of "
    "cardiovascular mortality, could delay or prevent breast cancer recurrence but the effect on "
    "disease-specific mortality remains unclear.",
    "Vitamin D and the risk of dementia",
    "Dietary fibre intake and colorectal cancer in a prospective cohort of 500,000 adults "
    "across ten countries",
]


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh export cache for this module (ONNX exports and backend measurements)."""
    path = tmp_path_factory.mktemp("nirbridge-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIRBRIDGE_CACHE_DIR", str(path))
        yield path


try:
    SPLADE = resolve_model("splade-tiny")
    MINILM = resolve_model("all-MiniLM-L6-v2")
except ModelNotFoundError as exc:  # pragma: no cover - setup.sh installs both
    pytest.skip(f"offline models missing: {exc}", allow_module_level=True)


def splade_reference(texts: list[str], max_length: int = 256) -> np.ndarray:
    """w_j = max_i m_i log(1 + ReLU(z_ij)), one text at a time (no padding), straight from the MLM logits."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(SPLADE))
    mlm = AutoModelForMaskedLM.from_pretrained(str(SPLADE)).eval()
    rows = []
    for text in texts:
        enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = mlm(**enc).logits[0]
        rows.append(torch.log(1 + torch.relu(logits)).max(dim=0).values.numpy())
    return np.stack(rows)


def dense_reference(texts: list[str]) -> np.ndarray:
    """Mean of the token vectors (one text at a time, so no mask is needed), divided by its L2 norm."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(MINILM))
    model = AutoModel.from_pretrained(str(MINILM)).eval()
    rows = []
    for text in texts:
        enc = tok(text, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state[0].numpy()
        mean = hidden.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


@pytest.fixture(scope="module")
def sparse_rows() -> np.ndarray:
    return splade_reference(TEXTS)


@pytest.fixture(scope="module")
def dense_rows() -> np.ndarray:
    return dense_reference(TEXTS)


@pytest.fixture(scope="module")
def sparse_fp32() -> SparseEncoder:
    return SparseEncoder(backend="torch-fp32", batch_size=2)


@pytest.fixture(scope="module")
def dense_fp32() -> DenseEncoder:
    return DenseEncoder(backend="torch-fp32", batch_size=2)


# --- models
# ------------------------------------------------------------------------------------------------------


def test_aliases_resolve_to_model_folders() -> None:
    assert (SPLADE / "config.json").exists() and (SPLADE / "model.safetensors").exists()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == MINILM
    assert resolve_model(str(MINILM)) == MINILM.resolve()


def test_unknown_model_names_the_id() -> None:
    with pytest.raises(ModelNotFoundError, match="nirbridge-tests/no-such-model"):
        resolve_model("nirbridge-tests/no-such-model")
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model("./no/such/folder")


def test_fingerprint_is_stable_across_locations_and_follows_the_weights(tmp_path: Path) -> None:
    copy = tmp_path / "splade"
    shutil.copytree(SPLADE, copy)
    assert fingerprint(copy) == fingerprint(SPLADE)
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    assert fingerprint(copy) != fingerprint(SPLADE)
    assert fingerprint(MINILM) != fingerprint(SPLADE)


# --- sparse
# ------------------------------------------------------------------------------------------------------


def test_splade_torch_fp32_matches_the_formula(sparse_fp32: SparseEncoder, sparse_rows: np.ndarray) -> None:
    special = set(sparse_fp32.tokenizer.all_special_tokens)
    vocab = sparse_fp32.tokenizer.convert_ids_to_tokens(list(range(sparse_rows.shape[1])))
    for terms, row in zip(sparse_fp32.encode(TEXTS), sparse_rows, strict=True):
        expected = {vocab[j]: float(row[j]) for j in np.flatnonzero(row > 0) if vocab[j] not in special}
        assert terms.keys() == expected.keys()
        assert all(k and isinstance(k, str) for k in terms)
        np.testing.assert_allclose(
            [terms[k] for k in expected], list(expected.values()), rtol=1e-4, atol=1e-5
        )
        assert list(terms.values()) == sorted(terms.values(), reverse=True)


@pytest.mark.parametrize(
    ("backend", "atol", "overlap"),
    [("onnx-fp32", 1e-3, 10), ("onnx-int8", 0.15, 7), ("torch-bf16", 0.1, 8)],
)
def test_splade_backends_agree_with_fp32(
    backend: str, atol: float, overlap: int, sparse_fp32: SparseEncoder
) -> None:
    """Same top-10 terms (at least ``overlap`` of them) and every weight within ``atol`` of torch-fp32."""
    reference = sparse_fp32.vectors(TEXTS)
    encoder = SparseEncoder(backend=backend)  # type: ignore[arg-type]
    assert encoder.backend == backend
    for got, ref in zip(encoder.vectors(TEXTS), reference, strict=True):
        assert np.abs(got - ref).max() <= atol
        top = lambda r: set(np.argsort(-r)[:10].tolist())  # noqa: E731
        assert len(top(got) & top(ref)) >= overlap


def test_length_sorting_keeps_the_callers_order(sparse_fp32: SparseEncoder, dense_fp32: DenseEncoder) -> None:
    lengths = [3, 9, 1, 9, 4]
    batches = [b.tolist() for b in length_batches(lengths, 2)]
    assert batches == [[1, 3], [4, 0], [2]]
    assert sorted(i for b in batches for i in b) == list(range(5))
    sorted_rows = sparse_fp32.vectors(TEXTS, sort=True)
    unsorted_rows = sparse_fp32.vectors(TEXTS, sort=False)
    alone = [sparse_fp32.vectors([t])[0] for t in TEXTS]
    for a, b, c in zip(sorted_rows, unsorted_rows, alone, strict=True):
        np.testing.assert_allclose(a, c, atol=1e-4)
        np.testing.assert_allclose(b, c, atol=1e-4)
    dense_alone = np.stack([dense_fp32.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(dense_fp32.encode(TEXTS), dense_alone, atol=1e-5)


def test_pruning_by_top_k_and_threshold(sparse_fp32: SparseEncoder) -> None:
    full = sparse_fp32.encode(TEXTS)
    top5 = SparseEncoder(backend="torch-fp32", top_k=5, batch_size=2).encode(TEXTS)
    above = SparseEncoder(backend="torch-fp32", threshold=1.0, batch_size=2).encode(TEXTS)
    for f, t, a in zip(full, top5, above, strict=True):
        assert list(t) == list(f)[:5]
        assert a == {k: v for k, v in f.items() if v > 1.0}
    with pytest.raises(ValueError, match="top_k"):
        SparseEncoder(backend="torch-fp32", top_k=0)
    with pytest.raises(ValueError, match="threshold"):
        SparseEncoder(backend="torch-fp32", threshold=-1)


def test_dotted_tokens_can_be_dropped() -> None:
    text = ["the end. the end. the end."]
    kept = SparseEncoder(backend="torch-fp32").encode(text)[0]
    dropped = SparseEncoder(backend="torch-fp32", drop_dotted=True).encode(text)[0]
    assert any("." in k for k in kept)
    assert not any("." in k for k in dropped)
    assert dropped == {k: v for k, v in kept.items() if "." not in k}


def test_truncation_at_max_length(sparse_fp32: SparseEncoder) -> None:
    long = "cancer " * 400 + "zebra"
    short = SparseEncoder(backend="torch-fp32", max_length=16)
    assert len(short.token_ids([long])[0]) == 16
    assert "zebra" not in short.encode([long])[0]
    assert "zebra" in sparse_fp32.encode(["cancer zebra"])[0]


# --- term weights
# ------------------------------------------------------------------------------------------------


def test_term_weights_are_the_documents_own_words(sparse_rows: np.ndarray) -> None:
    weighter = TermWeighter(backend="torch-fp32")
    tok = weighter.encoder.tokenizer
    for text, weights, row in zip(TEXTS, weighter.weights(TEXTS), sparse_rows, strict=True):
        enc = tok(text, truncation=True, max_length=256)
        words: dict[int, list[str]] = {}
        first: dict[int, int] = {}
        for piece_id, token, word in zip(enc["input_ids"], enc.tokens(), enc.word_ids(), strict=True):
            if word is not None:
                words.setdefault(word, []).append(token.removeprefix("##"))
                first.setdefault(word, piece_id)
        expected: dict[str, float] = {}
        for w, pieces in words.items():
            term = "".join(pieces)
            if any(c.isalnum() for c in term) and term not in expected and row[first[w]] > 0:
                expected[term] = float(row[first[w]])
        assert weights.keys() == expected.keys()
        assert set(weights) <= set(re.findall(r"\w+", text.lower()))
        np.testing.assert_allclose(list(weights.values()), [expected[k] for k in weights], atol=1e-4)
    assert weighter.query_terms("Statins, breast-cancer!") == ["statins", "breast", "cancer"]


def test_pseudo_text_repeats_each_term_round_weight_times_scale() -> None:
    text = pseudo_text({"statin": 1.25, "cancer": 0.5, "the": 0.2}, scale=2)
    assert text.split() == ["statin"] * 3 + ["cancer"] * 1
    assert pseudo_text({"a": 0.24}, scale=2) == ""
    with pytest.raises(ValueError, match="scale"):
        pseudo_text({"a": 1.0}, scale=0)
    with pytest.raises(ValueError, match="whitespace"):
        pseudo_text({"a b": 1.0}, scale=1)


# --- dense
# -------------------------------------------------------------------------------------------------------


def test_dense_torch_fp32_matches_mean_pooling_and_normalisation(
    dense_fp32: DenseEncoder, dense_rows: np.ndarray
) -> None:
    vectors = dense_fp32.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    assert dense_fp32.dimension == 384 and dense_fp32.normalized
    assert dense_fp32.space_type == "innerproduct"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * dense_rows).sum(axis=1).min() >= 0.99999


@pytest.mark.parametrize(
    ("backend", "min_cos"), [("onnx-fp32", 0.9999), ("onnx-int8", 0.98), ("torch-bf16", 0.99)]
)
def test_dense_backends_agree_with_fp32(backend: str, min_cos: float, dense_fp32: DenseEncoder) -> None:
    reference = dense_fp32.encode(TEXTS)
    encoder = DenseEncoder(backend=backend)  # type: ignore[arg-type]
    cosines = (encoder.encode(TEXTS) * reference).sum(axis=1)
    assert cosines.min() >= min_cos, cosines


# --- backend choice and errors
# -----------------------------------------------------------------------------------


def test_auto_picks_a_measured_cpu_backend_and_caches_it(cache_dir: Path) -> None:
    encoder = SparseEncoder(backend="auto")
    assert encoder.backend in backends.CPU_BACKENDS
    stored = json.loads((cache_dir / "auto.json").read_text())
    (entry,) = [v for k, v in stored.items() if k.startswith(encoder.graph.key)]
    assert entry["backend"] == encoder.backend
    assert entry["seconds"][encoder.backend] == min(entry["seconds"].values())


def test_unavailable_and_unknown_backends() -> None:
    if not backends.cuda_available():
        with pytest.raises(BackendUnavailableError, match="pip install onnxruntime-gpu"):
            SparseEncoder(backend="onnx-cuda-fp16")
    with pytest.raises(ValueError, match="torch-fp32, torch-bf16, onnx-fp32, onnx-int8"):
        SparseEncoder(backend="tensorrt")  # type: ignore[arg-type]


def test_bad_texts_are_reported_per_item(sparse_fp32: SparseEncoder, dense_fp32: DenseEncoder) -> None:
    batch = ["fine", "", 3, "   ", None, "also fine"]
    good, failures = split_valid(batch)
    assert good == [0, 5]
    assert failures == [
        InputFailure(1, "empty text"),
        InputFailure(2, "expected a str, got int"),
        InputFailure(3, "empty text"),
        InputFailure(4, "expected a str, got NoneType"),
    ]
    for encode in (sparse_fp32.encode, dense_fp32.encode):
        with pytest.raises(BadInputError) as info:
            encode(batch)
        assert [f.index for f in info.value.failures] == [1, 2, 3, 4]
        assert "text 2: expected a str, got int" in str(info.value)
    with pytest.raises(TypeError, match="single str"):
        split_valid("not a list")
    for error in (
        info.value,
        ModelNotFoundError("x", "y"),
        BackendUnavailableError("b", "r", "pip install z"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
