"""Enrichment on a live cluster: backing off harder on repeated 429s (AIMD), pausing and resuming, refusing a
swap whose counts differ, and the dry run. The cluster is the engine; the 429s come from a real HTTP gate in
front of it (tests/http_gate.py) that answers some `_bulk` requests as an overloaded OpenSearch does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from http_gate import HttpGate
from opensearchpy import OpenSearch
from test_enrich import BACKEND, _create, _enrich_command, _spec
from typer.testing import CliRunner

from nirbridge.connector.checkpoint import load_checkpoint
from nirbridge.connector.cli import app
from nirbridge.connector.cli_common import exit_code
from nirbridge.connector.client import make_client
from nirbridge.connector.engine_process import EngineProcess
from nirbridge.connector.enrich import EnrichJob, EnrichOptions
from nirbridge.connector.errors import MigrationError
from nirbridge.connector.pause import stop_on_signals
from nirbridge.connector.runner import LocalRunner
from nirbridge.connector.throttle import AdaptiveRate


@pytest.fixture(scope="module")
def docs(scifact_dir: Path) -> list[dict[str, Any]]:
    found = []
    with (scifact_dir / "corpus.jsonl").open() as handle:
        for line in handle:
            doc = json.loads(line)
            found.append({"_id": doc["_id"], "title": doc["title"], "text": doc["text"][:300]})
            if len(found) == 24:
                return found
    return found


def _versions(client: OpenSearch, index: str, docs: list[dict[str, Any]]) -> dict[str, int]:
    found = client.mget(index=index, body={"ids": [d["_id"] for d in docs]})["docs"]
    return {doc["_id"]: int(doc["_version"]) for doc in found}


# --- AIMD ---------------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_429s_halve_the_rate_and_clean_batches_win_it_back_slowly() -> None:
    clock = _Clock()
    rate = AdaptiveRate(100.0, clock=clock)
    clock.now = 0.01
    assert rate.after_batch(10, pushback=False) == pytest.approx(10 / 100 - 0.01)  # paced to the ceiling
    clock.now += 0.09 + 0.01
    rate.after_batch(10, pushback=True)
    clock.now += 1.0
    rate.after_batch(10, pushback=True)
    assert (rate.rate, rate.cuts) == (100 * 0.5 * 0.5, 2)
    clock.now += 0.01
    wait = rate.after_batch(10, pushback=False)
    assert rate.rate == pytest.approx(25 + 0.05 * 100) and wait == pytest.approx(10 / 30 - 0.01)
    for _ in range(40):
        rate.after_batch(10, pushback=False)
    assert rate.rate == 100.0  # never past the ceiling
    for _ in range(20):
        rate.after_batch(10, pushback=True)
    assert rate.rate == 1.0  # the floor


def test_without_a_ceiling_the_first_429_cuts_from_the_rate_reached_and_recovery_lifts_the_limit() -> None:
    clock = _Clock()
    rate = AdaptiveRate(None, clock=clock)
    clock.now = 0.5
    assert rate.after_batch(100, pushback=False) == 0.0 and rate.rate is None
    clock.now = 1.0
    rate.after_batch(100, pushback=True)  # 100 documents in 0.5 s: 200/s reached, halved
    assert rate.rate == pytest.approx(100.0)
    for _ in range(9):
        rate.after_batch(10, pushback=False)
    assert rate.rate == pytest.approx(100 + 9 * 0.05 * 200)
    rate.after_batch(10, pushback=False)
    assert rate.rate is None


def test_bad_throttle_parameters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ceiling must be positive"):
        AdaptiveRate(0.0)
    with pytest.raises(ValueError, match="decrease must be between 0 and 1"):
        AdaptiveRate(10.0, decrease=1.0)


# --- 429 from a real HTTP gate ------------------------------------------------------------------------------


class _Rejecting:
    """Answers the bulk requests numbered in `items`, and the first one into each index of `first_into`,
    with 429 per item, and those numbered in `whole` with 429 for the request, as OpenSearch does when its
    write queue is full."""

    def __init__(self, items: set[int], whole: set[int], first_into: set[str] | None = None) -> None:
        self.items, self.whole, self.first_into = items, whole, set(first_into or ())
        self.bulks = 0
        self.rejected = 0

    def __call__(self, method: str, path: str, body: bytes) -> tuple[int, Any] | None:
        if not path.split("?")[0].endswith("/_bulk"):
            return None
        self.bulks += 1
        reason = "rejected execution of coordinating operation [shard_detail=[corpus][0]], queue capacity 200"
        error = {"type": "rejected_execution_exception", "reason": reason}
        if self.bulks in self.whole:
            self.rejected += 1
            return 429, {"error": {"root_cause": [error], **error}, "status": 429}
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        ((_, first),) = lines[0].items()
        if first["_index"] in self.first_into:
            self.first_into.discard(first["_index"])
        elif self.bulks not in self.items:
            return None
        items = []
        for header in lines[0::2]:
            ((action, meta),) = header.items()
            items.append(
                {action: {"_index": meta["_index"], "_id": meta["_id"], "status": 429, "error": error}}
            )
        self.rejected += len(items)
        return 200, {"took": 1, "errors": True, "items": items}


def test_429s_from_the_cluster_slow_the_job_and_every_document_is_still_written(
    client: OpenSearch, engine: EngineProcess, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    _create(client, "pushback", docs[:22])
    # bulk 1 and 2: every item 429 (batch 1, retried by the writer); bulk 4: the whole request 429 (batch 2,
    # retried by the client's transport); bulk 3 and 5 on go through
    rejecting = _Rejecting(items={1, 2}, whole={4})
    gate = HttpGate(engine.url, answer=rejecting)
    try:
        job = EnrichJob(
            make_client(gate.url, initial_backoff=0.1),
            gate.url,
            LocalRunner(),
            EnrichOptions(
                index="pushback",
                spec=_spec(sparse="splade-tiny"),
                checkpoint=tmp_path / "ck.json",
                batch_size=4,
                max_docs_per_s=1000.0,
            ),
        )
        report = job.run()
    finally:
        gate.stop()
    assert rejecting.rejected == 4 + 4 + 1
    assert (report.processed, report.failed) == (22, 0)
    # six batches (5 x 4 + 2): the first two were pushed back, the four others each win back 5% of 1000/s
    assert report.rate_cuts == 2
    assert report.rate_limit == pytest.approx(1000 * 0.5 * 0.5 + 4 * 0.05 * 1000)
    assert report.as_json()["rate_cuts"] == 2
    assert set(_versions(client, "pushback", docs[:22]).values()) == {2}  # each written once, none lost


def test_the_copies_a_migration_makes_are_paced_by_the_same_rate(
    client: OpenSearch, engine: EngineProcess, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    # a knn_vector needs a new index: a copy into copied-nir-1, the enrichment there, then (the name being a
    # concrete index) a copy of the old index kept in copied-nir-0 before the swap
    _create(client, "copied", docs[:10], knn=False)
    rejecting = _Rejecting(items=set(), whole=set(), first_into={"copied-nir-1", "copied-nir-0"})
    gate = HttpGate(engine.url, answer=rejecting)
    try:
        options = EnrichOptions(
            index="copied",
            spec=_spec(dense="all-MiniLM-L6-v2"),
            checkpoint=tmp_path / "ck.json",
            chunk_docs=4,
            max_docs_per_s=1000.0,
        )
        report = EnrichJob(make_client(gate.url), gate.url, LocalRunner(), options).run()
    finally:
        gate.stop()
    assert not rejecting.first_into and rejecting.rejected == 4 + 4  # a chunk of 4 in each copy
    assert report.rate_cuts == 2
    assert (report.target, report.swapped_from, report.processed, report.failed) == (
        "copied-nir-1",
        "copied",
        10,
        0,
    )
    assert client.count(index="copied")["count"] == 10 and client.count(index="copied-nir-0")["count"] == 10


# --- pause and resume ---------------------------------------------------------------------------------------


def test_sigint_pauses_after_the_batch_in_flight_and_the_same_command_resumes(
    client: OpenSearch, engine: EngineProcess, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    _create(client, "paused", docs)
    checkpoint = tmp_path / "ck.json"
    command = _enrich_command(engine, "paused", checkpoint, "--batch-size", "2", "--max-docs-per-s", "6")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        saved = load_checkpoint(checkpoint)
        if saved is not None and saved.processed >= 4:
            break
        time.sleep(0.02)
    assert job.poll() is None, f"the job ended before it could be paused: {job.communicate()}"
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "SIGINT: stopping after the batches in flight" in err
    assert f"checkpoint {checkpoint}; run the same command again to resume" in err
    paused = json.loads(out.strip().splitlines()[-1])
    saved = load_checkpoint(checkpoint)
    assert paused["paused"] is True and saved is not None and not saved.finished
    assert paused["processed"] == saved.processed and 4 <= saved.processed < len(docs)
    written = [v for v in _versions(client, "paused", docs).values() if v == 2]
    assert len(written) == saved.processed  # what the checkpoint counts is written, nothing more

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert report["resumed"] is True and report["paused"] is False
    assert (report["processed"], report["failed"]) == (len(docs), 0)
    assert set(_versions(client, "paused", docs).values()) == {2}  # every document enriched once
    assert not checkpoint.exists()


# --- the swap and the dry run -------------------------------------------------------------------------------


def test_a_swap_with_unequal_counts_is_refused_and_the_old_index_is_untouched(
    client: OpenSearch, engine: EngineProcess, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    _create(client, "late", docs[:6], knn=False)

    def write_during_the_run(report: Any, scanned: int) -> None:
        if not client.exists(index="late", id="late-doc"):  # a writer the operator did not pause
            client.index(index="late", id="late-doc", body={"title": "written during the migration"})

    job = EnrichJob(
        client,
        engine.url,
        LocalRunner(),
        EnrichOptions(index="late", spec=_spec(dense="all-MiniLM-L6-v2"), checkpoint=tmp_path / "ck.json"),
    )
    with pytest.raises(
        MigrationError, match="late-nir-1 holds 6 documents, late holds 7: not swapping"
    ) as error:
        job.run(progress=write_during_the_run)
    assert "late still reads late, unchanged" in str(error.value) and "rerun" in str(error.value)
    assert exit_code(error.value) == 1
    assert client.indices.get_alias(name="late", ignore=404).get("status") == 404  # still a concrete index
    assert (
        client.count(index="late")["count"] == 7
        and "nir_dense" not in client.get(index="late", id=docs[0]["_id"])["_source"]
    )
    assert client.indices.exists(index="late-nir-1") and (tmp_path / "ck.json").exists()  # left to inspect


def test_the_dry_run_prints_what_would_change_and_changes_nothing(
    client: OpenSearch, engine: EngineProcess, docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    _create(client, "dry", docs[:5], knn=False)
    mapping = client.indices.get_mapping(index="dry")
    checkpoint = tmp_path / "ck.json"
    result = CliRunner().invoke(
        app,
        [
            "enrich",
            "--url",
            engine.url,
            "--index",
            "dry",
            "--fields",
            "title,text",
            "--dense",
            "all-MiniLM-L6-v2",
            "--backend",
            BACKEND,
            "--dry-run",
            "--checkpoint",
            str(checkpoint),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "dry run: 5 documents to scan in dry" in lines
    assert "dry: a new index is needed:" in lines
    assert any("nir_dense: knn_vector needs index.knn" in line for line in lines)
    assert "create dry-nir-1 with the merged mapping and settings" in lines
    assert "copy and enrich 5 documents from dry into dry-nir-1" in lines
    assert any(
        line.startswith("dry is an index, not an alias: it is copied into dry-nir-0") for line in lines
    )
    assert client.indices.get_mapping(index="dry") == mapping
    assert not client.indices.exists(index="dry-nir-1") and not client.indices.exists(index="dry-nir-0")
    assert set(_versions(client, "dry", docs[:5]).values()) == {1} and not checkpoint.exists()


def test_sigterm_asks_to_stop_once_and_the_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    asked: list[str] = []
    with stop_on_signals(lambda: asked.append("stop")):
        os.kill(os.getpid(), signal.SIGTERM)  # as `docker compose stop` sends it
        time.sleep(0.05)  # the handler runs in the main thread between bytecodes
        assert asked == ["stop"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # a second Ctrl-C interrupts
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
