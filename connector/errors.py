"""Errors raised by nirbridge.connector.

    NirbridgeError                  everything below; the CLI maps it to an exit status
    ├── UsageError                  bad input from the user: exit 2
    │   ├── DatasetError            a BEIR folder or one of its lines is unusable (path, line, reason)
    │   ├── BadUrlError             a cluster URL that cannot be used (scheme, host)
    │   └── CheckpointMismatch      a checkpoint written for another index, query or models (use --restart)
    └── ClusterError                the cluster answered with an error, or did not answer
        ├── ClusterUnreachable      no answer at all (refused, DNS, TLS, timeout): exit 2
        ├── IndexNotFound           the named index does not exist: exit 2
        └── MigrationError          a new index could not be filled or swapped in safely (the old one stays)
    RunnerError                     where batches are enriched (connector.runner) cannot work: exit 2
    ├── BrokerUnavailable           Redis did not answer (names the URL, password hidden)
    ├── WorkerUnavailable           no worker consumes the queue (names it; says how to start one)
    │   └── BatchTimeout            workers are there, but a batch got no result within the timeout
    └── BatchFailed                 the task failed (a bad spec, a model that cannot load): every batch would

opensearch-py's exceptions are translated into these in one place, `connector.client`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BatchFailed",
    "BatchTimeout",
    "BrokerUnavailable",
    "RunnerError",
    "WorkerUnavailable",
    "BadUrlError",
    "CheckpointMismatch",
    "ClusterError",
    "ClusterUnreachable",
    "DatasetError",
    "IndexNotFound",
    "MigrationError",
    "NirbridgeError",
    "UsageError",
]


class NirbridgeError(Exception):
    """Base of every error the connector raises on purpose."""


class UsageError(NirbridgeError):
    """The user asked for something that cannot work as given."""


class DatasetError(UsageError):
    """A BEIR dataset folder, or one line in it, cannot be read."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


class BadUrlError(UsageError):
    """A cluster URL that is not http(s)://host[:port][/prefix]."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"bad cluster URL {url!r}: {reason}")


class ClusterError(NirbridgeError):
    """The cluster answered with an error status (or, for subclasses, not at all)."""

    def __init__(self, url: str, reason: str, status: int | str | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        prefix = f"{url}: " if url else ""
        suffix = f" (status {status})" if status not in (None, "N/A") else ""
        super().__init__(f"{prefix}{reason}{suffix}")


class ClusterUnreachable(ClusterError):
    """Nothing answered at the URL: refused, unknown host, TLS failure or timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, f"cannot reach the cluster: {reason}")


class IndexNotFound(ClusterError):
    """The index named on the command line does not exist."""

    def __init__(self, url: str, index: str) -> None:
        self.index = index
        super().__init__(url, f"no such index: {index}", 404)


class CheckpointMismatch(UsageError):
    """A checkpoint file belongs to another run: its index, query or model spec differ from this one's."""

    def __init__(self, path: Path | str, differences: list[str]) -> None:
        self.path = Path(path)
        self.differences = differences
        super().__init__(
            f"{self.path}: the checkpoint belongs to another run ({'; '.join(differences)}); "
            "resume with the same index, query and models, or start over with --restart"
        )


class MigrationError(ClusterError):
    """A mapping migration stopped before the swap; the original index is left as it was."""

    def __init__(self, url: str, reason: str, index: str | None = None) -> None:
        self.index = index
        super().__init__(url, reason)


class RunnerError(NirbridgeError):
    """Base of the errors a runner raises."""


class BrokerUnavailable(RunnerError):
    def __init__(self, url: str, reason: str) -> None:
        """`url` must come with its password already hidden (`nirbridge.urls.redact_url`)."""
        self.url = url
        self.reason = reason
        super().__init__(f"the Celery broker at {self.url} is unavailable: {reason}")


class WorkerUnavailable(RunnerError):
    def __init__(self, queue: str, reason: str) -> None:
        self.queue = queue
        self.reason = reason
        super().__init__(
            f"no worker is consuming queue {queue!r}: {reason} "
            f"(start one with `nirbridge worker --queues {queue}`)"
        )


class BatchTimeout(WorkerUnavailable):
    def __init__(self, queue: str, reason: str) -> None:
        self.queue = queue
        self.reason = reason
        RunnerError.__init__(self, f"queue {queue!r}: {reason}")


class BatchFailed(RunnerError):
    def __init__(self, reason: str, batch: int | None = None) -> None:
        self.reason = reason
        self.batch = batch
        where = f"batch {batch}: " if batch is not None else ""
        super().__init__(f"{where}enrichment failed: {reason}")
