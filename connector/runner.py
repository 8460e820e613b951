"""Where the enrichment of a batch runs: in this process, or on Celery workers. One interface, two runners.

    runner = CeleryRunner(in_flight=4, timeout=120)      # or LocalRunner()
    runner.check()                                       # BrokerUnavailable / WorkerUnavailable, fast
    for done in runner.enrich(spec, batches):            # batches: iterable of lists of {"_id", "_source"}
        done.docs, done.results                          # in the order the batches came, one result per doc

`LocalRunner` calls `workers.pipeline.run_enrichment` directly: the same code a worker runs. `CeleryRunner`
sends each batch to the `enrich` queue by task name and keeps up to `in_flight` batches there, so that reading
the index and writing results hide behind the workers' compute. It never hangs:

    RunnerError (connector.errors; the CLI exits 2 on any of them)
    ├── BrokerUnavailable       Redis did not answer (names the URL, password hidden)
    ├── WorkerUnavailable       no worker consumes the queue (names it; says how to start one)
    │   └── BatchTimeout        workers are there, but a batch got no result within the timeout
    └── BatchFailed             the task failed (a bad spec, a model that cannot load): every batch would

Per-document failures are not errors: they are `DocResult`s with a reason, in `done.results`. Task names, the
queue and the spec come from `workers.contract`; only `LocalRunner` imports the pipeline itself, when it
runs (a Celery client never loads the encoders' code).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nirbridge.urls import redact_url
from nirbridge.workers.celery_app import broker_problem
from nirbridge.workers.contract import (
    DESCRIBE,
    ENRICH_BATCH,
    ENRICH_QUEUE,
    PING,
    DocResult,
    EnrichmentSpec,
    SpecError,
)

from .errors import BatchFailed, BatchTimeout, BrokerUnavailable, RunnerError, WorkerUnavailable
from .tasks_client import TaskClient

__all__ = [
    "BatchDone",
    "BatchFailed",
    "BatchTimeout",
    "BrokerUnavailable",
    "CeleryRunner",
    "LocalRunner",
    "Runner",
    "RunnerError",
    "WorkerUnavailable",
]

Doc = dict[str, Any]
# a readiness call waits for these (a revoked ping is waited out to its timeout, as a silent one)
_ANSWERED = frozenset({"SUCCESS", "FAILURE"})


@dataclass(frozen=True)
class BatchDone:
    """One finished batch: its position in the run, the documents as given, one result per document."""

    number: int
    docs: Sequence[Doc]
    results: list[DocResult]
    worker: str | None = None
    seconds: float = 0.0


class Runner(ABC):
    """Runs `run_enrichment` over batches, yielding them finished in input order."""

    @abstractmethod
    def check(self) -> None:
        """Raise now if the runner cannot work (no broker, no worker), instead of on the first batch."""

    @abstractmethod
    def describe(self, spec: EnrichmentSpec) -> dict[str, Any]:
        """{"models": {kind: fingerprint}, "dense": {"dimension", "space_type"}} (see pipeline.describe)."""

    def fingerprints(self, spec: EnrichmentSpec) -> dict[str, str]:
        """The `nir_meta.models` fingerprints a run of `spec` writes (to skip documents already enriched)."""
        return dict(self.describe(spec)["models"])

    @abstractmethod
    def enrich(self, spec: EnrichmentSpec, batches: Iterable[Sequence[Doc]]) -> Iterator[BatchDone]:
        """Enrich every batch; yields a BatchDone per batch, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the runner holds."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalRunner(Runner):
    """Runs the pipeline in this process, one batch after another."""

    def check(self) -> None:
        return None

    def describe(self, spec: EnrichmentSpec) -> dict[str, Any]:
        from nirbridge.workers.pipeline import EncoderUnavailable, describe

        try:
            return describe(spec)
        except EncoderUnavailable as error:
            raise BatchFailed(str(error)) from error

    def enrich(self, spec: EnrichmentSpec, batches: Iterable[Sequence[Doc]]) -> Iterator[BatchDone]:
        from nirbridge.workers.pipeline import EncoderUnavailable, run_enrichment

        for number, docs in enumerate(batches):
            started = time.perf_counter()
            try:
                results = run_enrichment(spec, docs)
            except (SpecError, EncoderUnavailable) as error:
                raise BatchFailed(str(error), number) from error
            yield BatchDone(number, docs, results, "local", time.perf_counter() - started)


@dataclass
class _Pending:
    number: int
    docs: Sequence[Doc]
    payload: dict[str, Any]
    task_id: str
    sent_at: float
    resent: int = 0


def _started_by(meta: dict[str, Any]) -> str | None:
    """The worker that started a task (Celery's STARTED state records it: task_track_started)."""
    if meta.get("status") != "STARTED" or not isinstance(meta.get("result"), dict):
        return None
    hostname = meta["result"].get("hostname")
    return str(hostname) if hostname else None


class CeleryRunner(Runner, TaskClient):
    """Sends batches to the `enrich` queue and keeps up to `in_flight` of them there.

    `timeout` bounds the wait for one batch (counted from when it became the oldest one waited for). While a
    batch is late by more than `liveness_every` seconds the runner asks the workers (a broadcast,
    `liveness_timeout`) whether any of them still consumes the queue, so a dead worker is noticed in seconds,
    not at the timeout. A batch whose worker died while others live (its STARTED state names a worker that no
    longer answers), or that timed out, is sent again up to `resend` times: the task is idempotent.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        queue: str = ENRICH_QUEUE,
        in_flight: int = 4,
        timeout: float = 300.0,
        poll: float = 0.02,
        liveness_every: float = 3.0,
        liveness_timeout: float = 1.0,
        resend: int = 1,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        TaskClient.__init__(self, app, queue)
        self.in_flight = in_flight
        self.timeout = timeout
        self.poll = poll
        self.liveness_every = liveness_every
        self.liveness_timeout = liveness_timeout
        self.resend = resend

    # --- the broker and the workers -------------------------------------------------------------------------

    def _check_broker(self) -> None:
        for url in dict.fromkeys((self.broker_url, self.backend_url)):
            if url.startswith(("redis://", "rediss://", "unix://")):
                problem = broker_problem(url)
                if problem is not None:
                    raise BrokerUnavailable(redact_url(url), problem)

    def consumers(self) -> list[str]:
        """The workers that answer a broadcast within `liveness_timeout` and consume this runner's queue."""
        with self.broker_errors(self.broker_url):
            replies = self.app.control.inspect(timeout=self.liveness_timeout).active_queues() or {}
        return self.consuming(replies)

    # --- readiness ------------------------------------------------------------------------------------------

    def _call(self, name: str, args: list[Any], timeout: float) -> Any:
        """Send one task through the queue and wait for its value (WorkerUnavailable when nothing answers)."""
        self._check_broker()
        task_id = self.send(name, args)
        meta = self.wait(task_id, time.monotonic() + timeout, self.poll, _ANSWERED)
        if meta.get("status") == "SUCCESS":
            self.forget(task_id)
            return meta["result"]
        if meta.get("status") == "FAILURE":
            self.forget(task_id)
            error = meta.get("result")
            raise BatchFailed(f"{name}: {type(error).__name__}: {error}")
        self.revoke(task_id)
        raise WorkerUnavailable(self.queue, f"nothing answered {name} within {timeout:g} s")

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        """Send the `ping` task through the queue; the answering worker's report, or WorkerUnavailable."""
        return dict(self._call(PING, [], self.timeout if timeout is None else timeout))

    def describe(self, spec: EnrichmentSpec) -> dict[str, Any]:
        return dict(self._call(DESCRIBE, [spec.to_json()], self.timeout))

    def check(self) -> None:
        self.ping(timeout=min(self.timeout, 10.0))

    # --- the run --------------------------------------------------------------------------------------------

    def enrich(self, spec: EnrichmentSpec, batches: Iterable[Sequence[Doc]]) -> Iterator[BatchDone]:
        self._check_broker()
        payload = spec.to_json()
        pending: deque[_Pending] = deque()
        source = enumerate(batches)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.in_flight:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    number, docs = item
                    # an empty batch (only skipped documents) keeps its place in the order, unsent
                    task_id = self.send(ENRICH_BATCH, [payload, list(docs)]) if docs else ""
                    pending.append(_Pending(number, docs, payload, task_id, time.monotonic()))
                if not pending:
                    return
                oldest = pending.popleft()
                yield self._wait(oldest)
        finally:
            for left in pending:
                if left.task_id:
                    self.revoke(left.task_id)  # a late task only computes, it writes nothing

    def _wait(self, batch: _Pending) -> BatchDone:
        if not batch.task_id:
            return BatchDone(batch.number, batch.docs, [], None, 0.0)
        started = time.monotonic()
        deadline = started + self.timeout
        next_liveness = started + self.liveness_every
        while True:
            meta = self.meta(batch.task_id)
            status = meta.get("status")
            if status == "SUCCESS":
                self.forget(batch.task_id)
                value = meta["result"]
                results = [DocResult.from_json(item) for item in value["results"]]
                return BatchDone(
                    batch.number, batch.docs, results, value.get("worker"), value.get("seconds", 0.0)
                )
            if status == "FAILURE":
                self.forget(batch.task_id)
                error = meta.get("result")
                raise BatchFailed(f"{type(error).__name__}: {error}", batch.number)
            now = time.monotonic()
            if now >= deadline or now >= next_liveness:
                workers = self.consumers()
                if not workers:
                    raise WorkerUnavailable(
                        self.queue,
                        f"batch {batch.number} waited {now - started:.1f} s; no worker answered a broadcast",
                    )
                owner = _started_by(meta)
                lost = owner is not None and owner not in workers
                if (lost or now >= deadline) and batch.resent < self.resend:
                    # the task is idempotent: a copy on a live worker is safe; a late original is ignored
                    self.revoke(batch.task_id)
                    batch.task_id = self.send(ENRICH_BATCH, [batch.payload, list(batch.docs)])
                    batch.resent += 1
                    started = time.monotonic()
                    deadline = started + self.timeout
                elif lost:
                    raise WorkerUnavailable(
                        self.queue, f"batch {batch.number}: its worker {owner} is gone, and so is its copy"
                    )
                elif now >= deadline:
                    raise BatchTimeout(
                        self.queue,
                        f"batch {batch.number} got no result within {self.timeout:g} s "
                        f"(status {status}; workers on the queue: {', '.join(workers)})",
                    )
                next_liveness = time.monotonic() + self.liveness_every
            time.sleep(self.poll)
