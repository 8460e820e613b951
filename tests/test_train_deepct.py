"""`nirbridge train deepct` on a SciFact slice, and the trained model in the `terms` encoder, end to end.

The slice (a few train queries, their relevant abstracts and some others) is ingested into a real engine; the
model is trained through the CLI with BM25 candidates from that index, loaded by `TermWeighter`, written into
the index by `nirbridge enrich --terms`, and searched by `nirbridge eval --mode terms`.  Whether it learned is
judged on queries it never saw: on held-out SciFact train queries' relevant abstracts, the words those queries
use must outrank the others (AUC) far better than under the same base model with its fresh, untrained head.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nirbridge.connector.cli import app  # noqa: E402
from nirbridge.connector.client import make_client  # noqa: E402
from nirbridge.connector.engine_process import EngineProcess  # noqa: E402
from nirbridge.workers.models import fingerprint, resolve_model  # noqa: E402
from nirbridge.workers.term_weights import TermWeighter, is_token_regressor  # noqa: E402
from nirbridge.workers.train.data import TrainingData  # noqa: E402
from nirbridge.workers.train.deepct import match_form, term_recall, train_deepct  # noqa: E402

runner = CliRunner()
TRAIN_QUERIES = 30  # the slice's train queries (10% of them held out as dev by the trainer)
HELD_OUT_QUERIES = 30  # further SciFact train queries, never seen, for the learned-behaviour check
MAX_LENGTH = 64


def _read_beir(root: Path) -> tuple[list[dict[str, Any]], dict[str, str], list[list[str]]]:
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (root / "queries.jsonl").open())}
    qrels = [line.rstrip("\n").split("\t") for line in (root / "qrels" / "train.tsv").open()][1:]
    return corpus, queries, qrels


@pytest.fixture(scope="module")
def scifact(scifact_dir: Path) -> tuple[list[dict[str, Any]], dict[str, str], list[list[str]]]:
    return _read_beir(scifact_dir)


@pytest.fixture(scope="module")
def slice_dir(scifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first TRAIN_QUERIES judged train queries, their relevant abstracts and 30 other abstracts."""
    corpus, queries, qrels = scifact
    chosen = sorted({q for q, _, _ in qrels})[:TRAIN_QUERIES]
    rows = [r for r in qrels if r[0] in chosen]
    relevant = {d for _, d, _ in rows}
    others = random.Random(0).sample(sorted(c["_id"] for c in corpus if c["_id"] not in relevant), 30)
    keep = relevant | set(others)
    root = tmp_path_factory.mktemp("scifact-slice")
    (root / "qrels").mkdir()
    (root / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus if c["_id"] in keep))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in chosen)
    )
    lines = ["query-id\tcorpus-id\tscore", *("\t".join(r) for r in rows)]
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    return root


def _json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ingested(engine: EngineProcess, slice_dir: Path) -> str:
    result = runner.invoke(
        app, ["ingest", "--url", engine.url, "--index", "deepct-slice", "--dataset", str(slice_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    return "deepct-slice"


@pytest.fixture(scope="module")
def trained(engine: EngineProcess, ingested: str, slice_dir: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("deepct") / "model"
    args = ["train", "deepct", "--dataset", str(slice_dir), "--out", str(out), "--url", engine.url]
    args += ["--index", ingested, "--epochs", "2", "--batch-size", "8", "--learning-rate", "3e-4"]
    args += ["--max-length", str(MAX_LENGTH), "--pool-depth", "5", "--json", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, _json(result)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base model with the same fresh one-label head the trainer starts from, saved untouched."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    base = resolve_model("all-MiniLM-L6-v2")
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(str(base), num_labels=1, local_files_only=True)
    out = tmp_path_factory.mktemp("deepct-untrained")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base), local_files_only=True).save_pretrained(str(out))
    return out


def test_training_writes_a_deepct_model_with_its_card(trained: tuple[Path, dict]) -> None:
    out, record = trained
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and is_token_regressor(out)
    card = json.loads((out / "training.json").read_text())
    assert card["kind"] == "deepct" and card["data"]["train_queries"] == TRAIN_QUERIES - 3
    assert "BM25" in card["data"]["candidates"]  # the dev pool came from the index
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    best = max(h["dev_ndcg@10"] for h in record["history"])
    assert record["metrics"]["dev ndcg@10 (pool, idf x weight)"] == pytest.approx(best, abs=1e-4)
    assert "query term recall" in (out / "README.md").read_text()


def test_term_recall_matches_porter_stems() -> None:
    queries = [{match_form(w) for w in "statin use in breast cancer".split()}, {match_form("statins")}]
    assert term_recall(["Statins", "cancer", "finland"], queries) == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="at least one relevant query"):
        term_recall(["a"], [])


def _auc(weighter: TermWeighter, docs: list[str], queries: list[list[str]]) -> float:
    """P(a word the document's relevant queries use outweighs one they do not), ties half, over ``docs``."""
    wins = pairs = 0.0
    for doc, weights, texts in zip(docs, weighter.weights(docs), queries, strict=True):
        forms = set().union(*({match_form(w) for w in weighter.query_terms(t)} for t in texts))
        words = weighter.query_terms(doc)  # every word of the document, split and truncated as it is weighted
        used = [weights.get(w, 0.0) for w in words if match_form(w) in forms]
        unused = [weights.get(w, 0.0) for w in words if match_form(w) not in forms]
        for a in used:
            for b in unused:
                wins += 1.0 if a > b else 0.5 if a == b else 0.0
                pairs += 1
    return wins / pairs


def test_weights_favour_the_words_unseen_queries_use(trained, untrained: Path, scifact) -> None:
    corpus, queries, qrels = scifact
    held_out = sorted({q for q, _, _ in qrels})[TRAIN_QUERIES : TRAIN_QUERIES + HELD_OUT_QUERIES]
    texts = {c["_id"]: f"{c.get('title') or ''} {c.get('text') or ''}".strip() for c in corpus}
    relevant: dict[str, list[str]] = {}
    for qid, doc, _ in qrels:
        if qid in held_out:
            relevant.setdefault(doc, []).append(queries[qid])
    docs = sorted(relevant)
    model = TermWeighter(trained[0], backend="torch-fp32", max_length=MAX_LENGTH)
    base = TermWeighter(untrained, backend="torch-fp32", max_length=MAX_LENGTH)
    learned = _auc(model, [texts[d] for d in docs], [relevant[d] for d in docs])
    before = _auc(base, [texts[d] for d in docs], [relevant[d] for d in docs])
    # measured here: 0.69 learned against 0.58 for the fresh head (two epochs over 27 queries' abstracts)
    assert learned > 0.63 and learned > before + 0.06, (learned, before)


def test_enrich_with_the_model_writes_nir_terms_and_eval_searches_them(
    engine: EngineProcess, ingested: str, trained: tuple[Path, dict], slice_dir: Path
) -> None:
    out = trained[0]
    args = ["enrich", "--url", engine.url, "--index", ingested, "--fields", "title,text", "--terms", str(out)]
    args += ["--backend", "torch-fp32", "--param", f"terms.max_length={MAX_LENGTH}"]
    args += ["--param", "terms.pseudo_text_scale=10", "--checkpoint", str(out.parent / "ck.json"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    client = make_client(engine.url)
    doc = client.search(index=ingested, body={"size": 1, "sort": ["_id"]})["hits"]["hits"][0]
    source = doc["_source"]
    text = f"{source['title']} {source['text']}".strip()
    expected = TermWeighter(out, backend="torch-fp32", max_length=MAX_LENGTH).weights([text])[0]
    assert source["nir_terms"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    counts: dict[str, int] = {}
    for word in source["nir_terms_text"].split():
        counts[word] = counts.get(word, 0) + 1
    assert counts == {w: math.floor(v * 10 + 0.5) for w, v in expected.items() if v * 10 >= 0.5}
    assert source["nir_meta"]["models"]["terms"].startswith(f"{out}@{fingerprint(out)}")
    # the query side splits queries with the index's terms model (its tokenizer) and finds the abstracts
    args = ["eval", "--url", engine.url, "--index", ingested, "--dataset", str(slice_dir), "--split", "train"]
    result = runner.invoke(app, [*args, "--mode", "terms", "--backend", "torch-fp32", "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result)["metrics"]["ndcg@10"] > 0.5


def test_bad_input_is_refused_clearly(slice_dir: Path, untrained: Path, tmp_path: Path) -> None:
    base = ["train", "deepct", "--dataset", str(slice_dir), "--out", str(tmp_path / "m")]
    result = runner.invoke(app, [*base, "--epochs", "0"])
    assert result.exit_code == 2 and "--epochs" in result.output
    result = runner.invoke(app, [*base, "--base", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "--base" in result.output
    result = runner.invoke(app, ["train", "deepct", "--dataset", str(tmp_path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "--dataset" in result.output
    data = TrainingData.from_beir({"d1": "statins"}, {"q1": "statins"}, {"q1": {"d1": 1}})
    with pytest.raises(ValueError, match="lr must be"):
        train_deepct(data, tmp_path / "m", lr=0.0)
    with pytest.raises(ValueError, match="frozen_layers must be <= 6"):
        train_deepct(data, tmp_path / "m", frozen_layers=7)
    empty = TrainingData.from_beir({"d1": " "}, {"q1": "statins"}, {"q1": {"d1": 1}})
    with pytest.raises(ValueError, match="no train document"):
        train_deepct(empty, tmp_path / "m")
    # a token classifier with several labels is a tagger, not a term weighter
    tagger = tmp_path / "tagger"
    tagger.mkdir()
    config = json.loads((untrained / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B", "2": "I"}
    config["label2id"] = {"O": 0, "B": 1, "I": 2}
    (tagger / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="3 labels is a token tagger"):
        TermWeighter(tagger)


def test_the_stand_in_stays_for_masked_lm_models_and_fingerprints_differ(
    trained: tuple[Path, dict], untrained: Path
) -> None:
    splade = TermWeighter("splade-tiny", backend="torch-fp32")
    deepct = TermWeighter(trained[0], backend="torch-fp32", max_length=MAX_LENGTH)
    assert (splade.kind, deepct.kind) == ("splade", "deepct")
    assert len({splade.fingerprint, deepct.fingerprint, fingerprint(untrained)}) == 3
