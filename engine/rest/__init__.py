"""The REST layer: OpenSearch's HTTP API over a :class:`~nirbridge.engine.node.Node`.

    controller       requests, responses, the route table and its dispatch
    admin            index and cluster administration routes (create, mappings, settings, aliases, _cat, ...)
    docs             document routes (index, get, update, delete, _bulk, _mget)
    search           search routes (_search, _count, scroll, _msearch, ...)
    filter_path      the ``filter_path`` response filter
    security         HTTP basic authentication, the users file, TLS
    server           the asyncio HTTP server (``serve``); importing it registers every route module

The route modules register themselves with ``controller.route`` when imported; ``server`` imports them all,
explicitly.  ``serve`` loads on first use, so that ``rest.security`` (the CLI's ``hash-password``) stays
light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve"]


def __getattr__(name: str) -> Any:
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
