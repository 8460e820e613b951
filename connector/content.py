"""What makes an enrichment re-run idempotent: a content hash of the text fields and `nir_meta`.

    fingerprints = {"sparse": "splade-tiny@3f2a…", "dense": "minilm@91c0…"}
    if needs_enrichment(hit, fingerprints, ["title", "text"]):
        partial = {**encoded, "nir_meta": meta_update(hit, fingerprints, ["title", "text"])}

`nir_meta` (mappings/nir_meta.json) holds `models` (one fingerprint per enriched kind), `content_hash` and
`enriched_at`. A document is skipped when its `content_hash` is that of its text now and every model asked for
has the same fingerprint; otherwise it is (re-)enriched. A partial update merges objects, so when the text
changed, `meta_update` clears the fingerprints of kinds this run does not write: they were computed from the
old
text and must not make a later run skip that kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from nirbridge.documents import content_hash, value_at

__all__ = ["DEFAULT_META_FIELD", "content_hash", "meta_update", "needs_enrichment", "source_fields"]

DEFAULT_META_FIELD = "nir_meta"


def _meta_of(hit: Mapping[str, Any], meta_field: str) -> Mapping[str, Any] | None:
    meta = value_at(hit.get("_source") or {}, meta_field)
    return meta if isinstance(meta, Mapping) else None


def needs_enrichment(
    hit: Mapping[str, Any],
    spec_fingerprints: Mapping[str, str],
    fields: Sequence[str],
    meta_field: str = DEFAULT_META_FIELD,
) -> bool:
    """True unless the hit's `nir_meta` has the same content hash and every asked model's fingerprint."""
    meta = _meta_of(hit, meta_field)
    if meta is None:
        return True
    if meta.get("content_hash") != content_hash(hit.get("_source"), fields):
        return True
    models = meta.get("models")
    if not isinstance(models, Mapping):
        return bool(spec_fingerprints)
    return any(models.get(kind) != fingerprint for kind, fingerprint in spec_fingerprints.items())


def meta_update(
    hit: Mapping[str, Any],
    spec_fingerprints: Mapping[str, str],
    fields: Sequence[str],
    meta_field: str = DEFAULT_META_FIELD,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `nir_meta` value to write with a document's enriched fields (a partial update merges it).

    When the content changed since the last enrichment, fingerprints of kinds not written now are set to null.
    """
    new_hash = content_hash(hit.get("_source"), fields)
    models: dict[str, Any] = dict(spec_fingerprints)
    old = _meta_of(hit, meta_field)
    if old is not None and old.get("content_hash") != new_hash:
        for kind in old.get("models") or {}:
            models.setdefault(kind, None)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"models": models, "content_hash": new_hash, "enriched_at": stamp}


def source_fields(fields: Sequence[str], meta_field: str = DEFAULT_META_FIELD) -> list[str]:
    """The `_source` fields a scan must fetch to enrich and to decide skipping: text fields and meta."""
    return [*dict.fromkeys([*fields, meta_field])]
