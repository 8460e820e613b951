"""Errors raised by the engine, shaped and coded as OpenSearch answers them.

Every error the HTTP layer returns is an :class:`EngineError`; its body is OpenSearch's::

    {"error": {"root_cause": [{"type": ..., "reason": ..., ...}], "type": ..., "reason": ..., ...},
     "status": N}

The hierarchy is flat on purpose: OpenSearch clients switch on ``error.type`` and the HTTP status, so each
factory below names the OpenSearch exception type it imitates and the status OpenSearch gives it.

    EngineError
      (400) illegal_argument_exception, mapper_parsing_exception, parsing_exception,
      x_content_parse_exception,
            resource_already_exists_exception, action_request_validation_exception, search_context_missing
            (404)
      (400) invalid_alias_name_exception
      (404) index_not_found_exception, document_missing_exception, resource_not_found_exception
      (409) version_conflict_engine_exception
      (503) no_shard_available_action_exception (a quarantined index)
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """An OpenSearch-shaped error: ``status`` is the HTTP code, ``type`` the OpenSearch exception name."""

    def __init__(self, status: int, type: str, reason: str, **extra: Any) -> None:
        super().__init__(f"{type}: {reason}")
        self.status = status
        self.type = type
        self.reason = reason
        self.extra = extra

    def cause(self) -> dict[str, Any]:
        return {"type": self.type, "reason": self.reason, **self.extra}

    def to_body(self) -> dict[str, Any]:
        cause = self.cause()
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def index_not_found(index: str) -> EngineError:
    return EngineError(
        404,
        "index_not_found_exception",
        f"no such index [{index}]",
        index=index,
        index_uuid="_na_",
        **{"resource.type": "index_or_alias", "resource.id": index},
    )


def index_already_exists(index: str, uuid: str) -> EngineError:
    return EngineError(
        400,
        "resource_already_exists_exception",
        f"index [{index}/{uuid}] already exists",
        index=index,
        index_uuid=uuid,
    )


def invalid_alias_name(alias: str) -> EngineError:
    return EngineError(
        400,
        "invalid_alias_name_exception",
        f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
    )


def index_quarantined(index: str, uuid: str, reason: str) -> EngineError:
    """An index whose recovery failed at start (node.py): red, as an OpenSearch index whose primary cannot
    be assigned, whose shard requests fail with 503 ``no_shard_available_action_exception``."""
    return EngineError(
        503,
        "no_shard_available_action_exception",
        f"[{index}][0] the index is quarantined: its recovery failed ({reason}); "
        "GET _cluster/health says why, DELETE the index to drop it",
        index=index,
        index_uuid=uuid,
    )


def illegal_argument(reason: str, **extra: Any) -> EngineError:
    return EngineError(400, "illegal_argument_exception", reason, **extra)


def mapper_parsing(reason: str, **extra: Any) -> EngineError:
    return EngineError(400, "mapper_parsing_exception", reason, **extra)


def parsing(reason: str, **extra: Any) -> EngineError:
    return EngineError(400, "parsing_exception", reason, **extra)


def xcontent_parse(reason: str) -> EngineError:
    return EngineError(400, "x_content_parse_exception", reason)


def validation(*problems: str) -> EngineError:
    lines = "".join(f"{i}: {p};" for i, p in enumerate(problems, start=1))
    return EngineError(400, "action_request_validation_exception", f"Validation Failed: {lines}")


def version_conflict(index: str, doc_id: str, reason: str) -> EngineError:
    return EngineError(
        409,
        "version_conflict_engine_exception",
        f"[{doc_id}]: version conflict, {reason}",
        index=index,
        shard="0",
        index_uuid="_na_",
    )


def document_missing(index: str, doc_id: str) -> EngineError:
    return EngineError(
        404,
        "document_missing_exception",
        f"[{doc_id}]: document missing",
        index=index,
        shard="0",
        index_uuid="_na_",
    )


def search_context_missing(context_id: str) -> EngineError:
    return EngineError(
        404, "search_context_missing_exception", f"No search context found for id [{context_id}]"
    )


def resource_not_found(reason: str) -> EngineError:
    return EngineError(404, "resource_not_found_exception", reason)


def did_you_mean(unknown: str, candidates: list[str]) -> str:
    """The suffix OpenSearch's ObjectParser adds to an unknown field error (SuggestingErrorOnUnknown):
    candidates whose Lucene Levenshtein similarity (1 - edits / longest length) to ``unknown`` is above 0.5,
    best first."""
    scored = []
    for candidate in candidates:
        similarity = 1.0 - _edit_distance(unknown, candidate) / max(len(unknown), len(candidate), 1)
        if similarity > 0.5:
            scored.append((-similarity, candidate))
    if not scored:
        return ""
    keys = [candidate for _, candidate in sorted(scored)]
    return f" did you mean [{keys[0]}]?" if len(keys) == 1 else f" did you mean any of [{', '.join(keys)}]?"


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]
