"""One batch of documents in, one result per document out: the enrichment itself, free of Celery and clusters.

    spec = EnrichmentSpec(fields=("title", "text"), sparse=EncoderSpec("path/or/hf-id"))
    results = run_enrichment(spec, [{"_id": "d1", "_source": {"title": "...", "text": "..."}}])

Each `DocResult` is either the partial-update body for the document

    {"nir_sparse": {term: weight}, "nir_terms": {term: weight}, "nir_dense": [float, ...],
     "nir_meta": {"models": {kind: fingerprint}, "content_hash": "sha256 hex", "enriched_at": "ISO 8601"}}

or a failure naming the document and the reason (a missing, empty or non-string field, an encoder that failed
on that document). A bad document never costs the rest of the batch. The same function runs inside a Celery
worker (`tasks.enrich_batch`) and in-process (`connector.runner.LocalRunner`).

Text: the spec's fields are joined with a space in the order given; a missing or null field is left out, a
list of strings counts as its strings joined, anything else fails the document. Text beyond `max_chars`
characters is cut before encoding (the models read only their first 512 tokens anyway; a huge field would only
cost tokenizer time); the content hash covers the whole text.

Models load once per process: a module-level cache keyed by (kind, model, backend, params) keeps every encoder
a worker process has built, and `loaded_models()` reports them (the `ping` task shows it).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from nirbridge.documents import content_hash, value_at
from nirbridge.workers.contract import (
    DEFAULT_MAX_CHARS,
    KINDS,
    META_KEYS,
    DocResult,
    EncoderSpec,
    EnrichmentSpec,
    FieldNames,
    SpecError,
)
from nirbridge.workers.metrics import observe_model_load

# The specs and results moved to workers.contract (what a client imports); kept here for older imports.
__all__ = [
    "DEFAULT_MAX_CHARS",
    "KINDS",
    "META_KEYS",
    "DocResult",
    "EncoderSpec",
    "EncoderUnavailable",
    "EnrichmentSpec",
    "FieldNames",
    "NoText",
    "SpecError",
    "content_hash",
    "document_text",
    "loaded_models",
    "describe",
    "run_enrichment",
    "spec_fingerprints",
]

class NoText(ValueError):
    """A document whose text fields are all missing or empty: nothing to enrich (the job skips it with this
    reason, as an ingest pipeline's `ignore_missing` would, rather than fail it on every run)."""


class EncoderUnavailable(RuntimeError):
    """The encoder a spec asks for cannot be loaded in this process (module or model missing)."""


# --- the text of a document ---------------------------------------------------------------------------------


def document_text(source: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The text the encoders read: the fields' values joined by a space. ValueError names a bad field;
    NoText (a ValueError) when there is no text at all."""
    parts: list[str] = []
    for name in fields:
        value = value_at(source, name)
        if value is None:
            continue
        if isinstance(value, list) and all(_is_scalar(item) for item in value):
            value = " ".join(text for text in map(_scalar_text, value) if text.strip())
        elif _is_scalar(value):
            value = _scalar_text(value)
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} is not text (got {type(value).__name__})")
        if value.strip():
            parts.append(value.strip())
    if not parts:
        raise NoText(
            f"no text: field{'s' if len(fields) > 1 else ''} {', '.join(fields)} missing or empty"
        )
    return " ".join(parts)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar_text(value: Any) -> str:
    """A JSON scalar as a `text` field indexes it: OpenSearch takes numbers and booleans as their JSON
    text (`1` -> "1", `true` -> "true"), and skips nulls."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


# --- encoders, loaded once per process ----------------------------------------------------------------------

_lock = threading.Lock()
_encoders: dict[tuple[str, str, str, str], Any] = {}
_loads: dict[tuple[str, str, str, str], int] = {}
_fingerprints: dict[tuple[str, str, str, str], str] = {}


def _import(module: str, name: str, kind: str) -> Any:
    try:
        return getattr(importlib.import_module(f"nirbridge.workers.{module}"), name)
    except ImportError as error:
        raise EncoderUnavailable(
            f"{kind}: nirbridge.workers.{module}.{name} cannot be imported: {error}"
        ) from None


def _build(kind: str, encoder: EncoderSpec) -> Any:
    if kind == "sparse":
        return _import("sparse", "SparseEncoder", kind)(encoder.model, encoder.backend, **encoder.params)
    if kind == "terms":
        return _import("term_weights", "TermWeighter", kind)(encoder.model, encoder.backend, **encoder.params)
    if kind == "dense":
        return _import("dense", "DenseEncoder", kind)(encoder.model, encoder.backend, **encoder.params)
    if kind == "doc2query":
        generator = _import("doc2query", "Doc2QueryGenerator", kind)
        return generator(encoder.model, encoder.backend, **encoder.params)
    raise EncoderUnavailable(f"{kind}: no {kind} encoder in this installation yet")


# parameters that change how fast an encoder runs, never what it writes
_SPEED_PARAMS = frozenset({"batch_size"})


def _fingerprint(encoder: EncoderSpec, weights: str) -> str:
    """`model@weights-digest`, plus a digest of the parameters that change the output when there are any."""
    params = {key: value for key, value in encoder.params.items() if key not in _SPEED_PARAMS}
    text = f"{encoder.model}@{weights}"
    if params:
        text += "+" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return text


def _model_fingerprint(model: Any, encoder: EncoderSpec) -> str:
    own = getattr(model, "fingerprint", None)
    if not isinstance(own, str):
        path = getattr(model, "path", None) or encoder.model
        own = _import("models", "fingerprint", "fingerprint")(path)
    return _fingerprint(encoder, own)


def spec_fingerprints(spec: EnrichmentSpec) -> dict[str, str]:
    """The `nir_meta.models` fingerprints a run of `spec` writes, by meta key, without loading any model.

    The job compares them with each document's `nir_meta` to skip what is already enriched.
    """
    resolve = _import("models", "resolve_model", "fingerprint")
    digest = _import("models", "fingerprint", "fingerprint")
    out: dict[str, str] = {}
    for kind, encoder in spec.encoders().items():
        try:
            weights = digest(resolve(encoder.model))
        except Exception as error:  # noqa: BLE001 - a model that cannot be found: one translation boundary
            raise EncoderUnavailable(f"{kind}: cannot find {encoder.model!r}: {error}") from error
        out[META_KEYS[kind]] = _fingerprint(encoder, weights)
    return out


def _encoder(kind: str, encoder: EncoderSpec) -> tuple[Any, str]:
    key = encoder.key(kind)
    with _lock:
        model = _encoders.get(key)
        if model is None:
            started = time.perf_counter()
            try:
                model = _build(kind, encoder)
            except EncoderUnavailable:
                raise
            except Exception as error:  # noqa: BLE001 - one translation boundary for every load failure
                reason = f"{kind}: cannot load {encoder.model!r} (backend {encoder.backend}): {error}"
                raise EncoderUnavailable(reason) from error
            observe_model_load(kind, encoder.model, time.perf_counter() - started)
            _fingerprints[key] = _model_fingerprint(model, encoder)
            _encoders[key] = model
            _loads[key] = _loads.get(key, 0) + 1
        return model, _fingerprints[key]


def loaded_models() -> list[dict[str, Any]]:
    """The encoders this process holds: kind, model, backend, params, fingerprint, times loaded."""
    with _lock:
        return [
            {
                "kind": kind,
                "model": model,
                "backend": backend,
                "params": json.loads(params),
                "fingerprint": _fingerprints.get((kind, model, backend, params)),
                "running_on": str(getattr(_encoders[(kind, model, backend, params)], "backend", backend)),
                "loads": _loads[(kind, model, backend, params)],
            }
            for (kind, model, backend, params) in _encoders
        ]


def describe(spec: EnrichmentSpec) -> dict[str, Any]:
    """What the job needs before the first batch: the fingerprints, and the dense model's vector shape.

        {"models": {meta key: fingerprint}, "dense": {"dimension": 384, "space_type": "innerproduct"}}

    The dense model is loaded for it (into this process's cache, where its batches will find it).
    """
    info: dict[str, Any] = {"models": spec_fingerprints(spec)}
    if spec.dense is not None:
        encoder, _ = _encoder("dense", spec.dense)
        info["dense"] = {"dimension": int(encoder.dimension), "space_type": str(encoder.space_type)}
    return info


# --- the batch ----------------------------------------------------------------------------------------------


def _sparse_value(weights: Mapping[str, Any]) -> dict[str, float]:
    """rank_features takes positive finite floats only; anything else is dropped."""
    out: dict[str, float] = {}
    for term, weight in weights.items():
        value = float(weight)
        if value > 0 and math.isfinite(value):
            out[str(term)] = value
    return out


def _encode_each(
    encode: Callable[[list[str]], Sequence[Any]], texts: list[str], kind: str
) -> tuple[list[Any], dict[int, str]]:
    """Encode the batch; when the batch fails, encode one by one so only the documents that fail are lost."""
    failures: dict[int, str] = {}
    try:
        values = list(encode(texts))
        if len(values) != len(texts):
            raise RuntimeError(f"{kind} encoder returned {len(values)} results for {len(texts)} texts")
        return values, {}
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - isolated per document below, each failure reported
        # workers.errors.BadInputError names the texts it refused: those fail, the others are encoded again
        for item in getattr(error, "failures", None) or ():
            failures[item.index] = f"{kind} encoder refused the text: {item.reason}"
    values: list[Any] = []
    for position, text in enumerate(texts):
        if position in failures:
            values.append(None)
            continue
        try:
            values.append(list(encode([text]))[0])
        except Exception as error:  # noqa: BLE001 - reported per document
            failures[position] = f"{kind} encoder failed: {type(error).__name__}: {error}"
            values.append(None)
    return values, failures


def run_enrichment(spec: EnrichmentSpec, docs: Sequence[Mapping[str, Any]]) -> list[DocResult]:
    """Enrich `docs` ({"_id", "_source"}) as `spec` says: one DocResult per document, in input order.

    Raises EncoderUnavailable when a model cannot be loaded (nothing in the batch could succeed); every other
    problem is a per-document failure.
    """
    results: list[DocResult | None] = [None] * len(docs)
    texts: list[str] = []
    positions: list[int] = []
    hashes: list[str] = []
    for position, doc in enumerate(docs):
        doc_id = doc.get("_id") if isinstance(doc, Mapping) else None
        if not isinstance(doc_id, str) or not doc_id:
            results[position] = DocResult(id=f"<no _id at position {position}>", reason="document has no _id")
            continue
        source = doc.get("_source")
        if not isinstance(source, Mapping):
            results[position] = DocResult(id=doc_id, reason="document has no _source object")
            continue
        try:
            text = document_text(source, spec.fields)
        except ValueError as error:
            results[position] = DocResult(id=doc_id, reason=str(error))
            continue
        texts.append(text[: spec.max_chars])
        positions.append(position)
        hashes.append(content_hash(source, spec.fields))

    updates: list[dict[str, Any]] = [{} for _ in texts]
    failed: dict[int, str] = {}
    models: dict[str, str] = {}
    if texts:
        names = spec.field_names
        for kind, encoder_spec in spec.encoders().items():
            encoder, fingerprint = _encoder(kind, encoder_spec)
            models[META_KEYS[kind]] = fingerprint
            if kind == "sparse":
                values, failures = _encode_each(encoder.encode, texts, kind)
                for i, value in enumerate(values):
                    if i not in failures:
                        updates[i][names.sparse] = _sparse_value(value)
            elif kind == "terms":
                values, failures = _encode_each(encoder.weights, texts, kind)
                scale = encoder.pseudo_text_scale
                to_text = _import("term_weights", "pseudo_text", kind) if scale is not None else None
                for i, value in enumerate(values):
                    if i not in failures:
                        updates[i][names.terms] = _sparse_value(value)
                        if to_text is not None:
                            updates[i][names.terms_text] = to_text(value, scale)
            elif kind == "doc2query":
                values, failures = _encode_each(encoder.expand, texts, kind)
                for i, value in enumerate(values):
                    if i not in failures:
                        updates[i][names.expansion] = str(value)
            else:  # dense
                values, failures = _encode_each(encoder.encode, texts, kind)
                for i, value in enumerate(values):
                    if i not in failures:
                        updates[i][names.dense] = [float(x) for x in value]
            for i, reason in failures.items():
                failed.setdefault(i, reason)

    enriched_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for i, position in enumerate(positions):
        doc_id = docs[position]["_id"]
        if i in failed:
            results[position] = DocResult(id=doc_id, reason=failed[i])
            continue
        update = updates[i]
        update[spec.field_names.meta] = {
            "models": dict(models),
            "content_hash": hashes[i],
            "enriched_at": enriched_at,
        }
        results[position] = DocResult(id=doc_id, update=update)
    return [result for result in results if result is not None]
