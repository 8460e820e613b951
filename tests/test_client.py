"""connector.client against a real HTTP server that answers what a busy cluster answers (429, 503)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nirbridge.connector.client import check_reachable, make_client, validate_url
from nirbridge.connector.engine_process import free_port
from nirbridge.connector.errors import BadUrlError, ClusterError, ClusterUnreachable


class Scripted(ThreadingHTTPServer):
    """Answers GET / with the statuses in `script`, one per request, then 200 for ever."""

    def __init__(self, script: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = list(script)
        self.requests = 0


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests += 1
        status = self.server.script.pop(0) if self.server.script else 200
        if status == 200:
            body = {
                "version": {"number": "2.19.0", "distribution": "opensearch"},
                "tagline": "The OpenSearch Project",
            }
        else:
            body = {
                "error": {"type": "rejected_execution_exception", "reason": "queue full"},
                "status": status,
            }
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


Start = Callable[[list[int]], Scripted]


@pytest.fixture
def scripted() -> Iterator[Start]:
    servers: list[Scripted] = []

    def start(script: list[int]) -> Scripted:
        server = Scripted(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _url(server: Scripted) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_429_and_503_are_retried_after_backing_off(scripted: Start) -> None:
    server = scripted([429, 503])
    client = make_client(_url(server), max_retries=3, initial_backoff=0.01)
    assert check_reachable(client, _url(server))["version"]["distribution"] == "opensearch"
    assert server.requests == 3


def test_retries_stop_at_max_retries(scripted: Start) -> None:
    server = scripted([429] * 10)
    client = make_client(_url(server), max_retries=2, initial_backoff=0.01)
    with pytest.raises(ClusterError, match="rejected_execution_exception: queue full") as caught:
        check_reachable(client, _url(server))
    assert caught.value.status == 429
    assert server.requests == 3


def test_other_4xx_are_not_retried(scripted: Start) -> None:
    server = scripted([400])
    client = make_client(_url(server), max_retries=3, initial_backoff=0.01)
    with pytest.raises(ClusterError) as caught:
        check_reachable(client, _url(server))
    assert caught.value.status == 400
    assert server.requests == 1


def test_nothing_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ClusterUnreachable, match="cannot reach the cluster: connection refused"):
        check_reachable(make_client(url), url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("localhost:9200", "must start with http:// or https://"),
        ("ftp://host", "must start with http:// or https://"),
        ("http://", "names no host"),
        ("http://host:70000", "out of range"),
    ],
)
def test_bad_urls_are_refused_before_any_request(url: str, reason: str) -> None:
    with pytest.raises(BadUrlError, match=reason):
        validate_url(url)
    assert validate_url("https://user:secret@search.example.com:9243/prefix")
