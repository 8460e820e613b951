"""The proxy's side of reranking: send one query's passages to a cross-encoder, wait at most a deadline.

    client = RerankClient(deadline_s=0.8)                 # Celery workers on queue "rerank"
    client = InProcessReranker()                          # or the model in this process (one machine)
    outcome = await client.arerank(query, passages, model, "auto", {}, time.monotonic() + 0.5)
    outcome.scores        # [float, one per passage] or None
    outcome.degraded      # True: use the first-stage order; outcome.reason says why
    await client.aready()  # readiness: {"ok": True, "worker": ...} when a worker answers a ping in 1 s

``deadline`` is a ``time.monotonic()`` instant (None: ``deadline_s`` seconds after the call).  Neither
client ever raises for what the proxy cannot fix: a slow or dead worker, a stopped Redis, a full queue, a
failed task, a model that does not load.  Each becomes ``RerankOutcome(scores=None, degraded=True,
reason=...)``, returned by the deadline (plus a few milliseconds of thread hand-over).  The reasons
start with one of these words, so a caller can count them:

    "queue full"      the Redis list of the queue holds more than ``max_queue`` messages: not sent at all
    "broker"          Redis did not answer (the message says which URL, password hidden)
    "timeout"         no result within the deadline (worker slow, busy or dead); the task is revoked
    "failed"          the task failed: a bad request (the worker's message), a model that cannot load
    "bad input"       (in-process) the request cannot be scored: the message names the passage

The wait polls the result backend every ``poll_s`` (as ``connector.runner`` does); every Redis call has a
socket timeout, and the blocking work runs in a thread pool so that even a Redis call that hangs cannot hold
the caller past its deadline.  The task is sent with ``expires`` = the deadline, and the deadline itself (as
``time.time()``) in a header: a worker that gets to it later discards it, one that is computing it stops
between two batches (workers.tasks).  After a broker error the client's pooled Redis connections are
dropped, so that a Redis that came back is reached afresh (not through sockets it closed), and the call that
met the error is tried once more on a new connection; the control channel (readiness of a busy worker) has a
connection of its own, replaced the same way.  ``arerank`` awaits the same work from an asyncio event
loop (the proxy's ASGI app).  Its headers carry the caller's request id and the time it was sent
(``workers.observe``: the worker logs the id and measures the queue wait).  Names, queue and headers come
from ``workers.contract``: importing this module never imports ``workers.tasks``, whose Celery signal
receivers belong in a worker, nor the model code (``InProcessReranker`` imports it on first use).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nirbridge.logs import REQUEST_ID
from nirbridge.urls import redact_url
from nirbridge.workers.contract import (
    DEADLINE_HEADER,
    PING,
    REQUEST_ID_HEADER,
    RERANK,
    RERANK_QUEUE,
    SENT_AT_HEADER,
    RerankRequest,
)

from .errors import BrokerUnavailable
from .tasks_client import TaskClient

__all__ = ["InProcessReranker", "RerankClient", "RerankOutcome"]

_T = TypeVar("_T")
# a ping waits for an answer only: a failed or revoked one is waited out to its timeout, as a silent one
_ANSWERED = frozenset({"SUCCESS"})
# what a lost or restarted Redis raises through redis-py, kombu and Celery: the connections are reset for it
_CONNECTION_ERRORS = (
    OperationalError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class RerankOutcome:
    """What a rerank came to: ``scores`` (one per passage, in order) or None with ``degraded`` and a
    ``reason``.  ``seconds`` is the model's own time (worker or in-process), ``elapsed`` the caller's whole
    wait: their difference is the Celery round trip."""

    scores: list[float] | None
    degraded: bool
    reason: str | None = None
    worker: str | None = None
    seconds: float = 0.0
    backend: str | None = None
    elapsed: float = 0.0


def _degraded(reason: str, started: float) -> RerankOutcome:
    return RerankOutcome(None, True, reason, elapsed=time.monotonic() - started)


def _check_passages(passages: Sequence[Any]) -> str | None:
    if isinstance(passages, str):
        return "passages must be a list of str, got one str"
    bad = [i for i, p in enumerate(passages) if not isinstance(p, str)]
    if bad:
        return f"passage(s) {bad[:5]} are not str (got {type(passages[bad[0]]).__name__})"
    return None


@dataclass(frozen=True)
class _Job:
    """One request, as ``rerank`` was called."""

    query: str
    passages: list[str]
    model: str
    backend: str
    params: dict[str, Any]
    request_id: str | None = None  # the proxy request's (nirbridge.logs.REQUEST_ID), for the worker's logs


class _Base:
    """The shared async wrapper: ``arerank`` runs ``rerank``'s blocking part in this object's thread pool."""

    deadline_s: float
    _pool: concurrent.futures.ThreadPoolExecutor

    def _work(self, job: _Job, deadline: float, started: float) -> RerankOutcome:
        raise NotImplementedError

    def _start(
        self,
        query: str,
        passages: Sequence[Any],
        model: str,
        backend: str,
        params: dict[str, Any] | None,
        deadline: float | None,
    ) -> tuple[float, float, RerankOutcome | concurrent.futures.Future[RerankOutcome]]:
        """(started, limit in seconds, an outcome known at once or the work submitted to the pool)."""
        started = time.monotonic()
        limit = self.deadline_s if deadline is None else float(deadline) - started
        problem = _check_passages(passages)
        if problem is not None:
            return started, limit, _degraded(f"bad input: {problem}", started)
        if not passages:
            return started, limit, RerankOutcome([], False, None, elapsed=time.monotonic() - started)
        if limit <= 0:
            late = _degraded("timeout: the deadline had passed before the rerank started", started)
            return started, limit, late
        # read here, in the caller's context: the pool's threads do not inherit it
        job = _Job(query, list(passages), model, backend, dict(params or {}), REQUEST_ID.get())
        return started, limit, self._pool.submit(self._work, job, limit, started)

    def rerank(
        self,
        query: str,
        passages: Sequence[str],
        model: str,
        backend: str = "auto",
        params: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> RerankOutcome:
        """Scores of ``passages`` for ``query`` by ``deadline`` (a ``time.monotonic()`` instant; None: in
        ``deadline_s`` seconds), or a degraded outcome; blocks the calling thread, never raises for a backend
        problem."""
        started, limit, work = self._start(query, passages, model, backend, params, deadline)
        if isinstance(work, RerankOutcome):
            return work
        try:
            return work.result(timeout=max(0.0, started + limit - time.monotonic()))
        except concurrent.futures.TimeoutError:
            return _degraded(f"timeout: no answer within {limit:.3g} s", started)

    async def arerank(
        self,
        query: str,
        passages: Sequence[str],
        model: str,
        backend: str = "auto",
        params: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> RerankOutcome:
        """``rerank`` for an asyncio event loop: the event loop is never blocked; same outcome, same
        deadline."""
        started, limit, work = self._start(query, passages, model, backend, params, deadline)
        if isinstance(work, RerankOutcome):
            return work
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(work), timeout=max(0.0, started + limit - time.monotonic())
            )
        except TimeoutError:
            return _degraded(f"timeout: no answer within {limit:.3g} s", started)

    def close(self) -> None:
        """Stop the thread pool (work in flight finishes in the background, bounded by its own timeouts)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class RerankClient(_Base, TaskClient):
    """Sends ``nirbridge.rerank`` to the ``queue`` and waits for the scores at most a deadline.

    ``max_queue``: when the queue's Redis list holds more messages than this, answer "queue full" at once
    (a worker that far behind would answer after the deadline anyway).  ``poll_s``: how often the result
    backend is asked.  ``threads``: requests waited for at once (each waits in a thread of its own).
    """

    def __init__(
        self,
        app: Any = None,
        queue: str = RERANK_QUEUE,
        deadline_s: float = 1.0,
        *,
        max_queue: int = 32,
        poll_s: float = 0.005,
        socket_timeout_s: float = 1.0,
        threads: int = 16,
    ) -> None:
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive, got {deadline_s}")
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        TaskClient.__init__(self, app, queue)
        self.deadline_s = float(deadline_s)
        self.max_queue = max_queue
        self.poll_s = poll_s
        self.socket_timeout_s = socket_timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="nirbridge-rerank")
        self._redis: Any = None
        self._resets = 0  # how many times the connections were dropped (one reset per broker failure)
        self._reset_lock = threading.Lock()
        self._control: Any = None  # the kombu connection of the control channel (``_active_queues``)
        self._control_lock = threading.Lock()

    # --- the boundary where Redis and Celery errors become reasons ------------------------------------------

    def _broker(self) -> Any:
        """A redis-py client on the broker (its own pool, short socket timeouts), made once."""
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                str(self.app.conf.broker_url),
                socket_timeout=self.socket_timeout_s,
                socket_connect_timeout=self.socket_timeout_s,
            )
        return self._redis

    def _reset(self, seen: int) -> None:
        """Drop the pooled Redis connections of the result backend and of our own client, unless another
        thread did since this one's call began (``seen``): after an outage they are sockets the old server
        had open, each of which would fail once more, one caller at a time.  The control connection is
        replaced too.  (Kombu's connection pool is left alone: emptied by ``force_close_all``, it blocks its
        next caller for good.)"""
        with self._reset_lock:
            if self._resets != seen:
                return
            self._resets += 1
            clients = [self._redis, getattr(self.app.backend, "client", None)]
            for client in clients:
                try:
                    if client is not None:
                        client.connection_pool.disconnect()
                except Exception:  # noqa: BLE001 - best effort: a pool that cannot close reconnects anyway
                    pass
            with self._control_lock:
                control, self._control = self._control, None
            if control is not None:
                try:
                    control.collect()  # drops its sockets without a round trip to a Redis that may be gone
                except Exception:  # noqa: BLE001 - see above
                    pass

    def _attempt(self, call: Callable[[], _T]) -> _T:
        """``call()``; after a connection failure, the connections reset and ``call()`` once more (a stale
        socket, not a blind retry: a broker still down fails the second time too).  Every broker call of
        ``TaskClient`` goes through here."""
        seen = self._resets
        try:
            return call()
        except _CONNECTION_ERRORS:
            self._reset(seen)
        return call()

    def queue_length(self) -> int:
        """Messages waiting in the queue's Redis list (kombu keeps priority 0, the default, under its
        name)."""
        return int(self._attempt(lambda: self._broker().llen(self.queue)))

    def _work(self, job: _Job, deadline: float, started: float) -> RerankOutcome:
        url = redact_url(self.broker_url)
        try:
            waiting = self.queue_length()
        except Exception as error:  # noqa: BLE001 - redis errors, one translation boundary
            return _degraded(f"broker {url} unavailable: {type(error).__name__}: {error}", started)
        if waiting > self.max_queue:
            return _degraded(
                f"queue full: {waiting} messages wait in {self.queue!r} (max {self.max_queue})", started
            )
        end = started + deadline
        request: RerankRequest = {
            "model": job.model,
            "backend": job.backend,
            "query": job.query,
            "passages": job.passages,
            "params": job.params,
        }
        # for the worker's clock: a wall-clock instant (the monotonic clocks of two machines do not compare)
        wall_deadline = time.time() + (end - time.monotonic())
        try:
            task_id = self.send(
                RERANK,
                [request],
                expires=max(0.001, end - time.monotonic()),
                retry=False,
                headers={
                    REQUEST_ID_HEADER: job.request_id,
                    SENT_AT_HEADER: time.time(),
                    DEADLINE_HEADER: wall_deadline,
                },
            )
        except BrokerUnavailable as error:
            return _degraded(f"broker {url} unavailable: {error.reason}", started)
        try:
            meta = self.wait(task_id, end, self.poll_s)
        except BrokerUnavailable as error:
            self.revoke(task_id, forget=True)
            return _degraded(f"broker {url} unavailable: {error.reason}", started)
        status = str(meta.get("status"))
        if status == "SUCCESS":
            self.forget(task_id)
            value = meta["result"]
            return RerankOutcome(
                [float(x) for x in value["scores"]],
                False,
                None,
                value.get("worker"),
                float(value.get("seconds") or 0.0),
                value.get("backend"),
                time.monotonic() - started,
            )
        if status in ("FAILURE", "REVOKED"):
            self.forget(task_id)
            failure = meta.get("result")
            return _degraded(f"failed: {type(failure).__name__}: {failure}", started)
        self.revoke(task_id, forget=True)
        return _degraded(f"timeout: no result within {deadline:.3g} s (task {status.lower()})", started)

    def ping(self, timeout_s: float = 1.0) -> dict[str, Any]:
        """Readiness: ``nirbridge.ping`` through the queue, answered within ``timeout_s``.

        ``{"ok": True, "worker", "ms", "waiting"}`` when a worker consuming the queue answered, else
        ``{"ok": False, "detail"}`` (no worker, a stopped Redis); never raises.  A ping task queues behind
        the reranks, so when none answers within half of ``timeout_s`` the workers are asked over Celery's
        control channel instead (``inspect().active_queues()``: a prefork worker's main process answers it
        while its pool computes): a worker that consumes the queue but is busy is ready, ``"busy": True``.
        """
        started = time.monotonic()
        fast = self._ping_task(started, timeout_s / 2)
        if fast.get("ok") or "detail" in fast:  # answered, or the broker is down
            return fast
        remaining = max(0.05, started + timeout_s - time.monotonic())
        try:
            with self.broker_errors(self.broker_url):
                replies = self._attempt(lambda: self._active_queues(remaining)) or {}
        except BrokerUnavailable as error:
            url = redact_url(self.broker_url)
            return {"ok": False, "detail": f"broker {url} unavailable: {error.reason}"}
        consuming = self.consuming(replies)
        if not consuming:
            return {
                "ok": False,
                "detail": f"no worker answered a ping on queue {self.queue!r} within {timeout_s:g} s, nor a "
                f"control ping as a consumer of it ({fast['waiting']} messages were waiting)",
            }
        return {
            "ok": True,
            "worker": consuming[0],
            "ms": round((time.monotonic() - started) * 1000, 1),
            "waiting": fast.get("waiting"),
            "busy": True,
        }

    def _active_queues(self, timeout_s: float) -> dict[str, Any]:
        """``inspect().active_queues()`` over this client's control connection, which ``_reset`` replaces
        after a broker error: kombu's pooled connections stay sockets that a restarted Redis closed, and one
        failed the first probe after an outage."""
        with self._control_lock:  # one broadcast at a time on one connection
            if self._control is None:
                self._control = self.app.connection_for_write()
            inspect = self.app.control.inspect(timeout=timeout_s, connection=self._control)
            return inspect.active_queues() or {}

    def _ping_task(self, started: float, timeout_s: float) -> dict[str, Any]:
        """A ``nirbridge.ping`` task through the queue, answered within ``timeout_s`` of ``started``: the
        answer, the broker's failure (``detail``), or no answer (``{"ok": False, "waiting"}``)."""
        url = redact_url(self.broker_url)
        try:
            with self.broker_errors(self.broker_url):
                waiting = self.queue_length()
            task_id = self.send(PING, expires=timeout_s, retry=False)
        except BrokerUnavailable as error:
            return {"ok": False, "detail": f"broker {url} unavailable: {error.reason}"}
        try:
            meta = self.wait(task_id, started + timeout_s, self.poll_s, _ANSWERED)
        except BrokerUnavailable as error:
            self.revoke(task_id, forget=True)
            return {"ok": False, "detail": f"broker {url} unavailable: {error.reason}"}
        if meta.get("status") == "SUCCESS":
            self.forget(task_id)
            answer = meta.get("result") or {}
            ms = round((time.monotonic() - started) * 1000, 1)
            return {"ok": True, "worker": answer.get("hostname"), "ms": ms, "waiting": waiting}
        self.revoke(task_id, forget=True)
        return {"ok": False, "waiting": waiting}

    async def aready(self, timeout_s: float = 1.0) -> dict[str, Any]:
        """``ping`` for an asyncio event loop (in this client's thread pool)."""
        future = self._pool.submit(self.ping, timeout_s)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=timeout_s + 0.5)
        except TimeoutError:
            return {"ok": False, "detail": f"the ping did not return within {timeout_s:g} s"}

    def close(self) -> None:
        super().close()
        if self._redis is not None:
            self._redis.close()
        if self._control is not None:
            self._control.collect()


class InProcessReranker(_Base):
    """The cross-encoder in this process (one-machine setups): the same calls and outcomes as
    :class:`RerankClient`.  One model computes at a time (it spreads over every core by itself); a request
    whose turn does not come within its deadline is answered "timeout".  A computation that overruns its
    deadline stops before its next batch (``CrossEncoder.score``'s deadline), so requests behind it wait
    at most one batch for it."""

    def __init__(self, deadline_s: float = 5.0) -> None:
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive, got {deadline_s}")
        self.deadline_s = float(deadline_s)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nirbridge-rerank-local")

    def load(self, model: str, backend: str = "auto", params: dict[str, Any] | None = None) -> str:
        """Load (and export, the first time) a model now rather than on the first request; its backend."""
        from nirbridge.workers.cross_encoder import cached_cross_encoder

        return cached_cross_encoder(model, backend, params).backend

    async def aready(self, timeout_s: float = 1.0) -> dict[str, Any]:
        """Readiness: always ready (the model runs in this process); the cross-encoders loaded so far."""
        module = sys.modules.get("nirbridge.workers.cross_encoder")  # not imported before the first load
        loaded = [m["model"] for m in module.loaded_cross_encoders()] if module is not None else []
        return {"ok": True, "worker": "local", "loaded": loaded}

    def _work(self, job: _Job, deadline: float, started: float) -> RerankOutcome:
        if time.monotonic() >= started + deadline:
            return _degraded(f"timeout: its turn came after {deadline:.3g} s", started)
        from nirbridge.workers.cross_encoder import cached_cross_encoder
        from nirbridge.workers.errors import BadInputError, DeadlineExceeded

        try:
            encoder = cached_cross_encoder(job.model, job.backend, job.params)
        except Exception as error:  # noqa: BLE001 - a model that cannot load: one translation boundary
            return _degraded(
                f"failed: cannot load {job.model!r} ({job.backend}): {type(error).__name__}: {error}", started
            )
        computing = time.monotonic()
        try:
            scores = encoder.score(job.query, job.passages, deadline=started + deadline)
        except BadInputError as error:
            return _degraded(f"bad input: {error}", started)
        except DeadlineExceeded as error:  # stopped between batches: the caller has answered without it
            return _degraded(f"timeout: {error}", started)
        now = time.monotonic()
        return RerankOutcome(
            [float(x) for x in scores], False, None, "local", now - computing, encoder.backend, now - started
        )
