"""A real HTTP server between a client and the engine, for the tests of overload: it forwards every request
to the engine, and can hold requests until released, or answer some itself as an overloaded OpenSearch does.

    gate = HttpGate(engine.url, answer=lambda method, path, body: None)   # None: forward this one
    gate.hold()             # requests wait in the gate (gate.waiting counts them) ...
    gate.release()          # ... until released
    gate.stop()

`answer(method, path, body)` returns None to forward the request, or `(status, json_body)` to answer it.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Answer = Callable[[str, str, bytes], tuple[int, Any] | None]


class HttpGate:
    def __init__(self, upstream: str, answer: Answer | None = None) -> None:
        target = urlsplit(upstream)
        self.host, self.port_upstream = target.hostname or "127.0.0.1", target.port or 80
        self.answer = answer
        self.waiting = 0
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_for_waiting(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.waiting < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.waiting} requests wait in the gate, not {count}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str]:
        connection = http.client.HTTPConnection(self.host, self.port_upstream, timeout=60)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("content-type", "application/json")
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with gate._lock:
                    gate.waiting += 1
                gate._open.wait()
                with gate._lock:
                    gate.waiting -= 1
                said = gate.answer(self.command, self.path, body) if gate.answer else None
                if said is None:
                    keep = ("content-type", "authorization")
                    headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
                    status, content, content_type = gate._forward(self.command, self.path, body, headers)
                else:
                    status, content, content_type = said[0], json.dumps(said[1]).encode(), "application/json"
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        return Handler
