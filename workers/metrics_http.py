"""Metrics over HTTP: `nirbridge worker --metrics-port N`, summed over Celery's pool processes.

    server = serve_worker_metrics(9465)     # before nirbridge.workers.metrics is imported; then run_worker
    server = serve_registry(9464, registry) # any registry (connector.metrics: the enrichment job's)
    server.close()

Celery's default pool forks processes, and each counts in its own memory, out of reach of an HTTP server in
the parent. prometheus_client's multiprocess mode keeps every process's values in files under
`PROMETHEUS_MULTIPROC_DIR`, and its `MultiProcessCollector` sums them at each scrape. The mode is chosen
when a metric is created, so `serve_worker_metrics` must run before `nirbridge.workers.metrics` is imported
(a RuntimeError says so otherwise). The folder is `PROMETHEUS_MULTIPROC_DIR` when set (its old `.db` files
are removed: they would add a previous run's counts), else a new temporary one, removed at exit. The
threads and solo pools (`celery worker --pool threads|solo`) need none of this, and work with it too.

prometheus_client is imported inside the functions: importing it reads `PROMETHEUS_MULTIPROC_DIR`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["MULTIPROC_ENV", "MetricsServer", "serve_registry", "serve_worker_metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsServer:
    """prometheus_client's HTTP server on a port, in a thread of this process; `close()` stops it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self.port = int(server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_registry(port: int, registry: Any, host: str = "127.0.0.1") -> MetricsServer:
    """`registry` over HTTP on `host:port` (any path answers); OSError when the port cannot be listened on."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)


def _multiprocess_dir() -> Path:
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        return folder
    folder = Path(tempfile.mkdtemp(prefix="nirbridge-worker-metrics-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = str(folder)  # pool processes inherit it
    return folder


def serve_worker_metrics(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """The workers' metrics of this process and of every process it forks, on `host:port`."""
    if "nirbridge.workers.metrics" in sys.modules:
        raise RuntimeError(
            "the workers' metrics were created before multiprocess mode was set up: call "
            "serve_worker_metrics before importing nirbridge.workers.metrics (or tasks)"
        )
    folder = _multiprocess_dir()
    from prometheus_client import CollectorRegistry, multiprocess, values

    # prometheus_client chooses its value class when it is first imported, maybe before the variable was set
    values.ValueClass = values.get_value_class()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return serve_registry(port, registry, host)
