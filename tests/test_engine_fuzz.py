"""Issue 13: the engine's inputs, fuzzed against a real engine process over HTTP.

Hypothesis generates operations (bulk bodies with arbitrary metadata and sources, single-document writes with
arbitrary parameters, documents with values chosen per mapping type around each type's edges, index
creation with arbitrary names, mappings and settings, put-mapping, put-settings, raw and compressed bodies,
and searches on the fields written). For every one:

- the answer is a 2xx, or a 4xx shaped as OpenSearch shapes errors (``{"error": {"type", "reason", ...},
  "status"}``), never a 5xx;

and for the whole campaign:

- every acknowledged document (created or updated and not deleted since, as the responses said) is
  searchable after a refresh, and still is, with nothing quarantined, after the engine is killed (-9) and
  restarted on the same data directory.

The campaign is bounded for CI (``NIRBRIDGE_FUZZ_EXAMPLES`` examples of 1-4 operations, 150 by default, about
half a minute) and deterministic unless ``NIRBRIDGE_FUZZ_SEED`` is set (then that seed, or a random one for
``random``): a longer hunt is ``NIRBRIDGE_FUZZ_EXAMPLES=5000 NIRBRIDGE_FUZZ_SEED=random pytest ...``.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from nirbridge.connector.engine_process import EngineProcess, start_engine

EXAMPLES = int(os.environ.get("NIRBRIDGE_FUZZ_EXAMPLES", "400"))
SEED = os.environ.get("NIRBRIDGE_FUZZ_SEED")

# ----- the index every typed value is written to: one field per mapping type -----------------------------

MAPPING = {
    "properties": {
        "t": {"type": "text"},
        "mt": {"type": "match_only_text"},
        "k": {"type": "keyword"},
        "kl": {"type": "keyword", "normalizer": "lowercase", "ignore_above": 20},
        "b": {"type": "boolean"},
        "l": {"type": "long"},
        "i": {"type": "integer"},
        "sh": {"type": "short"},
        "by": {"type": "byte"},
        "u": {"type": "unsigned_long"},
        "d": {"type": "double"},
        "f": {"type": "float"},
        "h": {"type": "half_float"},
        "s": {"type": "scaled_float", "scaling_factor": 100},
        "dt": {"type": "date"},
        "dtf": {"type": "date", "format": "yyyy/MM/dd||epoch_second"},
        "dn": {"type": "date_nanos"},
        "v": {"type": "knn_vector", "dimension": 3},
        "vc": {"type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "space_type": "cosinesimil"}},
        "rf": {"type": "rank_feature"},
        "rfn": {"type": "rank_feature", "positive_score_impact": False},
        "rfs": {"type": "rank_features"},
        "ip": {"type": "ip"},
        "w": {"type": "wildcard"},
        "bin": {"type": "binary"},
        "geo": {"type": "geo_point"},
        "o": {"properties": {"k": {"type": "keyword"}, "l": {"type": "long"}}},
        "n": {"type": "nested", "properties": {"l": {"type": "long"}}},
        "off": {"type": "object", "enabled": False},
        "strict": {"type": "object", "dynamic": "strict", "properties": {"k": {"type": "keyword"}}},
        "multi": {"type": "text", "fields": {"raw": {"type": "keyword"}}, "copy_to": "k"},
    }
}
DOC_INDICES = ("typed", "fz-a", "fz-b")  # where documents go (besides names bulk makes up)

# ----- values ----------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), finite, st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
big_ints = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
edge_floats = st.sampled_from([0.0, -0.0, 1e-46, 1.17549435e-38, 3.4e38, 3.5e38, 1e39, 65504.0, 65520.0,
                               1e308, -1e308, 5e-324])
numeric_text = st.sampled_from(["1", "-1", "1.5", " 7 ", "1e400", "NaN", "Infinity", "0x10", "", "1_000"])
numbers = st.one_of(st.integers(-(2**66), 2**66), big_ints, finite, edge_floats, numeric_text)
date_text = st.one_of(
    st.from_regex(r"[+-]?\d{1,6}-\d{1,2}-\d{1,2}(T\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,10})?)?)?(Z|[+-]\d\d:?\d\d)?",
                  fullmatch=True),
    st.sampled_from(["2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z", "1970-01-01",
                     "1969-12-31T23:59:59.999999999Z", "9999-12-31", "0000-01-01", "2024/02/30", "2024/01/31",
                     "now", "2024-02-29T24:00:00Z"]),
)
dates = st.one_of(date_text, st.integers(-(2**66), 2**66), big_ints, finite, edge_floats)
vectors = st.one_of(
    st.lists(st.one_of(finite, edge_floats), min_size=0, max_size=4),
    st.lists(st.one_of(scalars, st.lists(finite, max_size=2)), max_size=3),
)
features = st.one_of(finite, edge_floats, numeric_text, st.sampled_from([0, -1, 1, 2**40]))
texts = st.one_of(st.text(max_size=30), st.sampled_from(["x" * 40_000, "é" * 9_000, "a b " * 50]))
ips = st.one_of(st.sampled_from(["127.0.0.1", "::1", "fe80::1", "256.0.0.1", "1.2.3", "::ffff:1.2.3.4"]),
                st.text(max_size=10))

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "t": texts, "mt": texts, "k": texts, "kl": texts, "w": texts, "multi": texts,
    "b": st.one_of(st.booleans(), st.sampled_from(["true", "false", "", "yes", 0, 1])),
    "l": numbers, "i": numbers, "sh": numbers, "by": numbers, "u": numbers, "d": numbers, "f": numbers,
    "h": numbers, "s": numbers,
    "dt": dates, "dtf": dates, "dn": dates,
    "v": vectors, "vc": vectors,
    "rf": features, "rfn": features,
    "rfs": st.dictionaries(st.text(max_size=4), st.one_of(features, st.none(), st.lists(finite, max_size=2)),
                           max_size=3),
    "ip": ips, "bin": st.text(max_size=8), "geo": json_values,
    "o": st.one_of(st.fixed_dictionaries({}, optional={"k": texts, "l": numbers}), json_values),
    "n": st.one_of(st.lists(st.fixed_dictionaries({}, optional={"l": numbers}), max_size=3), json_values),
    "off": json_values,
    "strict": st.one_of(st.fixed_dictionaries({}, optional={"k": texts}), json_values),
}
field_names = st.one_of(st.sampled_from(sorted(VALUES)), st.text(min_size=0, max_size=6),
                        st.sampled_from(["a.b", ".x", "x.", "a..b", "_id", "_source", "dyn"]))


plain_documents = st.fixed_dictionaries(
    {"t": st.text(max_size=20)},
    optional={"k": st.text(max_size=10), "l": st.integers(-(2**63), 2**63 - 1), "b": st.booleans(),
              "dt": st.integers(-(2**40), 2**40), "v": st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3),
              "rf": st.floats(0.01, 1e6), "rfs": st.dictionaries(st.text(min_size=1, max_size=3),
                                                                  st.floats(0.01, 100), max_size=3)},
)


def _rarely(draw: st.DrawFn, n: int) -> bool:
    """True about once in ``n + 1`` draws (Hypothesis favours small integers, so not ``integers(0, n) == 0``;
    it favours the first element of ``sampled_from`` too, which is False here)."""
    return draw(st.sampled_from([False] * n + [True]))


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    if not _rarely(draw, 1):  # half of them should be acknowledged, to check that they survive
        return draw(plain_documents)
    doc = {}
    for name in draw(st.lists(field_names, max_size=3, unique=True)):
        strategy = VALUES.get(name)
        doc[name] = draw(strategy if strategy is not None and not _rarely(draw, 9) else json_values)
    return doc


# ----- bulk bodies -----------------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size (orjson stops at 64 bits)."""
    return json.dumps(value, ensure_ascii=False).encode()


ids = st.text(alphabet="abc123", min_size=1, max_size=3)
made_up_indices = st.one_of(st.text(alphabet="xyz", min_size=1, max_size=3),
                            st.sampled_from(["Upper", "_under", "a b", "a\nb", "a\x00b", "", "-x", "..",
                                             "x" * 300, "a*b", "fz-a,fz-b"]))
meta_keys = st.sampled_from(["_index", "_id", "routing", "version", "version_type", "if_seq_no",
                             "if_primary_term", "op_type", "pipeline", "require_alias", "retry_on_conflict",
                             "_source", "_type", "parent", "dynamic_templates"])
meta_values = st.one_of(scalars, big_ints, st.lists(scalars, max_size=2),
                        st.dictionaries(st.text(max_size=3), scalars, max_size=2))


@st.composite
def actions(draw: st.DrawFn) -> list[bytes]:
    action = draw(st.sampled_from(["index", "create", "update", "index", "delete"]))
    if _rarely(draw, 30):
        action = draw(st.text(max_size=5))
    meta: dict[str, Any] = {}
    if not _rarely(draw, 5):  # mostly a write that can succeed
        meta["_index"] = draw(made_up_indices if _rarely(draw, 3) else st.sampled_from(DOC_INDICES))
        if not _rarely(draw, 5) or action in ("update", "delete"):
            meta["_id"] = draw(ids)
        if _rarely(draw, 4):
            meta["routing"] = draw(st.text(alphabet="rs", max_size=2))
    if _rarely(draw, 12):  # and sometimes anything at all (which fails the whole request)
        meta.update(draw(st.dictionaries(meta_keys, meta_values, max_size=3)))
    header = draw(json_values) if _rarely(draw, 40) else {action: meta}
    lines = [_dumps(header)]
    if action != "delete" or _rarely(draw, 10):
        if action == "update":
            doc = draw(documents())
            body = draw(st.sampled_from([{"doc": doc}, {"doc": doc, "doc_as_upsert": True},
                                         {"doc": doc, "upsert": doc}, {"doc": doc, "detect_noop": False},
                                         {"script": "x"}, {"doc": 5}, {"upsert": doc}]))
        else:
            body = draw(json_values) if _rarely(draw, 10) else draw(documents())
        source = _dumps(body)
        if _rarely(draw, 30):
            deep = b'{"a":' * 300 + b"1" + b"}" * 300
            source = draw(st.sampled_from([b"", b"{", b"\xff\xfe", b"[1,2]", deep]))
        lines.append(source)
    return lines


@st.composite
def bulk_bodies(draw: st.DrawFn) -> bytes:
    lines = [line for group in draw(st.lists(actions(), min_size=1, max_size=5)) for line in group]
    if _rarely(draw, 20):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([b"", b"  ", b"\r"])))
    body = b"\n".join(lines)
    return body if _rarely(draw, 30) else body + b"\n"


# ----- mappings and settings -------------------------------------------------------------------------------

TYPES = sorted({spec.get("type", "object") for spec in MAPPING["properties"].values()} |
               {"completion", "constant_keyword", "flat_object", "no_such_type"})
field_params = st.dictionaries(
    st.sampled_from(["type", "dimension", "scaling_factor", "format", "ignore_above", "index", "null_value",
                     "positive_score_impact", "fields", "properties", "copy_to", "method", "analyzer",
                     "normalizer", "coerce", "ignore_malformed", "enabled", "dynamic", "meta"]),
    st.one_of(st.sampled_from(TYPES), scalars, big_ints, json_values,
              st.just({"name": "hnsw", "space_type": "cosinesimil", "parameters": {"m": 0}}),
              st.just({"raw": {"type": "keyword"}}), st.just({"x": "keyword"})),
    max_size=4,
)
mappings = st.one_of(
    st.fixed_dictionaries({"properties": st.dictionaries(st.text(min_size=0, max_size=5) | st.just("a.b.c"),
                                                         field_params, max_size=4)}),
    st.dictionaries(st.sampled_from(["properties", "dynamic", "_source", "_meta", "date_detection",
                                     "numeric_detection", "_routing", "oops"]), json_values, max_size=3),
    json_values,
)
setting_keys = st.sampled_from([
    "index.number_of_shards", "index.number_of_replicas", "index.refresh_interval",
    "index.max_result_window", "index.mapping.total_fields.limit", "index.mapping.depth.limit",
    "index.mapping.nested_objects.limit", "index.knn", "index.knn.algo_param.ef_search",
    "index.knn.advanced.approximate_threshold", "index.analysis.analyzer.x.type", "index.codec",
    "index.uuid", "number_of_shards", "index", "index.blocks.write",
])
settings_bodies = st.one_of(st.dictionaries(setting_keys, scalars | big_ints | json_values, max_size=3),
                            json_values)


# ----- operations ------------------------------------------------------------------------------------------


@st.composite
def operations(draw: st.DrawFn) -> tuple[str, Any]:
    kinds = ["bulk"] * 4 + ["doc"] * 3 + ["create", "mapping", "settings", "raw", "search"]
    kind = draw(st.sampled_from(kinds))
    if kind == "bulk":
        return kind, (draw(bulk_bodies()), draw(st.sampled_from([{}, {"refresh": "true"}, {"pipeline": "p"},
                                                               {"routing": "r"}, {"require_alias": "true"}])))
    if kind == "doc":
        params = draw(st.dictionaries(
            st.sampled_from(["routing", "version", "version_type", "if_seq_no", "if_primary_term", "op_type",
                             "pipeline", "refresh"]),
            st.text(alphabet="0123456789-abcdefx", max_size=4) | st.sampled_from(["external", "create"]),
            max_size=2))
        method = draw(st.sampled_from(["PUT", "POST", "DELETE", "UPDATE"]))
        index = draw(made_up_indices if _rarely(draw, 3) else st.sampled_from(DOC_INDICES))
        body = draw(json_values) if _rarely(draw, 10) else draw(documents())
        return kind, (method, index, draw(ids), params, body)
    if kind == "create":
        name = draw(st.sampled_from(["fz-new"]) | made_up_indices)
        body = draw(st.fixed_dictionaries({}, optional={"mappings": mappings, "settings": settings_bodies,
                                                        "aliases": json_values}) | json_values)
        return kind, (name, body)
    if kind == "mapping":
        return kind, (draw(st.sampled_from(["typed", "fz-map"])), draw(mappings))
    if kind == "settings":
        return kind, draw(settings_bodies)
    if kind == "raw":
        body = draw(st.binary(max_size=60) | bulk_bodies())
        encoding = draw(st.sampled_from(["gzip", "deflate", "identity", "br"]))
        if draw(st.booleans()) and encoding == "gzip":
            body = gzip.compress(body)
        path = draw(st.sampled_from(["/_bulk", "/typed/_doc/r", "/typed/_mapping", "/fz-a/_update/a",
                                     "/typed/_search", "/typed/_settings"]))
        return kind, (path, body, encoding)
    field = draw(st.sampled_from(sorted(VALUES)))
    query = draw(st.sampled_from([
        {"range": {field: {"gte": draw(VALUES[field] | json_values)}}},
        {"term": {field: draw(scalars)}},
        {"rank_feature": {"field": draw(st.sampled_from(["rf", "rfn", "rfs.a"])),
                          draw(st.sampled_from(["saturation", "log", "sigmoid", "linear"])):
                              draw(st.dictionaries(st.sampled_from(["pivot", "scaling_factor", "exponent"]),
                                                   features, max_size=2))}},
        {"neural_sparse": {"rfs": {"query_tokens": draw(st.dictionaries(st.text(max_size=3), features,
                                                                         min_size=1, max_size=3))}}},
        {"knn": {"v": {"vector": draw(vectors), "k": draw(st.integers(-1, 20))}}},
        {"exists": {"field": field}},
    ]))
    return kind, {"query": query, "sort": [{field: "asc"}] if draw(st.booleans()) else ["_doc"],
                  "docvalue_fields": [field] if draw(st.booleans()) else []}


# ----- checking answers and keeping the books ------------------------------------------------------------


class Campaign:
    """The engine under test, every answer checked, and the acknowledged state: (index, id) -> present."""

    def __init__(self, engine: EngineProcess) -> None:
        self.client = httpx.Client(base_url=engine.url, timeout=60)
        self.acked: dict[tuple[str, str], bool] = {}
        self.answers: Counter[str] = Counter()
        self.operations = 0

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        status = response.status_code
        self.answers[f"{status // 100}xx"] += 1
        assert status < 500, f"{method} {path} -> {status}: {response.text[:2000]}\n{kwargs!r:.3000}"
        if status >= 400 and method != "HEAD" and status != 413:
            body = response.json()
            if status == 404 and ("found" in body or body.get("result") == "not_found"):
                return response  # a missing document, answered as OpenSearch answers it (not an error)
            error = body.get("error")
            if isinstance(error, str) and error.startswith(("no handler found", "Incorrect HTTP method")):
                return response  # OpenSearch's RestController answers an unknown route with a plain string
            assert isinstance(error, dict), body
            assert isinstance(error.get("type"), str) and error.get("reason"), body
            assert body.get("status") == status, body
            self.answers[error["type"]] += 1
        return response

    def record_write(self, result: dict[str, Any]) -> None:
        """Book one write result (a single-document answer or a bulk item) as OpenSearch reports it."""
        if result.get("status", 200) >= 300 or "error" in result or "result" not in result:
            return
        key = (result["_index"], result["_id"])
        if result["result"] in ("created", "updated"):
            self.acked[key] = True
        elif result["result"] == "deleted":
            self.acked[key] = False

    def run(self, op: tuple[str, Any]) -> None:
        self.operations += 1
        kind, args = op
        if kind == "bulk":
            body, params = args
            response = self.request("POST", "/_bulk", content=body, params=params,
                                    headers={"content-type": "application/x-ndjson"})
            if response.status_code == 200:
                for item in response.json()["items"]:
                    self.record_write(next(iter(item.values())))
        elif kind == "doc":
            method, index, doc_id, params, body = args
            path = f"/{quote(index, safe='')}/_doc/{quote(doc_id, safe='')}"
            if method == "DELETE":
                response = self.request("DELETE", path, params=params)
            elif method == "UPDATE":
                path = path.replace("/_doc/", "/_update/")
                upsert = {"doc": body, "doc_as_upsert": True}
                response = self.request("POST", path, params=params, json=upsert)
            else:
                response = self.request(method, path, params=params, json=body)
            if response.status_code < 300 or response.status_code == 404:
                result = response.json()
                if isinstance(result, dict) and "_index" in result:
                    result.setdefault("status", response.status_code)
                    self.record_write(result)
        elif kind == "create":
            name, body = args
            self.request("PUT", f"/{quote(name, safe='')}", json=body)
        elif kind == "mapping":
            index, body = args
            self.request("PUT", f"/{index}/_mapping", json=body)
        elif kind == "settings":
            self.request("PUT", "/fz-set/_settings", json=args)
        elif kind == "raw":
            path, body, encoding = args
            method = "PUT" if path.endswith(("_mapping", "_settings", "/r")) else "POST"
            headers = {"content-type": "application/json", "content-encoding": encoding}
            response = self.request(method, path, content=body, headers=headers)
            if path.endswith(("/r", "/a")) and response.status_code < 300:
                self.record_write({**response.json(), "status": response.status_code})
            elif path == "/_bulk" and response.status_code == 200:
                for item in response.json()["items"]:
                    self.record_write(next(iter(item.values())))
        else:
            self.request("POST", "/typed/_search", json=args)

    def searchable_ids(self) -> dict[str, set[str]]:
        """Every index's document ids, as a search after a refresh sees them."""
        self.request("POST", "/_refresh")
        out = {}
        for index in sorted({index for index, _ in self.acked}):
            response = self.request("POST", f"/{quote(index, safe='')}/_search",
                                    json={"size": 10_000, "_source": False, "query": {"match_all": {}}})
            out[index] = {hit["_id"] for hit in response.json()["hits"]["hits"]}
        return out

    def expected_ids(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {index: set() for index, _ in self.acked}
        for (index, doc_id), present in self.acked.items():
            if present:
                out[index].add(doc_id)
        return out


def _same(found: dict[str, set[str]], expected: dict[str, set[str]], when: str) -> None:
    """Every index holds exactly the acknowledged documents (the differences named when it does not)."""
    wrong = {index: {"missing": sorted(expected[index] - found.get(index, set())),
                     "unexpected": sorted(found.get(index, set()) - expected[index])}
             for index in expected if found.get(index, set()) != expected[index]}
    assert not wrong, f"{when}: {wrong}"


def _start(data: Path, log: Path) -> EngineProcess:
    process = start_engine(data, log_path=log)
    process.wait_ready(60)
    return process


def test_fuzzed_inputs_never_answer_5xx_and_acknowledged_documents_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = _start(data, tmp_path / "engine-1.log")
    campaign = Campaign(engine)
    try:
        campaign.request("PUT", "/typed", json={"mappings": MAPPING}).raise_for_status()
        for name in ("fz-a", "fz-b", "fz-map", "fz-set"):
            campaign.request("PUT", f"/{name}", json={}).raise_for_status()

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
                  suppress_health_check=list(HealthCheck), print_blob=True)
        @given(st.lists(operations(), min_size=1, max_size=4))
        def campaign_step(ops: list[tuple[str, Any]]) -> None:
            for op in ops:
                campaign.run(op)

        if SEED is not None:
            chosen = random.randrange(2**32) if SEED == "random" else int(SEED)
            print(f"\nfuzz: NIRBRIDGE_FUZZ_SEED={chosen}")
            campaign_step = seed(chosen)(campaign_step)
        campaign_step()

        expected = campaign.expected_ids()
        acknowledged = sum(len(v) for v in expected.values())
        assert acknowledged > 20, f"too few acknowledged documents: {campaign.answers}"
        _same(campaign.searchable_ids(), expected, "before the restart")
    finally:
        engine.process.send_signal(signal.SIGKILL)  # no clean shutdown: only what was fsynced survives
        engine.process.wait()

    engine = _start(data, tmp_path / "engine-2.log")
    try:
        restarted = Campaign(engine)
        restarted.acked = campaign.acked
        _same(restarted.searchable_ids(), expected, "after the restart")
        quarantined = list(data.glob("indices/*/translog.quarantine.ndjson"))
        assert not quarantined, [path.read_text()[:2000] for path in quarantined]
        health = restarted.request("GET", "/_cluster/health").json()
        assert health["status"] in ("green", "yellow"), health
    finally:
        engine.stop()
    print(f"\nfuzz: {EXAMPLES} examples, {campaign.operations} operations, "
          f"{acknowledged} acknowledged documents; answers {dict(campaign.answers)}")
