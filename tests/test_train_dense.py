"""`nirbridge train dense` end to end: a SciFact slice ingested into the real engine, a few training steps,
and the folder it writes checked as the enrichment will use it.

The slice is the first 30 SciFact train queries with their relevant documents, filled up to 150 documents
from the corpus; 10% of the queries are held out as dev.  Short texts (48 word pieces) and two epochs of a
few steps keep it to seconds.  The dev nDCG@10 in the model card is recomputed here from the saved folder
(DenseEncoder vectors, BM25 pool from the engine, ir-measures), and the pooling is checked against vectors
computed by hand from the transformer's token states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from nirbridge.connector.beir import BeirDataset
from nirbridge.connector.cli import app
from nirbridge.connector.client import make_client
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.train_data import training_data, with_bm25_candidates
from nirbridge.workers.dense import DenseEncoder, read_pooling
from nirbridge.workers.models import resolve_model

runner = CliRunner()
INDEX = "train-dense-slice"
LENGTH = 48  # word pieces, for queries and documents alike
SHORT = ["--max-length", str(LENGTH), "--query-max-length", str(LENGTH)]


@pytest.fixture(scope="module")
def slice_dir(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: 30 train queries, their relevant documents, other documents up to 150."""
    root = tmp_path_factory.mktemp("scifact-slice")
    lines = (scifact_dir / "qrels" / "train.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    chosen = list(dict.fromkeys(qid for qid, _, _ in rows))[:30]
    kept = [row for row in rows if row[0] in chosen]
    wanted = {doc for _, doc, _ in kept}
    corpus = (scifact_dir / "corpus.jsonl").read_text().splitlines()
    relevant = [line for line in corpus if json.loads(line)["_id"] in wanted]
    others = [line for line in corpus if json.loads(line)["_id"] not in wanted][: 150 - len(relevant)]
    (root / "corpus.jsonl").write_text("\n".join(relevant + others) + "\n")
    queries = (scifact_dir / "queries.jsonl").read_text().splitlines()
    (root / "queries.jsonl").write_text(
        "\n".join(q for q in queries if json.loads(q)["_id"] in chosen) + "\n"
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("\n".join([lines[0], *map("\t".join, kept)]) + "\n")
    return root


@pytest.fixture(scope="module")
def ingested(engine: EngineProcess, slice_dir: Path) -> str:
    result = runner.invoke(
        app, ["ingest", "--url", engine.url, "--index", INDEX, "--dataset", str(slice_dir)]
    )
    assert result.exit_code == 0, result.output
    return INDEX


def _train(engine: EngineProcess, dataset: Path, out: Path, *extra: str) -> Result:
    args = ["train", "dense", "--url", engine.url, "--dataset", str(dataset), "--out", str(out), "--json"]
    return runner.invoke(app, [*args, "--no-progress", *extra])


@pytest.fixture(scope="module")
def trained(engine: EngineProcess, slice_dir: Path, ingested: str, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("dense") / "model"
    result = _train(engine, slice_dir, out, "--index", ingested, "--epochs", "2", "--batch-size", "8", *SHORT)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out, summary


def test_the_folder_loads_as_a_dense_encoder_with_the_bases_shape(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    base = resolve_model("all-MiniLM-L6-v2")
    assert read_pooling(out) == read_pooling(base)
    for name in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    hidden = json.loads((base / "config.json").read_text())["hidden_size"]
    encoder = DenseEncoder(out, backend="torch-fp32")
    texts = ["Statins lower the risk of breast cancer.", "Vitamin D deficiency in the elderly"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (2, hidden) and encoder.space_type == "innerproduct"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    before = DenseEncoder(base, backend="torch-fp32").encode(texts)
    assert not np.allclose(vectors, before, atol=1e-4), "training did not change the weights"


def test_the_vectors_are_mean_pooled_and_normalised_as_the_base_declares(trained: tuple[Path, dict]) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    out, _ = trained
    text = "Aspirin reduces the risk of colorectal cancer."
    tokens = AutoTokenizer.from_pretrained(out)(text, return_tensors="pt")
    with torch.no_grad():
        states = AutoModel.from_pretrained(out)(**tokens).last_hidden_state[0].numpy()
    mean = states.mean(axis=0)  # one unpadded text: the mask is all ones
    expected = mean / np.linalg.norm(mean)
    got = DenseEncoder(out, backend="torch-fp32").encode([text])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_card_holds_the_metrics_and_they_recompute_from_the_saved_model(
    engine: EngineProcess, slice_dir: Path, ingested: str, trained: tuple[Path, dict]
) -> None:
    import ir_measures

    out, summary = trained
    card = json.loads((out / "training.json").read_text())
    metrics = card["metrics"]
    assert card["kind"] == "dense" and card["settings"]["batch_size"] == 8
    epochs = [metrics[f"dev ndcg@10 epoch {e}"] for e in range(1, card["epochs_run"] + 1)]
    assert metrics["dev ndcg@10 best"] == max(epochs) == epochs[card["best_epoch"] - 1]
    assert summary["parameters"]["trainable"] == summary["parameters"]["total"]  # full fine-tuning
    assert card["command"].startswith("nirbridge train dense --dataset")
    readme = (out / "README.md").read_text()
    assert "dev ndcg@10 base" in readme and "dev ndcg@10 epoch 1" in readme

    # the dev score of the kept epoch, recomputed independently from the folder on disk
    data = training_data(BeirDataset.open(slice_dir))
    data = with_bm25_candidates(make_client(engine.url), engine.url, ingested, data, depth=100)
    pool = list(dict.fromkeys(doc for qid in data.dev for doc in data.dev_candidates(qid)))
    assert card["dev_pool"] == len(pool)
    encoder = DenseEncoder(out, backend="torch-fp32", max_length=LENGTH)
    scores = (
        encoder.encode([data.queries[q] for q in data.dev]) @ encoder.encode([data.corpus[d] for d in pool]).T
    )
    run = {
        qid: {doc: float(s) for doc, s in zip(pool, row, strict=True)}
        for qid, row in zip(data.dev, scores, strict=True)
    }
    qrels = {qid: dict(grades) for qid, grades in data.dev.items()}
    ndcg = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10]
    assert metrics["dev ndcg@10 best"] == pytest.approx(ndcg, abs=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train-split", "nope"], "no qrels for split 'nope'"),
        (["--dev-split", "test"], "no qrels for split 'test'"),
        (["--skip-top", "10", "--depth", "5"], "must be above --skip-top"),
        (["--base", "/no/such/model"], "no such folder"),
    ],
)
def test_bad_splits_and_settings_are_usage_errors(
    engine: EngineProcess, slice_dir: Path, ingested: str, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = _train(engine, slice_dir, tmp_path / "model", "--index", ingested, *SHORT, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "model").exists()


def test_a_missing_dataset_is_a_usage_error(engine: EngineProcess, tmp_path: Path) -> None:
    result = _train(engine, tmp_path / "nowhere", tmp_path / "model")
    assert result.exit_code == 2
    assert "no such directory" in result.output
