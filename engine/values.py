"""Coercion of JSON values into the typed values the index stores: numbers, dates, booleans, vectors.

Each function raises ``ValueError`` with a short reason; the caller turns it into OpenSearch's
``mapper_parsing_exception`` naming the field and the document.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime

INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "unsigned_long": (0, 2**64 - 1),
}
FLOAT_TYPES = ("float", "double", "half_float", "scaled_float")
NUMERIC_TYPES = tuple(INTEGER_RANGES) + FLOAT_TYPES


def coerce_number(value: object, field_type: str, coerce: bool = True) -> int | float:
    """A JSON value as the number a field of ``field_type`` stores (OpenSearch's NumberFieldMapper rules)."""
    if isinstance(value, bool):
        raise ValueError(f"Current token (VALUE_{str(value).upper()}) not numeric, can not use numeric value accessors")
    if isinstance(value, str):
        if not coerce:
            raise ValueError("Current token (VALUE_STRING) not numeric")
        text = value.strip()
        try:
            value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
        except ValueError:
            raise ValueError(f'For input string: "{value}"') from None
    if not isinstance(value, int | float):
        raise ValueError(f"Current token ({type(value).__name__}) not numeric")
    if field_type in INTEGER_RANGES:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"[{field_type}] supports only finite values, but got [{value}]")
            if not coerce and not value.is_integer():
                raise ValueError(f"Value [{value}] has a decimal part")
            value = int(value)  # OpenSearch truncates decimals when coercing
        low, high = INTEGER_RANGES[field_type]
        if not low <= value <= high:
            raise ValueError(f"Value [{value}] is out of range for {'an' if field_type == 'integer' else 'a'} {field_type}")
        return value
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"[{field_type}] supports only finite values, but got [{value}]")
    return value


def coerce_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value in ("false", ""):
        return False
    raise ValueError(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


_JAVA_TO_STRPTIME = [
    ("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"), ("SSS", "%f"), ("Z", "%z"),
]


def _java_pattern(pattern: str) -> str:
    for java, py in _JAVA_TO_STRPTIME:
        pattern = pattern.replace(java, py)
    return pattern.replace("'T'", "T")


def parse_date(value: object, formats: str = "strict_date_optional_time||epoch_millis") -> int:
    """Epoch milliseconds for a date value, trying each ``||``-separated format in turn as OpenSearch does."""
    for fmt in formats.split("||"):
        fmt = fmt.strip()
        try:
            millis = _parse_with(value, fmt)
        except (ValueError, OverflowError, TypeError):
            continue
        if millis is not None:
            return millis
    raise ValueError(f"failed to parse date field [{value}] with format [{formats}]")


def _parse_with(value: object, fmt: str) -> int | None:
    if fmt in ("epoch_millis", "epoch_second"):
        if isinstance(value, bool):
            return None
        number = float(value) if isinstance(value, str) else value
        if not isinstance(number, int | float):
            return None
        return int(number * 1000) if fmt == "epoch_second" else int(number)
    if not isinstance(value, str):
        return None
    if fmt in ("strict_date_optional_time", "date_optional_time", "strict_date_optional_time_nanos",
               "date_time", "strict_date_time", "date", "strict_date", "iso8601"):
        return _iso_millis(value)
    parsed = datetime.strptime(value, _java_pattern(fmt))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


_ISO_DATE = re.compile(r"^[+-]?\d{4}(-\d{2}(-\d{2})?)?")


def _iso_millis(value: str) -> int | None:
    text = value.strip()
    if not _ISO_DATE.match(text):
        return None
    if re.fullmatch(r"\d{4}", text):
        return int(datetime(int(text), 1, 1, tzinfo=UTC).timestamp() * 1000)
    if re.fullmatch(r"\d{4}-\d{2}", text):
        year, month = text.split("-")
        return int(datetime(int(year), int(month), 1, tzinfo=UTC).timestamp() * 1000)
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed_date = date.fromisoformat(text)
        parsed = datetime(parsed_date.year, parsed_date.month, parsed_date.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def looks_like_date(value: str) -> bool:
    """OpenSearch's dynamic date detection: strict_date_optional_time or yyyy/MM/dd [HH:mm:ss]."""
    if re.fullmatch(r"\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?", value):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([Tt].*)?", value):
        return False
    try:
        return _iso_millis(value) is not None
    except ValueError:
        return False


def format_date(millis: int) -> str:
    """The ISO-8601 string OpenSearch's default formatter prints for epoch millis (e.g. in sort values)."""
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
