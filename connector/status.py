"""What an operator needs at a glance: the cluster, its enriched indices, the broker and the workers.

    report = gather_status(url, broker_url=settings.broker_url, result_backend=settings.result_backend)
    print("\\n".join(report.lines())); json.dumps(report.as_json())

Cluster: GET / (version) and GET _cluster/health (status). Indices: every index that is not hidden
(`index.hidden` set, or a name starting with '.'), or the ones named (aliases resolved to their indices and
shown); per index the document count (`_count`), the enriched fields its mapping has (EnrichedFields names:
nir_sparse, nir_terms, nir_terms_text, nir_expansion, nir_dense with dimension and space type, nir_meta), and
coverage per model kind (`nir_meta.models.<kind>`: sparse, terms, expansion, dense).

Coverage counts are exact everywhere: one `_count` with an `exists` query per kind. The fingerprints come
from a `terms` aggregation on the keyword field `nir_meta.models.<kind>` (exact counts) where the cluster has
aggregations; the embedded engine answers aggregations with 400, and then they come from a sample of the first
SAMPLE_SIZE enriched documents (counts within the sample, `fingerprints_from` says which).

Workers: Redis PING on the broker URL, the depth of the `enrich` and `rerank` queues (LLEN of kombu's list
keys: the queue name itself, plus `<name>\\x06\\x16<priority>` for priorities 3, 6, 9), and the workers that
answer a broadcast within PING_TIMEOUT seconds (`inspect().active_queues()`, asked only when Redis answered).
Nothing here raises for a broker that is down: it is reported, and every network call has a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from nirbridge.urls import redact_url
from nirbridge.workers.contract import QUEUES

from .client import check_reachable, cluster_error, make_client
from .errors import ClusterError, ClusterUnreachable
from .schema import EnrichedFields, properties_of

__all__ = ["ClusterStatus", "IndexStatus", "StatusReport", "WorkerStatus", "gather_status"]

MODEL_KINDS = ("sparse", "terms", "expansion", "dense")
FIELD_ORDER = ("sparse", "terms", "terms_text", "expansion", "dense", "meta")
SAMPLE_SIZE = 200
PING_TIMEOUT = 1.0
BROKER_TIMEOUT = 2.0
KOMBU_SEP = "\x06\x16"
KOMBU_PRIORITIES = (3, 6, 9)  # kombu's redis priority_steps beyond 0, whose list key is the bare queue name


@dataclass
class ClusterStatus:
    url: str
    reachable: bool
    version: str | None = None
    distribution: str | None = None
    health: str | None = None
    error: str | None = None


@dataclass
class KindCoverage:
    documents: int
    fingerprints: dict[str, int]


@dataclass
class IndexStatus:
    name: str
    aliases: list[str]
    docs: int
    fields: dict[str, dict[str, Any]]  # enriched field name -> {"kind", "type", and dimension/space_type}
    coverage: dict[str, KindCoverage]
    fingerprints_from: str  # "aggregation", "sample of N documents", or "" when nothing is enriched
    error: str | None = None


@dataclass
class WorkerStatus:
    broker: str  # the URL with its password hidden
    reachable: bool
    queues: dict[str, int] = field(default_factory=dict)
    workers: dict[str, list[str]] = field(default_factory=dict)  # node name -> the queues it consumes
    error: str | None = None


@dataclass
class StatusReport:
    cluster: ClusterStatus
    indices: list[IndexStatus]
    workers: WorkerStatus

    def warnings(self) -> list[str]:
        out = []
        if not self.workers.reachable:
            out.append(f"broker {self.workers.broker} does not answer: {self.workers.error}")
        elif not self.workers.workers:
            out.append(f"no worker answered within {PING_TIMEOUT:g} s")
        out += [f"{i.name}: {i.error}" for i in self.indices if i.error]
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": asdict(self.cluster),
            "indices": [asdict(index) for index in self.indices],
            "workers": asdict(self.workers),
            "warnings": self.warnings(),
        }

    def lines(self) -> list[str]:
        c = self.cluster
        if c.reachable:
            out = [f"cluster {c.url}: {c.distribution or 'opensearch'} {c.version}, health {c.health}"]
        else:
            out = [f"cluster {c.url}: unreachable ({c.error})"]
        for index in self.indices:
            alias = f" (aliases: {', '.join(index.aliases)})" if index.aliases else ""
            out.append(f"index {index.name}{alias}: {index.docs} documents")
            if index.error:
                out.append(f"  error: {index.error}")
            if not index.fields:
                out.append("  no enriched fields")
            for name, spec in index.fields.items():
                extra = ""
                if "dimension" in spec:
                    extra = f", dimension {spec['dimension']}, {spec.get('space_type') or 'default space'}"
                out.append(f"  field {name}: {spec['type']}{extra}")
            for kind, cover in index.coverage.items():
                share = f"{100 * cover.documents / index.docs:.0f}%" if index.docs else "-"
                prints = ", ".join(f"{fp} ({n})" for fp, n in cover.fingerprints.items())
                tail = f": {prints}" if prints else ""
                out.append(f"  enriched {kind}: {cover.documents}/{index.docs} ({share}){tail}")
            if index.fingerprints_from:
                out.append(f"  fingerprints from: {index.fingerprints_from}")
        w = self.workers
        if w.reachable:
            depths = ", ".join(f"{queue} {depth}" for queue, depth in w.queues.items())
            out.append(f"broker {w.broker}: up, queue depth {depths}")
            for node, queues in sorted(w.workers.items()):
                out.append(f"worker {node}: {', '.join(queues) or '(no queues)'}")
        else:
            out.append(f"broker {w.broker}: unreachable ({w.error})")
        out += [f"warning: {text}" for text in self.warnings()]
        return out


def gather_status(
    url: str,
    *,
    broker_url: str,
    result_backend: str,
    indices: list[str] | None = None,
    timeout: float = 10.0,
    max_retries: int = 0,
    verify_certs: bool = True,
    fields: EnrichedFields | None = None,
    connection: Mapping[str, Any] | None = None,
) -> StatusReport:
    """The whole report. Raises only UsageError for a bad URL and IndexNotFound for a named index missing.

    `connection`: more `make_client` arguments (credentials, CA bundle: `connector.client.client_options`).
    """
    options = {
        **(connection or {}),
        "timeout": timeout,
        "max_retries": max_retries,
        "verify_certs": verify_certs,
    }
    client = make_client(url, **options)
    cluster = cluster_status(client, url)
    found = index_statuses(client, url, indices, fields or EnrichedFields()) if cluster.reachable else []
    return StatusReport(cluster, found, worker_status(broker_url, result_backend))


def cluster_status(client: OpenSearch, url: str) -> ClusterStatus:
    try:
        info = check_reachable(client, url)
        health = client.cluster.health()
    except TransportError as exc:
        error: ClusterError = cluster_error(exc, url)
        return ClusterStatus(url, not isinstance(error, ClusterUnreachable), error=error.reason)
    except ClusterUnreachable as unreachable:
        return ClusterStatus(url, False, error=unreachable.reason)
    except ClusterError as refused:  # it answered, with an error status (a 401, a 503)
        return ClusterStatus(url, True, error=refused.reason)
    version = info.get("version") or {}
    return ClusterStatus(url, True, version.get("number"), version.get("distribution"), health.get("status"))


def _hidden(name: str, settings: dict[str, Any]) -> bool:
    index_settings = settings.get("index") or {}
    hidden = index_settings.get("hidden", settings.get("index.hidden"))
    return name.startswith(".") or str(hidden).lower() == "true"


def index_statuses(
    client: OpenSearch, url: str, names: list[str] | None, fields: EnrichedFields
) -> list[IndexStatus]:
    """One IndexStatus per concrete index (named ones resolved through their aliases), sorted by name."""
    try:
        if names:
            found: dict[str, Any] = {}
            for name in names:
                try:
                    found.update(client.indices.get(index=name))
                except TransportError as exc:
                    raise cluster_error(exc, url, index=name) from exc
        else:
            got = client.indices.get(index="*", expand_wildcards="open")
            found = {k: v for k, v in got.items() if not _hidden(k, (v.get("settings") or {}))}
    except TransportError as exc:
        raise cluster_error(exc, url) from exc
    return [_index_status(client, url, name, found[name], fields) for name in sorted(found)]


def _enriched_fields(mapping: dict[str, Any], fields: EnrichedFields) -> dict[str, dict[str, Any]]:
    properties = properties_of(mapping)
    out: dict[str, dict[str, Any]] = {}
    for kind in FIELD_ORDER:
        name = fields.name_of(kind)  # type: ignore[arg-type]
        spec = properties.get(name)
        if not isinstance(spec, dict):
            continue
        entry: dict[str, Any] = {"kind": kind, "type": spec.get("type", "object")}
        if spec.get("type") == "knn_vector":
            entry["dimension"] = spec.get("dimension")
            entry["space_type"] = (spec.get("method") or {}).get("space_type") or spec.get("space_type")
        out[name] = entry
    return out


def _index_status(
    client: OpenSearch, url: str, name: str, body: dict[str, Any], fields: EnrichedFields
) -> IndexStatus:
    aliases = sorted((body.get("aliases") or {}).keys())
    enriched = _enriched_fields(body.get("mappings") or {}, fields)
    status = IndexStatus(name, aliases, 0, enriched, {}, "")
    try:
        status.docs = int(client.count(index=name)["count"])
        if fields.meta not in enriched:
            return status
        for kind in MODEL_KINDS:
            path = f"{fields.meta}.models.{kind}"
            count = int(client.count(index=name, body={"query": {"exists": {"field": path}}})["count"])
            if count:
                status.coverage[kind] = KindCoverage(count, {})
        if status.coverage:
            _fingerprints(client, name, fields.meta, status)
    except TransportError as exc:
        status.error = str(cluster_error(exc, url, index=name))
    return status


def _fingerprints(client: OpenSearch, index: str, meta: str, status: IndexStatus) -> None:
    aggs = {kind: {"terms": {"field": f"{meta}.models.{kind}", "size": 20}} for kind in status.coverage}
    try:
        answer = client.search(index=index, body={"size": 0, "aggs": aggs})
    except TransportError as exc:
        if exc.status_code != 400:
            raise
    else:
        for kind, cover in status.coverage.items():
            buckets = ((answer.get("aggregations") or {}).get(kind) or {}).get("buckets") or []
            cover.fingerprints = {str(b["key"]): int(b["doc_count"]) for b in buckets}
        status.fingerprints_from = "aggregation"
        return
    # no aggregations (the embedded engine): count what a sample of enriched documents carries
    query = {"bool": {"should": [{"exists": {"field": f"{meta}.models.{k}"}} for k in status.coverage]}}
    answer = client.search(
        index=index, body={"size": SAMPLE_SIZE, "query": query, "_source": [f"{meta}.models"]}
    )
    hits = answer["hits"]["hits"]
    for hit in hits:
        models = ((hit.get("_source") or {}).get(meta) or {}).get("models") or {}
        for kind, cover in status.coverage.items():
            fingerprint = models.get(kind)
            if isinstance(fingerprint, str):
                cover.fingerprints[fingerprint] = cover.fingerprints.get(fingerprint, 0) + 1
    status.fingerprints_from = f"sample of {len(hits)} documents"


def worker_status(broker_url: str, result_backend: str) -> WorkerStatus:
    """Redis up or not, the queues' depth, the workers answering a ping broadcast; never raises."""
    import redis

    shown = redact_url(broker_url)
    scheme = urlsplit(broker_url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        return WorkerStatus(shown, False, error=f"not a Redis broker ({scheme or 'no scheme'}://)")
    try:
        connection = redis.Redis.from_url(
            broker_url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
        )
        try:
            connection.ping()
            queues = {
                queue: sum(
                    int(connection.llen(key))
                    for key in (queue, *(f"{queue}{KOMBU_SEP}{p}" for p in KOMBU_PRIORITIES))
                )
                for queue in QUEUES
            }
        finally:
            connection.close()
    except (redis.RedisError, OSError, ValueError) as error:
        return WorkerStatus(shown, False, error=f"{type(error).__name__}: {error}")
    status = WorkerStatus(shown, True, queues)
    try:
        status.workers = _ping_workers(broker_url, result_backend)
    except Exception as error:  # noqa: BLE001 - a broadcast that fails is reported, never raised
        status.error = f"worker broadcast failed: {type(error).__name__}: {error}"
    return status


def _ping_workers(broker_url: str, result_backend: str) -> dict[str, list[str]]:
    from nirbridge.workers.celery_app import WorkerSettings, make_app

    app = make_app(WorkerSettings(broker_url=broker_url, result_backend=result_backend))
    try:
        answers = app.control.inspect(timeout=PING_TIMEOUT).active_queues() or {}
    finally:
        app.close()
    return {node: sorted(q.get("name", "?") for q in queues or []) for node, queues in answers.items()}
