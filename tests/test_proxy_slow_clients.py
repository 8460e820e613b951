"""Slow clients cannot hold the proxy (issue 13, item 7): a body that trickles in is answered 408 once
NIRBRIDGE_PROXY_BODY_TIMEOUT_S has passed, and its in-flight slot is free again; a request line and headers
that trickle in are answered 408 and the connection closed once NIRBRIDGE_PROXY_HEADER_TIMEOUT_S has passed.

Over real sockets: the proxy under uvicorn with `nirbridge serve`'s server config (connector.proxy.server) in
front of a recording HTTP server (tests/recording_upstream.py), short deadlines so that the test is quick.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from recording_upstream import ProxyServer, RecordingUpstream, raw_request

from nirbridge.connector.settings import Settings

BODY_TIMEOUT_S = 1.0
HEADER_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def proxy(upstream: RecordingUpstream) -> Iterator[ProxyServer]:
    settings = Settings(
        url=upstream.url,
        proxy_max_in_flight=1,  # one slow client would lock everyone out
        proxy_body_timeout_s=BODY_TIMEOUT_S,
        proxy_header_timeout_s=HEADER_TIMEOUT_S,
    )
    server = ProxyServer(settings, reranker=None)
    yield server
    server.stop()


def _connect(proxy: ProxyServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the proxy sends until it closes the connection (a timeout here fails the test)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status_and_body(data: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), head
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_body_sent_a_byte_at_a_time_is_408_and_frees_its_slot(
    proxy: ProxyServer, upstream: RecordingUpstream
) -> None:
    upstream.clear()
    with _connect(proxy) as slow:
        slow.sendall(b"POST /idx/_search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n")
        slow.sendall(b"content-length: 100\r\n\r\n{")
        time.sleep(0.2)
        # the slow request holds the only slot: another caller is refused at once, as before
        assert raw_request(proxy.url, "GET", "/idx/_count", b"").status == 429
        started = time.monotonic()
        for _ in range(3):  # a byte a second keeps it alive no longer than the deadline
            time.sleep(0.3)
            slow.sendall(b" ")
        status, body = _status_and_body(_read_to_close(slow))
        waited = time.monotonic() - started
    assert status == 408 and body["error"]["type"] == "timeout_exception", body  # type: ignore[index]
    assert "NIRBRIDGE_PROXY_BODY_TIMEOUT_S" in body["error"]["reason"]  # type: ignore[index]
    assert waited < BODY_TIMEOUT_S + 5
    assert upstream.seen == []  # nothing half-read went on
    # the slot is free again (issue 13: it was held for ever, and everybody else answered 429)
    answer = raw_request(proxy.url, "GET", "/idx/_count", b"")
    assert answer.status == 200 and [seen.target for seen in upstream.seen] == ["/idx/_count"]


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # a connection that never says anything
        b"GET /idx/_sea",  # half a request line
        b"GET /idx/_search HTTP/1.1\r\nhost: x\r\n",  # headers that never end
    ],
)
def test_slow_request_lines_and_headers_are_408_and_closed(proxy: ProxyServer, sent: bytes) -> None:
    with _connect(proxy) as slow:
        slow.sendall(sent)
        started = time.monotonic()
        data = _read_to_close(slow)
        waited = time.monotonic() - started
    status, body = _status_and_body(data)
    assert status == 408 and "NIRBRIDGE_PROXY_HEADER_TIMEOUT_S" in body["error"]["reason"], body  # type: ignore[index]
    assert HEADER_TIMEOUT_S - 0.3 < waited < HEADER_TIMEOUT_S + 5


def test_headers_trickling_in_on_a_kept_alive_connection_time_out_too(proxy: ProxyServer) -> None:
    with _connect(proxy) as client:
        client.sendall(b"GET /_nirbridge/health HTTP/1.1\r\nhost: x\r\n\r\n")
        first = b""
        while b'{"status":"ok"}' not in first:
            first += client.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        for byte in b"GET /idx/_sea":  # a byte every 0.3 s: the keep-alive timer never fires, this one does
            client.sendall(bytes([byte]))
            time.sleep(0.3)
            if time.monotonic() - started > HEADER_TIMEOUT_S + 0.5:
                break
        status, _ = _status_and_body(_read_to_close(client))
    assert status == 408


def test_a_prompt_client_is_unaffected(proxy: ProxyServer) -> None:
    with _connect(proxy) as client:  # two requests on one connection, each well within the deadlines
        for _ in range(2):
            client.sendall(b"POST /idx/_search HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            data = b""
            while b'"hits"' not in data:
                data += client.recv(65536)
            assert data.startswith(b"HTTP/1.1 200")


def test_deadlines_must_be_positive() -> None:
    for name in ("proxy_body_timeout_s", "proxy_header_timeout_s"):
        with pytest.raises(ValueError, match=name):
            Settings(**{name: 0})
