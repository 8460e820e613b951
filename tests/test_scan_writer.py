"""Sliced search in the engine, the scanner, the bulk writer, checkpoints and nir_meta, over real HTTP.

References are independent of the code under test: slice membership is recomputed here from OpenSearch's rule
(floorMod(murmur3_x86_32(Uid.encodeId(_id), 7919), max)) with the `mmh3` library; the 429 tests go through a
real HTTP proxy on loopback that answers 429 in front of the engine.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import RequestError

from nirbridge.connector.checkpoint import Checkpoint, load_checkpoint, open_checkpoint, query_hash
from nirbridge.connector.content import content_hash, meta_update, needs_enrichment, source_fields
from nirbridge.connector.errors import CheckpointMismatch, IndexNotFound
from nirbridge.connector.scan import scan_documents
from nirbridge.connector.writer import (
    ItemResult,
    PreparedAction,
    backoff_delay,
    chunk_actions,
    streaming_update,
    summarize,
)

mmh3 = pytest.importorskip("mmh3")

INDEX = "scan-corpus"
IDS = (
    [f"doc-{i}" for i in range(60)]  # UTF-8 ids ('-' and 5+ chars that are not base64 of a whole byte)
    + [str(i) for i in range(0, 300, 7)]  # numeric ids
    + ["0042", "abcd", "AAAA", "_w", "_-8", "Zm9vYmFy", "é-ü", "x y", "A", "Ag", "aGk"]
)


def _reference_encode(id_: str) -> bytes:
    """Uid.encodeId, written again from its description: numeric packed, base64 decoded, else 0xff + UTF-8."""
    if all("0" <= c <= "9" for c in id_):
        nibbles = [int(c) for c in id_] + ([15] if len(id_) % 2 else [])
        return bytes([0xFE, *(nibbles[i] * 16 + nibbles[i + 1] for i in range(0, len(nibbles), 2))])
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    valid_last = {0: None, 2: "AQgw", 3: "AEIMQUYcgkosw048"}
    rest = len(id_) % 4
    if rest in valid_last and set(id_) <= alphabet and (rest == 0 or id_[-1] in valid_last[rest]):
        raw = base64.urlsafe_b64decode(id_ + "=" * (-len(id_) % 4))
        return bytes([0xFD]) + raw if raw[0] >= 0xFD else raw
    return b"\xff" + id_.encode()


def _reference_slice(id_: str, max_: int) -> int:
    return mmh3.hash(_reference_encode(id_), 7919, signed=True) % max_  # Python % is Java's floorMod


@pytest.fixture(scope="module")
def corpus(client: OpenSearch) -> str:
    client.indices.create(
        index=INDEX,
        body={
            "mappings": {
                "properties": {"title": {"type": "text"}, "text": {"type": "text"}, "n": {"type": "integer"}}
            }
        },
    )
    lines = []
    for i, doc_id in enumerate(IDS):
        lines.append(json.dumps({"index": {"_index": INDEX, "_id": doc_id}}))
        lines.append(json.dumps({"title": f"title {i}", "text": f"text of {doc_id}", "n": i}))
    client.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})
    return INDEX


def _no_pits(client: OpenSearch) -> bool:
    return client.get_all_pits()["pits"] == []


# ----- the engine's sliced search ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_", [2, 3, 7])
def test_pit_slices_follow_opensearchs_id_hash_and_partition_the_index(client, corpus, max_):
    pit = client.create_pit(index=corpus, params={"keep_alive": "1m"})["pit_id"]
    try:
        seen: dict[str, int] = {}
        for slice_id in range(max_):
            body = {
                "pit": {"id": pit},
                "size": 1000,
                "slice": {"id": slice_id, "max": max_},
                "_source": False,
            }
            for hit in client.search(body=body)["hits"]["hits"]:
                assert hit["_id"] not in seen
                seen[hit["_id"]] = slice_id
    finally:
        client.delete_pit(body={"pit_id": [pit]})
    assert sorted(seen) == sorted(IDS)
    assert seen == {doc_id: _reference_slice(doc_id, max_) for doc_id in IDS}


def test_scroll_slices_partition_the_index(client, corpus):
    seen = []
    for slice_id in range(4):
        response = client.search(
            index=corpus, body={"size": 10, "slice": {"id": slice_id, "max": 4}}, params={"scroll": "1m"}
        )
        while response["hits"]["hits"]:
            seen += [hit["_id"] for hit in response["hits"]["hits"]]
            response = client.scroll(body={"scroll_id": response["_scroll_id"], "scroll": "1m"})
        client.clear_scroll(body={"scroll_id": [response["_scroll_id"]]})
    assert sorted(seen) == sorted(IDS)


def test_slices_on_a_numeric_field_partition_the_documents(client, corpus):
    pit = client.create_pit(index=corpus, params={"keep_alive": "1m"})["pit_id"]
    try:
        seen = []
        for slice_id in range(3):
            body = {"pit": {"id": pit}, "size": 1000, "slice": {"field": "n", "id": slice_id, "max": 3}}
            seen += [hit["_id"] for hit in client.search(body=body)["hits"]["hits"]]
        with pytest.raises(RequestError, match="cannot load numeric doc values on title"):
            client.search(body={"pit": {"id": pit}, "slice": {"field": "title", "id": 0, "max": 2}})
    finally:
        client.delete_pit(body={"pit_id": [pit]})
    assert sorted(seen) == sorted(IDS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"id": 0, "max": 1}, "max must be greater than 1"),
        ({"id": 2, "max": 2}, "max must be greater than id"),
        ({"id": -1, "max": 2}, "id must be greater than or equal to 0"),
    ],
)
def test_bad_slices_are_refused(client, corpus, spec, message):
    with pytest.raises(RequestError, match=message):
        client.search(index=corpus, body={"slice": spec}, params={"scroll": "1m"})


def test_a_slice_outside_scroll_or_pit_is_refused(client, corpus):
    with pytest.raises(
        RequestError, match=r"\[slice\] can only be used with \[scroll\] or \[point-in-time\]"
    ):
        client.search(index=corpus, body={"slice": {"id": 0, "max": 2}})


# ----- scan_documents ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["id", "doc"])
@pytest.mark.parametrize("use_pit", [None, False])
def test_scan_returns_every_document_once_across_slices(client, corpus, order, use_pit):
    ids = []
    for slice_id in range(3):
        ids += [
            hit["_id"]
            for hit in scan_documents(
                client, corpus, slice_id=slice_id, slices=3, page_size=8, order=order, use_pit=use_pit
            )
        ]
    assert sorted(ids) == sorted(IDS)
    assert _no_pits(client)


def test_scan_restricts_source_and_applies_the_query(client, corpus):
    hits = list(scan_documents(client, corpus, query={"range": {"n": {"lt": 10}}}, fields=["title"]))
    assert sorted(hit["_id"] for hit in hits) == sorted(IDS[:10])
    assert all(set(hit["_source"]) == {"title"} for hit in hits)


@pytest.mark.parametrize("use_pit", [None, False])
def test_scan_resumes_after_a_position(client, corpus, use_pit):
    first = list(scan_documents(client, corpus, page_size=9, use_pit=use_pit))
    cut = 25
    rest = list(
        scan_documents(client, corpus, page_size=9, search_after=first[cut - 1]["sort"], use_pit=use_pit)
    )
    assert [hit["_id"] for hit in rest] == [hit["_id"] for hit in first[cut:]]


def test_the_pit_is_released_when_the_consumer_stops_early(client, corpus):
    scan = scan_documents(client, corpus, page_size=5)
    next(scan)
    assert len(client.get_all_pits()["pits"]) == 1
    scan.close()
    assert _no_pits(client)


def test_the_pit_is_released_when_the_consumer_raises(client, corpus):
    with pytest.raises(RuntimeError):
        for _hit in scan_documents(client, corpus, page_size=5):
            raise RuntimeError("the consumer failed")
    assert _no_pits(client)


def test_scan_falls_back_to_a_scroll_on_a_cluster_without_pit(corpus, proxy):
    proxy.refuse_pit = True
    proxied = _proxied_client(proxy)
    ids = []
    for slice_id in range(2):
        ids += [
            hit["_id"] for hit in scan_documents(proxied, corpus, slice_id=slice_id, slices=2, page_size=10)
        ]
    assert sorted(ids) == sorted(IDS)
    assert proxy.pit_requests == 2


def test_scan_of_a_missing_index_is_index_not_found(client):
    with pytest.raises(IndexNotFound):
        list(scan_documents(client, "no-such-index"))


# ----- the writer -------------------------------------------------------------------------------------------


def test_partial_updates_report_each_failure_and_write_the_rest(client, corpus):
    updates = [
        ("doc-1", {"nir_expansion": "generated query one"}),
        ("missing-doc", {"nir_expansion": "never written"}),
        ("doc-2", {"n": "not a number"}),
        ("doc-3", {"nir_expansion": "generated query three"}),
        ("doc-4", {"bad": {1, 2}}),  # a set is not JSON
    ]
    results = {r.id: r for r in streaming_update(client, corpus, updates, chunk_docs=2, refresh=True)}
    assert set(results) == {doc_id for doc_id, _ in updates}
    assert results["doc-1"].ok and results["doc-3"].ok
    missing = results["missing-doc"]
    assert (missing.ok, missing.status, missing.error_type) == (False, 404, "document_missing_exception")
    conflict = results["doc-2"]
    assert (conflict.ok, conflict.status, conflict.error_type) == (False, 400, "mapper_parsing_exception")
    assert "not a number" in (conflict.reason or "")
    assert results["doc-4"].error_type == "serialization_error"
    assert client.get(index=corpus, id="doc-1")["_source"]["nir_expansion"] == "generated query one"
    assert client.get(index=corpus, id="doc-1")["_source"]["title"] == "title 1"  # partial: the rest kept
    assert not client.exists(index=corpus, id="missing-doc")  # no upsert
    assert client.get(index=corpus, id="doc-2")["_source"]["n"] == 2
    summary = summarize(iter(results.values()))
    assert (summary.written, summary.failed) == (2, 3)


def _action(doc_id: str, size: int) -> PreparedAction:
    return PreparedAction(doc_id, b"x" * size)


def test_chunks_close_at_the_document_limit():
    chunks = list(chunk_actions((_action(str(i), 10) for i in range(7)), chunk_docs=3, chunk_bytes=10_000))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]


def test_chunks_close_at_the_byte_limit():
    sizes = [40, 40, 40, 100, 10, 10]
    chunks = list(
        chunk_actions((_action(str(i), s) for i, s in enumerate(sizes)), chunk_docs=100, chunk_bytes=100)
    )
    assert [[a.size for a in chunk] for chunk in chunks] == [[40, 40], [40], [100], [10, 10]]
    assert all(sum(a.size for a in chunk) <= 100 for chunk in chunks)


def test_an_action_larger_than_the_byte_limit_travels_alone():
    chunks = list(chunk_actions([_action("a", 5), _action("b", 500), _action("c", 5)], chunk_bytes=100))
    assert [[a.id for a in chunk] for chunk in chunks] == [["a"], ["b"], ["c"]]


def test_backoff_is_exponential_and_capped():
    assert [backoff_delay(n, 0.5, 3.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_summary_counts_only_what_the_stream_yields():
    results = [ItemResult("a", True, 200), ItemResult("b", False, 404, "document_missing_exception", "gone")]
    summary = summarize(results, keep=0)
    assert (summary.written, summary.failed, summary.failures) == (1, 1, [])


# ----- 429 and 5xx through a real proxy ---------------------------------------------------------------------


class _Proxy:
    """A loopback HTTP proxy in front of the engine that answers some `_bulk` requests or items with 429."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.reject_requests = 0  # answer the next N bulk requests with this status
        self.reject_status = 429
        self.drop_requests = 0  # close the connection of the next N bulk requests without an answer
        self.reject_items_in = 0  # in the next N bulk requests, answer every other item 429 (not forwarded)
        self.refuse_pit = False  # answer PIT creation as a cluster without the API does (OpenSearch < 2.4)
        self.pit_requests = 0
        self.bulk_times: list[float] = []
        self.bulk_ids: list[list[str]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, body: bytes) -> tuple[int, bytes]:
                connection = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=30
                )
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "/_search/point_in_time" in self.path:
                    proxy.pit_requests += 1
                    if proxy.refuse_pit:
                        error = {
                            "error": "no handler found for uri [" + self.path + "] and method [POST]",
                            "status": 400,
                        }
                        self._reply(400, json.dumps(error).encode())
                        return
                if self.path.split("?")[0].endswith("/_bulk"):
                    self._bulk(body)
                else:
                    self._reply(*self._forward(body))

            def _bulk(self, body: bytes) -> None:
                lines = [line for line in body.split(b"\n") if line.strip()]
                pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
                with proxy.lock:
                    drop = proxy.drop_requests > 0
                    proxy.drop_requests -= drop
                if drop:
                    proxy.bulk_times.append(time.monotonic())
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                with proxy.lock:
                    proxy.bulk_times.append(time.monotonic())
                    proxy.bulk_ids.append([json.loads(h)["update"]["_id"] for h, _ in pairs])
                    reject_request = proxy.reject_requests > 0
                    proxy.reject_requests -= reject_request
                    reject_items = not reject_request and proxy.reject_items_in > 0
                    proxy.reject_items_in -= reject_items
                if reject_request:
                    error = {
                        "type": "es_rejected_execution_exception"
                        if proxy.reject_status == 429
                        else "status_exception",
                        "reason": "proxy says no",
                    }
                    self._reply(
                        proxy.reject_status,
                        json.dumps({"error": error, "status": proxy.reject_status}).encode(),
                    )
                    return
                rejected = set(range(0, len(pairs), 2)) if reject_items else set()
                forwarded = [pair for i, pair in enumerate(pairs) if i not in rejected]
                items: list[Any] = []
                if forwarded:
                    payload = b"".join(h + b"\n" + d + b"\n" for h, d in forwarded)
                    status, answer = self._forward(payload)
                    items = json.loads(answer)["items"]
                merged, upstream = [], iter(items)
                for i, (header, _) in enumerate(pairs):
                    if i in rejected:
                        doc_id = json.loads(header)["update"]["_id"]
                        merged.append(
                            {
                                "update": {
                                    "_id": doc_id,
                                    "status": 429,
                                    "error": {
                                        "type": "es_rejected_execution_exception",
                                        "reason": "queue full",
                                    },
                                }
                            }
                        )
                    else:
                        merged.append(next(upstream))
                self._reply(200, json.dumps({"took": 1, "errors": True, "items": merged}).encode())

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(engine) -> Iterator[_Proxy]:
    running = _Proxy(engine.url)
    yield running
    running.close()


def _proxied_client(proxy: _Proxy) -> OpenSearch:
    # No transport-level retries: what is retried here is the writer's doing.
    return OpenSearch(proxy.url, max_retries=0, retry_on_status=(), timeout=30)


def _updates(tag: str, n: int = 6) -> list[tuple[str, dict[str, Any]]]:
    return [(f"doc-{i}", {"nir_expansion": f"{tag} {i}"}) for i in range(n)]


def _expansions(client: OpenSearch, n: int) -> list[str]:
    client.indices.refresh(index=INDEX)
    return [client.get(index=INDEX, id=f"doc-{i}")["_source"].get("nir_expansion") for i in range(n)]


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_items_answered_429_are_retried_with_backoff_and_nothing_is_lost(client, corpus, proxy):
    proxy.reject_items_in = 2
    results = list(
        streaming_update(
            _proxied_client(proxy), corpus, _updates("items"), initial_backoff=0.1, max_backoff=1.0
        )
    )
    assert all(r.ok for r in results) and len(results) == 6
    assert proxy.bulk_ids[0] == [f"doc-{i}" for i in range(6)]
    assert proxy.bulk_ids[1] == ["doc-0", "doc-2", "doc-4"]  # only the 429 items went again
    assert proxy.bulk_ids[2] == ["doc-0", "doc-4"]
    gaps = _gaps(proxy.bulk_times)
    assert gaps[0] >= 0.1 * 0.95 and gaps[1] >= 0.2 * 0.95  # 0.1 then 0.2: exponential
    assert _expansions(client, 6) == [f"items {i}" for i in range(6)]
    assert max(r.attempts for r in results) == 3


def test_a_request_answered_429_or_503_is_retried_whole(client, corpus, proxy):
    for status in (429, 503):
        proxy.bulk_times.clear()
        proxy.reject_requests, proxy.reject_status = 2, status
        results = list(
            streaming_update(
                _proxied_client(proxy), corpus, _updates(f"whole {status}"), initial_backoff=0.05
            )
        )
        assert all(r.ok for r in results)
        assert len(proxy.bulk_times) == 3
        gaps = _gaps(proxy.bulk_times)
        assert gaps[0] >= 0.05 * 0.95 and gaps[1] >= 0.1 * 0.95
        assert _expansions(client, 6) == [f"whole {status} {i}" for i in range(6)]


def test_a_request_left_unanswered_is_retried(client, corpus, proxy):
    proxy.drop_requests = 2
    results = list(
        streaming_update(_proxied_client(proxy), corpus, _updates("dropped"), initial_backoff=0.05)
    )
    assert all(r.ok for r in results)
    assert len(proxy.bulk_times) == 3
    assert _expansions(client, 6) == [f"dropped {i}" for i in range(6)]


def test_other_4xx_are_never_retried(corpus, proxy):
    proxy.reject_requests, proxy.reject_status = 5, 400
    results = list(streaming_update(_proxied_client(proxy), corpus, _updates("never"), initial_backoff=0.01))
    assert len(proxy.bulk_times) == 1
    assert [(r.ok, r.status) for r in results] == [(False, 400)] * 6


def test_when_retries_run_out_every_document_is_reported(corpus, proxy):
    proxy.reject_requests, proxy.reject_status = 10, 429
    results = list(
        streaming_update(_proxied_client(proxy), corpus, _updates("out"), max_retries=2, initial_backoff=0.01)
    )
    assert len(proxy.bulk_times) == 3
    assert [(r.id, r.ok, r.status) for r in results] == [(f"doc-{i}", False, 429) for i in range(6)]
    assert results[0].error_type == "es_rejected_execution_exception"


# ----- checkpoints ------------------------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path: Path):
    path = tmp_path / "run" / "checkpoint.json"
    checkpoint = open_checkpoint(path, index="corpus", query=None, spec_fingerprint="spec-1", slices=2)
    checkpoint.record_batch(0, ["doc-7"], processed=10, skipped=2, failures=[("doc-3", "mapper_parsing")])
    checkpoint.record_batch(1, ["doc-9"], processed=5)
    checkpoint.finish_slice(1)
    checkpoint.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.json"]  # no temporary file left
    loaded = open_checkpoint(
        path, index="corpus", query={"match_all": {}}, spec_fingerprint="spec-1", slices=2
    )
    assert loaded == checkpoint
    assert loaded.position(0) == ["doc-7"] and loaded.position(1) == ["doc-9"] and loaded.is_finished(1)
    assert (loaded.processed, loaded.skipped, loaded.failed) == (15, 2, 1)
    assert loaded.failures == [{"id": "doc-3", "reason": "mapper_parsing"}]


def test_checkpoint_of_another_run_is_refused_unless_restarted(tmp_path: Path):
    path = tmp_path / "checkpoint.json"
    Checkpoint(index="corpus", query_hash=query_hash(None), spec_fingerprint="spec-1").save(path)
    with pytest.raises(CheckpointMismatch) as caught:
        open_checkpoint(path, index="corpus", query={"range": {"t": {"gte": 1}}}, spec_fingerprint="spec-2")
    message = str(caught.value)
    assert "query_hash" in message and "spec_fingerprint" in message and "--restart" in message
    fresh = open_checkpoint(path, index="corpus", query=None, spec_fingerprint="spec-2", restart=True)
    assert fresh.processed == 0 and fresh.spec_fingerprint == "spec-2"


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "checkpoint.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a nirbridge checkpoint"):
        load_checkpoint(path)


def test_checkpoint_keeps_a_capped_list_of_failures():
    checkpoint = Checkpoint(index="i", query_hash="q", spec_fingerprint="s")
    checkpoint.record_batch(0, None, failures=[(str(i), "bad") for i in range(1500)])
    assert checkpoint.failed == 1500 and len(checkpoint.failures) == 1000


# ----- content hash and nir_meta ----------------------------------------------------------------------------


def test_content_hash_is_stable_and_covers_only_the_text_fields():
    source = {"title": "A", "text": "B", "other": 1}
    digest = content_hash(source, ["title", "text"])
    assert digest == content_hash({"text": "B", "title": "A", "other": 2}, ["title", "text"])
    assert digest != content_hash({"title": "A", "text": "C"}, ["title", "text"])
    assert content_hash({"title": "A"}, ["title", "text"]) != content_hash(
        {"title": "A", "text": ""}, ["title", "text"]
    )


def test_needs_enrichment_uses_fingerprints_and_the_content_hash():
    fields = ["title", "text"]
    fingerprints = {"sparse": "splade@1", "dense": "minilm@1"}
    hit = {"_id": "d", "_source": {"title": "A", "text": "B"}}
    assert needs_enrichment(hit, fingerprints, fields)
    hit["_source"]["nir_meta"] = meta_update(hit, fingerprints, fields)
    assert not needs_enrichment(hit, fingerprints, fields)
    assert not needs_enrichment(hit, {"sparse": "splade@1"}, fields)
    assert needs_enrichment(hit, {"sparse": "splade@2"}, fields)
    changed = {"_id": "d", "_source": {**hit["_source"], "text": "B2"}}
    assert needs_enrichment(changed, fingerprints, fields)
    # text changed, only sparse re-run: the dense fingerprint is cleared, so dense is not skipped later
    meta = meta_update(changed, {"sparse": "splade@1"}, fields)
    assert meta["models"] == {"sparse": "splade@1", "dense": None}
    assert source_fields(fields) == ["title", "text", "nir_meta"]


def test_a_rerun_skips_what_is_enriched_over_http(client, corpus):
    fields, fingerprints = ["title", "text"], {"expansion": "d2q@1"}
    hits = list(
        scan_documents(client, corpus, fields=source_fields(fields), query={"range": {"n": {"lt": 5}}})
    )
    updates = [
        (h["_id"], {"nir_meta": meta_update(h, fingerprints, fields)})
        for h in hits
        if needs_enrichment(h, fingerprints, fields)
    ]
    assert len(updates) == 5
    assert all(r.ok for r in streaming_update(client, corpus, updates, refresh=True))
    again = list(
        scan_documents(client, corpus, fields=source_fields(fields), query={"range": {"n": {"lt": 5}}})
    )
    assert not [h for h in again if needs_enrichment(h, fingerprints, fields)]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("after", [None, "doc-3", "5", "zzz"])
def test_the_id_sort_shortcut_orders_as_the_general_sort(client, corpus, descending, after):
    if not client.indices.exists(index="scan-other"):
        client.index(
            index="scan-other", id="doc-30", body={"title": "a twin of doc-30"}, params={"refresh": "true"}
        )
    order = "desc" if descending else "asc"
    shortcut: dict[str, Any] = {"size": 9, "sort": [{"_id": order}], "_source": False}
    general: dict[str, Any] = {
        **shortcut,
        "sort": [{"_id": order}, {"_index": "asc"}],
    }  # two keys: general path
    if after is not None:
        shortcut["search_after"], general["search_after"] = [after], [after, "\uffff"]
    names = f"{corpus},scan-other"
    fast = [(h["_index"], h["_id"]) for h in client.search(index=names, body=shortcut)["hits"]["hits"]]
    slow = [(h["_index"], h["_id"]) for h in client.search(index=names, body=general)["hits"]["hits"]]
    ids = sorted([*IDS, "doc-30"], reverse=descending)  # doc-30 is in both indices
    if after is not None:
        ids = [i for i in ids if (i < after if descending else i > after)]
    assert [doc_id for _, doc_id in fast] == [doc_id for _, doc_id in slow][: len(fast)]
    assert [doc_id for _, doc_id in fast][:5] == ids[:5] or len(ids) < 5


def test_a_checkpointed_sliced_scan_resumes_in_a_new_pit_after_writes(client, corpus, tmp_path: Path):
    path = tmp_path / "checkpoint.json"
    seen: list[str] = []
    checkpoint = open_checkpoint(path, index=corpus, query=None, spec_fingerprint="spec", slices=2)
    for slice_id in range(2):  # a first run reads 10 documents of each slice, then dies
        scan = scan_documents(client, corpus, slice_id=slice_id, slices=2, page_size=4)
        batch = [next(scan) for _ in range(10)]
        scan.close()
        seen += [hit["_id"] for hit in batch]
        checkpoint.record_batch(slice_id, batch[-1]["sort"], processed=len(batch))
        checkpoint.save(path)
    # the index moves on meanwhile: updated documents get new internal positions
    assert all(
        r.ok
        for r in streaming_update(client, corpus, [(i, {"touched": True}) for i in seen[:5]], refresh=True)
    )
    resumed = open_checkpoint(path, index=corpus, query=None, spec_fingerprint="spec", slices=2)
    for slice_id in range(2):
        after = resumed.position(slice_id)
        seen += [
            h["_id"] for h in scan_documents(client, corpus, slice_id=slice_id, slices=2, search_after=after)
        ]
    assert sorted(seen) == sorted(IDS)  # every document exactly once
    assert resumed.processed == 20 and _no_pits(client)
