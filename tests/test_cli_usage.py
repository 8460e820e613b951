"""The CLI's answers to bad usage and to a cluster that is not there: a clear message and exit status 2."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nirbridge.connector.beir import shipped_sample
from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import free_port, start_engine

runner = CliRunner()
SAMPLE = str(shipped_sample().root)


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_missing_dataset_directory(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "--index", "x", "--dataset", str(tmp_path / "nope"), "--url", _dead_url()]
    )
    assert result.exit_code == 2
    assert "--dataset" in result.stderr and "no such directory" in result.stderr
    assert str(tmp_path / "nope") in result.stderr


def test_dataset_without_a_corpus(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "--index", "x", "--dataset", str(tmp_path)])
    assert result.exit_code == 2
    assert "no corpus.jsonl here" in result.stderr


def test_unreachable_url_is_one_line_and_exit_2() -> None:
    url = _dead_url()
    result = runner.invoke(app, ["ingest", "--index", "x", "--dataset", SAMPLE, "--url", url])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"nirbridge: error: {url}: cannot reach the cluster: connection refused"
    assert result.stdout == ""


def test_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = _dead_url()
    monkeypatch.setenv("NIRBRIDGE_URL", url)
    result = runner.invoke(app, ["search", "--index", "x", "--q", "statins"])
    assert result.exit_code == 2
    assert f"{url}: cannot reach the cluster" in result.stderr


def test_bad_environment_is_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIRBRIDGE_REQUEST_TIMEOUT", "soon")
    result = runner.invoke(app, ["search", "--index", "x", "--q", "statins"])
    assert result.exit_code == 2
    assert "NIRBRIDGE_REQUEST_TIMEOUT" in result.stderr


def test_bad_url_is_usage() -> None:
    result = runner.invoke(app, ["search", "--index", "x", "--q", "statins", "--url", "localhost:9200"])
    assert result.exit_code == 2
    assert "bad cluster URL 'localhost:9200': it must start with http:// or https://" in result.stderr


def test_empty_query_is_usage() -> None:
    result = runner.invoke(app, ["search", "--index", "x", "--q", "  ", "--url", _dead_url()])
    assert result.exit_code == 2
    assert "the query text is empty" in result.stderr


def test_missing_required_option_is_usage() -> None:
    result = runner.invoke(app, ["ingest", "--dataset", SAMPLE])
    assert result.exit_code == 2
    assert "--index" in result.stderr


def test_engine_data_dir_must_not_be_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    result = runner.invoke(app, ["engine", "serve", "--data-dir", str(path), "--port", str(free_port())])
    assert result.exit_code == 2
    assert "not a directory" in result.stderr


def test_batch_size_must_be_positive() -> None:
    result = runner.invoke(app, ["ingest", "--index", "x", "--dataset", SAMPLE, "--batch-size", "0"])
    assert result.exit_code == 2


@pytest.mark.parametrize("weight", ["2", "-0.5", "nan"])
def test_eval_rerank_weight_outside_0_1_is_usage(weight: str) -> None:
    args = ["eval", "--index", "x", "--dataset", SAMPLE, "--mode", "bm25", "--url", _dead_url()]
    result = runner.invoke(app, [*args, "--rerank-weight", weight])
    assert result.exit_code == 2
    assert "--rerank-weight" in result.stderr and "[0, 1]" in result.stderr


def test_help_is_not_cut_when_stdout_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import typer.rich_utils

    from nirbridge.connector.cli import fit_help_to_pipe

    # what `nirbridge eval --help | less` or a CI log gets: no terminal, no width set (issue 14)
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", None)
    fit_help_to_pipe(io.StringIO())
    for command in (["eval"], ["enrich"], ["serve"], ["ingest"], ["engine", "serve"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "…" not in result.output, result.output
    assert "--rerank-max-length" in runner.invoke(app, ["eval", "--help"]).output
    # a terminal keeps its own width
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", None)
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    fit_help_to_pipe(tty)
    assert typer.rich_utils.MAX_WIDTH is None


def test_engine_serve_says_where_it_listens_and_when_it_stops(tmp_path: Path) -> None:
    engine = start_engine(tmp_path / "data")
    try:
        engine.wait_ready()
    finally:
        status = engine.stop()
    log = engine.log_tail(50)
    assert status == -signal.SIGTERM, log  # as before: uvicorn raises the signal again once shut down
    data = (tmp_path / "data").resolve()
    assert f"engine: starting on {engine.url}, data in {data}" in log
    assert f"engine: stopped; the data stays in {data}" in log
