"""`nirbridge train reranker` end to end: a SciFact slice ingested into the real engine, a few training steps,
and the folder it writes loaded the way the proxy loads it.

The slice is the first 30 SciFact train queries with their relevant documents, filled up to 150 documents
from the corpus; 10% of the queries are held out as dev.  Pairs of 64 word pieces and four steps of two
groups keep the training to seconds; the ONNX export (fp32 and int8) is most of the run.  The card's dev
figures are recomputed here from the engine's BM25 ranking (ir-measures) and from the saved model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from nirbridge.connector.beir import BeirDataset
from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.train_data import training_data
from nirbridge.workers.cross_encoder import CrossEncoder

runner = CliRunner()
INDEX = "train-reranker-slice"
TINY = ["--steps", "4", "--queries", "2", "--accumulation", "1", "--group", "4", "--max-length", "64"]
TINY += ["--validate-every", "2", "--dev-depth", "10", "--no-progress"]


@pytest.fixture(scope="module")
def slice_dir(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: 30 train queries, their relevant documents, other documents up to 150."""
    source = BeirDataset.open(scifact_dir)
    qrels = source.qrels("train")
    chosen = sorted(qrels)[:30]
    wanted = {doc for qid in chosen for doc in qrels[qid]}
    docs = [d for d in source.documents() if d.id in wanted]
    docs += [d for d in source.documents() if d.id not in wanted][: 150 - len(docs)]
    root = tmp_path_factory.mktemp("scifact-reranker")
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d.id, **d.source()}) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q.id, "text": q.text}) + "\n" for q in source.queries() if q.id in chosen)
    )
    (root / "qrels").mkdir()
    rows = [f"{qid}\t{doc}\t{grade}" for qid in chosen for doc, grade in qrels[qid].items()]
    (root / "qrels" / "train.tsv").write_text("\n".join(["query-id\tcorpus-id\tscore", *rows]) + "\n")
    return root


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ONNX export cache of this module, away from the user's."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("onnx-cache")
        patch.setenv("NIRBRIDGE_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def ingested(engine: EngineProcess, slice_dir: Path) -> str:
    result = runner.invoke(
        app, ["ingest", "--url", engine.url, "--index", INDEX, "--dataset", str(slice_dir)]
    )
    assert result.exit_code == 0, result.output
    return INDEX


def _train(engine: EngineProcess, dataset: Path, out: Path, *extra: str) -> Result:
    args = ["train", "reranker", "--url", engine.url, "--dataset", str(dataset), "--out", str(out)]
    return runner.invoke(app, [*args, *extra])


@pytest.fixture(scope="module")
def trained(
    engine: EngineProcess,
    slice_dir: Path,
    ingested: str,
    export_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("reranker") / "model"
    result = _train(engine, slice_dir, out, "--index", ingested, "--json", *TINY)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout.strip().splitlines()[-1])


def test_the_folder_scores_pairs_on_torch_and_int8_alike(trained: tuple[Path, dict[str, Any]]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, card = trained
    assert (out / "onnx" / "model-fp32.onnx").is_file() and (out / "onnx" / "model-int8.onnx").is_file()
    query = "statins reduce breast cancer mortality"
    passages = [
        "Statin use after diagnosis was associated with lower breast cancer death in a Finnish cohort.",
        "Vitamin D supplementation did not change fracture rates in older adults.",
        "The mitochondrial genome of yeast encodes a small number of proteins.",
        "Breast cancer patients who used statins had fewer recurrences.",
    ]
    torch_scores = CrossEncoder(out, backend="torch-fp32").score(query, passages)
    # Hugging Face's own reading of the folder: one logit per pair, tokenised only_second at 256
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    batch = tokenizer(
        [query] * len(passages), passages, truncation="only_second", padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        reference = model(**batch).logits[:, 0].numpy()
    np.testing.assert_allclose(torch_scores, reference, atol=1e-4)
    ranked = CrossEncoder(out, backend="torch-fp32").rank(query, passages)
    assert [i for i, _ in ranked] == list(np.argsort(-reference, kind="stable"))
    int8 = CrossEncoder(out, backend="onnx-int8")
    assert int8.backend == "onnx-int8"
    int8_scores = int8.score(query, passages)
    assert np.abs(int8_scores - torch_scores).max() <= 0.1 * max(1.0, float(np.abs(torch_scores).max()))
    assert card["metrics"]["int8 vs fp32 spearman (dev pairs)"] > 0.9


def test_the_card_holds_dev_metrics_that_recompute_from_the_engine_and_the_model(
    engine: EngineProcess, slice_dir: Path, ingested: str, trained: tuple[Path, dict[str, Any]]
) -> None:
    import ir_measures
    from opensearchpy import OpenSearch

    out, card = trained
    assert json.loads((out / "training.json").read_text()) == card
    assert card["kind"] == "reranker" and card["settings"]["group"] == 4
    assert [v["step"] for v in card["settings"]["validation"]] == [2, 4]
    assert card["settings"]["best step"] in (2, 4) and "train reranker" in card["command"]
    data = training_data(BeirDataset.open(slice_dir))
    client = OpenSearch(engine.url)
    first_stage: dict[str, dict[str, float]] = {}
    model: dict[str, dict[str, float]] = {}
    encoder = CrossEncoder(out, backend="torch-fp32", max_length=64, max_query_length=60)
    for qid in data.dev:
        query = data.queries[qid]
        body = {"size": 10, "query": {"multi_match": {"query": query, "fields": ["title", "text"]}}}
        hits = [hit["_id"] for hit in client.search(index=ingested, body=body)["hits"]["hits"]]
        first_stage[qid] = {doc: float(-rank) for rank, doc in enumerate(hits)}
        scores = encoder.score(query, [data.corpus[doc] for doc in hits])
        model[qid] = dict(zip(hits, map(float, scores), strict=True))
    qrels = [ir_measures.Qrel(q, d, g) for q, grades in data.dev.items() for d, g in grades.items()]
    ndcg = ir_measures.parse_measure("nDCG@10")
    assert card["metrics"]["first stage dev ndcg@10"] == pytest.approx(
        ir_measures.calc_aggregate([ndcg], qrels, first_stage)[ndcg], abs=1e-4
    )
    assert card["metrics"]["dev ndcg@10"] == pytest.approx(
        ir_measures.calc_aggregate([ndcg], qrels, model)[ndcg], abs=1e-3
    )
    assert "## Dev metrics" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--index", "no-such-index"], "no-such-index"),
        (["--index", INDEX, "--dev-split", "nope"], "nope"),
        (["--index", INDEX, "--head", "max"], "unknown head 'max'"),
        (["--index", INDEX, "--depth", "3", "--skip-top", "3"], "depth must be > skip_top"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    engine: EngineProcess, slice_dir: Path, ingested: str, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = _train(engine, slice_dir, tmp_path / "model", *extra, "--steps", "1", "--no-progress")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "model").exists()


def test_the_mean_head_starts_as_mean_pooling_and_loads_as_a_cross_encoder(tmp_path: Path) -> None:
    """The appended layer's [CLS] output is LayerNorm(8 x masked mean + [CLS]) of the sixth layer's states,
    computed here by hand from the base model, with padding that must not count."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from nirbridge.workers.models import resolve_model
    from nirbridge.workers.train.reranker import _initial_model

    base = resolve_model("all-MiniLM-L6-v2")
    _initial_model(base, "mean", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    batch = tokenizer(["statins", "vitamin d"], ["breast cancer death", "bone fractures in older adults"])
    batch = tokenizer.pad(batch, return_tensors="pt")
    assert int(batch["attention_mask"].sum()) < batch["attention_mask"].numel()  # one row is padded
    with torch.no_grad():
        states = AutoModel.from_pretrained(str(base))(**batch).last_hidden_state
        model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path)).eval()
        pooled_in = model.bert(**batch, output_hidden_states=True).hidden_states[-1][:, 0]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (states * mask).sum(1) / mask.sum(1)
    expected = torch.nn.functional.layer_norm(8 * mean + states[:, 0], (states.shape[-1],), eps=1e-12)
    assert model.config.num_hidden_layers == 7
    torch.testing.assert_close(pooled_in, expected, atol=1e-4, rtol=1e-4)
    scores = CrossEncoder(tmp_path, backend="torch-fp32").score("statins", ["breast cancer", "bone"])
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_groups_pair_each_query_with_its_relevant_text_and_hard_negatives_from_the_allowed_ranks() -> None:
    """What a training step reads: texts, not ids; the positive first; negatives from BM25 ranks
    skip_top+1..depth that are not judged relevant; random documents only where the ranking runs out."""
    import random

    from nirbridge.workers.train.data import TrainingData
    from nirbridge.workers.train.reranker import _groups

    corpus = {f"d{i}": f"document number {i}" for i in range(40)}
    queries = {"q1": "first query", "q2": "second query", "q3": "third query"}
    train = {"q1": {"d0": 1}, "q2": {"d1": 1}, "q3": {"d2": 1}}
    data = TrainingData.from_beir(corpus, queries, train, {"q3": {"d2": 1}})
    ranked = {"q1": [f"d{i}" for i in (5, 6, 7, 0, 8, 9, 10, 11, 30)], "q2": ["d12", "d13"]}
    data = data.with_candidates(ranked)
    groups = _groups(data, ["q1", "q2"], 4, 2, 8, random.Random(0))
    (text1, passages1), (text2, passages2) = groups
    assert (text1, text2) == ("first query", "second query")
    assert passages1[0] == "document number 0" and passages2[0] == "document number 1"
    allowed = {f"document number {i}" for i in (7, 8, 9, 10, 11)}  # ranks 3..8 less d0 (relevant); not d30
    assert set(passages1[1:]) <= allowed and len(set(passages1[1:])) == 3
    assert len(set(passages2[1:])) == 3 and "document number 1" not in passages2[1:]  # no ranks past 2
