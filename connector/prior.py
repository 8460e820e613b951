"""A document prior learned from judgments or clicks: a `rank_feature` field, and its use at query time.

    values = prior_values(read_qrels("qrels/train.tsv"))    # doc id -> log(1 + n) / log(1 + max n), in (0, 1]
    report = write_prior(client, url, "nfcorpus", values)   # PUT _mapping (rank_feature) + partial updates
    ranked = with_prior(ranking, priors, weight=0.3)         # (1 - w) * minmax(first stage) + w * prior

Why: where judgments (or clicks) exist, some documents answer many queries. In NFCorpus the PubMed
abstracts that NutritionFacts articles cite most are relevant to many queries, and held-out queries keep
finding them. How often a document was the answer is a one-parameter model of that, the static document
prior that Lucene's `FeatureField` (OpenSearch's `rank_feature`, whose documentation uses pagerank) exists
for. It is learned from the training judgments only: the queries it is evaluated on must not be in them.

The value: `n` = the number of distinct queries that judge the document at `min_grade` or above,
`log(1 + n) / log(1 + max n)`, so it lies in (0, 1] and a weight means the same on every collection.
A document no query judged gets no value (`rank_feature` takes positive values only) and counts 0.

Writing (`write_prior`): the field is added as `rank_feature` by `PUT _mapping` (additive, safe on a live
index; an existing field of another type is refused before anything is written), then the values go in as
partial updates through `writer.streaming_update` (retried on 429, a missing document reported, never
created). Running it again with the same judgments writes the same values. Judgments that later drop a
document leave its old value in place: write into a new field name to start from nothing.

Query time: `prior_body` asks the index for the values of a ranking's documents in one search, an `ids`
filter with a `rank_feature` `linear` clause, whose score is the stored value (0 where a document has
none; OpenSearch keeps 9 significant bits of it). `with_prior` ranks the hits by
`(1 - w) * minmax(first-stage score) + w * prior`: w = 0 is the first-stage order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from .client import cluster_error
from .errors import UsageError
from .fusion import Ranking, minmax
from .schema import conflicts, load_fragment, missing_fields
from .writer import ItemResult, streaming_update

__all__ = [
    "PRIOR_FIELD",
    "Prior",
    "PriorReport",
    "check_weight",
    "prior_body",
    "prior_values",
    "require_prior_field",
    "with_prior",
    "write_prior",
]

PRIOR_FIELD = "nir_prior"


def check_weight(weight: object) -> float:
    """The prior weight as a float; ValueError outside [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"prior weight must be a number in [0, 1], got {weight!r}")
    return float(weight)


def prior_values(qrels: Mapping[str, Mapping[str, int]], min_grade: int = 1) -> dict[str, float]:
    """doc id -> `log(1 + n) / log(1 + max n)`, n = distinct queries judging it at `min_grade` or above."""
    if min_grade < 1:
        raise ValueError(f"min_grade must be >= 1 (grade 0 means not relevant), got {min_grade}")
    counts = Counter(doc for grades in qrels.values() for doc, grade in grades.items() if grade >= min_grade)
    if not counts:
        raise ValueError(f"no judgment of grade >= {min_grade}: nothing to learn a prior from")
    top = math.log1p(max(counts.values()))
    return {doc: math.log1p(n) / top for doc, n in sorted(counts.items())}


@dataclass
class PriorReport:
    """What `write_prior` did: the field, whether its mapping was added, documents written, failures."""

    index: str
    field: str
    mapping_added: bool
    written: int = 0
    missing: int = 0  # judged documents the index does not hold (404), reported, not created
    failed: int = 0
    failures: list[ItemResult] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "field": self.field,
            "mapping_added": self.mapping_added,
            "written": self.written,
            "missing": self.missing,
            "failed": self.failed,
            "failures": [
                {"id": f.id, "status": f.status, "type": f.error_type, "reason": f.reason}
                for f in self.failures[:10]
            ],
        }


def _ensure_mapping(client: OpenSearch, url: str, index: str, name: str) -> bool:
    """Add `name` as a rank_feature field unless the index has it; UsageError if it has another type."""
    wanted = {name: load_fragment("nir_prior.json")}
    try:
        # keyed by the concrete index (an alias answers with the index behind it)
        mapping = next(iter(client.indices.get_mapping(index=index).values()))
        clashes = conflicts(mapping, wanted)
        if clashes:
            raise UsageError(
                f"[{index}] cannot hold the prior: {'; '.join(clashes)} (choose another --field)"
            )
        add = missing_fields(mapping, wanted)
        if add:
            client.indices.put_mapping(index=index, body={"properties": add})
    except TransportError as exc:
        raise cluster_error(exc, url, index) from None
    return bool(add)


def write_prior(
    client: OpenSearch,
    url: str,
    index: str,
    values: Mapping[str, float],
    name: str = PRIOR_FIELD,
    *,
    chunk_docs: int = 500,
) -> PriorReport:
    """Map `name` as rank_feature (if needed) and write every value as a partial update (see module doc)."""
    bad = [doc for doc, value in values.items() if not 0.0 < value <= 1.0]  # NaN fails the comparison too
    if bad:
        raise ValueError(f"prior values must be in (0, 1]; {len(bad)} are not, e.g. {bad[0]!r}")
    report = PriorReport(index, name, _ensure_mapping(client, url, index, name))
    updates: Iterator[tuple[str, dict[str, Any]]] = ((doc, {name: value}) for doc, value in values.items())
    for result in streaming_update(client, index, updates, chunk_docs=chunk_docs, refresh=True):
        if result.ok:
            report.written += 1
        elif result.status == 404:
            report.missing += 1
        else:
            report.failed += 1
            report.failures.append(result)
    return report


def prior_body(name: str, ids: Sequence[str]) -> dict[str, Any]:
    """One search whose hits are `ids` scored by their prior value (0 where a document has none)."""
    return {
        "size": len(ids),
        "_source": False,
        "query": {
            "bool": {
                "filter": [{"ids": {"values": list(ids)}}],
                "should": [{"rank_feature": {"field": name, "linear": {}}}],
            }
        },
    }


def with_prior(ranking: Ranking, priors: Mapping[str, float], weight: float) -> Ranking:
    """`ranking` re-ranked by `(1 - w) * minmax(score) + w * prior` (ties keep their first-stage order)."""
    if not ranking or weight == 0.0:
        return list(ranking)
    first = dict(minmax([ranking], weights=[1.0 - weight]))  # (1 - w) * the normalised score
    position = {doc: rank for rank, (doc, _) in enumerate(ranking)}
    mixed = [(doc, first[doc] + weight * priors.get(doc, 0.0)) for doc, _ in ranking]
    return sorted(mixed, key=lambda item: (-item[1], position[item[0]]))


@dataclass(frozen=True)
class Prior:
    """The prior at query time: `weight` in [0, 1] and the rank_feature `field` holding it."""

    weight: float
    field: str = PRIOR_FIELD

    def __post_init__(self) -> None:
        check_weight(self.weight)

    def bodies(self, rankings: Sequence[Ranking]) -> list[dict[str, Any]]:
        """One `prior_body` per ranking (for one `_msearch` beside the first stage's)."""
        return [prior_body(self.field, [doc for doc, _ in ranking]) for ranking in rankings]

    def apply(self, rankings: Sequence[Ranking], answers: Sequence[Ranking]) -> list[Ranking]:
        """Each ranking mixed with its answer's prior values (`with_prior`)."""
        return [
            with_prior(ranking, dict(values), self.weight)
            for ranking, values in zip(rankings, answers, strict=True)
        ]


def require_prior_field(types: Mapping[str, str], index: str, name: str = PRIOR_FIELD) -> None:
    """UsageError unless `types` (an index's field -> mapping type, `IndexFields.types`) has `name` as the
    rank_feature that `nirbridge prior` writes."""
    have = types.get(name)
    if have is None:
        raise UsageError(
            f"index [{index}] has no rank_feature field [{name}]: write it first "
            f"(nirbridge prior --index {index} --qrels FILE)"
        )
    if have != "rank_feature":
        raise UsageError(f"index [{index}] field [{name}] is {have}, not rank_feature")
