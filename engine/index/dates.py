"""OpenSearch date formats: parsing dates to epoch nanoseconds and printing them back.

A ``date`` field keeps epoch milliseconds and a ``date_nanos`` field epoch nanoseconds, both as exact Python
ints. A mapping's ``format`` is a ``||``-separated list, tried in order; each entry is a built-in name
(``strict_date_optional_time``, ``epoch_millis``, ...) or a ``java.time`` pattern such as
``yyyy-MM-dd HH:mm:ss.SSS``, which is compiled once into a regular expression with one uniquely named group
per pattern letter run. Printing follows OpenSearch's printers: ``strict_date_optional_time`` prints three
fraction digits for ``date`` and three to nine (trailing zeros dropped) for ``date_nanos``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

NANOS_PER_MILLI = 1_000_000
NANOS_PER_SECOND = 1_000_000_000
DEFAULT_DATE_FORMAT = "strict_date_optional_time||epoch_millis"
DEFAULT_DATE_NANOS_FORMAT = "strict_date_optional_time_nanos||epoch_millis"

ISO_FORMATS = frozenset({
    "strict_date_optional_time", "date_optional_time", "strict_date_optional_time_nanos", "date_time",
    "strict_date_time", "date", "strict_date", "iso8601", "date_time_no_millis", "strict_date_time_no_millis",
    "date_hour_minute_second", "strict_date_hour_minute_second", "date_hour_minute_second_millis",
    "strict_date_hour_minute_second_millis", "date_hour_minute_second_fraction",
    "strict_date_hour_minute_second_fraction",
})
_ISO = re.compile(
    r"(?P<year>[+-]?\d{4,9})(?:-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2})"
    r"(?:[Tt](?P<hour>\d{1,2})(?::(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})(?:[.,](?P<fraction>\d{1,9}))?)?)?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?)?"
)
_MONTHS = [m.lower() for m in calendar.month_abbr[1:]]
_MONTH_NAMES = [m.lower() for m in calendar.month_name[1:]]


def default_format(field_type: str) -> str:
    return DEFAULT_DATE_NANOS_FORMAT if field_type == "date_nanos" else DEFAULT_DATE_FORMAT


def parse_to_nanos(value: object, formats: str = DEFAULT_DATE_FORMAT) -> int:
    """Epoch nanoseconds of ``value``, trying each ``||``-separated format in turn as OpenSearch does."""
    for fmt in formats.split("||"):
        try:
            nanos = _parse_with(value, fmt.strip())
        except (ValueError, OverflowError, TypeError, InvalidOperation):
            continue
        if nanos is not None:
            return nanos
    raise ValueError(f"failed to parse date field [{value}] with format [{formats}]")


def parse_date(value: object, formats: str = DEFAULT_DATE_FORMAT) -> int:
    """Epoch milliseconds of ``value`` (the instant floored to the millisecond, as
    ``Instant.toEpochMilli``)."""
    return parse_to_nanos(value, formats) // NANOS_PER_MILLI


# A date is stored as a Java long: epoch millis for `date`, epoch nanos for `date_nanos`, whose range is
# therefore 1970-01-01T00:00:00Z to 2262-04-11T23:47:16.854775807Z (DateUtils.MAX_NANOSECOND_INSTANT).
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def parse_date_value(value: object, field_type: str, formats: str | None = None) -> int:
    """The ``date`` (epoch millis) or ``date_nanos`` (epoch nanos) value of a query bound, clamped to what the
    field can store, as DateFieldType's range queries clamp it (Resolution.clampToValidRange)."""
    nanos = parse_to_nanos(value, formats or default_format(field_type))
    if field_type == "date_nanos":
        return min(max(nanos, 0), LONG_MAX)
    return min(max(nanos // NANOS_PER_MILLI, LONG_MIN), LONG_MAX)


def storable_date_value(value: object, field_type: str, formats: str | None = None) -> int:
    """The value a ``date`` or ``date_nanos`` field stores for a document's ``value``; ValueError (with
    DateUtils' message) when it does not fit the field's long."""
    nanos = parse_to_nanos(value, formats or default_format(field_type))
    if field_type == "date_nanos":
        if nanos < 0:
            raise ValueError(
                f"date[{_instant_text(nanos)}] is before the epoch in 1970 and cannot be stored in "
                "nanosecond resolution"
            )
        if nanos > LONG_MAX:
            raise ValueError(
                f"date[{_instant_text(nanos)}] is after 2262-04-11T23:47:16.854775807 and cannot be "
                "stored in nanosecond resolution"
            )
        return nanos
    millis = nanos // NANOS_PER_MILLI
    if not LONG_MIN <= millis <= LONG_MAX:
        raise ValueError(f"failed to parse date field [{value}]: the instant does not fit a long of millis")
    return millis


def _instant_text(nanos: int) -> str:
    try:
        return format_nanos(nanos, "strict_date_optional_time_nanos", "date_nanos")
    except (OverflowError, ValueError):
        return f"{nanos} nanoseconds from the epoch"


def _parse_with(value: object, fmt: str) -> int | None:
    if fmt in ("epoch_millis", "epoch_second"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None
        unit = NANOS_PER_MILLI if fmt == "epoch_millis" else NANOS_PER_SECOND
        if isinstance(value, int):
            return value * unit
        number = Decimal(str(value).strip())
        if not number.is_finite():
            return None
        return int(number * unit)
    if not isinstance(value, str):
        return None
    if fmt in ISO_FORMATS:
        return _parse_iso(value)
    match = _compile_pattern(fmt).regex.fullmatch(value)
    if match is None:
        return None
    return _instant(_compile_pattern(fmt), match)


def _parse_iso(text: str) -> int | None:
    match = _ISO.fullmatch(text.strip())
    if match is None:
        return None
    g = match.groupdict()
    fraction = g["fraction"] or ""
    moment = datetime(int(g["year"]), int(g["month"] or 1), int(g["day"] or 1), int(g["hour"] or 0),
                      int(g["minute"] or 0), int(g["second"] or 0), tzinfo=UTC)
    nanos = _epoch_seconds(moment) * NANOS_PER_SECOND + int(fraction.ljust(9, "0") or 0)
    return nanos - _offset_seconds(g["offset"]) * NANOS_PER_SECOND


def _epoch_seconds(moment: datetime) -> int:
    return calendar.timegm(moment.utctimetuple())


def _offset_seconds(offset: str | None) -> int:
    if not offset or offset in ("Z", "z"):
        return 0
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return sign * (hours * 3600 + minutes * 60)


# ----- java.time patterns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    groups: tuple[tuple[str, str, int], ...]  # (group name, pattern letter, run length)
    tokens: tuple[
        tuple[str, int], ...
    ]  # for printing: (letter or "" for a literal, run length or literal text)
    literals: tuple[str, ...]


_DIGITS = {"y": None, "u": None, "M": 2, "d": 2, "H": 2, "k": 2, "h": 2, "K": 2, "m": 2, "s": 2, "D": 3}


@lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> _Pattern:
    """Compile a java.time pattern; every letter run gets its own group (``g0``, ``g1``, ...)."""
    parts: list[str] = []
    groups: list[tuple[str, str, int]] = []
    tokens: list[tuple[str, int]] = []
    literals: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise ValueError(f"unterminated quote in date pattern [{pattern}]")
            text = pattern[i + 1: end] or "'"
            parts.append(re.escape(text))
            tokens.append(("", len(literals)))
            literals.append(text)
            i = end + 1
            continue
        if not char.isalpha():
            parts.append(re.escape(char))
            tokens.append(("", len(literals)))
            literals.append(char)
            i += 1
            continue
        run = 1
        while i + run < len(pattern) and pattern[i + run] == char:
            run += 1
        name = f"g{len(groups)}"
        parts.append(f"(?P<{name}>{_letter_regex(char, run)})")
        groups.append((name, char, run))
        tokens.append((char, run))
        i += run
    return _Pattern(re.compile("".join(parts), re.IGNORECASE), tuple(groups), tuple(tokens), tuple(literals))


def _letter_regex(letter: str, run: int) -> str:
    if letter in ("y", "u"):
        return r"\d{2}" if run == 2 else (r"\d{4}" if run == 4 else rf"[+-]?\d{{{run},9}}")
    if letter == "M" and run >= 3:
        return "[a-z]{3}" if run == 3 else "[a-z]+"
    if letter in _DIGITS:
        width = _DIGITS[letter]
        return rf"\d{{1,{width}}}" if run == 1 else rf"\d{{{run}}}"
    if letter == "S":
        return rf"\d{{{run}}}"
    if letter == "a":
        return "am|pm"
    if letter in ("E", "e"):
        return "[a-z]+"
    if letter in ("Z", "X", "x"):
        return r"Z|[+-]\d{2}(?::?\d{2})?"
    raise ValueError(f"unsupported date pattern letter [{letter}]")


def _instant(pattern: _Pattern, match: re.Match[str]) -> int:
    fields = {"year": 1970, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
    nanos = 0
    offset = 0
    pm: bool | None = None
    day_of_year: int | None = None
    for name, letter, run in pattern.groups:
        text = match.group(name)
        if letter in ("y", "u"):
            fields["year"] = 2000 + int(text) if run == 2 else int(text)
        elif letter == "M":
            fields["month"] = int(text) if run < 3 else (
                _MONTHS.index(text.lower()) + 1 if run == 3 else _MONTH_NAMES.index(text.lower()) + 1)
        elif letter == "d":
            fields["day"] = int(text)
        elif letter == "D":
            day_of_year = int(text)
        elif letter in ("H", "k", "h", "K"):
            fields["hour"] = int(text) % 24 if letter == "k" else int(text)
        elif letter == "m":
            fields["minute"] = int(text)
        elif letter == "s":
            fields["second"] = int(text)
        elif letter == "S":
            nanos = int(text.ljust(9, "0")[:9])
        elif letter == "a":
            pm = text.lower() == "pm"
        elif letter in ("Z", "X", "x"):
            offset = _offset_seconds(text)
    if pm is not None:
        fields["hour"] = fields["hour"] % 12 + (12 if pm else 0)
    moment = datetime(fields["year"], fields["month"], fields["day"], fields["hour"], fields["minute"],
                      fields["second"], tzinfo=UTC)
    if day_of_year is not None:
        moment = moment.replace(month=1, day=1) + timedelta(days=day_of_year - 1)
    return (_epoch_seconds(moment) - offset) * NANOS_PER_SECOND + nanos


# ----- printing ---------------------------------------------------------------------------------------------


def format_nanos(nanos: int, fmt: str | None = None, field_type: str = "date") -> str:
    """``nanos`` printed with the first format of ``fmt`` (the field's default format when None)."""
    first = (fmt or default_format(field_type)).split("||")[0].strip()
    if first == "epoch_millis":
        millis, rest = divmod(nanos, NANOS_PER_MILLI)
        return str(millis) if not rest else f"{millis}.{str(rest).rjust(6, '0').rstrip('0')}"
    if first == "epoch_second":
        seconds, rest = divmod(nanos, NANOS_PER_SECOND)
        return str(seconds) if not rest else f"{seconds}.{str(rest).rjust(9, '0').rstrip('0')}"
    seconds, fraction = divmod(nanos, NANOS_PER_SECOND)
    digits = str(fraction).rjust(9, "0")
    if first.endswith("_nanos") or field_type == "date_nanos":
        digits = digits.rstrip("0").ljust(3, "0")
    else:
        digits = digits[:3]
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:  # beyond datetime's years 1-9999 (a long of millis reaches +-292 million years)
        return _iso_beyond_datetime(seconds) + digits + "Z"
    if first in ISO_FORMATS:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + digits + "Z"
    return _print_pattern(_compile_pattern(first), moment, fraction)


def _iso_beyond_datetime(seconds: int) -> str:
    """``yyyy-MM-ddTHH:mm:ss.`` for any epoch second, proleptic Gregorian as java.time prints it (a sign
    before years outside 0-9999); days to a civil date by H. Hinnant's ``civil_from_days``."""
    days, rest = divmod(seconds, 86400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    sign = "+" if year > 9999 else ("-" if year < 0 else "")
    return f"{sign}{abs(year):04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}."


def _print_pattern(pattern: _Pattern, moment: datetime, fraction: int) -> str:
    out = []
    for letter, run in pattern.tokens:
        if letter == "":
            out.append(pattern.literals[run])
        elif letter in ("y", "u"):
            out.append(f"{moment.year % 100:02d}" if run == 2 else str(moment.year).rjust(run, "0"))
        elif letter == "M":
            out.append(str(moment.month).rjust(run, "0") if run < 3 else (
                calendar.month_abbr[moment.month] if run == 3 else calendar.month_name[moment.month]))
        elif letter == "S":
            out.append(str(fraction).rjust(9, "0")[:run].ljust(run, "0"))
        elif letter in ("Z", "X", "x"):
            out.append("Z" if letter == "X" else "+0000")
        elif letter == "a":
            out.append("PM" if moment.hour >= 12 else "AM")
        elif letter in ("E", "e"):
            out.append(moment.strftime("%a" if run < 4 else "%A"))
        else:
            value = {"d": moment.day, "H": moment.hour, "k": moment.hour or 24, "h": (moment.hour % 12) or 12,
                     "K": moment.hour % 12, "m": moment.minute, "s": moment.second,
                     "D": moment.timetuple().tm_yday}[letter]
            out.append(str(value).rjust(run, "0"))
    return "".join(out)


def looks_like_date(value: str) -> bool:
    """OpenSearch's dynamic date detection: strict_date_optional_time or yyyy/MM/dd [HH:mm:ss]."""
    if re.fullmatch(r"\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?", value):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([Tt].*)?", value):
        return False
    try:
        return _parse_iso(value) is not None
    except ValueError:
        return False
