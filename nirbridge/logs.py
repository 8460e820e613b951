"""Logging for every nirbridge process: text or JSON lines, a level, and the request id on every record.

    configure_logging("json", "info")   # `serve`, `worker` and `enrich` call it once, at start
    token = REQUEST_ID.set("4f1c…")    # the proxy per request, the worker per task
    log.info("reranked")                # {"time": …, "level": "INFO", "logger": …, "message": "reranked",
                                        #  "request_id": "4f1c…"}

The format and level come from the command line, else `NIRBRIDGE_LOG_FORMAT` (`text` | `json`) and
`NIRBRIDGE_LOG_LEVEL` (`debug` … `critical`), else text at info.

No query text, document text or secret is logged unless `NIRBRIDGE_LOG_QUERIES=true` (`log_queries()`):
nirbridge's own messages check it, a filter on the handler hides what Celery puts in its records, the task
arguments (a rerank's query and passages) and return values (an enrichment batch's doc2query text), and
httpx's request lines (URLs with their query strings) are held back to WARNING.

Libraries' chatter (opensearch-py's line per request, urllib3's connections) is held back to WARNING too: a
command's progress is its own output. At `debug` they show: opensearch-py's request lines (its request and
response bodies, document text, only with `NIRBRIDGE_LOG_QUERIES=true`) and urllib3's.
Request headers, `Authorization` among them, are never logged.

Shared by the connector and the workers (the workers never import the connector, DESIGN.md), like
`nirbridge.documents`.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import Literal, cast

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REQUEST_ID",
    "LogFormat",
    "configure_logging",
    "log_queries",
    "reset_logging",
    "resolve_format",
    "resolve_level",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

REQUEST_ID: ContextVar[str | None] = ContextVar("nirbridge_request_id", default=None)

HIDDEN = "<hidden: set NIRBRIDGE_LOG_QUERIES=true to log it>"
# what Celery puts in the context of its "received" / "succeeded" / "failed" records (and in `extra["data"]`)
_CELERY_PRIVATE = ("args", "kwargs", "return_value")
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


def log_queries() -> bool:
    """Whether query and document text may be logged (`NIRBRIDGE_LOG_QUERIES=true`; default false)."""
    return os.environ.get("NIRBRIDGE_LOG_QUERIES", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_format(given: str | None = None) -> LogFormat:
    """`given`, else `NIRBRIDGE_LOG_FORMAT`, else text; ValueError naming the choices for anything else."""
    value = (given or os.environ.get("NIRBRIDGE_LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        source = "--log-format" if given else "NIRBRIDGE_LOG_FORMAT"
        raise ValueError(f"{source}: unknown log format {value!r}; choose {' or '.join(LOG_FORMATS)}")
    return cast(LogFormat, value)


def resolve_level(given: str | None = None) -> str:
    """`given`, else `NIRBRIDGE_LOG_LEVEL`, else info (lower case); ValueError naming the choices."""
    value = (given or os.environ.get("NIRBRIDGE_LOG_LEVEL") or "info").strip().lower()
    if value not in LOG_LEVELS:
        source = "--log-level" if given else "NIRBRIDGE_LOG_LEVEL"
        raise ValueError(f"{source}: unknown log level {value!r}; choose one of {', '.join(LOG_LEVELS)}")
    return value


class _RequestAndPrivacy(logging.Filter):
    """On the handler, so it sees every record: adds `request_id`, hides Celery's task arguments/results."""

    def __init__(self, show_text: bool) -> None:
        super().__init__()
        self.show_text = show_text

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get() or "-"
        if self.show_text:
            return True
        if isinstance(record.args, dict) and any(key in record.args for key in _CELERY_PRIVATE):
            record.args = _hidden(record.args)
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            record.data = _hidden(data)
        if record.name == "celery.pool" and record.levelno < logging.INFO:
            record.msg, record.args = "TaskPool: apply (task arguments hidden)", ()
        return True


def _hidden(context: dict[str, object]) -> dict[str, object]:
    return {key: HIDDEN if key in _CELERY_PRIVATE else value for key, value in context.items()}


def _formatter(fmt: LogFormat) -> logging.Formatter:
    if fmt == "text":
        return logging.Formatter(_TEXT)
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        _JSON,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


# libraries that log a line per request at INFO (opensearch-py) or per connection at DEBUG (urllib3)
_CHATTY = ("opensearch", "urllib3")
_HELD = ("httpx", *_CHATTY)  # the loggers configure_logging sets a level on (besides the root)

_installed: list[logging.Handler] = []  # the handler configure_logging added, replaced on the next call
_before: list[list[int]] = []  # the root's and _HELD's levels before the first call, for reset_logging


def configure_logging(fmt: str | None = None, level: str | None = None) -> tuple[LogFormat, str]:
    """A handler on the root logger (stderr) in `fmt`, the root at `level` (see `resolve_*`); a second call
    replaces the handler of the first (and no other: a host's own handlers stay). Returns (format, level)."""
    chosen, lowered = resolve_format(fmt), resolve_level(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(chosen))
    handler.addFilter(_RequestAndPrivacy(log_queries()))
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    if not _before:
        _before.append([root.level, *(logging.getLogger(name).level for name in _HELD)])
    while _installed:
        root.removeHandler(_installed.pop())
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(lowered.upper())
    logging.captureWarnings(True)  # warnings.warn() as records too: one format on stderr
    # httpx logs every request's URL at INFO, query string included (`_search?q=...` passed through)
    httpx.setLevel(logging.NOTSET if log_queries() else logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(_chatty_level(name, lowered))
    return chosen, lowered


def _chatty_level(name: str, level: str) -> int:
    """WARNING unless `level` is debug; then the root's, but opensearch-py logs request and response bodies
    (document and query text) at DEBUG, so it stops at INFO (its request lines) unless log_queries()."""
    if level != "debug":
        return logging.WARNING
    if name == "opensearch" and not log_queries():
        return logging.INFO
    return logging.NOTSET


def reset_logging() -> None:
    """Undo `configure_logging` (a command run inside another program, e.g. a test, leaves it as it was)."""
    root = logging.getLogger()
    while _installed:
        root.removeHandler(_installed.pop())
    if _before:
        levels = _before.pop()
        root.setLevel(levels[0])
        for name, level in zip(_HELD, levels[1:], strict=True):
            logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)
