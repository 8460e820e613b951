"""connector.beir on the shipped sample, on ../shared/data when it is there, and on broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nirbridge.connector.beir import BeirDataset, read_corpus, read_qrels, read_queries, shipped_sample
from nirbridge.connector.errors import DatasetError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NFCORPUS = SHARED / "nfcorpus"
needs_nfcorpus = pytest.mark.skipif(
    not (NFCORPUS / "corpus.jsonl").is_file(), reason=f"{NFCORPUS} not present"
)


def test_shipped_sample_is_a_complete_beir_folder() -> None:
    sample = shipped_sample()
    docs = list(sample.documents())
    assert len(docs) == sample.count_documents() == 300
    assert len({doc.id for doc in docs}) == 300
    assert all(doc.text.strip() for doc in docs)
    queries = sample.queries()
    assert len(queries) == 20
    assert sample.splits() == ["dev"]
    qrels = sample.qrels("dev")
    assert set(qrels) == {query.id for query in queries}
    judged = {doc_id for grades in qrels.values() for doc_id in grades}
    assert judged <= {doc.id for doc in docs}
    assert {grade for grades in qrels.values() for grade in grades.values()} <= {1, 2}


def test_shipped_sample_carries_its_licence() -> None:
    notice = (shipped_sample().root / "NOTICE.md").read_text()
    assert "CC BY-SA 4.0" in notice and "Boteva" in notice
    assert "SciFact" not in notice


@needs_nfcorpus
def test_shipped_sample_lines_are_verbatim_nfcorpus_lines() -> None:
    sample = shipped_sample().root
    for name in ("corpus.jsonl", "queries.jsonl"):
        original = set((NFCORPUS / name).read_text().splitlines())
        assert set((sample / name).read_text().splitlines()) <= original
    full = read_qrels(NFCORPUS / "qrels" / "dev.tsv")
    for query_id, grades in read_qrels(sample / "qrels" / "dev.tsv").items():
        assert grades == full[query_id]  # every judgment of the chosen queries, none invented


@needs_nfcorpus
def test_reads_the_whole_nfcorpus_collection() -> None:
    dataset = BeirDataset.open(NFCORPUS)
    docs = list(dataset.documents())
    assert len(docs) == 3633
    first = json.loads((NFCORPUS / "corpus.jsonl").open().readline())
    assert (docs[0].id, docs[0].title, docs[0].text) == (first["_id"], first["title"], first["text"])
    assert len(dataset.queries()) == 3237
    assert dataset.splits() == ["dev", "train"]
    dev = dataset.qrels("dev")
    assert len(dev) == 324 and sum(len(grades) for grades in dev.values()) == 11385


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_corpus_lines_are_named_by_file_and_line(tmp_path: Path) -> None:
    corpus = _write(
        tmp_path / "corpus.jsonl",
        [
            '{"_id": "a", "title": "A", "text": "alpha"}',
            '{"_id": "b", "text": ',
            "",
            '{"title": "no id", "text": "x"}',
            '["not", "an", "object"]',
            '{"_id": "c", "text": 3}',
            '{"_id": 7, "text": "numeric ids become strings"}',
        ],
    )
    errors: list[DatasetError] = []
    docs = list(read_corpus(corpus, errors))
    assert [(doc.id, doc.title) for doc in docs] == [("a", "A"), ("7", "")]
    assert [(error.line, error.reason.split(" (")[0]) for error in errors] == [
        (2, "not JSON"),
        (4, "no usable '_id'"),
        (5, "expected a JSON object, got list"),
        (6, "'text' must be a string, got int"),
    ]
    assert str(errors[0]).startswith(f"{corpus}:2: not JSON")
    with pytest.raises(DatasetError, match=r"corpus.jsonl:2: not JSON"):
        list(read_corpus(corpus))


def test_a_line_that_is_not_utf8_is_one_error_not_the_end(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b'{"_id": "a", "text": "\xff"}\n{"_id": "b", "text": "fine"}\n')
    errors: list[DatasetError] = []
    assert [doc.id for doc in read_corpus(corpus, errors)] == ["b"]
    assert errors[0].line == 1 and "not UTF-8" in errors[0].reason


def test_opening_something_that_is_not_a_beir_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such directory"):
        BeirDataset.open(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="not a directory"):
        BeirDataset.open(tmp_path / "file")
    with pytest.raises(DatasetError, match="no corpus.jsonl here"):
        BeirDataset.open(tmp_path)


def test_queries_and_qrels_errors(tmp_path: Path) -> None:
    _write(tmp_path / "corpus.jsonl", ['{"_id": "d1", "text": "x"}'])
    dataset = BeirDataset.open(tmp_path)
    with pytest.raises(DatasetError, match="no queries.jsonl here"):
        dataset.queries()
    with pytest.raises(DatasetError, match=r"no qrels for split 'test' \(splits here: none\)"):
        dataset.qrels("test")
    (tmp_path / "qrels").mkdir()
    _write(tmp_path / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\td2\tx"])
    with pytest.raises(DatasetError, match=r"test.tsv:3: score 'x' is not an integer"):
        dataset.qrels("test")
    _write(tmp_path / "queries.jsonl", ['{"_id": "q1", "text": "what"}', '{"_id": "q2"}'])
    with pytest.raises(DatasetError, match=r"queries.jsonl:2: no 'text' field"):
        read_queries(tmp_path / "queries.jsonl")
