"""A real redis-server and a real Celery worker (`nirbridge worker`) as child processes on this machine.

For tests and benchmarks (and one-machine setups): each is started on a free local port / in its own process
session, and stopped (or SIGKILLed, to play a lost machine) by the caller.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

__all__ = ["RedisServer", "WorkerProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """redis-server on a free port, persisting nothing, its files in `directory`."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it with apt-get)")
        self.executable = executable
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._start()

    def _start(self) -> None:
        with (self.directory / "redis.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
                + ["--appendonly", "no", "--dir", str(self.directory)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def restart(self) -> None:
        """Start it again on the same port after `stop` (an outage ends; it comes back empty)."""
        if self.process.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is still running")
        self._start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerProcess:
    """`python -m nirbridge worker` in its own session (so that a SIGKILL can take its pool with it)."""

    def __init__(
        self,
        broker: str,
        backend: str,
        directory: Path,
        queues: str = "enrich,rerank",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log = directory / f"worker-{self.hostname.split('@')[0]}.log"
        env = {
            **os.environ,
            "NIRBRIDGE_BROKER_URL": broker,
            "NIRBRIDGE_RESULT_BACKEND": backend,
            "NIRBRIDGE_CACHE_DIR": str(directory / "cache"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **(env or {}),
        }
        command = [sys.executable, "-m", "nirbridge", "worker", "--queues", queues]
        command += ["--concurrency", str(concurrency), "--loglevel", "info", "--hostname", self.hostname]
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (a machine lost), and reap it."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
