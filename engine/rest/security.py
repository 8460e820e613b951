"""TLS and HTTP basic authentication for the engine, answered as OpenSearch's security plugin answers them.

    users = load_users("internal_users.yml")        # {name: bcrypt hash}
    app = BasicAuth(create_app(data_dir), users)    # plain ASGI middleware in front of the engine
    check_tls("node.pem", "node-key.pem")           # before uvicorn gets them
    hash_password("s3cret")                         # "$2b$12$...": a users file's `hash`

The users file has the shape of the security plugin's `internal_users.yml`: a mapping from user name to an
entry whose `hash` is a bcrypt hash (what the plugin's `tools/hash.sh` prints, `$2y$12$...`); other keys of an
entry (`backend_roles`, `reserved`, ...) and the `_meta` entry are accepted and ignored: every user may do
everything (there are no roles).

A request without credentials, or with wrong ones, gets what the plugin's HTTPBasicAuthenticator answers:
401, `WWW-Authenticate: Basic realm="OpenSearch Security"` and the text body `Unauthorized` (restored in
opensearch-project/security#4233 after 2.11 had sent none).

bcrypt is slow on purpose (about 0.25 s at cost 12) and the engine serves every request on one event loop, so
:class:`BasicAuth` keeps wrong passwords from costing anyone else anything (issue 13):

- bcrypt runs in a small thread pool, off the loop (the bcrypt package releases the GIL while hashing);
- an unknown user is checked against a dummy hash of the users' cost, so a wrong password takes as long for
  a name that exists as for one that does not (no user enumeration by timing);
- a success is remembered, as the plugin caches authenticated users, by an HMAC of user and password under a
  key drawn at start (never the password itself), in a bounded LRU; concurrent requests with the same
  credentials share one check;
- failures are limited per client address, as the plugin's `auth_failure_listeners` of type `ip` do
  (`allowed_tries`, `time_window_seconds`, `block_expiry_seconds`, `max_tracked_clients`): after 10 within
  60 s the address is answered 401 at once, without bcrypt, for 60 s. Credentials that passed before still
  pass (the cache is asked first); new ones from that address wait for the block to end;
- at most `max_pending` checks wait for the pool; past that the answer is 429 at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import orjson
import yaml

from .. import errors

__all__ = ["BasicAuth", "FailureLimiter", "SecurityConfigError", "check_tls", "hash_password", "load_users"]

log = logging.getLogger("nirbridge.engine")

CHALLENGE = b'Basic realm="OpenSearch Security"'
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
MAX_CACHED = 1024  # credentials remembered after a success
ALLOWED_TRIES = 10  # failures per client address within WINDOW_S before it is blocked
WINDOW_S = 60.0
BLOCK_S = 60.0
MAX_TRACKED_CLIENTS = 10_000
MAX_PENDING = 32  # bcrypt checks waiting for the pool
DEFAULT_COST = 12


class SecurityConfigError(ValueError):
    """A users file or a TLS certificate/key the engine cannot use; the message names the file."""


def load_users(path: str | Path) -> dict[str, bytes]:
    """User name -> bcrypt hash from an `internal_users.yml`-shaped file; SecurityConfigError if unusable."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SecurityConfigError(f"users file {path}: cannot be read: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise SecurityConfigError(f"users file {path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SecurityConfigError(f"users file {path}: expected a mapping of user names to entries")
    users: dict[str, bytes] = {}
    for name, entry in data.items():
        if name == "_meta":
            continue
        hashed = entry.get("hash") if isinstance(entry, dict) else None
        if not isinstance(hashed, str) or not hashed.startswith(BCRYPT_PREFIXES):
            raise SecurityConfigError(
                f"users file {path}: user {name!r}: `hash` must be a bcrypt hash ($2y$..., $2b$...)"
            )
        users[str(name)] = hashed.encode("ascii")
    if not users:
        raise SecurityConfigError(f"users file {path}: names no user")
    return users


def hash_password(password: str, rounds: int = 12) -> str:
    """The bcrypt hash of `password` (cost 12, as the security plugin's `tools/hash.sh`) for a users file."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def check_tls(cert: str | Path, key: str | Path) -> None:
    """SecurityConfigError naming the files unless `cert` and `key` load as a PEM certificate and key."""

    def no_password() -> bytes:  # else OpenSSL would prompt on the terminal for an encrypted key's passphrase
        raise SecurityConfigError(
            f"TLS: the key {key} is encrypted: give it unencrypted (PEM, no passphrase)"
        )

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key), no_password)
    except FileNotFoundError as error:
        raise SecurityConfigError(f"TLS: no such file: {error.filename}") from None
    except (ssl.SSLError, OSError) as error:
        reason = f"{cert} and {key} are not a PEM certificate and its key: {error}"
        raise SecurityConfigError(f"TLS: {reason}") from None


def _credentials(header: bytes) -> tuple[str, bytes] | None:
    """(user, password) from a `Basic` Authorization value; None when it is missing or malformed."""
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password


@dataclass
class _Failures:
    window_start: float
    count: int = 0  # failed and in-flight attempts in the window
    blocked_until: float = 0.0


class FailureLimiter:
    """Authentication attempts per client (an address), in fixed windows, in bounded memory.

    An attempt is charged before its check runs (so concurrent guesses count too) and refunded if it
    succeeds. A client with ``allowed_tries`` charged attempts in the current ``window_s`` is blocked; one
    that reached it with failures stays blocked ``block_s`` seconds. At most ``max_tracked`` clients are
    remembered, the least recently charged forgotten first.
    """

    def __init__(self, allowed_tries: int = ALLOWED_TRIES, window_s: float = WINDOW_S,
                 block_s: float = BLOCK_S, max_tracked: int = MAX_TRACKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed_tries = allowed_tries
        self.window_s = window_s
        self.block_s = block_s
        self.max_tracked = max_tracked
        self.clock = clock
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def blocked(self, client: str) -> bool:
        entry = self._clients.get(client)
        if entry is None:
            return False
        now = self.clock()
        if entry.blocked_until > now:
            return True
        return now - entry.window_start < self.window_s and entry.count >= self.allowed_tries

    def charge(self, client: str) -> None:
        now = self.clock()
        entry = self._clients.get(client)
        if entry is None or now - entry.window_start >= self.window_s:
            entry = _Failures(now, 0, entry.blocked_until if entry is not None else 0.0)
        entry.count += 1
        self._clients[client] = entry
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_tracked:
            self._clients.popitem(last=False)

    def failed(self, client: str) -> None:
        entry = self._clients.get(client)
        if entry is not None and entry.count >= self.allowed_tries:
            entry.blocked_until = self.clock() + self.block_s

    def refund(self, client: str) -> None:
        entry = self._clients.get(client)
        if entry is not None and entry.count > 0:
            entry.count -= 1


def _cost(hashed: bytes) -> int:
    """The cost (log2 rounds) of a bcrypt hash: ``$2b$12$...`` -> 12."""
    try:
        return int(hashed[4:6])
    except ValueError:
        return DEFAULT_COST


def _check_password(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt cannot read (load_users checks only its prefix): no match
        return False


class BasicAuth:
    """ASGI middleware: HTTP requests pass only with the Basic credentials of a user in `users`.

    See the module's docstring for what a wrong password costs: bcrypt in ``workers`` threads off the event
    loop, the same work for unknown users, an HMAC-keyed LRU of ``max_cached`` successes, a
    :class:`FailureLimiter` per client address, and 429 past ``max_pending`` waiting checks.
    """

    def __init__(self, app: Any, users: dict[str, bytes], *, workers: int | None = None,
                 max_cached: int = MAX_CACHED, max_pending: int = MAX_PENDING,
                 limiter: FailureLimiter | None = None) -> None:
        self.app = app
        self.users = users
        self.max_cached = max_cached
        self.max_pending = max_pending
        self.limiter = limiter if limiter is not None else FailureLimiter()
        self._key = secrets.token_bytes(32)  # the cache's keys mean nothing outside this process
        self._passed: OrderedDict[bytes, None] = OrderedDict()
        self._checking: dict[bytes, asyncio.Future[bool]] = {}
        cost = max((_cost(h) for h in users.values()), default=DEFAULT_COST)
        # what an unknown user's password is checked against: the same work as a known user's
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=min(max(cost, 4), 31)))
        self._pool = ThreadPoolExecutor(max_workers=workers or min(2, os.cpu_count() or 1),
                                        thread_name_prefix="nirbridge-bcrypt")

    async def verdict(self, header: bytes | None, client: str) -> int:
        """200 to let the request through, 401 or 429 to answer it."""
        if not header:
            return 401
        credentials = _credentials(header)
        if credentials is None:
            return 401
        user, password = credentials
        key = hmac.new(self._key, user.encode("utf-8") + b":" + password, hashlib.sha256).digest()
        if key in self._passed:
            self._passed.move_to_end(key)
            return 200
        shared = self._checking.get(key)
        if shared is not None:  # the same credentials are being checked: one bcrypt for all of them
            return 200 if await asyncio.shield(shared) else 401
        if self.limiter.blocked(client):
            return 401
        if len(self._checking) >= self.max_pending:
            return 429
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._checking[key] = future
        self.limiter.charge(client)
        passed = False
        try:
            hashed = self.users.get(user)
            passed = await asyncio.get_running_loop().run_in_executor(
                self._pool, _check_password, password, hashed if hashed is not None else self._dummy
            )
            passed = passed and hashed is not None
        finally:
            del self._checking[key]
            future.set_result(passed)
        if not passed:
            self.limiter.failed(client)
            return 401
        self.limiter.refund(client)
        self._passed[key] = None
        while len(self._passed) > self.max_cached:
            self._passed.popitem(last=False)
        return 200

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), None)
        client = (scope.get("client") or ("", 0))[0] or ""
        status = await self.verdict(header, client)
        if status == 200:
            await self.app(scope, receive, send)
            return
        if status == 429:
            body = orjson.dumps(errors.EngineError(
                429, "rejected_execution_exception",
                f"too many authentication checks waiting (more than {self.max_pending}); try again later",
            ).to_body())
            headers = [(b"content-type", b"application/json; charset=UTF-8")]
        else:
            body = b"Unauthorized"
            headers = [(b"www-authenticate", CHALLENGE), (b"content-type", b"text/plain; charset=UTF-8")]
        if scope["method"] == "HEAD":
            body = b""
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
