"""Recovery (issue 13, items 2 and 3): one broken index is quarantined and the others start; a data
directory of the old layout (per-index meta.json, no _state/cluster.json) starts and is migrated, the
inconsistencies a crash could leave in it repaired; leftovers of a crash are cleaned up, and data is never
deleted on a guess."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx

from nirbridge.connector.engine_process import EngineProcess, start_engine


def _start(data: Path, log: Path) -> EngineProcess:
    engine = start_engine(data, log_path=log)
    engine.wait_ready(60)
    return engine


def _kill(engine: EngineProcess) -> None:
    engine.process.send_signal(signal.SIGKILL)
    engine.process.wait()


def _call(engine: EngineProcess, method: str, path: str, body: Any = None) -> httpx.Response:
    if isinstance(body, str):
        return httpx.request(method, engine.url + path, content=body,
                             headers={"content-type": "application/x-ndjson"}, timeout=30)
    return httpx.request(method, engine.url + path, json=body, timeout=30)


def _bulk(engine: EngineProcess, index: str, ids: range) -> None:
    lines = "".join(json.dumps({"index": {"_id": str(i)}}) + "\n" + json.dumps({"t": f"doc {i}"}) + "\n"
                    for i in ids)
    answer = _call(engine, "POST", f"/{index}/_bulk?refresh=true", lines)
    assert answer.status_code == 200 and not answer.json()["errors"], answer.text


def _uuid(engine: EngineProcess, index: str) -> str:
    return _call(engine, "GET", f"/{index}/_settings").json()[index]["settings"]["index"]["uuid"]


def test_one_broken_index_is_quarantined_reported_and_the_others_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = _start(data, tmp_path / "1.log")
    try:
        for name in ("good", "bad"):
            assert _call(engine, "PUT", f"/{name}", {"settings": {"number_of_replicas": 0},
                                                      "aliases": {f"{name}-alias": {}}}).status_code == 200
            _bulk(engine, name, range(5))
        bad_uuid, good_uuid = _uuid(engine, "bad"), _uuid(engine, "good")
    finally:
        _kill(engine)
    # One operation that replay cannot apply, in "good": it is set aside (index.py), "good" starts.
    with open(data / "indices" / good_uuid / "translog.ndjson", "a") as log:
        log.write(json.dumps({"o": "i", "id": 7, "s": {"t": "x"}, "q": 99, "v": 1}) + "\n")
    # Break "bad" so that no recovery can read it: its translog becomes a folder.
    translog = data / "indices" / bad_uuid / "translog.ndjson"
    saved = tmp_path / "translog.saved"
    shutil.move(translog, saved)
    translog.mkdir()

    engine = _start(data, tmp_path / "2.log")
    try:
        assert _call(engine, "GET", "/good/_count").json()["count"] == 5
        assert _call(engine, "GET", "/good-alias/_count").json()["count"] == 5
        rows = {r["index"]: r for r in _call(engine, "GET", "/_cat/indices?format=json").json()}
        assert rows["good"]["health"] == "green" and rows["bad"]["health"] == "red"
        assert rows["bad"]["uuid"] == bad_uuid and rows["bad"]["docs.count"] is None
        assert _call(engine, "GET", "/_cat/indices?health=red&h=index").text.split() == ["bad"]
        health = _call(engine, "GET", "/_cluster/health?level=indices").json()
        assert health["status"] == "red" and health["indices"]["bad"]["status"] == "red"
        assert "IsADirectoryError" in health["nirbridge"]["quarantined_indices"]["bad"]["reason"]
        assert health["nirbridge"]["quarantined_operations"] == {"good": 1}
        assert _call(engine, "GET", "/_cluster/health/good").json()["status"] == "green"
        # Named, it answers as a red OpenSearch index does; it is not re-created under the same name.
        for method, path, body in (("GET", "/bad/_search", None), ("PUT", "/bad/_doc/9", {"t": "x"}),
                                   ("GET", "/bad/_doc/1", None)):
            answer = _call(engine, method, path, body)
            assert answer.status_code == 503, (method, path, answer.text)
            assert answer.json()["error"]["type"] == "no_shard_available_action_exception"
        assert _call(engine, "PUT", "/bad").json()["error"]["type"] == "resource_already_exists_exception"
        taken = _call(engine, "PUT", "/good/_alias/bad").json()["error"]["type"]
        assert taken == "invalid_alias_name_exception"
        # Wildcards pass over it; the log says what happened.
        assert _call(engine, "GET", "/*/_count").json()["count"] == 5
        assert "index [bad]" in engine.log_tail(200) and "quarantined" in engine.log_tail(200)
        # A commit made meanwhile (a new index) keeps its metadata: it is marked, not lost.
        assert _call(engine, "PUT", "/later", {"settings": {"number_of_replicas": 0}}).status_code == 200
    finally:
        _kill(engine)
    shutil.rmtree(translog)
    shutil.move(saved, translog)  # repaired by hand: it comes back whole at the next start
    engine = _start(data, tmp_path / "3.log")
    try:
        assert _call(engine, "GET", "/bad-alias/_count").json()["count"] == 5
        assert _call(engine, "GET", "/_cluster/health").json()["status"] == "green"
        translog.rename(translog.with_name("gone"))
        translog.mkdir()
    finally:
        _kill(engine)
    engine = _start(data, tmp_path / "4.log")
    try:
        assert _call(engine, "DELETE", "/bad").status_code == 200  # deleting a quarantined index works
        assert not (data / "indices" / bad_uuid).exists()
        assert "bad" not in _call(engine, "GET", "/_cat/indices?h=index").text.split()
        health = _call(engine, "GET", "/_cluster/health").json()
        assert health["status"] == "green" and "quarantined_indices" not in health["nirbridge"]
    finally:
        engine.stop()


def _legacy_index(root: Path, uuid: str, name: str, created: int, docs: dict[str, dict[str, Any]],
                  aliases: dict[str, Any] | None = None) -> None:
    """An index folder exactly as the engine wrote it before _state/cluster.json."""
    folder = root / "indices" / uuid
    folder.mkdir(parents=True)
    settings = {"index.number_of_shards": "1", "index.number_of_replicas": "0", "index.uuid": uuid,
                "index.provided_name": name, "index.creation_date": str(created),
                "index.version.created": "137217827"}
    meta = {"name": name, "uuid": uuid, "settings": settings,
            "mappings": {"properties": {"t": {"type": "text"}}}, "aliases": aliases or {}, "closed": False}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    ops = [{"o": "i", "id": doc_id, "s": source, "q": seq, "v": 1, "r": None}
           for seq, (doc_id, source) in enumerate(docs.items())]
    (folder / "translog.ndjson").write_text("".join(json.dumps(op) + "\n" for op in ops))


def test_a_data_directory_of_the_old_layout_is_migrated_and_repaired(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cluster_uuid").write_text("nirbridge-0123456789ab")
    _legacy_index(data, "uuid-a", "a", 1_700_000_000_000, {"1": {"t": "one"}, "2": {"t": "two"}}, {"x": {}})
    # The migration's swap killed half-way under the old layout: alias m is on m-nir-1, and index m (its
    # removal unfinished, half its files gone) is still there.
    _legacy_index(data, "uuid-m-new", "m-nir-1", 1_700_000_002_000, {"1": {"t": "new"}}, {"m": {}})
    _legacy_index(data, "uuid-m-old", "m", 1_700_000_001_000, {})
    # A delete killed half-way, then a create of the same name: the newer folder is the index.
    _legacy_index(data, "uuid-dup-old", "dup", 1_700_000_000_000, {"old": {"t": "old"}})
    _legacy_index(data, "uuid-dup-new", "dup", 1_700_000_005_000, {"new": {"t": "new"}})
    (data / "indices" / "uuid-never").mkdir()  # a create killed before its meta.json

    engine = _start(data, tmp_path / "1.log")
    try:
        assert _call(engine, "GET", "/").json()["cluster_uuid"] == "nirbridge-0123456789ab"
        assert _call(engine, "GET", "/x/_count").json()["count"] == 2
        assert _call(engine, "GET", "/a/_doc/2").json()["_source"] == {"t": "two"}
        assert _call(engine, "GET", "/_alias/m").json() == {"m-nir-1": {"aliases": {"m": {}}}}
        assert _call(engine, "GET", "/m/_count").json()["count"] == 1  # through the alias, to m-nir-1
        assert [h["_id"] for h in _call(engine, "GET", "/dup/_search").json()["hits"]["hits"]] == ["new"]
        indices = sorted(_call(engine, "GET", "/_cat/indices?h=index").text.split())
        assert indices == ["a", "dup", "m-nir-1"]
        state = json.loads((data / "_state" / "cluster.json").read_text())
        assert state["generation"] >= 1 and sorted(state["indices"]) == indices
        # What the metadata no longer names is moved aside, never deleted; the empty folder is removed.
        folders = sorted(p.name for p in (data / "indices").iterdir())
        assert folders == [".orphaned-uuid-dup-old", ".orphaned-uuid-m-old", "uuid-a", "uuid-dup-new",
                           "uuid-m-new"]
        # The migrated data directory goes on like a new one.
        assert _call(engine, "PUT", "/a/_doc/3", {"t": "three"}).status_code == 201
    finally:
        _kill(engine)
    engine = _start(data, tmp_path / "2.log")
    try:
        assert _call(engine, "GET", "/x/_count").json()["count"] == 3
        assert _call(engine, "GET", "/").json()["cluster_uuid"] == "nirbridge-0123456789ab"
    finally:
        engine.stop()


def test_leftovers_of_a_crash_are_cleaned_up_and_unknown_folders_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = _start(data, tmp_path / "1.log")
    try:
        assert _call(engine, "PUT", "/kept").status_code == 200
        _bulk(engine, "kept", range(3))
    finally:
        engine.stop()
    indices = data / "indices"
    (indices / ".deleted-abc").mkdir()  # a deletion killed after its rename
    (indices / ".deleted-abc" / "translog.ndjson").write_text("{}\n")
    (indices / "created-not-committed").mkdir()  # a creation killed before its commit
    (indices / "created-not-committed" / "translog.ndjson").touch()
    (indices / "unknown").mkdir()  # something the metadata cannot account for
    (indices / "unknown" / "translog.ndjson").write_text('{"o": "d", "id": "1", "q": 0, "v": 1}\n')
    (data / "_state" / "cluster.json.tmp").write_text("{half a commit")
    engine = _start(data, tmp_path / "2.log")
    try:
        assert _call(engine, "GET", "/kept/_count").json()["count"] == 3
        uuid = _uuid(engine, "kept")
        assert sorted(p.name for p in indices.iterdir()) == sorted([".orphaned-unknown", uuid])
        assert not (data / "_state" / "cluster.json.tmp").exists()
    finally:
        engine.stop()


def test_unreadable_node_metadata_stops_the_engine_with_the_file_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = _start(data, tmp_path / "1.log")
    engine.stop()
    (data / "_state" / "cluster.json").write_text("{not json")
    engine = start_engine(data, log_path=tmp_path / "2.log")
    assert engine.process.wait(60) != 0
    assert "_state/cluster.json cannot be read" in engine.log_tail(40)


def test_an_alias_may_not_take_an_index_name(tmp_path: Path) -> None:
    engine = _start(tmp_path / "data", tmp_path / "1.log")
    try:
        for name in ("i", "j"):
            assert _call(engine, "PUT", f"/{name}").status_code == 200
        refused = _call(engine, "POST", "/_aliases", {"actions": [{"add": {"index": "i", "alias": "j"}}]})
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "invalid_alias_name_exception"
        assert _call(engine, "PUT", "/k", {"aliases": {"i": {}}}).status_code == 400
        assert _call(engine, "HEAD", "/k").status_code == 404
        # ... unless the same request removes that index (the migration's swap)
        swap = {"actions": [{"add": {"index": "i", "alias": "j"}}, {"remove_index": {"index": "j"}}]}
        assert _call(engine, "POST", "/_aliases", swap).status_code == 200
        assert _call(engine, "GET", "/_alias/j").json() == {"i": {"aliases": {"j": {}}}}
    finally:
        engine.stop()
