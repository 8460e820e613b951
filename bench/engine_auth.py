"""What wrong passwords cost an engine started with ``--users`` (issue 13, item 6).

    .venv/bin/python -m nirbridge.bench.engine_auth [--cost 12] [--guessers 2] [--requests 200]

Starts ``nirbridge engine serve --users FILE`` (one user, ``admin``, a bcrypt hash of cost ``--cost``, as
``engine hash-password`` makes it) on a free port, plain HTTP, and measures, in this order:

1. ``wrong_password_ms``: a wrong password for the known user and for an unknown user, alternated, 4 times
   each, on a fresh engine (below the failure limit): equal times mean no user enumeration by timing;
2. ``authenticated_ms.idle``: ``GET /`` with the right password over one keep-alive connection (the first
   request, which pays bcrypt once, is left out);
3. ``authenticated_ms.guessed``: the same while ``--guessers`` threads send wrong passwords for ``admin`` as
   fast as the engine answers them, from 127.0.0.1; ``guesses.guessed`` counts their answers by status;
4. ``authenticated_ms.guessed_from_many_addresses``: the same with every guesser changing its source address
   (127.0.N.M) every 5 guesses, so that a limit per client address never applies: what is left is the cost
   of the guesses' bcrypt checks themselves.

The last line on stdout is one JSON object. Timings are wall-clock on this machine, shared with others: run it
twice before trusting a difference.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import bcrypt

from nirbridge.connector.engine_process import free_port

PASSWORD = "right-Passw0rd"


def _header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def _get(connection: http.client.HTTPConnection, headers: dict[str, str]) -> int:
    connection.request("GET", "/", headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50": round(1000 * statistics.median(ordered), 2),
        "p95": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "max": round(1000 * ordered[-1], 2),
    }


def _timed_requests(port: int, headers: dict[str, str], count: int, limit_s: float) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    assert _get(connection, headers) == 200  # pays bcrypt once
    samples = []
    deadline = time.monotonic() + limit_s
    while len(samples) < count and time.monotonic() < deadline:
        started = time.perf_counter()
        status = _get(connection, headers)
        samples.append(time.perf_counter() - started)
        assert status == 200, status
    connection.close()
    return samples


def _guess(port: int, stop: threading.Event, statuses: Counter[int], worker: int, spread: bool) -> None:
    def connect(attempt: int) -> http.client.HTTPConnection:
        source = (f"127.0.{worker + 1}.{(attempt // 5) % 250 + 1}", 0) if spread else None
        return http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=source)

    connection = connect(0)
    attempt = 0
    while not stop.is_set():
        attempt += 1
        if spread and attempt % 5 == 0:
            connection.close()
            connection = connect(attempt)
        try:
            statuses[_get(connection, _header("admin", f"guess-{worker}-{attempt}"))] += 1
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = connect(attempt)
    connection.close()


def _under_guessing(port: int, guessers: int, spread: bool, good: dict[str, str], requests: int,
                    limit_s: float) -> tuple[list[float], dict[str, Any]]:
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    threads = [threading.Thread(target=_guess, args=(port, stop, statuses, i, spread))
               for i in range(guessers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the guessers are under way
    started = time.monotonic()
    samples = _timed_requests(port, good, requests, limit_s)
    elapsed = time.monotonic() - started + 1.0
    stop.set()
    for thread in threads:
        thread.join(60)
    answered = sum(statuses.values())
    return samples, {"answered": answered, "by_status": dict(statuses), "per_s": round(answered / elapsed, 1)}


def run(cost: int, guessers: int, requests: int, limit_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as scratch:
        users = Path(scratch) / "users.yml"
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=cost)).decode()
        users.write_text(f'admin:\n  hash: "{hashed}"\n')
        port = free_port()
        command = [sys.executable, "-m", "nirbridge.connector.cli", "engine", "serve", "--data-dir",
                   str(Path(scratch) / "data"), "--port", str(port), "--users", str(users)]
        with open(Path(scratch) / "engine.log", "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            _wait_for_401(port, process)
            wrong: dict[str, list[float]] = {"known_user": [], "unknown_user": []}
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for attempt in range(4):
                for kind, user in (("known_user", "admin"), ("unknown_user", "nobody")):
                    started = time.perf_counter()
                    assert _get(connection, _header(user, f"wrong-{attempt}")) == 401
                    wrong[kind].append(time.perf_counter() - started)
            connection.close()
            good = _header("admin", PASSWORD)
            idle = _timed_requests(port, good, requests, limit_s)
            guessed, guesses = _under_guessing(port, guessers, False, good, requests, limit_s)
            spread, spread_guesses = _under_guessing(port, guessers, True, good, requests, limit_s)
        finally:
            process.terminate()
            process.wait(30)
    return {
        "bcrypt_cost": cost,
        "guessers": guessers,
        "wrong_password_ms": {
            kind: {"median": round(1000 * statistics.median(v), 2), "all": [round(1000 * x, 2) for x in v]}
            for kind, v in wrong.items()
        },
        "authenticated_ms": {"idle": _percentiles(idle), "guessed": _percentiles(guessed),
                             "guessed_from_many_addresses": _percentiles(spread)},
        "guesses": {"guessed": guesses, "guessed_from_many_addresses": spread_guesses},
        "load_1min": round(os.getloadavg()[0], 2),
    }


def _wait_for_401(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the engine exited with status {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if _get(connection, {}) == 401:
                connection.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the engine did not answer within 60 s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cost", type=int, default=12, help="bcrypt cost of the user's hash (12: default)")
    parser.add_argument("--guessers", type=int, default=2, help="threads sending wrong passwords")
    parser.add_argument("--requests", type=int, default=200, help="authenticated requests per phase")
    parser.add_argument("--limit-s", type=float, default=20.0, help="at most this long per phase")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.cost, args.guessers, args.requests, args.limit_s)))


if __name__ == "__main__":
    main()
