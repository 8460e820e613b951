"""A cluster stand-in that records what reaches it, and the proxy served by `nirbridge serve`'s own server.

    upstream = RecordingUpstream()          # stdlib ThreadingHTTPServer on a free port
    proxy = ProxyServer(Settings(url=upstream.url), reranker=None)
    ... requests to proxy.url ...
    upstream.seen                           # [Seen(method, target, authorization, body), ...]
    proxy.stop(); upstream.stop()

The upstream records each request line's method and target exactly as they came over the socket (the raw
request target: percent-encoding, dot segments and all, before any parsing), and answers 200 with a small
search answer (one hit) to anything: no route logic of its own, so whatever reaches it was forwarded.
`ProxyServer` runs `connector.proxy.server.server_config` (the header deadline included) under uvicorn in a
thread of this process; `raw_request` speaks HTTP/1.1 over a bare socket, so that a path is sent byte for byte
(http.client and httpx would rewrite some).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn

from nirbridge.connector.engine_process import free_port
from nirbridge.connector.proxy import make_app
from nirbridge.connector.proxy.server import server_config
from nirbridge.connector.settings import Settings

SEARCH_ANSWER: dict[str, Any] = {
    "took": 1,
    "timed_out": False,
    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {
        "total": {"value": 2, "relation": "eq"},
        "max_score": 2.0,
        "hits": [
            {"_index": "idx", "_id": "1", "_score": 2.0, "_source": {"title": "statins", "n": 5}},
            {"_index": "idx", "_id": "2", "_score": 1.0, "_source": {"title": ["a", "b"], "m": {"x": 1}}},
        ],
    },
}


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the request target as it came on the request line (path and query)
    authorization: str | None
    body: bytes


class RecordingUpstream:
    """An HTTP server that records each request (see the module docstring) and answers SEARCH_ANSWER, or
    what `answer(method, target)` returns."""

    def __init__(self, answer: Callable[[str, str], Any] | None = None) -> None:
        self.seen: list[Seen] = []
        self.answer = answer or (lambda method, target: SEARCH_ANSWER)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                # requestline is the line as received: "METHOD TARGET HTTP/1.1", nothing decoded
                method, target, _ = self.requestline.split(" ", 2)
                with upstream._lock:
                    upstream.seen.append(Seen(method, target, self.headers.get("authorization"), body))
                content = json.dumps(upstream.answer(method, target)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _any  # noqa: N815

        return Handler


class ServerThread:
    """An ASGI app under uvicorn on a free port, in a thread of this process (`config_of` builds uvicorn's
    config from the app and the port: a plain one by default)."""

    def __init__(self, app: Any, config_of: Callable[[Any, int], uvicorn.Config] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = (config_of or _plain_config)(app, self.port)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the proxy did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _plain_config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


class ProxyServer(ServerThread):
    """The proxy app under uvicorn with `nirbridge serve`'s server config (header deadline included)."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        def serve_config(app: Any, port: int) -> uvicorn.Config:
            return server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")

        super().__init__(make_app(settings, **app_options), serve_config)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _read_answer(sock: socket.socket, method: str) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the connection closed before an answer's headers: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if method == "HEAD" else int(headers.get("content-length") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(status, headers, rest[:length])


def raw_request(
    url: str,
    method: str,
    target: bytes | str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """One HTTP/1.1 request over a new socket, its target sent byte for byte; the answer."""
    host, port = url.removeprefix("http://").split(":")
    raw_target = target.encode("latin-1") if isinstance(target, str) else target
    lines = [b"%s %s HTTP/1.1" % (method.encode(), raw_target), b"host: " + host.encode()]
    for name, value in {"content-length": str(len(body)), "connection": "close", **(headers or {})}.items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return _read_answer(sock, method)
