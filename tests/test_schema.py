"""connector.schema: the JSON fragments in nirbridge.mappings and the mappings composed from them."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from nirbridge.connector.schema import (
    SPACE_TYPES,
    EnrichedFields,
    conflicts,
    corpus_index_body,
    enriched_properties,
    field_mapping,
    index_template,
    load_fragment,
    missing_fields,
    properties_of,
)

FRAGMENTS = [
    "nir_sparse",
    "nir_terms",
    "nir_expansion",
    "nir_dense",
    "nir_meta",
    "index_template",
    "beir_corpus",
]


@pytest.mark.parametrize("name", FRAGMENTS)
def test_every_fragment_is_a_json_object(name: str) -> None:
    text = (files("nirbridge.mappings") / f"{name}.json").read_text()
    assert isinstance(json.loads(text), dict)


def test_field_types_are_the_ones_design_md_names() -> None:
    assert field_mapping("sparse") == {"type": "rank_features"}
    assert field_mapping("terms") == {"type": "rank_features"}
    assert field_mapping("expansion") == {"type": "text", "analyzer": "english"}
    meta = field_mapping("meta")
    assert meta["type"] == "object"
    assert meta["properties"]["content_hash"]["type"] == "keyword"
    assert meta["properties"]["content_hash"]["index"] is False  # compared in _source, never searched
    assert meta["properties"]["enriched_at"] == {"type": "date"}
    assert {field["type"] for field in meta["properties"]["models"]["properties"].values()} == {"keyword"}


def test_dense_field_is_filled_with_typed_values() -> None:
    dense = field_mapping("dense", dimension=384, space_type="innerproduct")
    assert dense["type"] == "knn_vector"
    assert dense["dimension"] == 384 and isinstance(dense["dimension"], int)
    assert dense["method"]["name"] == "hnsw"
    assert dense["method"]["space_type"] == "innerproduct"
    assert dense["method"]["engine"] == "lucene"
    assert "${" not in json.dumps(dense)


def test_dense_defaults_and_engine_choice() -> None:
    dense = field_mapping("dense", dimension=8, engine="faiss")
    assert dense["method"]["space_type"] == "cosinesimil"
    assert dense["method"]["engine"] == "faiss"


@pytest.mark.parametrize("dimension", [0, -3, 1.5, "384", True, None])
def test_dense_dimension_must_be_a_positive_int(dimension: object) -> None:
    with pytest.raises(ValueError, match="dimension"):
        field_mapping("dense", dimension=dimension)


def test_dense_space_type_must_be_known() -> None:
    with pytest.raises(ValueError, match="space_type 'cosine' is not one of l2, cosinesimil, innerproduct"):
        field_mapping("dense", dimension=4, space_type="cosine")
    for space_type in SPACE_TYPES:
        assert (
            field_mapping("dense", dimension=4, space_type=space_type)["method"]["space_type"] == space_type
        )


def test_dense_engine_must_be_known() -> None:
    with pytest.raises(ValueError, match="engine 'hnswlib'"):
        field_mapping("dense", dimension=4, engine="hnswlib")


def test_unexpected_and_unknown_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unexpected parameter.*dimension.*no parameters"):
        field_mapping("sparse", dimension=3)
    with pytest.raises(ValueError, match="unknown enriched field kind 'colbert'"):
        field_mapping("colbert")  # type: ignore[arg-type]


def test_named_field_mapping() -> None:
    assert field_mapping("sparse", name="splade") == {"splade": {"type": "rank_features"}}


def test_fragments_come_back_as_fresh_copies() -> None:
    first = load_fragment("nir_meta.json")
    first["properties"].clear()
    assert load_fragment("nir_meta.json")["properties"]
    with pytest.raises(ValueError, match="no mapping fragment named 'nope.json'"):
        load_fragment("nope.json")


def test_enriched_properties_default_names() -> None:
    properties = enriched_properties(dense_dimension=384, dense_space_type="l2")
    assert list(properties) == ["nir_sparse", "nir_terms", "nir_expansion", "nir_dense", "nir_meta"]
    assert properties["nir_dense"]["method"]["space_type"] == "l2"


def test_enriched_properties_without_dense_dimension_leave_dense_out() -> None:
    assert "nir_dense" not in enriched_properties(EnrichedFields(), None, "cosinesimil")


def test_enriched_properties_use_configured_names() -> None:
    fields = EnrichedFields(sparse="splade", dense="emb")
    properties = enriched_properties(fields, 16, "cosinesimil", kinds=("sparse", "dense"))
    assert properties == {"splade": {"type": "rank_features"}, "emb": field_mapping("dense", dimension=16)}


@pytest.mark.parametrize("bad", ["", "_sparse", "a.b", "with space", "-x"])
def test_enriched_field_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="EnrichedFields.sparse"):
        EnrichedFields(sparse=bad)


def test_enriched_field_names_must_differ() -> None:
    with pytest.raises(ValueError, match="'nir_sparse' is already the name of sparse"):
        EnrichedFields(terms="nir_sparse")


def test_index_template_has_knn_setting_base_and_enriched_fields() -> None:
    body = index_template(
        dense_dimension=384, base_properties={"title": {"type": "text"}}, dense_space_type="cosinesimil"
    )
    assert body["settings"]["index"]["knn"] is True
    properties = body["mappings"]["properties"]
    assert properties["title"] == {"type": "text"}
    assert properties["nir_dense"]["dimension"] == 384
    assert set(properties) == {"title", "nir_sparse", "nir_terms", "nir_expansion", "nir_dense", "nir_meta"}


def test_index_template_refuses_base_fields_under_enriched_names() -> None:
    with pytest.raises(ValueError, match="nir_sparse"):
        index_template(base_properties={"nir_sparse": {"type": "float"}})


def test_corpus_index_body_is_title_and_text_in_english() -> None:
    body = corpus_index_body()
    assert body["settings"]["index"]["knn"] is True
    assert body["mappings"]["properties"] == {
        "title": {"type": "text", "analyzer": "english"},
        "text": {"type": "text", "analyzer": "english"},
    }


def test_properties_of_accepts_every_shape_the_api_gives() -> None:
    properties = {"title": {"type": "text"}}
    assert properties_of({"properties": properties}) == properties
    assert properties_of({"mappings": {"properties": properties}}) == properties
    assert properties_of({"docs": {"mappings": {"properties": properties}}}) == properties
    assert properties_of({"docs": {"mappings": {}}}) == {}
    assert properties_of({}) == {}
    with pytest.raises(ValueError, match="got keys a, b"):
        properties_of({"a": 1, "b": 2})


def test_missing_fields_on_an_unenriched_index_is_everything_wanted() -> None:
    wanted = enriched_properties(dense_dimension=8)
    existing = {"docs": {"mappings": {"properties": {"title": {"type": "text"}}}}}
    assert missing_fields(existing, wanted) == wanted
    assert conflicts(existing, wanted) == []


def test_missing_fields_leaves_out_what_exists_and_descends_into_objects() -> None:
    wanted = enriched_properties(dense_dimension=8)
    meta = json.loads(json.dumps(wanted["nir_meta"]))
    del meta["type"]  # OpenSearch hands objects back without "type"
    del meta["properties"]["models"]["properties"]["dense"]
    existing = {"properties": {"nir_sparse": {"type": "rank_features"}, "nir_meta": meta}}
    missing = missing_fields(existing, wanted)
    assert set(missing) == {"nir_terms", "nir_expansion", "nir_dense", "nir_meta"}
    assert missing["nir_meta"] == {
        "type": "object",
        "properties": {"models": {"type": "object", "properties": {"dense": {"type": "keyword"}}}},
    }
    assert missing_fields({"properties": wanted}, wanted) == {}


def test_conflicts_name_the_field_and_the_reason() -> None:
    wanted = enriched_properties(dense_dimension=384, dense_space_type="cosinesimil")
    existing = {
        "properties": {
            "nir_sparse": {"type": "float"},
            "nir_expansion": {"type": "text"},
            "nir_dense": field_mapping("dense", dimension=768, space_type="l2"),
            "nir_meta": {"properties": {"enriched_at": {"type": "keyword"}}},
        }
    }
    assert conflicts(existing, wanted) == [
        "nir_sparse: exists as float, wanted rank_features",
        "nir_expansion: analyzer standard, wanted english",
        "nir_dense: dimension 768, wanted 384",
        "nir_dense: space_type l2, wanted cosinesimil",
        "nir_meta.enriched_at: exists as keyword, wanted date",
    ]
    assert "nir_sparse" not in missing_fields(existing, wanted)
