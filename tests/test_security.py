"""Secured clusters: the engine with TLS and basic auth (as OpenSearch's security plugin answers), the CLI
with a CA bundle and credentials, the proxy passing each caller's own credentials on, and `nirbridge config`.

The engine runs as a real child process (`nirbridge engine serve --tls-cert --tls-key --users`) with a CA and
a server certificate made by trustme; the proxy runs under uvicorn in this process (so its log records can be
read). Passwords are hashed with bcrypt at its lowest cost to keep the test fast.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trustme
import uvicorn
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from nirbridge.connector.beir import shipped_sample
from nirbridge.connector.cli import app
from nirbridge.connector.engine_process import EngineProcess, free_port
from nirbridge.connector.proxy import make_app
from nirbridge.connector.settings import Settings

runner = CliRunner()
INDEX = "secured"
USERS = {"admin": "Adm1n-S3cret!", "reader": "r3ader-pass"}
ENV_NAMES = (
    "NIRBRIDGE_URL",
    "NIRBRIDGE_CONFIG",
    "NIRBRIDGE_USERNAME",
    "NIRBRIDGE_PASSWORD",
    "NIRBRIDGE_API_KEY",
    "NIRBRIDGE_CA_CERTS",
    "NIRBRIDGE_REQUEST_TIMEOUT",
    "NIRBRIDGE_MAX_RETRIES",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the NIRBRIDGE_* variables it means; none leak in from the shell running pytest."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an internal_users.yml of bcrypt hashes."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "node.pem", "key": folder / "node-key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(paths["cert"]), append=True)
    lines = ["_meta:", "  type: internalusers", "  config_version: 2"]
    for name, password in USERS.items():
        if name == "admin":  # as an operator makes it (cost 12); the others at bcrypt's lowest cost, faster
            made = runner.invoke(app, ["engine", "hash-password", "--password-stdin"], input=password + "\n")
            hashed = made.stdout.strip()
        else:
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        lines += [f"{name}:", f'  hash: "{hashed}"', "  backend_roles: [admin]"]
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    encrypted = serialization.BestAvailableEncryption(b"passphrase")
    paths["encrypted_key"] = folder / "encrypted-key.pem"
    paths["encrypted_key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted)
    )
    paths["users"] = folder / "internal_users.yml"
    paths["users"].write_text("\n".join(lines) + "\n")
    return paths


def _trusting(pki: dict[str, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca"]))


def _start_secure_engine(folder: Path, pki: dict[str, Path]) -> EngineProcess:
    port = free_port()
    log_path = folder / "engine.log"
    command = [sys.executable, "-m", "nirbridge.connector.cli", "engine", "serve"]
    command += ["--data-dir", str(folder / "data"), "--port", str(port)]
    command += ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]), "--users", str(pki["users"])]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return EngineProcess(process, f"https://127.0.0.1:{port}", folder / "data", log_path)


@pytest.fixture(scope="module")
def secure_engine(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Path]) -> Iterator[EngineProcess]:
    engine = _start_secure_engine(tmp_path_factory.mktemp("secure-engine"), pki)
    deadline = time.monotonic() + 60
    try:
        with httpx.Client(verify=_trusting(pki), timeout=2) as http:
            while True:
                assert engine.process.poll() is None, engine.log_tail()
                try:
                    if http.get(engine.url + "/").status_code == 401:  # up, and asking for credentials
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, engine.log_tail()
                time.sleep(0.1)
        yield engine
    finally:
        # the commands run in this process leave their clients' TLS connections open until collected, and
        # uvicorn waits (up to 30 s) for an open TLS connection to close before it stops
        gc.collect()
        engine.stop()


@pytest.fixture
def secure_env(monkeypatch: pytest.MonkeyPatch, secure_engine: EngineProcess, pki: dict[str, Path]) -> None:
    """The settings a user of the secured cluster exports: URL, CA bundle, basic auth."""
    monkeypatch.setenv("NIRBRIDGE_URL", secure_engine.url)
    monkeypatch.setenv("NIRBRIDGE_CA_CERTS", str(pki["ca"]))
    monkeypatch.setenv("NIRBRIDGE_USERNAME", "admin")
    monkeypatch.setenv("NIRBRIDGE_PASSWORD", USERS["admin"])
    monkeypatch.setenv("NIRBRIDGE_MAX_RETRIES", "0")


@pytest.fixture(scope="module")
def ingested(secure_engine: EngineProcess, pki: dict[str, Path]) -> str:
    """INDEX on the secured engine, filled by `nirbridge ingest` with a CA bundle and basic auth."""
    env = {
        "NIRBRIDGE_URL": secure_engine.url,
        "NIRBRIDGE_CA_CERTS": str(pki["ca"]),
        "NIRBRIDGE_USERNAME": "admin",
        "NIRBRIDGE_PASSWORD": USERS["admin"],
    }
    sample = str(shipped_sample().root)
    result = runner.invoke(
        app, ["ingest", "--index", INDEX, "--dataset", sample, "--limit", "40", "--json"], env=env
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["indexed"] == 40 and report["failed"] == 0
    return INDEX


# --- the engine: TLS and the security plugin's 401 ---


def test_engine_asks_for_credentials_as_the_security_plugin_does(
    secure_engine: EngineProcess, pki: dict[str, Path]
) -> None:
    with httpx.Client(verify=_trusting(pki), timeout=10) as http:
        for auth in (None, ("admin", "wrong"), ("nobody", USERS["admin"])):
            answer = http.get(secure_engine.url + "/", auth=auth)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == 'Basic realm="OpenSearch Security"'
            assert answer.text == "Unauthorized"
        assert http.head(secure_engine.url + "/").status_code == 401
        bad_header = http.get(secure_engine.url + "/", headers={"authorization": "Basic not-base64!"})
        assert bad_header.status_code == 401
        for name, password in USERS.items():
            answer = http.get(secure_engine.url + "/", auth=(name, password))
            assert answer.status_code == 200 and answer.json()["version"]["distribution"] == "opensearch"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(secure_engine.url + "/")  # the system's CAs do not know trustme's
    with pytest.raises(httpx.TransportError):
        httpx.get(secure_engine.url.replace("https://", "http://") + "/")  # HTTPS only


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "CERT"], "give both --tls-cert and --tls-key"),
        (["--tls-cert", "CA", "--tls-key", "CA"], "not a PEM certificate and its key"),
        (["--tls-cert", "CERT", "--tls-key", "ENCRYPTED"], "is encrypted: give it unencrypted"),
        (["--users", "CERT"], "users file"),
        (["--users", "MISSING"], "cannot be read"),
    ],
)
def test_engine_refuses_unusable_security_files(
    tmp_path: Path, pki: dict[str, Path], flags: list[str], message: str
) -> None:
    names = {"CERT": str(pki["cert"]), "CA": str(pki["ca"]), "MISSING": str(tmp_path / "nope.yml")}
    names["ENCRYPTED"] = str(pki["encrypted_key"])
    args = ["engine", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())]
    result = runner.invoke(app, args + [names.get(flag, flag) for flag in flags])
    assert result.exit_code == 2
    assert message in result.stderr


def test_hash_password_prints_a_bcrypt_hash() -> None:
    asked = runner.invoke(app, ["engine", "hash-password"], input="Tr0ub4dor&3\nTr0ub4dor&3\n")
    assert asked.exit_code == 0, asked.stderr
    hashed = asked.stdout.strip().splitlines()[-1]
    assert hashed.startswith("$2b$12$") and bcrypt.checkpw(b"Tr0ub4dor&3", hashed.encode())
    assert "Tr0ub4dor&3" not in asked.stdout
    mismatch = runner.invoke(app, ["engine", "hash-password"], input="one\ntwo\n")
    assert mismatch.exit_code != 0
    empty = runner.invoke(app, ["engine", "hash-password", "--password-stdin"], input="\n")
    assert empty.exit_code == 2 and "the password is empty" in empty.stderr


def test_users_file_needs_bcrypt_hashes(tmp_path: Path) -> None:
    users = tmp_path / "users.yml"
    users.write_text('admin:\n  hash: "plain-text-password"\n')
    args = ["engine", "serve", "--data-dir", str(tmp_path / "data"), "--users", str(users)]
    result = runner.invoke(app, args + ["--port", str(free_port())])
    assert result.exit_code == 2
    assert f"users file {users}: user 'admin'" in result.stderr and "bcrypt" in result.stderr
    assert "plain-text-password" not in result.stderr


# --- the CLI against the secured engine ---


@pytest.mark.usefixtures("secure_env")
def test_search_and_status_with_ca_bundle_and_basic_auth(ingested: str) -> None:
    found = runner.invoke(app, ["search", "--index", ingested, "--q", "vitamin d", "--json"])
    assert found.exit_code == 0, found.stderr
    hits = json.loads(found.stdout.strip().splitlines()[-1])["hits"]
    assert hits and all(hit["score"] > 0 for hit in hits)
    status = runner.invoke(app, ["status", "--index", ingested, "--json"])
    report = json.loads(status.stdout.strip().splitlines()[-1])
    assert report["cluster"]["reachable"] is True and report["cluster"]["error"] is None
    assert report["indices"][0]["docs"] == 40


@pytest.mark.usefixtures("secure_env")
def test_wrong_password_is_a_clear_usage_error(monkeypatch: pytest.MonkeyPatch, ingested: str) -> None:
    monkeypatch.setenv("NIRBRIDGE_PASSWORD", "not-the-password")
    for args in (["search", "--index", ingested, "--q", "statins"], ["status"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert "authentication failed" in result.stderr and "NIRBRIDGE_PASSWORD" in result.stderr
        assert "not-the-password" not in result.stderr + result.stdout


@pytest.mark.usefixtures("secure_env")
def test_without_the_ca_bundle_the_certificate_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIRBRIDGE_CA_CERTS")
    result = runner.invoke(app, ["search", "--index", INDEX, "--q", "statins"])
    assert result.exit_code == 2
    assert "TLS certificate not trusted" in result.stderr and "NIRBRIDGE_CA_CERTS" in result.stderr


def test_incomplete_or_conflicting_credentials_are_usage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NIRBRIDGE_USERNAME", "admin")
    monkeypatch.setenv("NIRBRIDGE_PASSWORD", "pw")
    monkeypatch.setenv("NIRBRIDGE_API_KEY", "k")
    result = runner.invoke(app, ["search", "--index", INDEX, "--q", "x"])
    assert result.exit_code == 2 and "NIRBRIDGE_API_KEY are set: choose one" in result.stderr
    monkeypatch.delenv("NIRBRIDGE_API_KEY")
    monkeypatch.delenv("NIRBRIDGE_PASSWORD")
    result = runner.invoke(app, ["search", "--index", INDEX, "--q", "x"])
    assert result.exit_code == 2 and "NIRBRIDGE_USERNAME is set without NIRBRIDGE_PASSWORD" in result.stderr
    monkeypatch.delenv("NIRBRIDGE_USERNAME")
    monkeypatch.setenv("NIRBRIDGE_CA_CERTS", str(tmp_path / "missing.pem"))
    result = runner.invoke(app, ["search", "--index", INDEX, "--q", "x"])
    assert result.exit_code == 2 and "NIRBRIDGE_CA_CERTS" in result.stderr


# --- the proxy passes each caller's credentials on ---


class ProxyThread:
    """uvicorn serving the proxy app on a free port, in a thread of this process (its logs land in caplog)."""

    def __init__(self, settings: Settings) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(make_app(settings, reranker=None), port=port, log_level="info", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the proxy did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _search(http: httpx.Client, url: str, auth: Any = None) -> httpx.Response:
    body = {"size": 3, "query": {"match": {"text": "vitamin"}}}
    return http.post(f"{url}/{INDEX}/_search", json=body, auth=auth)


def test_proxy_forwards_the_callers_credentials(
    secure_engine: EngineProcess, pki: dict[str, Path], ingested: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(url=secure_engine.url, ca_certs=pki["ca"])  # no credentials of its own
    proxy = ProxyThread(settings)
    try:
        with httpx.Client(timeout=30) as http:
            refused = _search(http, proxy.url, ("reader", "wrong-password"))
            assert refused.status_code == 401 and refused.text == "Unauthorized"
            assert refused.headers["www-authenticate"] == 'Basic realm="OpenSearch Security"'
            assert _search(http, proxy.url).status_code == 401  # none sent, none configured
            answer = _search(http, proxy.url, ("reader", USERS["reader"]))
            assert answer.status_code == 200, answer.text
            assert answer.json()["hits"]["hits"]
            # the proxy's own route asks the cluster for the mapping with the caller's credentials too
            built = {"q": "vitamin", "mode": "bm25", "size": 3}
            route = f"{proxy.url}/{INDEX}/_nirbridge/search"
            refused = http.post(route, json=built, auth=("reader", "wrong-password"))
            assert refused.status_code == 401 and "www-authenticate" in refused.headers
            answer = http.post(route, json=built, auth=("reader", USERS["reader"]))
            assert answer.status_code == 200, answer.text
            assert answer.json()["hits"]["hits"]
    finally:
        proxy.stop()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for password in ("wrong-password", USERS["reader"]):
        token = base64.b64encode(f"reader:{password}".encode()).decode()
        assert password not in logged and token not in logged


def test_proxy_lends_its_credentials_to_callers_without_any_only_when_told(
    secure_engine: EngineProcess, pki: dict[str, Path], ingested: str
) -> None:
    own = {"url": secure_engine.url, "ca_certs": pki["ca"], "username": "reader", "password": USERS["reader"]}
    proxy = ProxyThread(Settings(**own))
    try:
        with httpx.Client(timeout=30) as http:
            # issue 13: anonymous callers searched as the proxy's user; now the cluster asks them who they are
            refused = _search(http, proxy.url)
            assert refused.status_code == 401 and "www-authenticate" in refused.headers
            blank = {"authorization": ""}  # an empty header is no credentials either
            assert http.post(f"{proxy.url}/{INDEX}/_search", json={}, headers=blank).status_code == 401
            assert _search(http, proxy.url, ("reader", USERS["reader"])).status_code == 200
            ready = http.get(f"{proxy.url}/_nirbridge/ready").json()  # its own question: its own credentials
            assert ready["cluster"]["ok"] is True
    finally:
        proxy.stop()
    lending = ProxyThread(Settings(**own, proxy_lend_credentials=True))
    try:
        with httpx.Client(timeout=30) as http:
            assert _search(http, lending.url).status_code == 200
            # a caller's own (wrong) credentials are not replaced by the proxy's
            assert _search(http, lending.url, ("admin", "wrong")).status_code == 401
    finally:
        lending.stop()


# --- which credentials go out: API key, URL credentials, the proxy's own (seen by a recording server) ---


class Recording(ThreadingHTTPServer):
    """An HTTP server that answers like an empty cluster and keeps each request's Authorization header."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.seen: list[str | None] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recording

    def _answer(self) -> None:
        self.server.seen.append(self.headers.get("authorization"))
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/":
            body: dict[str, Any] = {"version": {"number": "3.3.0", "distribution": "opensearch"}}
        else:
            body = {"took": 1, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer  # noqa: N815 (http.server's naming)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording() -> Iterator[Recording]:
    server = Recording()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_cli_sends_api_key_or_basic_auth(monkeypatch: pytest.MonkeyPatch, recording: Recording) -> None:
    monkeypatch.setenv("NIRBRIDGE_URL", recording.url)
    monkeypatch.setenv("NIRBRIDGE_API_KEY", "key-123")
    assert runner.invoke(app, ["search", "--index", "i", "--q", "x"]).exit_code == 0
    assert recording.seen and set(recording.seen) == {"ApiKey key-123"}
    monkeypatch.delenv("NIRBRIDGE_API_KEY")
    monkeypatch.setenv("NIRBRIDGE_USERNAME", "ops")
    monkeypatch.setenv("NIRBRIDGE_PASSWORD", "pa:ss")
    recording.seen.clear()
    assert runner.invoke(app, ["search", "--index", "i", "--q", "x"]).exit_code == 0
    assert set(recording.seen) == {_basic("ops", "pa:ss")}
    recording.seen.clear()  # credentials written into the URL win over the settings' ones
    url = recording.url.replace("http://", "http://url-user:url%40pass@")
    assert runner.invoke(app, ["search", "--index", "i", "--q", "x", "--url", url]).exit_code == 0
    assert set(recording.seen) == {_basic("url-user", "url@pass")}


def test_proxy_lends_its_api_key_only_when_told(recording: Recording) -> None:
    for lend, anonymous in ((False, None), (True, "ApiKey proxy-key")):
        recording.seen.clear()
        proxy = ProxyThread(Settings(url=recording.url, api_key="proxy-key", proxy_lend_credentials=lend))
        try:
            with httpx.Client(timeout=30) as http:
                assert _search(http, proxy.url).status_code == 200
                assert _search(http, proxy.url, ("caller", "own")).status_code == 200
        finally:
            proxy.stop()
        assert recording.seen == [anonymous, _basic("caller", "own")]


# --- nirbridge config: sources, precedence, masking, bad files ---


def _config(args: list[str] | None = None) -> dict[str, Any]:
    result = runner.invoke(app, ["config", "--json", *(args or [])])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_config_reports_sources_with_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "nirbridge.toml"
    path.write_text('url = "http://from-file:9200"\nrequest_timeout = 12.5\nmax_retries = 7\n')
    monkeypatch.setenv("NIRBRIDGE_CONFIG", str(path))
    monkeypatch.setenv("NIRBRIDGE_MAX_RETRIES", "1")
    shown = _config()
    assert shown["config_file"] == str(path)
    settings = shown["settings"]
    assert settings["url"] == {"value": "http://from-file:9200", "source": "file", "env": "NIRBRIDGE_URL"}
    assert (settings["request_timeout"]["value"], settings["request_timeout"]["source"]) == (12.5, "file")
    assert (settings["max_retries"]["value"], settings["max_retries"]["source"]) == (1, "env")  # env > file
    assert (settings["verify_certs"]["value"], settings["verify_certs"]["source"]) == (True, "default")
    flagged = _config(["--url", "http://from-flag:9200"])["settings"]["url"]
    assert (flagged["value"], flagged["source"]) == ("http://from-flag:9200", "flag")  # flag > env > file
    monkeypatch.setenv("NIRBRIDGE_URL", "http://from-env:9200")
    assert _config()["settings"]["url"]["source"] == "env"


def test_config_masks_every_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "nirbridge.toml"
    path.write_text('broker_url = "redis://:redis-Secret-1@127.0.0.1:6379/0"\nusername = "ops"\n')
    monkeypatch.setenv("NIRBRIDGE_CONFIG", str(path))
    monkeypatch.setenv("NIRBRIDGE_PASSWORD", "basic-Secret-2")
    monkeypatch.setenv("NIRBRIDGE_RESULT_BACKEND", "redis://user:backend-Secret-3@[::1]:6379/1")
    text = runner.invoke(app, ["config", "--url", "https://admin:url-Secret-4@search.example:9200"])
    as_json = runner.invoke(app, ["config", "--json"])
    for result in (text, as_json):
        assert result.exit_code == 0, result.stderr
        for secret in ("redis-Secret-1", "basic-Secret-2", "backend-Secret-3", "url-Secret-4"):
            assert secret not in result.stdout + result.stderr
    assert "https://admin:****@search.example:9200" in text.stdout
    settings = json.loads(as_json.stdout)["settings"]
    assert settings["password"] == {"value": "****", "source": "env", "env": "NIRBRIDGE_PASSWORD"}
    assert settings["broker_url"]["value"] == "redis://:****@127.0.0.1:6379/0"
    assert settings["result_backend"]["value"] == "redis://user:****@[::1]:6379/1"
    assert settings["username"] == {"value": "ops", "source": "file", "env": "NIRBRIDGE_USERNAME"}
    assert settings["api_key"]["value"] is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("url = \n", "not valid TOML"),
        ('urll = "http://x:9200"\n', ": urll: no such setting"),
        ('NIRBRIDGE_URL = "http://x:9200"\n', "NIRBRIDGE_URL: no such setting (write it as 'url')"),
        ('max_retries = "many"\n', ": max_retries: Input should be a valid integer"),
        ('[url]\nhost = "x"\n', ": url: a table where a single value belongs"),
    ],
)
def test_bad_config_file_names_the_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "nirbridge.toml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("NIRBRIDGE_CONFIG", str(path))
    for args in (["config"], ["search", "--index", "x", "--q", "y"], ["status"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert str(path) in result.stderr and expected in result.stderr, result.stderr


def test_ingest_with_credentials_from_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secure_engine: EngineProcess, pki: dict[str, Path]
) -> None:
    path = tmp_path / "nirbridge.toml"
    path.write_text(
        f'url = "{secure_engine.url}"\nca_certs = "{pki["ca"]}"\n'
        f'username = "admin"\npassword = "{USERS["admin"]}"\n'
    )
    monkeypatch.setenv("NIRBRIDGE_CONFIG", str(path))
    sample = str(shipped_sample().root)
    result = runner.invoke(app, ["ingest", "--index", "from-file", "--dataset", sample, "--limit", "5"])
    assert result.exit_code == 0, result.stderr
    assert "indexed 5 documents" in result.stderr + result.stdout
