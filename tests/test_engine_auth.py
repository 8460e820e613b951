"""What wrong passwords cost the engine's basic authentication (issue 13, item 6).

Before: bcrypt ran on the only event loop and failures were not remembered, so two guessing clients raised
authenticated p50 from 0.4 ms to ~480 ms, and a wrong password took 237 ms for a known user and 0.4 ms for an
unknown one (user enumeration). Here: the middleware itself (in-process, a counting bcrypt) and a real engine
under guessing (bench/engine_auth.py).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from typing import Any

import bcrypt
import pytest

from nirbridge.bench.engine_auth import run as run_auth_bench
from nirbridge.engine.rest import security
from nirbridge.engine.rest.security import BasicAuth, FailureLimiter

USERS = {"admin": "Adm1n-S3cret!", "reader": "r3ader-pass", "third": "3rd-pass"}


@pytest.fixture(scope="module")
def hashes() -> dict[str, bytes]:
    return {name: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)) for name, pw in USERS.items()}


class Checks:
    """Counts the bcrypt checks (and what they were checked against); optionally makes each one slow."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> None:
        self.hashes: list[bytes] = []
        self.threads: set[str] = set()
        real = security._check_password

        def counting(password: bytes, hashed: bytes) -> bool:
            self.hashes.append(hashed)
            self.threads.add(threading.current_thread().name)
            time.sleep(delay)
            return real(password, hashed)

        monkeypatch.setattr(security, "_check_password", counting)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _request(auth: BasicAuth, user: str | None, password: str = "", client: str = "10.0.0.1") -> int:
    return asyncio.run(_status(auth, user, password, client))


async def _status(auth: BasicAuth, user: str | None, password: str, client: str = "10.0.0.1") -> int:
    headers = []
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode())
        headers.append((b"authorization", b"Basic " + token))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (client, 40000)}
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await auth(scope, None, send)
    return int(sent[0]["status"])


def test_the_limiter_blocks_after_allowed_tries_and_forgets_in_bounded_memory() -> None:
    now = [0.0]
    limiter = FailureLimiter(allowed_tries=3, window_s=10, block_s=30, max_tracked=100, clock=lambda: now[0])
    for _ in range(2):
        limiter.charge("a")
        limiter.failed("a")
    assert not limiter.blocked("a")
    limiter.charge("a")
    limiter.refund("a")  # a success: not counted
    assert not limiter.blocked("a")
    limiter.charge("a")
    limiter.failed("a")
    assert limiter.blocked("a") and not limiter.blocked("b")
    now[0] = 11.0  # a new window, but the block lasts block_s
    assert limiter.blocked("a")
    now[0] = 31.0
    assert not limiter.blocked("a")
    for i in range(1000):
        limiter.charge(f"client-{i}")
    assert len(limiter) == 100


def test_unknown_users_cost_the_same_bcrypt_as_known_ones(
    monkeypatch: pytest.MonkeyPatch, hashes: dict[str, bytes]
) -> None:
    checks = Checks(monkeypatch)
    auth = BasicAuth(_app, hashes)
    assert _request(auth, "admin", "wrong") == 401
    assert _request(auth, "nobody", "wrong") == 401
    assert len(checks.hashes) == 2
    known, unknown = checks.hashes
    assert known == hashes["admin"] and unknown not in hashes.values()
    assert unknown[:7] == known[:7]  # "$2b$04$": the same algorithm and cost
    assert all(name.startswith("nirbridge-bcrypt") for name in checks.threads)  # never on the event loop


def test_successes_are_cached_by_a_keyed_hash_in_a_bounded_lru(
    monkeypatch: pytest.MonkeyPatch, hashes: dict[str, bytes]
) -> None:
    checks = Checks(monkeypatch)
    auth = BasicAuth(_app, hashes, max_cached=2)
    assert _request(auth, "admin", USERS["admin"]) == 200
    assert _request(auth, "admin", USERS["admin"]) == 200
    assert len(checks.hashes) == 1  # the second request did not pay bcrypt
    for name in ("reader", "third"):
        assert _request(auth, name, USERS[name]) == 200
    assert len(auth._passed) == 2  # bounded: admin, the least recently used, was forgotten
    assert all(len(key) == 32 for key in auth._passed)
    assert not any(pw.encode() in key for key in auth._passed for pw in USERS.values())
    assert _request(auth, "admin", USERS["admin"]) == 200
    assert len(checks.hashes) == 4


def test_failures_from_one_address_are_answered_without_bcrypt_after_the_limit(
    monkeypatch: pytest.MonkeyPatch, hashes: dict[str, bytes]
) -> None:
    checks = Checks(monkeypatch)
    auth = BasicAuth(_app, hashes, limiter=FailureLimiter(allowed_tries=5, window_s=60, block_s=60))
    assert _request(auth, "reader", USERS["reader"], client="10.0.0.1") == 200  # passes before the guessing
    for attempt in range(20):
        assert _request(auth, "admin", f"guess-{attempt}", client="10.0.0.1") == 401
    assert len(checks.hashes) == 1 + 5  # the guesses after the fifth cost nothing
    assert _request(auth, "admin", USERS["admin"], client="10.0.0.1") == 401  # blocked: not even checked
    assert _request(auth, "reader", USERS["reader"], client="10.0.0.1") == 200  # known credentials pass
    assert _request(auth, "admin", USERS["admin"], client="10.0.0.2") == 200  # another address is not blocked
    assert len(checks.hashes) == 1 + 5 + 1


def test_a_slow_check_never_holds_up_authenticated_requests(
    monkeypatch: pytest.MonkeyPatch, hashes: dict[str, bytes]
) -> None:
    auth = BasicAuth(_app, hashes, max_pending=2)

    async def scenario() -> tuple[float, list[int], int]:
        assert await _status(auth, "admin", USERS["admin"]) == 200  # cached from now on
        Checks(monkeypatch, delay=0.5)
        guesses = [asyncio.create_task(_status(auth, "admin", f"guess-{i}", f"10.0.1.{i}")) for i in range(2)]
        await asyncio.sleep(0.05)  # both guesses are being checked
        busy = await _status(auth, "reader", "another", "10.0.2.1")  # a third check: over max_pending
        started = time.perf_counter()
        for _ in range(20):
            assert await _status(auth, "admin", USERS["admin"]) == 200
        elapsed = time.perf_counter() - started
        return elapsed, list(await asyncio.gather(*guesses)), busy

    elapsed, guessed, busy = asyncio.run(scenario())
    assert elapsed < 0.2, f"20 authenticated requests took {elapsed:.3f} s behind two bcrypt checks"
    assert guessed == [401, 401] and busy == 429


def test_concurrent_requests_with_the_same_credentials_share_one_check(
    monkeypatch: pytest.MonkeyPatch, hashes: dict[str, bytes]
) -> None:
    checks = Checks(monkeypatch, delay=0.2)
    auth = BasicAuth(_app, hashes)

    async def scenario() -> list[int]:
        return list(await asyncio.gather(*(_status(auth, "admin", USERS["admin"]) for _ in range(8))))

    assert asyncio.run(scenario()) == [200] * 8
    assert len(checks.hashes) == 1


def test_guessing_clients_neither_stall_a_real_engine_nor_reveal_its_users() -> None:
    report = run_auth_bench(cost=10, guessers=2, requests=60, limit_s=10)
    wrong = report["wrong_password_ms"]
    known, unknown = wrong["known_user"]["median"], wrong["unknown_user"]["median"]
    assert 0.6 < unknown / known < 1.6, wrong  # was 0.4 ms against 237 ms
    assert known > 10  # bcrypt at cost 10 really ran for the unknown user too
    timings = report["authenticated_ms"]
    assert timings["guessed"]["n"] == 60 and timings["guessed"]["p50"] < 20, timings  # was ~480 ms
    assert timings["guessed_from_many_addresses"]["p50"] < 20, timings
    assert report["guesses"]["guessed"]["answered"] > 100  # blocked guesses are answered at once
