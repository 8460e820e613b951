"""What crosses the wire between a client (the connector) and the workers: task names, queues, headers, the
enrichment spec and its per-document results, the rerank request and answer.

This is the only workers module a client imports. It imports nothing heavy (no torch, transformers,
onnxruntime, not even Celery), and above all not `workers.tasks`: that module connects the workers' Celery
signal receivers (workers.observe), which have no business in the proxy's process.

    task                     queue    arguments                 value
    nirbridge.enrich_batch   enrich   [spec.to_json(), docs]    {"results": [DocResult.to_json()], "worker",
                                                                 "seconds"}
    nirbridge.describe       enrich   [spec.to_json()]          {"models": {kind: fingerprint}, "dense"}
    nirbridge.ping           either   []                        {"hostname", ...}
    nirbridge.rerank         rerank   [RerankRequest]           RerankResult

Headers a client may set on a task: REQUEST_ID_HEADER (its request id, for the worker's logs), SENT_AT_HEADER
(`time.time()` at sending: the queue wait) and, on a rerank, DEADLINE_HEADER (`time.time()` after which the
client no longer waits).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

__all__ = [
    "DEADLINE_HEADER",
    "DEFAULT_MAX_CHARS",
    "DESCRIBE",
    "ENRICH_BATCH",
    "ENRICH_QUEUE",
    "KINDS",
    "META_KEYS",
    "PING",
    "QUEUES",
    "RERANK",
    "RERANK_QUEUE",
    "RERANK_REQUEST_KEYS",
    "REQUEST_ID_HEADER",
    "SENT_AT_HEADER",
    "DocResult",
    "EncoderSpec",
    "EnrichmentSpec",
    "FieldNames",
    "RerankRequest",
    "RerankResult",
    "SpecError",
]

# --- task names and queues ----------------------------------------------------------------------------------

ENRICH_BATCH = "nirbridge.enrich_batch"
DESCRIBE = "nirbridge.describe"
PING = "nirbridge.ping"
RERANK = "nirbridge.rerank"

ENRICH_QUEUE = "enrich"  # throughput: batches of documents, seconds each
RERANK_QUEUE = "rerank"  # latency: one query's candidates, milliseconds each
QUEUES = (ENRICH_QUEUE, RERANK_QUEUE)

# --- headers ------------------------------------------------------------------------------------------------

REQUEST_ID_HEADER = "nirbridge_request_id"
SENT_AT_HEADER = "nirbridge_sent_at"  # time.time() when the client sent the task
# time.time() after which the client no longer waits (a header: a worker that predates it ignores it)
DEADLINE_HEADER = "nirbridge_deadline"

# --- rerank -------------------------------------------------------------------------------------------------

RERANK_REQUEST_KEYS = frozenset({"model", "backend", "query", "passages", "params"})


class RerankRequest(TypedDict):
    """The one argument of `nirbridge.rerank`. `params`: CrossEncoder keyword arguments, checked by the worker
    against workers.rerank_policy.PARAM_LIMITS."""

    model: str
    backend: str
    query: str
    passages: list[str]
    params: dict[str, Any]


class RerankResult(TypedDict):
    """What `nirbridge.rerank` returns: one score per passage, in order; `seconds` is the task's own time
    (model load included); `backend` the one the model ran on (None when there were no passages)."""

    scores: list[float]
    worker: str
    seconds: float
    backend: str | None


# --- enrichment ---------------------------------------------------------------------------------------------

KINDS = ("sparse", "terms", "dense", "doc2query")
# the key under nir_meta.models for each kind (mappings/nir_meta.json)
META_KEYS = {"sparse": "sparse", "terms": "terms", "dense": "dense", "doc2query": "expansion"}
DEFAULT_MAX_CHARS = 100_000


class SpecError(ValueError):
    """An enrichment spec that cannot work as given (the message says which part and why)."""


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder: a model (Hugging Face id or local path), a backend, and the encoder's own parameters."""

    model: str
    backend: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)

    def key(self, kind: str) -> tuple[str, str, str, str]:
        return (kind, self.model, self.backend, json.dumps(self.params, sort_keys=True))


@dataclass(frozen=True)
class FieldNames:
    """Where each signal is written in the index (DESIGN.md's defaults)."""

    sparse: str = "nir_sparse"
    terms: str = "nir_terms"
    terms_text: str = "nir_terms_text"  # DeepCT's pseudo-text, with the terms param pseudo_text_scale
    expansion: str = "nir_expansion"
    dense: str = "nir_dense"
    meta: str = "nir_meta"


@dataclass(frozen=True)
class EnrichmentSpec:
    """Everything a worker needs to enrich a batch; it travels as JSON (`to_json` / `from_json`)."""

    fields: tuple[str, ...]
    sparse: EncoderSpec | None = None
    terms: EncoderSpec | None = None
    dense: EncoderSpec | None = None
    doc2query: EncoderSpec | None = None
    field_names: FieldNames = field(default_factory=FieldNames)
    max_chars: int = DEFAULT_MAX_CHARS

    def __post_init__(self) -> None:
        if isinstance(self.fields, str) or not self.fields:
            raise SpecError("fields: name at least one text field, as a list (e.g. ['title', 'text'])")
        object.__setattr__(self, "fields", tuple(self.fields))
        for name in self.fields:
            if not isinstance(name, str) or not name.strip():
                raise SpecError(f"fields: {name!r} is not a field name")
        if not self.encoders():
            raise SpecError("no encoder: give at least one of sparse, terms, dense, doc2query")
        for kind, encoder in self.encoders().items():
            if not isinstance(encoder.model, str) or not encoder.model.strip():
                raise SpecError(f"{kind}.model: {encoder.model!r} is not a model name or path")
            if not isinstance(encoder.params, dict):
                raise SpecError(f"{kind}.params: expected an object, got {type(encoder.params).__name__}")
        if not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise SpecError(f"max_chars: expected a positive integer, got {self.max_chars!r}")

    def encoders(self) -> dict[str, EncoderSpec]:
        """The encoders this spec uses, by kind."""
        chosen = {kind: getattr(self, kind) for kind in KINDS}
        return {kind: encoder for kind, encoder in chosen.items() if encoder is not None}

    def to_json(self) -> dict[str, Any]:
        value = asdict(self)
        value["fields"] = list(self.fields)
        return value

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> EnrichmentSpec:
        if not isinstance(value, Mapping):
            raise SpecError(f"spec: expected an object, got {type(value).__name__}")
        known = {"fields", "field_names", "max_chars", *KINDS}
        unknown = sorted(set(value) - known)
        if unknown:
            raise SpecError(f"spec: unknown keys {unknown} (known: {sorted(known)})")
        encoders: dict[str, EncoderSpec | None] = {}
        for kind in KINDS:
            raw = value.get(kind)
            if raw is None:
                encoders[kind] = None
            elif isinstance(raw, Mapping) and set(raw) <= {"model", "backend", "params"} and "model" in raw:
                encoders[kind] = EncoderSpec(**raw)
            else:
                raise SpecError(f"{kind}: expected {{'model', 'backend', 'params'}}, got {raw!r}")
        names = value.get("field_names") or {}
        try:
            field_names = FieldNames(**names)
        except TypeError as error:
            raise SpecError(f"field_names: {error}") from None
        return cls(
            fields=tuple(value.get("fields") or ()),
            field_names=field_names,
            max_chars=value.get("max_chars", DEFAULT_MAX_CHARS),
            **encoders,
        )


@dataclass(frozen=True)
class DocResult:
    """The outcome for one document: `update` (the partial-update body) or `reason` (why it failed)."""

    id: str
    update: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {"_id": self.id, "ok": True, "update": self.update}
        return {"_id": self.id, "ok": False, "reason": self.reason}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> DocResult:
        if value.get("ok"):
            return cls(id=value["_id"], update=value["update"])
        return cls(id=value["_id"], reason=value.get("reason") or "failed (no reason given)")
