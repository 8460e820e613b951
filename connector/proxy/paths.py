"""The request path, checked once: what the route policy judges is exactly what the cluster receives.

    checked = check_path(b"/scifact/_search")          # CheckedPath(raw="/scifact/_search", decoded=...)
    check_path(b"/i/_search/scroll/../../_doc/w")      # BadRequest: a `..` segment
    app = CheckedPaths(app)                            # ASGI middleware: 400 before any route sees the path
    checked_path(request.scope)                        # the path the middleware checked
    index_path("scifact", "_mapping")                  # "/scifact/_mapping", the index percent-encoded
    check_index_expression("logs-*,-logs-old")         # BadRequest for a name the cluster reads otherwise

Why: three readers of one path disagree when it holds dot segments or encoded separators. uvicorn decodes
`%2F` and `%2e%2e` before routing, httpx drops `.` and `..` segments from every URL it builds, and the
cluster decodes once more. A policy that judges one reading while the cluster acts on another can be walked
around (`POST /i/_search/scroll/../../_doc/w` looks like a scroll and writes a document). So the proxy reads
the path as the caller sent it (`scope["raw_path"]`, still percent-encoded), refuses every path that could be
read two ways, judges the decoded form, and sends the cluster those very bytes (`connector.proxy.cluster`
passes them as httpcore's request `target`: httpx does not rebuild them).

Refused with 400 `illegal_argument_exception`, naming what is wrong:
- a `.` or `..` segment, raw or percent-encoded in any case (`%2e`, `%2E%2e`, `.%2E`);
- a `/` or `\\` inside a segment (`%2F`, `%5C`), a raw `\\`, an empty segment (`//`);
- a control character, raw or encoded (NUL, CR, LF, DEL, ...), a raw space;
- a `%` not followed by two hex digits, percent-encoded bytes that are not UTF-8;
- a path that does not start with `/`.

A document id that holds a `/` is then out of reach of the path APIs (`GET /i/_doc/a%2Fb`): `_mget` reads it
(`POST /i/_mget` with `{"ids": ["a/b"]}`). Bytes outside printable ASCII and the few ASCII characters RFC 3986
does not allow in a path (`"`, `<`, `>`, `[`, `]`, ...) are percent-encoded on the way: the cluster decodes
the same path. Query strings cannot change the path and pass as sent (bytes outside ASCII encoded).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from .errors import BadRequest, send_error

__all__ = [
    "CheckedPath",
    "CheckedPaths",
    "check_index_expression",
    "check_path",
    "checked_path",
    "forwarded_query",
    "index_path",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "nirbridge.path"
# RFC 3986 pchar (unreserved, sub-delims, ":", "@") and "%" of an escape: kept as sent; any other byte is
# percent-encoded, so that no later reader (httpx included) has a reason to rewrite the path
_NOT_PCHAR = re.compile(rb"[^A-Za-z0-9\-._~!$&'()*+,;=:@%]")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_RAW_REFUSED = re.compile(rb"[\x00-\x20\x7f\\]")
_QUERY_ENCODED = re.compile(rb"[^\x21-\x7e]|[\"<>#]")
# index expressions: what OpenSearch refuses in an index name, less "," "*" and ":" (lists, wildcards,
# remote clusters), which a search may name
_INDEX_REFUSED = frozenset('\\/?"<>| #')


def _encode(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match.group(0)[0]


@dataclass(frozen=True)
class CheckedPath:
    """A path the proxy may forward: `raw` goes to the cluster, `decoded` (what the cluster decodes `raw`
    to) is what the policy judges."""

    raw: str
    decoded: str

    @property
    def segments(self) -> list[str]:
        return [part for part in self.decoded.split("/") if part]


def _refuse(path: bytes, why: str) -> BadRequest:
    shown = path[:200].decode("ascii", "backslashreplace")
    return BadRequest(f"the request path [{shown}] {why}; the proxy forwards only paths that read one way")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def check_path(path: bytes | str) -> CheckedPath:
    """`path` (percent-encoded, as on the request line, without the query) checked; BadRequest naming
    what makes it ambiguous (see the module docstring)."""
    raw = path.encode("utf-8") if isinstance(path, str) else bytes(path)
    if not raw.startswith(b"/"):
        raise _refuse(raw, "does not start with /")
    if _RAW_REFUSED.search(raw):
        raise _refuse(raw, "holds a control character, a space or a backslash")
    if _BAD_ESCAPE.search(raw):
        raise _refuse(raw, "holds a % that is not followed by two hex digits")
    parts = raw[1:].split(b"/")
    kept: list[str] = []
    decoded: list[str] = []
    for at, part in enumerate(parts):
        if not part and at < len(parts) - 1:
            raise _refuse(raw, "holds an empty segment (//)")
        try:
            text = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(raw, "holds percent-encoded bytes that are not UTF-8") from None
        if text in (".", ".."):
            raise _refuse(raw, f"holds a dot segment [{part.decode('ascii', 'replace')}]")
        if "/" in text or "\\" in text:
            raise _refuse(raw, "holds an encoded / or \\ (%2F, %5C) inside a segment")
        if _has_control(text):
            raise _refuse(raw, "holds an encoded control character")
        kept.append(_NOT_PCHAR.sub(_encode, part).decode("ascii"))
        decoded.append(text)
    return CheckedPath("/" + "/".join(kept), "/" + "/".join(decoded))


def forwarded_query(query: bytes | str) -> str:
    """A query string as it goes to the cluster: as sent, bytes outside printable ASCII percent-encoded."""
    raw = query.encode("utf-8") if isinstance(query, str) else bytes(query)
    return _QUERY_ENCODED.sub(_encode, raw).decode("ascii")


def check_index_expression(index: str, where: str = "index") -> str:
    """`index` (a name, a comma-separated list, wildcards) as given, or BadRequest naming what the cluster
    would read as something else: a path or query character, a dot segment, an API name (`_bulk`)."""
    if not index or len(index) > 4096:
        raise BadRequest(f"[{where}] must be an index name or expression, got {index[:100]!r}")
    for name in index.split(","):
        bad = "".join(sorted({char for char in name if char in _INDEX_REFUSED}))
        if bad or _has_control(name):
            what = repr(bad) if bad else "a control character"
            reason = f"[{where}] [{index[:200]}] holds {what}, which no index name holds"
            raise BadRequest(reason, "invalid_index_name_exception")
        if name in ("", ".", "..") or (name.startswith("_") and name != "_all") or name.startswith("+"):
            reason = f"[{where}] [{index[:200]}] names no index: [{name}]"
            raise BadRequest(reason, "invalid_index_name_exception")
    return index


def index_path(index: str, *segments: str) -> str:
    """`/{index}/{segments...}` with the index percent-encoded (checked first: check_index_expression)."""
    check_index_expression(index)
    return "/".join(["", quote(index, safe=",*:+"), *segments])


def checked_path(scope: Scope) -> CheckedPath:
    """The path the `CheckedPaths` middleware checked for this request (checked here when it did not run)."""
    checked = scope.get(SCOPE_KEY)
    if isinstance(checked, CheckedPath):
        return checked
    raw = scope.get("raw_path")
    checked = check_path(raw if raw else quote(scope.get("path") or "/").encode("ascii"))
    scope[SCOPE_KEY] = checked
    return checked


class CheckedPaths:
    """ASGI middleware: every HTTP request's path checked once (`check_path` on `scope["raw_path"]`), a bad
    one answered 400 before routing; the routes then see the decoded form the policy judges as
    `scope["path"]`, and `checked_path(scope)` for what to forward."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            checked = checked_path(scope)
        except BadRequest as error:
            await send_error(send, error.status, error.kind, error.reason, [(b"connection", b"close")])
            return
        scope["path"] = checked.decoded  # routing reads the same decoding as the policy
        await self.app(scope, receive, send)
