"""The Celery application: Redis as broker and result backend, two queues with different jobs.

    enrich   throughput: batches of documents, seconds each; a worker process reserves one at a time
    rerank   latency: one query's candidates, milliseconds each; a process may reserve a few

Configuration comes from the environment, under the same names the connector's settings use (workers never
import the connector, DESIGN.md):

    NIRBRIDGE_BROKER_URL       default redis://127.0.0.1:6379/0
    NIRBRIDGE_RESULT_BACKEND   default redis://127.0.0.1:6379/0

Tasks are `acks_late` with `task_reject_on_worker_lost`: a message is acknowledged only after its task
finished, so a worker killed mid-batch leaves the batch to be delivered again (the tasks are idempotent). Only
JSON crosses the wire. Time limits are a backstop: every I/O a task does has its own timeout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from celery import Celery
from kombu import Queue

from nirbridge.urls import redact_url

from .contract import ENRICH_BATCH, ENRICH_QUEUE, QUEUES, RERANK, RERANK_QUEUE

__all__ = [
    "DEFAULT_REDIS",
    "ENRICH_QUEUE",
    "PREFETCH",
    "QUEUES",
    "RERANK_QUEUE",
    "WorkerSettings",
    "app",
    "make_app",
    "prefetch_for",
]

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

# Messages a worker process reserves beyond the one it runs. An enrich batch takes seconds: a process holding
# a second one would make it wait while another process idles. A rerank task takes milliseconds: reserving a
# few saves a broker round trip each. A worker consuming both uses the smaller (a rerank must never queue
# behind a reserved batch).
PREFETCH = {ENRICH_QUEUE: 1, RERANK_QUEUE: 4}

# Backstops only (Celery's task guide): the soft limit raises SoftTimeLimitExceeded inside the task, the hard
# one kills the process. A batch of a few hundred documents on a CPU takes well under a minute.
ENRICH_SOFT_TIME_LIMIT = 540
ENRICH_TIME_LIMIT = 600
RERANK_SOFT_TIME_LIMIT = 20
RERANK_TIME_LIMIT = 30
# Redis redelivers a reserved, unacknowledged message after this long; it must exceed the longest task, or a
# slow batch would run twice.
VISIBILITY_TIMEOUT = 2 * ENRICH_TIME_LIMIT
RESULT_EXPIRES = 3600  # seconds a result waits in Redis for the client that asked for it


@dataclass(frozen=True)
class WorkerSettings:
    """The worker side's view of the `NIRBRIDGE_*` variables it needs."""

    broker_url: str = DEFAULT_REDIS
    result_backend: str = DEFAULT_REDIS

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            broker_url=os.environ.get("NIRBRIDGE_BROKER_URL") or DEFAULT_REDIS,
            result_backend=os.environ.get("NIRBRIDGE_RESULT_BACKEND") or DEFAULT_REDIS,
        )


def prefetch_for(queues: list[str] | tuple[str, ...]) -> int:
    """The prefetch multiplier for a worker consuming `queues` (the smallest of theirs)."""
    return min(PREFETCH.get(queue, 1) for queue in queues) if queues else 1


def make_app(settings: WorkerSettings | None = None) -> Celery:
    """A Celery app configured for nirbridge (the module-level `app` is the one workers and clients use)."""
    settings = settings or WorkerSettings.from_env()
    celery = Celery("nirbridge", include=["nirbridge.workers.tasks"])
    if urlsplit(settings.broker_url).scheme == "redis":
        # kombu's, with the repair that keeps a worker alive through a short outage (workers.redis_transport)
        celery.conf.broker_transport = "nirbridge.workers.redis_transport:Transport"
    celery.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        # JSON only: nothing a broker message carries can execute code when it is read
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=RESULT_EXPIRES,
        result_extended=False,
        # queues and routing
        task_queues=(
            Queue(ENRICH_QUEUE, routing_key=ENRICH_QUEUE),
            Queue(RERANK_QUEUE, routing_key=RERANK_QUEUE),
        ),
        task_default_queue=ENRICH_QUEUE,
        task_create_missing_queues=False,
        task_routes={
            ENRICH_BATCH: {"queue": ENRICH_QUEUE, "routing_key": ENRICH_QUEUE},
            RERANK: {"queue": RERANK_QUEUE, "routing_key": RERANK_QUEUE},
        },
        # at-least-once delivery with idempotent tasks
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=PREFETCH[ENRICH_QUEUE],
        task_track_started=True,
        task_time_limit=ENRICH_TIME_LIMIT,
        task_soft_time_limit=ENRICH_SOFT_TIME_LIMIT,
        # every I/O with a timeout: a stopped Redis is an error within seconds, not a hang
        broker_connection_timeout=3,
        # A worker whose broker went away waits for it for as long as it takes (every 2 s, then up to every
        # 30 s), as a supervisor would restart it: with a bounded count it exited after ~12 s of outage, with
        # status 0 (run_worker now passes a failure's status on). Only the worker's consumer reads these two;
        # a client's sends have their own bounds (task_publish_retry_policy, the caller's deadline).
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_timeout": 10,
            "socket_connect_timeout": 3,
            "retry_on_timeout": False,
            # a PING before reusing a connection idle this long: a restarted Redis's closed sockets are
            # found before a command is lost on one
            "health_check_interval": 10,
        },
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        redis_socket_timeout=10,
        redis_socket_connect_timeout=3,
        redis_retry_on_timeout=False,
        redis_backend_health_check_interval=10,
        result_backend_transport_options={"retry_policy": {"timeout": 3.0}},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_heartbeat=0,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )
    return celery


app = make_app()


def broker_problem(url: str, timeout: float = 3.0) -> str | None:
    """None when the Redis at `url` answers PING within `timeout` seconds, else what went wrong."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def run_worker(
    queues: list[str],
    concurrency: int | None = None,
    loglevel: str = "info",
    hostname: str | None = None,
    quiet: bool = False,
) -> int:
    """Run a Celery worker for `queues` in this process until it is stopped (blocks).

    Concurrency defaults to one pool process per queue: a model already spreads one batch over every core, so
    more processes on a CPU only multiply the memory the models take. The cores are shared between the
    processes (OMP_NUM_THREADS / MKL_NUM_THREADS, unless already set) so that they do not oversubscribe. For
    rerank latency run a worker of its own (`--queues rerank`): a process busy with a batch cannot answer.

    `quiet`: no startup banner (JSON logs). Raises ValueError for an unknown queue and ConnectionError when
    the broker does not answer at startup. Returns the worker's exit status: 0 after a stop asked for (a
    signal), non-zero when it stopped by itself on an error (Celery's `worker_main` drops that status, and a
    supervisor restarting `on-failure` would take the worker's death for a clean stop).
    """
    unknown = [queue for queue in queues if queue not in QUEUES]
    if not queues or unknown:
        raise ValueError(f"unknown queue(s) {unknown or queues}: choose from {', '.join(QUEUES)}")
    problem = broker_problem(app.conf.broker_url)
    if problem is not None:
        raise ConnectionError(f"cannot reach the broker at {redact_url(app.conf.broker_url)}: {problem}")
    argv = [
        "worker",
        f"--queues={','.join(queues)}",
        f"--loglevel={loglevel}",
        f"--prefetch-multiplier={prefetch_for(queues)}",
        f"--hostname={hostname or 'nirbridge-' + '-'.join(queues) + '@%h'}",
        "--without-gossip",
        "--without-mingle",
    ]
    if quiet:
        argv.insert(0, "--quiet")  # celery's own option: before the sub-command
    processes = concurrency or len(queues)
    argv.append(f"--concurrency={processes}")
    threads = str(max(1, (os.cpu_count() or 1) // processes))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, threads)  # read by torch when a pool process imports it
    import nirbridge.workers.tasks  # noqa: F401 - registers the tasks before the worker starts

    return _start(argv)


def _start(argv: list[str]) -> int:
    """`app.start(argv)` that returns the command's exit status: Celery's drops it (its click command runs
    with `standalone_mode=False`: the status of `ctx.exit(worker.exitcode)` is returned, not raised)."""
    from celery.bin.celery import celery as command
    from click.exceptions import Exit

    command.params[0].default = app  # what app.start does: the --app option defaults to this app
    try:
        status = command.main(args=argv, standalone_mode=False)
    except Exit as exit_:
        status = exit_.exit_code
    finally:
        command.params[0].default = None
    return status if isinstance(status, int) else 0
