"""Acknowledged writes survive `kill -9` and a restart; a torn translog tail is cut off, not fatal."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

from opensearchpy import OpenSearch, helpers

from nirbridge.connector.engine_process import start_engine


def _engine(data_dir: Path, log: Path):
    process = start_engine(data_dir, log_path=log)
    process.wait_ready(60)
    return process, OpenSearch(process.url, timeout=60)


def test_acknowledged_writes_survive_kill_9() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        process, client = _engine(data, Path(scratch) / "1.log")
        try:
            client.indices.create(
                index="durable",
                body={
                    "settings": {"refresh_interval": "-1"},
                    "mappings": {
                        "properties": {"t": {"type": "text"}, "v": {"type": "knn_vector", "dimension": 2}}
                    },
                },
            )
            ok, _ = helpers.bulk(
                client,
                (
                    {"_index": "durable", "_id": str(i), "_source": {"t": f"doc {i}", "v": [i, 1]}}
                    for i in range(500)
                ),
            )
            assert ok == 500
            client.index(index="durable", id="7", body={"t": "rewritten seven", "v": [7, 2]})
            client.delete(index="durable", id="8")
            client.update(index="durable", id="9", body={"doc": {"extra": True}})
            # Nothing was refreshed: the writes are acknowledged but not yet searchable.
            assert client.count(index="durable")["count"] == 0
        finally:
            process.process.send_signal(signal.SIGKILL)
            process.process.wait()
        process, client = _engine(data, Path(scratch) / "2.log")
        try:
            assert client.count(index="durable")["count"] == 499
            assert client.get(index="durable", id="7")["_source"] == {"t": "rewritten seven", "v": [7, 2]}
            assert client.get(index="durable", id="7")["_version"] == 2
            assert not client.exists(index="durable", id="8")
            assert client.get(index="durable", id="9")["_source"]["extra"] is True
            hits = client.search(index="durable", body={"query": {"match": {"t": "rewritten"}}})["hits"][
                "hits"
            ]
            assert [h["_id"] for h in hits] == ["7"]
            knn = client.search(index="durable", body={"query": {"knn": {"v": {"vector": [300, 1], "k": 1}}}})
            assert knn["hits"]["hits"][0]["_id"] == "300"
            mapping = client.indices.get_mapping(index="durable")["durable"]["mappings"]["properties"]
            assert mapping["extra"] == {"type": "boolean"}  # the dynamic mapping update survived too
            # Sequence numbers continue after recovery instead of restarting.
            assert client.index(index="durable", id="new", body={"t": "x"})["_seq_no"] > 500
        finally:
            process.process.send_signal(signal.SIGKILL)
            process.process.wait()


def test_torn_translog_tail_is_cut_off() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        process, client = _engine(data, Path(scratch) / "1.log")
        try:
            client.index(index="torn", id="1", body={"t": "kept"})
        finally:
            process.stop()
        (translog,) = data.glob("indices/*/translog.ndjson")
        with open(translog, "ab") as handle:
            handle.write(b'{"o":"i","id":"2","s":{"t":"half wri')  # a crash in the middle of a write
        process, client = _engine(data, Path(scratch) / "2.log")
        try:
            assert client.get(index="torn", id="1")["_source"] == {"t": "kept"}
            assert not client.exists(index="torn", id="2")
            client.index(index="torn", id="3", body={"t": "after"}, refresh=True)
            assert client.count(index="torn")["count"] == 2
        finally:
            process.stop()
