"""Mapping migrations over HTTP against the engine: put-mapping in place, or a new index and an alias swap."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from opensearchpy import OpenSearch

from nirbridge.connector.errors import IndexNotFound, MigrationError
from nirbridge.connector.migration import (
    apply,
    copy_documents,
    plan_mapping_change,
    previous_index,
    retire_index,
    rollback,
    swap_alias,
)
from nirbridge.connector.schema import corpus_index_body, enriched_properties, properties_of
from nirbridge.connector.writer import streaming_update

WANTED = enriched_properties(dense_dimension=4)
KNN = {"index.knn": True}


def _fill(client: OpenSearch, index: str, n: int, extra: dict[str, Any] | None = None) -> None:
    for i in range(n):
        client.index(index=index, id=f"d{i}", body={"title": f"statins study {i}", **(extra or {})})
    client.indices.refresh(index=index)


def _hits(client: OpenSearch, name: str) -> int:
    return int(
        client.search(index=name, body={"query": {"match": {"title": "statins"}}})["hits"]["total"]["value"]
    )


def test_an_additive_change_is_a_put_mapping(client):
    client.indices.create(index="mig-additive", body=corpus_index_body())
    _fill(client, "mig-additive", 3)
    plan = plan_mapping_change(client, "mig-additive", WANTED, KNN)
    assert plan.action == "put_mapping" and not plan.reasons
    assert set(plan.add_properties) == set(WANTED)
    report = plan.describe()
    assert "put mapping adding" in report and "nir_dense (knn_vector)" in report
    assert set(properties_of(client.indices.get_mapping(index="mig-additive"))) == {
        "title",
        "text",
    }  # dry run
    assert apply(client, plan) == "mig-additive"
    assert set(WANTED) <= set(properties_of(client.indices.get_mapping(index="mig-additive")))
    assert plan_mapping_change(client, "mig-additive", WANTED, KNN).action == "none"


def test_a_sub_field_missing_from_nir_meta_is_added_in_place(client):
    body = corpus_index_body()
    meta = WANTED["nir_meta"]
    partial_meta = {"type": "object", "properties": {"content_hash": meta["properties"]["content_hash"]}}
    body["mappings"]["properties"]["nir_meta"] = partial_meta
    client.indices.create(index="mig-meta", body=body)
    plan = plan_mapping_change(client, "mig-meta", {"nir_meta": meta})
    assert plan.action == "put_mapping"
    assert set(plan.add_properties["nir_meta"]["properties"]) == {"models", "enriched_at"}


def test_knn_vector_on_an_index_without_index_knn_needs_a_new_index_behind_the_alias(client):
    client.indices.create(
        index="mig-v1",
        body={"mappings": {"properties": {"title": {"type": "text"}}}, "aliases": {"mig-live": {}}},
    )
    _fill(client, "mig-v1", 8)
    plan = plan_mapping_change(client, "mig-live", WANTED)
    assert plan.action == "new_index" and plan.is_alias and plan.concrete == "mig-v1"
    assert any("nir_dense" in reason and "index.knn" in reason for reason in plan.reasons)
    assert plan.new_index == "mig-v1-nir-1" and plan.doc_count == 8
    report = plan.describe()
    assert "swap alias mig-live: mig-v1 -> mig-v1-nir-1" in report and "kept until verified" in report
    assert not client.indices.exists(index="mig-v1-nir-1")  # planning changed nothing

    target = apply(client, plan)
    assert target == "mig-v1-nir-1"
    assert (
        str(client.indices.get_settings(index=target)[target]["settings"]["index"]["knn"]).lower() == "true"
    )
    # copy, then enrich into the new index, while readers still use the alias on the old one
    assert all(r.ok for r in copy_documents(client, "mig-live", target))
    enriched = [(f"d{i}", {"nir_dense": [1.0, 0.0, 0.0, float(i)]}) for i in range(8)]
    assert all(r.ok for r in streaming_update(client, target, enriched, refresh=True))
    assert _hits(client, "mig-live") == 8

    failures: list[str] = []
    stop = threading.Event()

    def read_through_the_alias() -> None:
        reader = OpenSearch(client.transport.hosts, timeout=30)
        while not stop.is_set():
            try:
                if _hits(reader, "mig-live") != 8:
                    failures.append("a search through the alias saw another count")
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(repr(exc))

    reader = threading.Thread(target=read_through_the_alias)
    reader.start()
    try:
        actions = swap_alias(client, "mig-live", target)
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert actions == [
        {"remove": {"index": "mig-v1", "alias": "mig-live"}},
        {"add": {"index": "mig-v1-nir-1", "alias": "mig-live"}},
    ]
    assert list(client.indices.get_alias(name="mig-live")) == ["mig-v1-nir-1"]
    knn = {"knn": {"nir_dense": {"vector": [1.0, 0.0, 0.0, 7.0], "k": 1}}}
    assert client.search(index="mig-live", body={"query": knn})["hits"]["hits"][0]["_id"] == "d7"
    assert client.indices.exists(index="mig-v1")  # the old index is kept until retired
    retire_index(client, "mig-v1", "mig-live")
    assert not client.indices.exists(index="mig-v1")
    with pytest.raises(MigrationError, match="still points at"):
        retire_index(client, "mig-v1-nir-1", "mig-live")


def test_a_conflicting_field_on_a_concrete_index_is_replaced_by_an_alias_of_the_same_name(client):
    client.indices.create(
        index="mig-plain",
        body={
            "mappings": {"properties": {"title": {"type": "text"}, "nir_sparse": {"type": "float"}}},
            "settings": {"index.knn": True},
        },
    )
    _fill(client, "mig-plain", 5, {"nir_sparse": 0.5})
    plan = plan_mapping_change(client, "mig-plain", WANTED, KNN)
    assert plan.action == "new_index" and not plan.is_alias
    assert plan.reasons == ["nir_sparse: exists as float, wanted rank_features"]
    assert plan.drop_fields == ["nir_sparse"]
    assert "mig-plain is an index, not an alias" in plan.describe()
    target = apply(client, plan)
    assert properties_of(client.indices.get_mapping(index=target))["nir_sparse"]["type"] == "rank_features"

    # a new index that is not filled yet is refused: nothing changes
    with pytest.raises(MigrationError, match="holds 0 documents"):
        swap_alias(client, "mig-plain", target)
    assert client.indices.exists(index="mig-plain") and _hits(client, "mig-plain") == 5

    copied = list(copy_documents(client, "mig-plain", target, drop_fields=plan.drop_fields, refresh=True))
    assert len(copied) == 5 and all(r.ok for r in copied)
    assert _hits(client, "mig-plain") == 5
    actions = swap_alias(client, "mig-plain", target)
    assert actions == [
        {"add": {"index": target, "alias": "mig-plain"}},
        {"remove_index": {"index": "mig-plain"}},
    ]
    assert _hits(client, "mig-plain") == 5  # the same name now reads the new index
    assert list(client.indices.get_alias(name="mig-plain")) == [target]
    assert "nir_sparse" not in client.get(index="mig-plain", id="d0")["_source"]
    # the deleted index was kept as a copy first, with its own mapping: a rollback reads the old documents
    assert previous_index(client, target) == "mig-plain-nir-0"
    assert properties_of(client.indices.get_mapping(index="mig-plain-nir-0"))["nir_sparse"]["type"] == "float"
    assert rollback(client, "mig-plain") == [
        {"remove": {"index": target, "alias": "mig-plain"}},
        {"add": {"index": "mig-plain-nir-0", "alias": "mig-plain"}},
    ]
    assert client.get(index="mig-plain", id="d0")["_source"]["nir_sparse"] == 0.5
    swap_alias(client, "mig-plain", target)
    # a second migration of the same name takes the next number
    again = plan_mapping_change(client, "mig-plain", {"nir_terms": {"type": "float"}})
    assert again.new_index == "mig-plain-nir-2"


def test_a_changed_analyzer_needs_a_new_index(client):
    client.indices.create(
        index="mig-analyzer",
        body={"mappings": {"properties": {"nir_expansion": {"type": "text", "analyzer": "standard"}}}},
    )
    plan = plan_mapping_change(client, "mig-analyzer", {"nir_expansion": WANTED["nir_expansion"]})
    assert plan.action == "new_index"
    assert plan.reasons == ["nir_expansion: analyzer standard, wanted english"]


def test_a_dynamic_setting_is_changed_in_place(client):
    client.indices.create(index="mig-settings", body=corpus_index_body())
    plan = plan_mapping_change(client, "mig-settings", {}, {"index.knn.algo_param.ef_search": 200})
    assert plan.action == "put_mapping" and plan.update_settings == {"index.knn.algo_param.ef_search": 200}
    apply(client, plan)
    flat = client.indices.get_settings(index="mig-settings", params={"flat_settings": "true"})
    assert str(flat["mig-settings"]["settings"]["index.knn.algo_param.ef_search"]) == "200"
    assert (
        plan_mapping_change(client, "mig-settings", {}, {"index.knn.algo_param.ef_search": 200}).action
        == "none"
    )


def test_planning_a_missing_index_is_index_not_found(client):
    with pytest.raises(IndexNotFound):
        plan_mapping_change(client, "mig-nowhere", WANTED)


def _alias_target(client: OpenSearch, alias: str) -> list[str]:
    return sorted(client.indices.get_alias(name=alias))


def test_a_swap_waits_for_equal_counts_keeps_the_old_index_and_rolls_back(client, engine):
    from typer.testing import CliRunner

    from nirbridge.connector.cli import app

    mapping = {"mappings": {"properties": {"title": {"type": "text"}}}}
    client.indices.create(index="rb-v1", body={**mapping, "aliases": {"rb-live": {}}})
    _fill(client, "rb-v1", 4)
    client.indices.create(index="rb-v2", body=mapping)
    copied = list(copy_documents(client, "rb-live", "rb-v2"))
    client.delete(index="rb-v2", id=copied[0].id)  # one document short, and not yet refreshed
    with pytest.raises(MigrationError, match="rb-v2 holds 3 documents, rb-v1 holds 4: not swapping") as error:
        swap_alias(client, "rb-live", "rb-v2")
    assert "rerun" in str(error.value) and "rb-live still reads rb-v1" in str(error.value)
    assert _alias_target(client, "rb-live") == ["rb-v1"] and _hits(client, "rb-live") == 4

    assert all(r.ok for r in copy_documents(client, "rb-live", "rb-v2"))
    client.index(index="rb-v2", id="only-new", body={"title": "statins only in the new index"})
    client.delete(index="rb-v2", id="d3")
    swap_alias(client, "rb-live", "rb-v2")
    assert _alias_target(client, "rb-live") == ["rb-v2"] and client.indices.exists(index="rb-v1")
    assert previous_index(client, "rb-v2") == "rb-v1" and previous_index(client, "rb-v1") is None

    cli = CliRunner()
    base = ["migrate", "rollback", "--url", engine.url, "--index", "rb-live"]
    dry = cli.invoke(app, [*base, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    said = json.loads(dry.stdout.strip().splitlines()[-1])
    assert (said["from"], said["to"], said["dry_run"]) == ("rb-v2", "rb-v1", True)
    assert _alias_target(client, "rb-live") == ["rb-v2"]  # a dry run changes nothing

    done = cli.invoke(app, base)
    assert done.exit_code == 0 and "rb-live now points at rb-v1 (was rb-v2; rb-v2 is kept)" in done.output
    assert _alias_target(client, "rb-live") == ["rb-v1"] and client.indices.exists(index="rb-v2")
    assert client.exists(index="rb-live", id="d3") and not client.exists(index="rb-live", id="only-new")

    again = cli.invoke(app, base)
    assert again.exit_code == 1 and "which no nirbridge swap made: nothing to roll back to" in again.output
    concrete = cli.invoke(app, [*base[:-1], "rb-v2"])
    assert concrete.exit_code == 1 and "rb-v2 is an index, not an alias" in concrete.output
    missing = cli.invoke(app, [*base[:-1], "rb-nowhere"])
    assert missing.exit_code == 2 and "no such index: rb-nowhere" in missing.output

    swap_alias(client, "rb-live", "rb-v2", verify_counts=False)  # forward again, then retire the old one
    retire_index(client, "rb-v1", "rb-live")
    with pytest.raises(MigrationError, match="rb-v1, which no longer exists"):
        rollback(client, "rb-live")
    assert _alias_target(client, "rb-live") == ["rb-v2"]


def test_a_swap_dry_run_sends_nothing(client):
    client.indices.create(index="dry-v1", body={"aliases": {"dry-live": {}}})
    client.indices.create(index="dry-v2")
    actions = swap_alias(client, "dry-live", "dry-v2", dry_run=True)
    assert actions == [
        {"remove": {"index": "dry-v1", "alias": "dry-live"}},
        {"add": {"index": "dry-v2", "alias": "dry-live"}},
    ]
    assert _alias_target(client, "dry-live") == ["dry-v1"] and previous_index(client, "dry-v2") is None
