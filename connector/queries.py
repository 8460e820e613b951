"""First-stage retrieval: one OpenSearch search body per mode, and the hybrid of several as one `_msearch`.

    encoders = QueryEncoders()                                 # models load on first use, once per process
    builder = QueryBuilder(encoders, IndexFields.read(client, url, index))
    builder.body("sparse", "statins and breast cancer", size=10)
    rankings = first_stage(client, url, index, builder, texts, mode="hybrid", modes=("bm25", "dense"))

The bodies (every one asks for `_source: false`; ids and scores are what retrieval needs):

    bm25    `multi_match` `best_fields` over title, text (+ nir_expansion when the index has it)
    sparse  nir_sparse (`rank_features`): the query encoded by the documents' SPLADE model, as `neural_sparse`
            with `query_tokens`, or the portable form, a `bool.should` of `rank_feature` `linear` clauses
            with `boost` = weight
    terms   nir_terms (`rank_features`): the query's own words (split as documents are, no expansion) as
            `neural_sparse` `query_tokens`, weighted by IDF
    dense   nir_dense (`knn_vector`): `knn` with `k` = the number of hits asked for

Both sparse forms score a document `sum_t w_q(t) * w_d(t)` over the tokens it shares with the query
(Lucene `FeatureField.newLinearQuery` per token; the bool sums in double, cast to float, as neural_sparse
does), so they rank alike. A `rank_feature` query names its feature `field.key` and OpenSearch splits that
at the *last* dot: a token that contains a dot (BERT's vocabulary has ".", "...", "##.") cannot be reached
that way, so the portable form leaves such tokens out and `rank_feature_body` reports which
(`SparseBody.dropped`).

Terms weighting (the choice documented here): DeepCT's own retrieval is BM25 over a pseudo-text whose term
frequencies are the predicted weights, so the query side contributes each word's IDF. Over a
`rank_features` field the same shape is `sum_t idf(t) * w_d(t)`: each query word weighted by
`ln(1 + (N - n + 0.5)/(n + 0.5))` (Lucene's BM25 idf), N the index's documents, n those whose nir_terms has
the word. The counts come from the index in one `_msearch` per batch of new words (cached).
`terms_weighting="uniform"` weights every word 1.0 instead (one request fewer; ranks by the sum of the
document's weights of the query words).

A query has at most `max_tokens` clauses (1,024 by default, OpenSearch's `indices.query.bool.max_clause_count`
default): the heaviest are kept.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from .client import cluster_error
from .errors import ClusterError, UsageError
from .fusion import FUSION_METHODS, FusionMethod, Ranking, fuse
from .prior import Prior
from .schema import EnrichedFields, properties_of

__all__ = [
    "DEFAULT_TEXT_FIELDS",
    "MAX_TOKENS",
    "MODES",
    "SINGLE_MODES",
    "FieldMissing",
    "FirstStage",
    "IndexFields",
    "Mode",
    "QueryBuilder",
    "QueryEncoders",
    "QueryTooLong",
    "SingleMode",
    "SparseBody",
    "SparseForm",
    "TermsWeighting",
    "bm25_body",
    "dense_body",
    "first_stage",
    "idf",
    "msearch",
    "neural_sparse_body",
    "parse_hybrid",
    "ranking_of",
    "rank_feature_body",
    "reachable_by_rank_feature",
    "sparse_body",
]

Mode = Literal["bm25", "sparse", "terms", "dense", "hybrid"]
SingleMode = Literal["bm25", "sparse", "terms", "dense"]
SparseForm = Literal["neural_sparse", "rank_feature"]
TermsWeighting = Literal["idf", "uniform"]
MODES: tuple[str, ...] = get_args(Mode)
SINGLE_MODES: tuple[str, ...] = get_args(SingleMode)
SPARSE_FORMS: tuple[str, ...] = get_args(SparseForm)
TERMS_WEIGHTINGS: tuple[str, ...] = get_args(TermsWeighting)
DEFAULT_TEXT_FIELDS = ("title", "text")
MAX_TOKENS = 1024


# --- bodies: pure functions ---------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")


def _heaviest(tokens: Mapping[str, float], max_tokens: int) -> dict[str, float]:
    """The `max_tokens` heaviest positive weights (ties by token), as plain floats."""
    kept = sorted(
        ((str(t), float(w)) for t, w in tokens.items() if w > 0 and math.isfinite(w)),
        key=lambda item: (-item[1], item[0]),
    )
    return dict(kept[:max_tokens])


def bm25_body(
    text: str,
    size: int,
    fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
    expansion_field: str | None = None,
    match_type: str = "best_fields",
) -> dict[str, Any]:
    """`multi_match` of `text` over `fields`, plus `expansion_field` when given.

    `best_fields` (the default) scores a document by its best field; `cross_fields` scores the fields as one
    blended field, the closest to BM25 over title and text concatenated (SciFact test nDCG@10 0.684 against
    best_fields' 0.670 on the engine).
    """
    _check_size(size)
    if not text.strip():
        raise ValueError("the query text is empty")
    searched = [*fields, *([expansion_field] if expansion_field else [])]
    return {
        "size": size,
        "_source": False,
        "query": {"multi_match": {"query": text, "fields": searched, "type": match_type}},
    }


def neural_sparse_body(
    tokens: Mapping[str, float], size: int, field: str = "nir_sparse", max_tokens: int = MAX_TOKENS
) -> dict[str, Any]:
    """`neural_sparse` with `query_tokens`: the sum over shared tokens of query weight x document weight."""
    _check_size(size)
    weights = _heaviest(tokens, max_tokens)
    if not weights:
        return {"size": size, "_source": False, "query": {"match_none": {}}}
    return {"size": size, "_source": False, "query": {"neural_sparse": {field: {"query_tokens": weights}}}}


def reachable_by_rank_feature(token: str) -> bool:
    """Whether a `rank_feature` query can name this key of a `rank_features` field (no dot in it)."""
    return "." not in token


@dataclass(frozen=True)
class SparseBody:
    """A sparse search body, and the query tokens it had to leave out (unreachable by its form)."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()


def rank_feature_body(
    tokens: Mapping[str, float], size: int, field: str = "nir_sparse", max_tokens: int = MAX_TOKENS
) -> SparseBody:
    """The portable form: `bool.should` of `rank_feature` `linear` clauses, `boost` = the token's weight.

    Lucene's linear feature score is `boost x value`, so the bool's sum equals neural_sparse's. Dotted tokens
    are dropped (see the module docstring) and reported in `dropped`.
    """
    _check_size(size)
    weights = _heaviest(tokens, max_tokens)
    dropped = tuple(t for t in weights if not reachable_by_rank_feature(t))
    clauses = [
        {"rank_feature": {"field": f"{field}.{token}", "linear": {}, "boost": weight}}
        for token, weight in weights.items()
        if reachable_by_rank_feature(token)
    ]
    query: dict[str, Any] = {"bool": {"should": clauses}} if clauses else {"match_none": {}}
    return SparseBody({"size": size, "_source": False, "query": query}, dropped)


def sparse_body(
    tokens: Mapping[str, float],
    size: int,
    field: str = "nir_sparse",
    form: SparseForm = "neural_sparse",
    max_tokens: int = MAX_TOKENS,
) -> SparseBody:
    """A sparse search body in either form (`neural_sparse` or `rank_feature`)."""
    if form == "neural_sparse":
        return SparseBody(neural_sparse_body(tokens, size, field, max_tokens))
    if form == "rank_feature":
        return rank_feature_body(tokens, size, field, max_tokens)
    raise ValueError(f"sparse form {form!r} is not one of {', '.join(SPARSE_FORMS)}")


def dense_body(vector: Sequence[float], size: int, field: str = "nir_dense") -> dict[str, Any]:
    """`knn` over `field` with `k` = `size`: the k nearest by the field's space type, scored as k-NN does."""
    _check_size(size)
    return {
        "size": size,
        "_source": False,
        "query": {"knn": {field: {"vector": [float(x) for x in vector], "k": size}}},
    }


def idf(documents: int, having: int) -> float:
    """Lucene's BM25 idf, `ln(1 + (N - n + 0.5) / (n + 0.5))`, for N `documents` of which n are `having`."""
    if documents < 0 or having < 0:
        raise ValueError(f"counts must be >= 0, got N={documents}, n={having}")
    return math.log(1.0 + (documents - having + 0.5) / (having + 0.5))


def parse_hybrid(spec: str) -> tuple[SingleMode, ...]:
    """`"bm25+dense"` as `("bm25", "dense")`: two or more distinct single modes joined by `+`."""
    parts = [part.strip() for part in spec.split("+") if part.strip()]
    unknown = [part for part in parts if part not in SINGLE_MODES]
    if unknown:
        raise ValueError(f"hybrid: {', '.join(unknown)} not among {', '.join(SINGLE_MODES)}")
    if len(parts) < 2 or len(set(parts)) != len(parts):
        raise ValueError(f"hybrid: name two or more distinct modes joined by '+', got {spec!r}")
    return tuple(parts)  # type: ignore[return-value]


# --- what an index has --------------------------------------------------------------------------------------


class FieldMissing(UsageError):
    """The index lacks the enriched field a retrieval mode reads."""

    def __init__(self, index: str, mode: str, field_name: str, wanted: str, writer: str) -> None:
        self.index, self.mode, self.field_name = index, mode, field_name
        super().__init__(
            f"index {index} has no {wanted} field {field_name!r}, which --mode {mode} searches; "
            f"`nirbridge enrich {writer}` writes it"
        )


_NEEDS: dict[str, tuple[str, str, str]] = {
    # mode -> (enriched field kind, mapping type, the enrich flag that writes it)
    "sparse": ("sparse", "rank_features", "--sparse MODEL"),
    "terms": ("terms", "rank_features", "--terms MODEL"),
    "dense": ("dense", "knn_vector", "--dense MODEL"),
}


@dataclass(frozen=True)
class IndexFields:
    """The enriched fields an index has (their mapping types), its dense dimension, and the models its
    documents were enriched with (`nir_meta.models`, read from one document: kind -> model name)."""

    index: str
    types: dict[str, str]
    dense_dimension: int | None = None
    models: dict[str, str] = field(default_factory=dict)
    names: EnrichedFields = field(default_factory=EnrichedFields)

    @staticmethod
    def sample_body(names: EnrichedFields | None = None) -> dict[str, Any]:
        """The body that fetches one enriched document's `nir_meta` (the models it was written with)."""
        names = names or EnrichedFields()
        return {"size": 1, "query": {"exists": {"field": f"{names.meta}.models"}}, "_source": [names.meta]}

    @classmethod
    def from_answers(
        cls,
        index: str,
        mapping: Mapping[str, Any],
        sample: Mapping[str, Any],
        names: EnrichedFields | None = None,
    ) -> IndexFields:
        """The fields of `index` from its `_mapping` answer and the answer to `sample_body()`."""
        names = names or EnrichedFields()
        properties: dict[str, Any] = {}
        for one in mapping.values():  # an alias may name several indices: the fields of all
            properties.update(properties_of(one))
        types = {name: str(spec.get("type", "object")) for name, spec in properties.items()}
        dense = properties.get(names.dense) or {}
        dimension = dense.get("dimension")
        models: dict[str, str] = {}
        for hit in sample["hits"]["hits"]:
            recorded = ((hit.get("_source") or {}).get(names.meta) or {}).get("models") or {}
            # a fingerprint reads "model@weights-digest[+params-digest]" (workers.pipeline)
            models = {
                kind: str(value).rpartition("@")[0] for kind, value in recorded.items() if "@" in str(value)
            }
        return cls(index, types, int(dimension) if dimension else None, models, names)

    @classmethod
    def read(
        cls, client: OpenSearch, url: str, index: str, names: EnrichedFields | None = None
    ) -> IndexFields:
        names = names or EnrichedFields()
        try:
            mapping = client.indices.get_mapping(index=index)
            sample = client.search(index=index, body=cls.sample_body(names))
        except TransportError as exc:
            raise cluster_error(exc, url, index) from exc
        return cls.from_answers(index, mapping, sample, names)

    def has_expansion(self) -> bool:
        return self.types.get(self.names.expansion) == "text"

    def require(self, mode: str) -> None:
        """FieldMissing when `mode` needs a field this index lacks (or has with another type)."""
        if mode not in _NEEDS:
            return
        kind, wanted, writer = _NEEDS[mode]
        name = self.names.name_of(kind)  # type: ignore[arg-type]
        if self.types.get(name) != wanted:
            raise FieldMissing(self.index, mode, name, wanted, writer)


class QueryTooLong(UsageError):
    """The query has more word pieces than the model that encodes it reads (it would be cut silently)."""

    def __init__(self, mode: str, model: str, pieces: int, limit: int) -> None:
        self.mode, self.model, self.pieces, self.limit = mode, model, pieces, limit
        super().__init__(
            f"the query is {pieces} word pieces long; the {mode} model {model!r} reads at most {limit}"
        )


# --- query-side models --------------------------------------------------------------------------------------

_models_lock = threading.Lock()
_models: dict[tuple[str, str, str], Any] = {}


def _load_model(kind: str, model: str, backend: str) -> Any:
    """One encoder per (kind, model, backend) in this process, built on first use (workers, in-process)."""
    key = (kind, model, backend)
    with _models_lock:
        if key not in _models:
            try:
                if kind == "sparse":
                    from nirbridge.workers.sparse import SparseEncoder as make
                elif kind == "dense":
                    from nirbridge.workers.dense import DenseEncoder as make  # type: ignore[assignment]
                else:
                    from nirbridge.workers.term_weights import TermWeighter as make  # type: ignore[assignment]
            except ImportError as error:
                raise UsageError(
                    f"{kind} queries need the encoders (pip install 'nirbridge[models]'): {error}"
                ) from None
            try:
                _models[key] = make(model, backend=backend)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - one translation boundary for every load failure
                raise UsageError(
                    f"cannot load the {kind} query model {model!r} ({backend}): {error}"
                ) from error
        return _models[key]


@dataclass
class QueryEncoders:
    """The query-side models, each loaded once (lazily, shared by every holder in the process).

    `sparse` must be the SPLADE model the documents were encoded with (its query weights meet theirs),
    `dense` the bi-encoder of nir_dense, `terms` the model whose tokenizer split the documents for nir_terms.
    `backend` is the workers' backend name (onnx-fp32, onnx-int8, torch-fp32, auto, ...).
    """

    sparse_model: str = "splade-tiny"
    dense_model: str = "all-MiniLM-L6-v2"
    terms_model: str = "splade-tiny"
    backend: str = "onnx-fp32"

    def sparse(self, text: str) -> dict[str, float]:
        """The SPLADE weights of the query (`{vocabulary token: weight}`)."""
        return dict(_load_model("sparse", self.sparse_model, self.backend).encode_query(text))

    def dense(self, text: str) -> list[float]:
        """The query's embedding."""
        return [float(x) for x in _load_model("dense", self.dense_model, self.backend).encode_query(text)]

    def terms(self, text: str) -> list[str]:
        """The query's own words, split as nir_terms documents were (no expansion, no repeats)."""
        return list(_load_model("terms", self.terms_model, self.backend).query_terms(text))

    def many(self, mode: str, texts: Sequence[str]) -> list[Any]:
        """`sparse` weights or `dense` vectors of several queries in one model call (as `sparse(text)` and
        `dense(text)` return them)."""
        if mode == "sparse":
            return [dict(row) for row in _load_model("sparse", self.sparse_model, self.backend).encode(texts)]
        if mode == "dense":
            rows = _load_model("dense", self.dense_model, self.backend).encode(texts)
            return [[float(x) for x in row] for row in rows]
        raise ValueError(f"only sparse and dense queries are encoded in batches, not {mode!r}")

    def model_of(self, mode: str) -> str:
        """The model name that encodes `mode`'s queries."""
        return {"sparse": self.sparse_model, "dense": self.dense_model, "terms": self.terms_model}[mode]

    def dense_dimension(self) -> int:
        return int(_load_model("dense", self.dense_model, self.backend).dimension)

    def query_length(self, mode: str, text: str) -> tuple[int, int, str] | None:
        """`(word pieces with special tokens, the model's max_length, model)` of `text` for a mode that
        encodes the query (sparse, terms, dense); None for bm25 (the encoders truncate silently)."""
        if mode not in ("sparse", "terms", "dense"):
            return None
        name = self.model_of(mode)
        model = _load_model(mode, name, self.backend)
        encoder = model.encoder if mode == "terms" else model  # TermWeighter wraps a SparseEncoder
        pieces = len(encoder.tokenizer(text, truncation=False)["input_ids"])
        return pieces, int(encoder.max_length), name

    def check_length(self, mode: str, text: str) -> None:
        """QueryTooLong when the model of `mode` would cut `text`."""
        measured = self.query_length(mode, text)
        if measured is not None and measured[0] > measured[1]:
            raise QueryTooLong(mode, measured[2], measured[0], measured[1])

    def warm_up(self, modes: Sequence[str]) -> None:
        """Load the models `modes` need now (so that timings exclude loading)."""
        for mode in modes:
            if mode == "sparse":
                self.sparse("warm up")
            elif mode == "dense":
                self.dense("warm up")
            elif mode == "terms":
                self.terms("warm up")


# --- the builder and the requests ---------------------------------------------------------------------------


def _raise_item_error(item: Mapping[str, Any], url: str, index: str) -> None:
    error = item.get("error")
    if error is None:
        return
    reason = error.get("reason", error) if isinstance(error, Mapping) else error
    caused = error.get("caused_by") if isinstance(error, Mapping) else None
    if isinstance(caused, Mapping) and caused.get("reason"):
        reason = f"{reason}: {caused['reason']}"
    raise ClusterError(url, f"search on {index} failed: {reason}", item.get("status"))


def _responses(
    client: OpenSearch, url: str, index: str, bodies: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The `_msearch` responses of `bodies` on `index`, in order; a failed item raises ClusterError."""
    if not bodies:
        return []
    lines: list[Mapping[str, Any]] = []
    for body in bodies:
        lines.extend(({"index": index}, body))
    try:
        response = client.msearch(body=lines)
    except TransportError as exc:
        raise cluster_error(exc, url, index) from exc
    for item in response["responses"]:
        _raise_item_error(item, url, index)
    return list(response["responses"])


def _total(item: Mapping[str, Any]) -> int:
    total = item["hits"]["total"]
    return int(total["value"] if isinstance(total, Mapping) else total)


def msearch(client: OpenSearch, url: str, index: str, bodies: Sequence[Mapping[str, Any]]) -> list[Ranking]:
    """Run `bodies` on `index` as one `_msearch`; one ranked `[(id, score), ...]` per body, in order.

    A failed item raises ClusterError with its reason (nothing is averaged over a broken query).
    """
    return [ranking_of(item) for item in _responses(client, url, index, bodies)]


def ranking_of(answer: Mapping[str, Any]) -> Ranking:
    """One search answer's hits as `[(id, score), ...]`, best first (a null score counts 0)."""
    return [(str(hit["_id"]), float(hit["_score"] or 0.0)) for hit in answer["hits"]["hits"]]


@dataclass
class QueryBuilder:
    """Search bodies for one index: which fields it searches, how sparse and terms queries are written."""

    encoders: QueryEncoders
    fields: IndexFields
    text_fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS
    bm25_type: str = "best_fields"
    sparse_form: SparseForm = "neural_sparse"
    terms_weighting: TermsWeighting = "idf"
    use_expansion: bool | None = None  # None: when the index has the expansion field
    max_tokens: int = MAX_TOKENS
    dropped_tokens: int = 0  # sparse query tokens the rank_feature form could not reach, so far
    _idf: dict[str, float] = field(default_factory=dict, repr=False)
    _documents: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sparse_form not in SPARSE_FORMS:
            raise ValueError(f"sparse form {self.sparse_form!r} is not one of {', '.join(SPARSE_FORMS)}")
        if self.terms_weighting not in TERMS_WEIGHTINGS:
            raise ValueError(
                f"terms weighting {self.terms_weighting!r} is not one of {', '.join(TERMS_WEIGHTINGS)}"
            )

    def body(
        self,
        mode: str,
        text: str,
        size: int,
        terms_weights: Mapping[str, float] | None = None,
        encoded: Mapping[str, Any] | None = None,
    ) -> dict:
        """The search body of one single mode for one query text (`terms` needs `terms_weights`, see
        `terms_weights()`; without them every word weighs 1.0).  `encoded` may hold the query's `sparse`
        weights or `dense` vector computed beforehand (the proxy batches them across requests)."""
        names = self.fields.names
        encoded = encoded or {}
        if mode == "bm25":
            expand = self.fields.has_expansion() if self.use_expansion is None else self.use_expansion
            return bm25_body(
                text, size, self.text_fields, names.expansion if expand else None, self.bm25_type
            )
        if mode == "sparse":
            built = sparse_body(
                encoded.get("sparse") or self.encoders.sparse(text),
                size,
                names.sparse,
                self.sparse_form,
                self.max_tokens,
            )
            self.dropped_tokens += len(built.dropped)
            return built.body
        if mode == "terms":
            weights = terms_weights or {word: 1.0 for word in self.encoders.terms(text)}
            return neural_sparse_body(weights, size, names.terms, self.max_tokens)
        if mode == "dense":
            vector = encoded.get("dense")
            return dense_body(self.encoders.dense(text) if vector is None else vector, size, names.dense)
        raise ValueError(f"mode {mode!r} is not one of {', '.join(SINGLE_MODES)}")

    def terms_weights(self, client: OpenSearch, url: str, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each query's words with their weights (IDF over nir_terms, or 1.0; see the module docstring).

        IDF counts: N is the index's document count, n the documents whose nir_terms has the word; the words
        not seen before are counted in one `_msearch` (size 0, exact totals) and remembered.
        """
        words = [self.encoders.terms(text) for text in texts]
        new, bodies = self.idf_count_bodies(words)
        if bodies:
            self.learn_idf(new, _responses(client, url, self.fields.index, bodies))
        return self.weighted_terms(words)

    def idf_count_bodies(self, words: Sequence[Sequence[str]]) -> tuple[list[str], list[dict[str, Any]]]:
        """The words of `words` not counted yet, and the `_msearch` bodies that count them (preceded by a
        match_all count while N is unknown); nothing to count with uniform weighting."""
        if self.terms_weighting == "uniform":
            return [], []
        field_name = self.fields.names.terms
        new = sorted({word for each in words for word in each} - set(self._idf))
        counts: list[dict[str, Any]] = [] if self._documents is not None else [{"query": {"match_all": {}}}]
        counts += [
            {"query": {"rank_feature": {"field": f"{field_name}.{word}", "linear": {}}}} for word in new
        ]
        if not new and self._documents is not None:
            return [], []
        return new, [{"size": 0, "track_total_hits": True, **count} for count in counts]

    def learn_idf(self, new: Sequence[str], answers: Sequence[Mapping[str, Any]]) -> None:
        """Remember the IDF of `new` from the answers to `idf_count_bodies()` (same order)."""
        totals = [_total(item) for item in answers]
        if len(totals) == len(new) + 1:  # the bodies began with the index's count (N was unknown)
            self._documents = totals.pop(0)
        assert self._documents is not None, "learn_idf takes the answers to idf_count_bodies()"
        for word, having in zip(new, totals, strict=True):
            self._idf[word] = idf(self._documents, having)

    def weighted_terms(self, words: Sequence[Sequence[str]]) -> list[dict[str, float]]:
        """Each query's words with their weights, once `learn_idf` has seen them (1.0 each when uniform)."""
        if self.terms_weighting == "uniform":
            return [dict.fromkeys(each, 1.0) for each in words]
        return [{word: self._idf[word] for word in each if self._idf[word] > 0} for each in words]


@dataclass(frozen=True)
class FirstStage:
    """What one first-stage search runs: its single modes, how many hits each fetches, how they are fused.

    A single mode fetches `size` hits. `hybrid` fetches `max(depth, size)` from each of `modes` and fuses them
    (`fusion`, with `weights`), so the first hits of the fused list do not depend on `size`. The bodies
    (`bodies()`) and the fusion of the answers (`rankings()`) are shared by `first_stage` and the proxy's
    async path, which sends the same `_msearch` over its own HTTP client.
    """

    mode: str
    size: int
    modes: tuple[str, ...] = ("bm25", "dense")
    fusion: str = "rrf"
    depth: int = 100
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode != "hybrid" and self.mode not in SINGLE_MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        unknown = [one for one in self.run if one not in SINGLE_MODES]
        if unknown:
            raise ValueError(f"hybrid: {', '.join(map(str, unknown))} not among {', '.join(SINGLE_MODES)}")
        if self.mode == "hybrid" and self.fusion not in FUSION_METHODS:
            raise ValueError(f"fusion {self.fusion!r} is not one of {', '.join(FUSION_METHODS)}")
        if self.mode == "hybrid" and self.weights is not None and len(self.weights) != len(self.modes):
            raise ValueError(f"{len(self.weights)} weights for {len(self.modes)} hybrid modes")

    @property
    def run(self) -> tuple[str, ...]:
        """The single modes searched, in order."""
        return tuple(self.modes) if self.mode == "hybrid" else (self.mode,)

    @property
    def fetch(self) -> int:
        """Hits asked of the cluster per single mode."""
        return max(self.depth, self.size) if self.mode == "hybrid" else self.size

    def require(self, fields: IndexFields) -> None:
        """FieldMissing when the index lacks a field one of the modes reads."""
        for one in self.run:
            fields.require(one)

    def bodies(
        self,
        builder: QueryBuilder,
        texts: Sequence[str],
        terms_weights: Sequence[Mapping[str, float] | None] | None = None,
        encoded: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """The `_msearch` bodies: for each text, one per single mode (the query encoders run here, unless
        `encoded` holds each text's encodings already)."""
        weights = list(terms_weights) if terms_weights is not None else [None] * len(texts)
        given = list(encoded) if encoded is not None else [None] * len(texts)
        return [
            builder.body(one, text, self.fetch, terms, done)
            for text, terms, done in zip(texts, weights, given, strict=True)
            for one in self.run
        ]

    def rankings(self, ranked: Sequence[Ranking]) -> list[Ranking]:
        """One ranking per text from the answers' rankings (fused and cut to `size` for hybrid)."""
        if self.mode != "hybrid":
            return list(ranked)
        width = len(self.run)
        per_query = [ranked[i : i + width] for i in range(0, len(ranked), width)]
        return [fuse(self.fusion, lists, self.weights)[: self.size] for lists in per_query]


def first_stage(
    client: OpenSearch,
    url: str,
    index: str,
    builder: QueryBuilder,
    texts: Sequence[str],
    mode: str,
    size: int,
    *,
    modes: Sequence[str] = ("bm25", "dense"),
    fusion: FusionMethod = "rrf",
    depth: int = 100,
    weights: Sequence[float] | None = None,
    prior: Prior | None = None,
) -> list[Ranking]:
    """The ranked hits of each query text, all queries (and, for hybrid, all their modes) in one `_msearch`.

    A single mode returns its top `size`. `hybrid` fetches the top `depth` of each of `modes`, fuses them
    (`fusion`: rrf or minmax, with `weights`) and cuts the fused list to `size`, so the first hits do not
    depend on `size`. With a `prior` of weight > 0 a second `_msearch` reads the hits' prior values and each
    ranking is mixed with them (`connector.prior`).
    """
    stage = FirstStage(mode, size, tuple(modes), fusion, depth, tuple(weights) if weights else None)
    stage.require(builder.fields)
    terms = builder.terms_weights(client, url, texts) if "terms" in stage.run else None
    rankings = stage.rankings(msearch(client, url, index, stage.bodies(builder, texts, terms)))
    if prior is None or prior.weight == 0.0:
        return rankings
    return prior.apply(rankings, msearch(client, url, index, prior.bodies(rankings)))
