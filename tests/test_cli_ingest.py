"""`nirbridge ingest`, `search` and `demo` over HTTP against the embedded engine (`nirbridge engine serve`).

The engine runs as a real child process on a free port; skipped, with the reason, while the engine's server
module does not exist yet.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from nirbridge.connector.beir import shipped_sample
from nirbridge.connector.cli import app
from nirbridge.connector.client import make_client
from nirbridge.connector.engine_process import EngineProcess, running_engine


def _engine_import_error() -> str | None:
    try:
        importlib.import_module("nirbridge.engine.rest.server")
    except ImportError as error:
        return str(error)
    return None


_MISSING = _engine_import_error()
pytestmark = pytest.mark.skipif(
    _MISSING is not None, reason=f"nirbridge.engine.rest.server cannot be imported yet: {_MISSING}"
)

runner = CliRunner()
SAMPLE = shipped_sample()


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    with running_engine() as process:
        yield process


def _ingest(engine: EngineProcess, index: str, dataset: Path, *extra: str) -> Result:
    args = ["ingest", "--url", engine.url, "--index", index, "--dataset", str(dataset), "--json", *extra]
    return runner.invoke(app, args)


def _last_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ingest_the_sample_keeps_ids_and_counts(engine: EngineProcess) -> None:
    result = _ingest(engine, "sample", SAMPLE.root, "--batch-size", "64")
    assert result.exit_code == 0, result.output
    summary = _last_json(result)
    assert (summary["indexed"], summary["failed"], summary["failures"]) == (300, 0, [])
    assert summary["docs_per_s"] > 0
    client = make_client(engine.url)
    assert client.count(index="sample")["count"] == 300
    first = next(SAMPLE.documents())
    stored = client.get(index="sample", id=first.id)
    assert stored["_source"] == {"title": first.title, "text": first.text}
    mapping = client.indices.get_mapping(index="sample")["sample"]["mappings"]["properties"]
    assert mapping["title"]["type"] == "text" and mapping["title"].get("analyzer") == "english"


def test_ingest_again_overwrites_by_id(engine: EngineProcess) -> None:
    assert _ingest(engine, "again", SAMPLE.root).exit_code == 0
    result = _ingest(engine, "again", SAMPLE.root)
    assert result.exit_code == 0
    assert make_client(engine.url).count(index="again")["count"] == 300


def test_limit(engine: EngineProcess) -> None:
    result = _ingest(engine, "limited", SAMPLE.root, "--limit", "10")
    assert result.exit_code == 0
    assert _last_json(result)["indexed"] == 10
    assert make_client(engine.url).count(index="limited")["count"] == 10


def test_bad_lines_are_reported_and_the_rest_indexed(engine: EngineProcess, tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "one", "text": "first document"}\n'
        '{"_id": "d2", "text": \n'
        '{"title": "no id", "text": "lost"}\n'
        '{"_id": "d4", "title": "four", "text": "fourth document"}\n'
    )
    result = _ingest(engine, "broken", tmp_path)
    assert result.exit_code == 1
    summary = _last_json(result)
    assert (summary["indexed"], summary["failed"]) == (2, 2)
    assert [failure["id"] for failure in summary["failures"]] == ["corpus.jsonl:2", "corpus.jsonl:3"]
    assert "failed: corpus.jsonl:2: not JSON" in result.stderr
    assert make_client(engine.url).count(index="broken")["count"] == 2


def test_documents_the_cluster_refuses_are_listed_by_id(engine: EngineProcess, tmp_path: Path) -> None:
    client = make_client(engine.url)
    client.indices.create(index="typed", body={"mappings": {"properties": {"title": {"type": "integer"}}}})
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "n1", "title": "12", "text": "a number for a title"}\n'
        '{"_id": "w1", "title": "twelve", "text": "a word for a title"}\n'
    )
    result = _ingest(engine, "typed", tmp_path)
    assert result.exit_code == 1
    summary = _last_json(result)
    assert (summary["indexed"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["id"] == "w1"
    assert "status 400" in summary["failures"][0]["reason"]
    assert "failed: w1: status 400" in result.stderr


def test_search_prints_hits(engine: EngineProcess) -> None:
    assert _ingest(engine, "searched", SAMPLE.root).exit_code == 0
    query = SAMPLE.queries()[0]
    result = runner.invoke(
        app, ["search", "--url", engine.url, "--index", "searched", "--q", query.text, "--json"]
    )
    assert result.exit_code == 0, result.output
    answer = _last_json(result)
    assert 0 < len(answer["hits"]) <= 10
    scores = [hit["score"] for hit in answer["hits"]]
    assert scores == sorted(scores, reverse=True)
    plain = runner.invoke(app, ["search", "--url", engine.url, "--index", "searched", "--q", query.text])
    assert answer["hits"][0]["id"] in plain.stdout


def test_search_on_a_missing_index_is_usage(engine: EngineProcess) -> None:
    result = runner.invoke(app, ["search", "--url", engine.url, "--index", "no-such-index", "--q", "statins"])
    assert result.exit_code == 2
    assert "no such index: no-such-index" in result.stderr


@pytest.mark.timeout(600)
def test_demo_runs_end_to_end() -> None:
    completed = subprocess.run(
        # the reference backend: no ONNX export inside the test (the demo's default is auto)
        [sys.executable, "-m", "nirbridge", "demo", "--json", "--queries", "2", "--backend", "torch-fp32"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["ingest"]["indexed"] == 300 and report["ingest"]["failed"] == 0
    assert (report["enrich"]["processed"], report["enrich"]["failed"]) == (300, 0)
    assert len(report["searches"]) == 2
    for search in report["searches"]:
        assert set(search["hits"]) == {"bm25", "sparse", "dense", "hybrid", "hybrid+rerank"}
        assert all(len(hits) == 5 for hits in search["hits"].values())
        assert sum(search["relevant_in_hits"].values()) > 0
