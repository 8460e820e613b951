"""The search proxy (`nirbridge serve`): an ASGI app in front of the cluster, speaking OpenSearch.

    app = make_app(Settings(url="http://127.0.0.1:9200"))         # the reranker from the settings
    config = server_config(app, settings, host="127.0.0.1", port=8080)   # uvicorn, with a header deadline

    app        make_app and Proxy: the routes, the neural-search API, pass-through under the policy
    search     POST /{index}/_nirbridge/search: the request, the first stage, the answer's nirbridge block
    rerank     the second stage: RerankSpec (a request's rerank object), the window rescored within a deadline
    cluster    Cluster: the pooled httpx client to the cluster, the caller's credentials passed on
    paths      the request path, checked once (what the policy judges is what the cluster receives)
    policy     what passes while writes are not allowed; `_source` filtering
    limits     requests in flight, body size, query length (ASGI middleware)
    observe    a request id, one log line and the metrics of every request (ASGI middleware)
    errors     ProxyError and its kinds, answered in OpenSearch's error shape; redact() for URLs
    server     uvicorn's config with a deadline for each request's line and headers

The names below are loaded when first asked for, so that importing one module of the proxy (the CLI's
`redact`, evaluation's `passage_of`) does not load the app, Starlette and the metrics with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Proxy, make_app
    from .cluster import Cluster
    from .errors import BadRequest, ProxyError, redact
    from .rerank import RerankSpec, passage_of
    from .server import server_config

__all__ = [
    "BadRequest",
    "Cluster",
    "Proxy",
    "ProxyError",
    "RerankSpec",
    "make_app",
    "passage_of",
    "redact",
    "server_config",
]

# name -> the module of this package that defines it
_WHERE = {
    "BadRequest": "errors",
    "Cluster": "cluster",
    "Proxy": "app",
    "ProxyError": "errors",
    "RerankSpec": "rerank",
    "make_app": "app",
    "passage_of": "rerank",
    "redact": "errors",
    "server_config": "server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
