"""Run the embedded engine (`nirbridge engine serve`) as a child process, for the demo and for tests.

    with running_engine() as engine:          # a free port, a temporary data directory
        client = make_client(engine.url)

The child is this interpreter running `python -m nirbridge.connector.cli engine serve ...`; its output goes
to a log file whose tail is quoted when it fails to come up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import NirbridgeError

__all__ = ["EngineFailedToStart", "EngineProcess", "free_port", "running_engine"]


class EngineFailedToStart(NirbridgeError):
    """The engine process exited, or did not answer GET / in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EngineProcess:
    """A started `nirbridge engine serve` child process."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll GET / until it answers 200; EngineFailedToStart (with the log's tail) otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineFailedToStart(
                    f"the engine exited with status {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise EngineFailedToStart(
            f"the engine did not answer at {self.url} within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_engine(
    data_dir: Path, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None
) -> EngineProcess:
    """Start the engine on `port` (a free one when None) without waiting for it."""
    port = port or free_port(host)
    log_path = log_path or data_dir.parent / f"{data_dir.name}.engine.log"
    command = [
        sys.executable,
        "-m",
        "nirbridge.connector.cli",
        "engine",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ)
        )
    return EngineProcess(process, f"http://{host}:{port}", data_dir, log_path)


@contextmanager
def running_engine(
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[EngineProcess]:
    """A running engine for the length of the block; a temporary data directory unless one is given."""
    with tempfile.TemporaryDirectory(prefix="nirbridge-engine-") as scratch:
        directory = data_dir or Path(scratch) / "data"
        engine = start_engine(directory, host, port, Path(scratch) / "engine.log")
        try:
            engine.wait_ready(startup_timeout)
            yield engine
        finally:
            engine.stop()
