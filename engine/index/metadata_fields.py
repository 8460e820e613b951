"""OpenSearch's metadata fields (``_id``, ``_index``, ``_routing``, ...) as targets of queries.

They have no entry in an index's mapping, so the query parser asks here first. Their behaviour follows
OpenSearch's metadata field mappers:

- ``_id``: ``term`` / ``terms`` / ``match`` build a constant-score ``TermInSetQuery`` (IdFieldType);
  ``exists`` matches every document. It is answered from the index's id table, not from postings.
- ``_index``: a constant field (IndexFieldType): a term matches every document when it names the index (``*``
  wildcards allowed), nothing otherwise.
- ``_routing``: an indexed, docs-only keyword (RoutingFieldMapper); the index adds it to a document's terms.
- ``_seq_no``, ``_primary_term``, ``_version``: every document has one, so ``exists`` matches all.
- ``_source``: stored, never indexed: any query on it is a ``query_shard_exception``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .searcher import Searcher

METADATA_FIELDS = frozenset(
    {
        "_id",
        "_index",
        "_routing",
        "_source",
        "_seq_no",
        "_primary_term",
        "_version",
        "_ignored",
        "_field_names",
    }
)
ALWAYS_PRESENT_METADATA = frozenset({"_id", "_index", "_seq_no", "_primary_term", "_version"})
EXISTS_QUERYABLE_METADATA = ALWAYS_PRESENT_METADATA | {"_routing", "_ignored", "_field_names"}


def not_searchable_reason(path: str) -> str:
    """The reason OpenSearch gives for a term query on a metadata field that is not indexed for it."""
    if path in ("_source", "_version", "_primary_term"):
        return f"The {path} field is not searchable"
    return f"term queries on the [{path}] metadata field are not supported by the nirbridge engine"


@lru_cache(maxsize=256)
def _simple_pattern(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(regex, re.IGNORECASE if case_insensitive else 0)


def index_name_matches(pattern: str, index_name: str, case_insensitive: bool = False) -> bool:
    """OpenSearch's ``Regex.simpleMatch`` of an ``_index`` term against the index name (``*`` only)."""
    return _simple_pattern(pattern, case_insensitive).fullmatch(index_name) is not None


def ids_mask(s: Searcher, ids: Iterable[str]) -> np.ndarray:
    """Mask of the view's live documents whose ``_id`` is one of ``ids``.

    The index's id table gives each id's newest ordinal; an ordinal below the view's ``max_ord`` is the one
    the view sees. Ids written or deleted after the view was taken are looked up in the view's own documents.
    """
    mask = np.zeros(s.max_ord, dtype=np.bool_)
    visible = s.index.visible
    ords: list[int] = []
    unresolved: set[str] = set()
    for doc_id in ids:
        ord_ = visible.get(doc_id)
        if ord_ is not None and ord_ < s.max_ord:
            ords.append(ord_)
        elif s.generation != s.index.generation:
            unresolved.add(doc_id)
    if unresolved:
        ords.extend(o for o in range(s.max_ord) if s.ord_docs[o].id in unresolved)
    if ords:
        mask[np.asarray(ords, dtype=np.int64)] = True
    return mask & s.live
