"""Every task observed: the caller's request id set for its log records, a log line, the task metrics.

Celery signal receivers, connected when `workers.tasks` imports this module (in each pool process):

    task_prerun    `nirbridge.logs.REQUEST_ID` from the task's `REQUEST_ID_HEADER` header (the proxy's request
                   id, sent by connector.rerank_client) or the task id; the queue wait from `SENT_AT_HEADER`
    task_postrun   one log line (task, outcome, seconds, request_id), `nirbridge_worker_tasks_total` and
                   `nirbridge_worker_task_seconds`; a rerank dropped at its deadline (DeadlineExceeded) is
                   outcome "expired", as one that expired in the queue
    task_revoked   `nirbridge_worker_tasks_total{outcome="revoked"}` (an expired rerank, one a client gave up)

The log line names the task, never its arguments (query and passages); Celery's own records are scrubbed by
`nirbridge.logs`.
"""

from __future__ import annotations

import logging
import time
from contextvars import Token
from typing import Any

from celery import signals

from nirbridge.logs import REQUEST_ID

from .contract import DEADLINE_HEADER, REQUEST_ID_HEADER, SENT_AT_HEADER
from .errors import DeadlineExceeded
from .metrics import QUEUE_WAIT_SECONDS, TASK_SECONDS, TASKS

# the headers are defined in workers.contract (what a client imports); re-exported for older imports
__all__ = ["DEADLINE_HEADER", "REQUEST_ID_HEADER", "SENT_AT_HEADER"]


log = logging.getLogger("nirbridge.worker")

# task id -> (start, the request id's token): a pool process runs one task at a time, a thread pool several
_running: dict[str, tuple[float, Token[str | None]]] = {}


@signals.task_prerun.connect
def _task_started(task_id: str, task: Any, **_: Any) -> None:
    request = task.request
    request_id = request.get(REQUEST_ID_HEADER) or task_id
    _running[task_id] = (time.perf_counter(), REQUEST_ID.set(str(request_id)))
    sent_at = request.get(SENT_AT_HEADER)
    if isinstance(sent_at, int | float):
        QUEUE_WAIT_SECONDS.labels(task.name).observe(max(0.0, time.time() - float(sent_at)))


@signals.task_postrun.connect
def _task_ended(task_id: str, task: Any, state: str | None = None, retval: Any = None, **_: Any) -> None:
    started, token = _running.pop(task_id, (None, None))
    seconds = time.perf_counter() - started if started is not None else 0.0
    # a task dropped at its caller's deadline failed nobody: counted apart from real failures
    outcome = "expired" if isinstance(retval, DeadlineExceeded) else (state or "unknown").lower()
    TASKS.labels(task.name, outcome).inc()
    TASK_SECONDS.labels(task.name).observe(seconds)
    log.info(
        "%s %s in %.3f s",
        task.name,
        outcome,
        seconds,
        extra={"task": task.name, "task_id": task_id, "outcome": outcome, "seconds": round(seconds, 4)},
    )
    if token is not None:
        REQUEST_ID.reset(token)


@signals.task_revoked.connect
def _task_revoked(request: Any = None, expired: bool = False, **_: Any) -> None:
    name = getattr(request, "name", None) or getattr(request, "task_name", None) or "unknown"
    TASKS.labels(str(name), "expired" if expired else "revoked").inc()
