"""The REST layer: OpenSearch's HTTP API over a :class:`~nirbridge.engine.node.Node`.

    controller       requests, responses, the route table and its dispatch
    cluster          the root info, _cluster/health, _cat/indices
    indices          index administration: create/delete/get, mappings, settings, aliases, _stats
    docs             document routes (index, get, update, delete, _bulk, _mget)
    search           search routes (_search, _count, scroll, _msearch, ...)
    filter_path      the ``filter_path`` response filter
    security         HTTP basic authentication, the users file, TLS
    server           the asyncio HTTP server (``serve``); importing it registers every route module

The route modules register themselves with ``controller.route`` when imported; ``server`` imports them all,
explicitly and in a fixed order (ties between routes resolve in registration order). ``serve`` loads on
first use, so that ``rest.security`` (the CLI's ``hash-password``) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve"]


def __getattr__(name: str) -> Any:
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
