"""Coercion of JSON values into the typed values the index stores: numbers, dates, booleans, vectors.

Each function raises ``ValueError`` with a short reason; the caller turns it into OpenSearch's
``mapper_parsing_exception`` naming the field and the document.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal

from .dates import NANOS_PER_MILLI, format_nanos, looks_like_date, parse_date

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
        raise ValueError(
            f"Current token (VALUE_{str(value).upper()}) not numeric, can not use numeric value accessors"
        )
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
            raise ValueError(
                f"Value [{value}] is out of range for {'an' if field_type == 'integer' else 'a'} {field_type}"
            )
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


# Dates live in :mod:`dates`; re-exported for the modules that import them from here.
__all__ = [
    "NUMERIC_TYPES",
    "coerce_boolean",
    "coerce_number",
    "format_date",
    "format_decimal",
    "looks_like_date",
    "parse_date",
]


def format_date(millis: int) -> str:
    """The ISO-8601 string OpenSearch's default formatter prints for epoch millis (e.g. in sort values)."""
    return format_nanos(millis * NANOS_PER_MILLI)


_DECIMAL_PATTERN = re.compile(
    r"(?P<prefix>[^#0,.]*)(?P<integer>[#0,]*)(?:\.(?P<fraction>0*#*))?(?P<suffix>[^#0,.]*)"
)


def format_decimal(value: int | float, pattern: str) -> str:
    """``value`` printed with a Java ``DecimalFormat`` pattern (``#.0``, ``0.00``, ``#,##0.###``),
    HALF_EVEN."""
    match = _DECIMAL_PATTERN.fullmatch(pattern.split(";")[0])
    if match is None:
        raise ValueError(f"unsupported decimal format pattern [{pattern}]")
    integer_spec, fraction_spec = match["integer"], match["fraction"] or ""
    min_int = integer_spec.replace(",", "").count("0")
    min_frac, max_frac = fraction_spec.count("0"), len(fraction_spec)
    group = len(integer_spec) - integer_spec.rfind(",") - 1 if "," in integer_spec else 0
    number = Decimal(repr(value) if isinstance(value, float) else value)
    number = number.quantize(Decimal(1).scaleb(-max_frac), rounding=ROUND_HALF_EVEN)
    sign = "-" if number < 0 else ""
    digits = format(abs(number), "f")
    int_text, _, frac_text = digits.partition(".")
    frac_text = frac_text.rstrip("0").ljust(min_frac, "0")
    int_text = int_text.lstrip("0").rjust(min_int, "0")
    if group:
        int_text = ",".join(int_text[max(0, i - group): i] for i in range(len(int_text), 0, -group)[::-1])
    if not int_text and not frac_text:
        int_text = "0"
    return f"{sign}{match['prefix']}{int_text}{'.' + frac_text if frac_text else ''}{match['suffix']}"
