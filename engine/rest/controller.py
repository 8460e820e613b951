"""REST plumbing: requests, responses and the route table the API modules register into.

Routes are OpenSearch path templates (``/{index}/_doc/{id}``); a path that matches several templates goes to
the one with the most literal segments, as OpenSearch's path trie prefers ``/_search`` over ``/{index}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson

from .. import errors
from ..limits import check_json_depth
from ..node import Node


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)

    def json(self, required: bool = False) -> Any:
        """The body as JSON (the server has inflated a compressed body already), refused when it nests
        deeper than the engine can store and walk (limits.MAX_JSON_DEPTH)."""
        body = self.body
        if not body.strip():
            if required:
                raise errors.EngineError(400, "parse_exception", "request body is required")
            return None
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.EngineError(
                400, "parse_exception", f"Failed to parse content to map: {exc}"
            ) from exc
        check_json_depth(value)
        return value

    def ndjson(self) -> list[bytes]:
        """The body's lines; the last item is what follows the final newline (empty when it ends with one)."""
        return self.body.split(b"\n")

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        return value in ("", "true")

    def int_param(self, name: str, default: int | None = None) -> int | None:
        value = self.params.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise errors.illegal_argument(
                f"Failed to parse int parameter [{name}] with value [{value}]"
            ) from None


@dataclass
class Response:
    status: int
    body: Any = None
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


Handler = Callable[[Node, Request], Response]


@dataclass
class Route:
    methods: tuple[str, ...]
    template: str
    regex: re.Pattern[str]
    literals: int
    handler: Handler


ROUTES: list[Route] = []


def route(*templates: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
    """Register ``handler`` for each template; ``{name}`` matches one path segment."""

    def register(handler: Handler) -> Handler:
        for template in templates:
            segments = [s for s in template.strip("/").split("/") if s]
            pattern = "^/" + "/".join(
                f"(?P<{s[1:-1]}>[^/]+)" if s.startswith("{") else re.escape(s) for s in segments
            ) + "/?$"
            literals = sum(1 for s in segments if not s.startswith("{"))
            ROUTES.append(Route(methods, template, re.compile(pattern), literals, handler))
        ROUTES.sort(key=lambda r: -r.literals)
        return handler

    return register


def dispatch(node: Node, method: str, path: str, params: dict[str, str], body: bytes,
             headers: dict[str, str]) -> Response:
    lookup_method = "GET" if method == "HEAD" else method
    allowed: list[str] = []
    for candidate in ROUTES:
        match = candidate.regex.match(path)
        if match is None:
            continue
        if lookup_method not in candidate.methods and method not in candidate.methods:
            allowed.extend(candidate.methods)
            continue
        parts = {k: unquote(v) for k, v in match.groupdict().items()}
        request = Request(method, path, params, body, headers, parts)
        try:
            return candidate.handler(node, request)
        except errors.EngineError as exc:
            return Response(exc.status, exc.to_body())
        except RecursionError:
            # A safety net behind limits.MAX_JSON_DEPTH: whatever still recursed too deeply on a request's
            # content (a query nested hundreds of levels) is the request's fault, not the engine's.
            error = errors.EngineError(
                400, "illegal_argument_exception", "the request is nested too deeply to be processed"
            )
            return Response(error.status, error.to_body())
    if allowed:
        return Response(
            405,
            {
                "error": f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: "
                         f"{sorted(set(allowed))}",
                "status": 405,
            },
        )
    return Response(400, {"error": f"no handler found for uri [{path}] and method [{method}]", "status": 400})


def deprecation_warning(message: str) -> dict[str, str]:
    """A ``Warning`` response header as OpenSearch's DeprecationLogger sends it (RFC 7234 warn-code 299)."""
    escaped = message.replace("\\", "\\\\").replace('"', '\\"')
    return {"Warning": f'299 OpenSearch-3.3.0-nirbridge-engine "{escaped}"'}


def ok(body: Any = None, status: int = 200) -> Response:
    return Response(status, {"acknowledged": True} if body is None else body)


def param_list(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]
