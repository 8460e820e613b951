"""The connector's one Celery client: send a task by name to a queue, wait for it, forget or revoke it.

    client = TaskClient(app, "enrich")                       # app None: workers.celery_app's
    task_id = client.send(ENRICH_BATCH, [spec, docs])        # BrokerUnavailable when the broker refuses it
    meta = client.wait(task_id, time.monotonic() + 5, 0.02)  # {"status", "result", ...}: done, or the last
    client.forget(task_id)                                   # best effort: results expire anyway
    client.revoke(task_id)                                   # best effort: a late task only computes

`connector.runner.CeleryRunner` (enrichment: raises `RunnerError`s) and `connector.rerank_client.RerankClient`
(reranking: every failure becomes a degraded outcome) are built on it. Task names and queues come from
`workers.contract`. kombu, redis-py and Celery errors become `BrokerUnavailable` (connector.errors) here, at
one boundary (`broker_errors`), naming the broker with its password hidden. Every broker call goes through
`_attempt`, which a subclass may wrap: the rerank client reconnects once after a connection error there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from nirbridge.urls import redact_url

from .errors import BrokerUnavailable

__all__ = ["DONE", "TaskClient"]

_T = TypeVar("_T")
# the states after which a task's result no longer changes (REVOKED: an expired rerank, one given up)
DONE = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


class TaskClient:
    """One Celery app and one queue: tasks sent by name, their states read from the result backend."""

    def __init__(self, app: Any, queue: str) -> None:
        if app is None:
            from nirbridge.workers.celery_app import app as default_app

            app = default_app
        self.app = app
        self.queue = queue

    @property
    def broker_url(self) -> str:
        return str(self.app.conf.broker_url)

    @property
    def backend_url(self) -> str:
        return str(self.app.conf.result_backend)

    # --- the boundary where kombu, Redis and Celery errors become ours --------------------------------------

    @contextmanager
    def broker_errors(self, url: str) -> Iterator[None]:
        """Any error inside as `BrokerUnavailable(redact_url(url), "<type>: <message>")`."""
        try:
            yield
        except BrokerUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - kombu/redis connection errors: one translation boundary
            raise BrokerUnavailable(redact_url(url), f"{type(error).__name__}: {error}") from error

    def _attempt(self, call: Callable[[], _T]) -> _T:
        """One broker call (a subclass may retry it once on a fresh connection)."""
        return call()

    # --- send / wait / forget / revoke ----------------------------------------------------------------------

    def send(self, name: str, args: list[Any] | None = None, **options: Any) -> str:
        """Send task `name` to this client's queue; its id. `options`: Celery's (expires, headers, retry)."""
        with self.broker_errors(self.broker_url):
            result = self._attempt(
                lambda: self.app.send_task(
                    name, args=args, queue=self.queue, routing_key=self.queue, **options
                )
            )
        return str(result.id)

    def meta(self, task_id: str) -> dict[str, Any]:
        """The task's state as the result backend holds it: {"status", "result", ...}."""
        with self.broker_errors(self.backend_url):
            return dict(self._attempt(lambda: self.app.backend.get_task_meta(task_id)))

    def wait(
        self, task_id: str, deadline: float, poll: float, done: frozenset[str] = DONE
    ) -> dict[str, Any]:
        """The task's state once its status is in `done`, or the last one read when `deadline` (a
        `time.monotonic()` instant) passes ({"status": "PENDING"} if none was); BrokerUnavailable as
        `meta`. It never reads past the deadline (a rerank's answer is due by then)."""
        meta: dict[str, Any] = {"status": "PENDING"}
        while time.monotonic() < deadline:
            meta = self.meta(task_id)
            if meta.get("status") in done:
                return meta
            time.sleep(poll)
        return meta

    def forget(self, task_id: str) -> None:
        try:
            self.app.backend.forget(task_id)
        except Exception:  # noqa: BLE001 - results expire anyway (result_expires)
            pass

    def revoke(self, task_id: str, *, forget: bool = False) -> None:
        """Revoke the task (and forget its result): best effort, the task also expires or only computes."""
        try:
            self.app.control.revoke(task_id)
            if forget:
                self.app.backend.forget(task_id)
        except Exception:  # noqa: BLE001 - best effort: see above
            pass

    def consuming(self, replies: Mapping[str, Any]) -> list[str]:
        """The workers of an `inspect().active_queues()` answer that consume this client's queue, sorted."""
        return sorted(
            worker
            for worker, queues in replies.items()
            if any(queue.get("name") == self.queue for queue in queues or ())
        )
