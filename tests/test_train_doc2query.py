"""`nirbridge train doc2query` end to end: a SciFact slice, a few steps, and the folder it writes used the way
the enrichment uses it.

The slice is the first 30 SciFact train queries with their relevant documents (10% of the queries held out as
dev).  The base is splade-tiny (a 2-layer BERT, 128 wide, shipped offline) rather than the default
all-MiniLM-L6-v2: the code path is the same (BERT2BERT from one BERT checkpoint), and it keeps the runs to
seconds.  The trainer needs no cluster, so no engine is started.  The checks reach past the command's own
report: the dev losses are compared with the untrained model's, the frozen weights with the base's own, and
the saved folder is loaded by the enrichment's ``Doc2QueryGenerator``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from nirbridge.connector.beir import BeirDataset
from nirbridge.connector.cli import app
from nirbridge.connector.train_data import training_data
from nirbridge.workers.train.data import TrainingData

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nirbridge.workers.doc2query import Doc2QueryGenerator, normalise_query  # noqa: E402
from nirbridge.workers.models import resolve_model  # noqa: E402
from nirbridge.workers.train.doc2query import train_doc2query  # noqa: E402

runner = CliRunner()
TINY = [
    "--base",
    "splade-tiny",
    "--batch-size",
    "8",
    "--max-source-length",
    "48",
    "--max-target-length",
    "24",
]


@pytest.fixture(scope="module")
def slice_dir(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: 30 train queries and their relevant documents."""
    root = tmp_path_factory.mktemp("scifact-d2q")
    lines = (scifact_dir / "qrels" / "train.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    chosen = set(list(dict.fromkeys(qid for qid, _, _ in rows))[:30])
    kept = [row for row in rows if row[0] in chosen]
    wanted = {doc for _, doc, _ in kept}
    corpus = (scifact_dir / "corpus.jsonl").read_text().splitlines()
    (root / "corpus.jsonl").write_text("\n".join(c for c in corpus if json.loads(c)["_id"] in wanted) + "\n")
    queries = (scifact_dir / "queries.jsonl").read_text().splitlines()
    (root / "queries.jsonl").write_text(
        "\n".join(q for q in queries if json.loads(q)["_id"] in chosen) + "\n"
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("\n".join([lines[0], *map("\t".join, kept)]) + "\n")
    return root


def _train(dataset: Path, out: Path, *extra: str) -> Result:
    args = ["train", "doc2query", "--dataset", str(dataset), "--out", str(out), "--json", "--no-progress"]
    return runner.invoke(app, [*args, *extra])


def _record(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Full fine-tuning: 5 epochs of 4 steps at a high rate (a 2-layer model learns fast)."""
    out = tmp_path_factory.mktemp("d2q") / "model"
    result = _train(slice_dir, out, *TINY, "--epochs", "5", "--learning-rate", "1e-3")
    return out, _record(result)


def test_training_lowers_the_dev_loss_and_keeps_the_best_epoch(
    trained: tuple[Path, dict[str, Any]], slice_dir: Path
) -> None:
    out, record = trained
    saved = json.loads((out / "training.json").read_text())
    assert saved["metrics"] == record["metrics"] and saved["kind"] == "doc2query"
    metrics = record["metrics"]
    epochs = [metrics[f"dev loss epoch {e}"] for e in range(1, record["epochs_run"] + 1)]
    assert record["epochs_run"] == 5 and record["steps"] == 20  # 29 train pairs / 8: 4 steps an epoch
    assert metrics["dev loss best"] == min(epochs)
    assert epochs.index(min(epochs)) + 1 == record["best_epoch"]
    # the untrained decoder spreads its guesses over 30,522 pieces (ln 30522 = 10.3); trained, it knows
    # which pieces queries use
    assert metrics["dev loss base"] > 9 and metrics["dev loss best"] < metrics["dev loss base"] - 2
    data = training_data(BeirDataset.open(slice_dir))
    assert record["pairs"] == sum(map(len, data.train.values()))
    assert record["dev_pairs"] == sum(g > 0 for grades in data.dev.values() for g in grades.values())
    card = (out / "README.md").read_text()
    assert "dev loss best" in card and "generated:" in card


def test_the_folder_generates_distinct_queries_in_the_enrichment(
    trained: tuple[Path, dict[str, Any]], slice_dir: Path
) -> None:
    out, record = trained
    generator = Doc2QueryGenerator(out, "torch-fp32", n=4, max_new_tokens=24)
    assert generator.max_length == 48  # the tokenizer carries the length training read
    config = generator.seq2seq.config
    tokenizer = generator.tokenizer
    assert config.model_type == "encoder-decoder"
    assert (config.decoder_start_token_id, config.eos_token_id, config.pad_token_id) == (
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
    )
    corpus = training_data(BeirDataset.open(slice_dir)).corpus
    texts = [corpus[sample["doc"]] for sample in record["samples"]][:3]
    queries = generator.generate(texts)
    for qs in queries:
        assert 1 <= len(qs) <= 4 and all(q == q.strip() and q for q in qs)
        assert len({normalise_query(q) for q in qs}) == len(qs)
        assert all(len(tokenizer(q, add_special_tokens=False)["input_ids"]) <= 24 for q in qs)
    assert sum(map(len, queries)) >= 2 * len(texts)  # sampling gives most documents several queries
    # the card's samples were drawn by the same generator (n=5, seed 0) from the same folder
    five = Doc2QueryGenerator(out, "torch-fp32", n=5)
    assert five.generate(texts) == [sample["generated"] for sample in record["samples"]][:3]


def test_frozen_encoder_and_embeddings_stay_the_bases(slice_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoModelForSeq2SeqLM

    out = tmp_path / "frozen"
    extra = ["--epochs", "1", "--learning-rate", "1e-3", "--freeze-encoder", "--freeze-embeddings"]
    record = _record(_train(slice_dir, out, *TINY, *extra))
    assert record["settings"]["freeze_encoder"] and record["steps"] == 4
    assert record["metrics"]["dev loss best"] < record["metrics"]["dev loss base"]
    base = AutoModel.from_pretrained(str(resolve_model("splade-tiny")), local_files_only=True).state_dict()
    model = AutoModelForSeq2SeqLM.from_pretrained(str(out), local_files_only=True)
    for name, weight in model.encoder.state_dict().items():
        if name.startswith("pooler."):
            continue  # splade-tiny has no pooler: drawn fresh on every load, and no encoder-decoder uses it
        assert torch.equal(weight, base[name]), name
    embeddings = model.decoder.get_input_embeddings().weight
    assert torch.equal(embeddings, base["embeddings.word_embeddings.weight"])


def test_bad_input_is_refused(slice_dir: Path, tmp_path: Path) -> None:
    missing = _train(tmp_path / "nowhere", tmp_path / "m1", *TINY)
    assert missing.exit_code == 2 and "--dataset" in missing.output
    split = _train(slice_dir, tmp_path / "m2", *TINY, "--dev-split", "nosuch")
    assert split.exit_code == 2 and "nosuch" in split.output
    base = _train(slice_dir, tmp_path / "m3", "--base", str(tmp_path / "no-model"))
    assert base.exit_code == 2 and "--base" in base.output
    assert _train(slice_dir, tmp_path / "m4", "--epochs", "0").exit_code == 2
    taken = tmp_path / "notes"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    refused = _train(slice_dir, taken, *TINY, "--max-steps", "1")
    assert refused.exit_code == 2 and "not a model folder" in refused.output
    assert (taken / "keep.txt").read_text() == "mine"

    data = TrainingData(corpus={"d": "a document"}, queries={"q": "a query"}, train={"q": ("d",)}, dev={})
    with pytest.raises(ValueError, match="no dev pair"):
        train_doc2query(data, tmp_path / "m5")
    with pytest.raises(ValueError, match="max_source_length must be"):
        train_doc2query(data, tmp_path / "m6", max_source_length=2)
    with pytest.raises(ValueError, match="learning_rate must be"):
        train_doc2query(data, tmp_path / "m7", learning_rate=0.0)
