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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
from pathlib import Path
from typing import Any

import bcrypt
import yaml

__all__ = ["BasicAuth", "SecurityConfigError", "check_tls", "hash_password", "load_users"]

CHALLENGE = b'Basic realm="OpenSearch Security"'
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
MAX_CACHED = 1024


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


class BasicAuth:
    """ASGI middleware: HTTP requests pass only with the Basic credentials of a user in `users`.

    bcrypt is slow on purpose (about 0.25 s at cost 12), and the engine serves one request at a time, so a
    header that passed once is remembered by its SHA-256 (never in plain text), as the security plugin caches
    authenticated users. Failures are never cached: each wrong guess costs a full bcrypt check.
    """

    def __init__(self, app: Any, users: dict[str, bytes]) -> None:
        self.app = app
        self.users = users
        self._passed: set[bytes] = set()

    def authenticated(self, header: bytes | None) -> bool:
        if not header:
            return False
        digest = hashlib.sha256(header).digest()
        if digest in self._passed:
            return True
        credentials = _credentials(header)
        if credentials is None:
            return False
        hashed = self.users.get(credentials[0])
        if hashed is None or not bcrypt.checkpw(credentials[1], hashed):
            return False
        if len(self._passed) >= MAX_CACHED:  # many distinct headers: start over rather than grow
            self._passed.clear()
        self._passed.add(digest)
        return True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), None)
        if self.authenticated(header):
            await self.app(scope, receive, send)
            return
        body = b"" if scope["method"] == "HEAD" else b"Unauthorized"
        headers = [
            (b"www-authenticate", CHALLENGE),
            (b"content-type", b"text/plain; charset=UTF-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
