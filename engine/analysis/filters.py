"""Token filters: Java's case mapping, the English possessive, and the filter objects of custom chains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import icu

from .base import Flags, Tokens
from .porter import _porter_stem

# ----------------------------------------------------------------------------------------------------------
# Token filters
# ----------------------------------------------------------------------------------------------------------


def _java_lower(token: str) -> str:
    """Character.toLowerCase per code point.  Python's str.lower differs only for U+0130 (full mapping to
    "i" + U+0307) and U+03A3 (final sigma); the tests check every other code point against ICU's simple
    mapping, which is Java's."""
    if token.isascii():
        return token.lower()
    if "\u0130" in token or "\u03a3" in token:
        token = token.replace("\u0130", "i").replace("\u03a3", "\u03c3")
    return token.lower()


def _java_upper(token: str) -> str:
    """Character.toUpperCase per code point (simple mapping: "ß" stays "ß", Python's str.upper gives "SS")."""
    if token.isascii():
        return token.upper()
    return "".join(chr(icu.Char.toupper(ord(ch))) for ch in token)


def _strip_possessive(token: str) -> str:
    """EnglishPossessiveFilter: drop a trailing 's, ’s or ＇s (s or S)."""
    if len(token) >= 2 and token[-1] in "sS" and token[-2] in "'\u2019\uff07":
        return token[:-2]
    return token


# --- filter objects for custom chains -----------------------------------------------------------------------


class _Filter:
    def __call__(self, tokens: Tokens, flags: Flags) -> tuple[Tokens, Flags]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Map(_Filter):
    fn: Callable[[str], str]

    def __call__(self, tokens: Tokens, flags: Flags) -> tuple[Tokens, Flags]:
        return list(map(self.fn, tokens)), flags


@dataclass(frozen=True)
class _Stop(_Filter):
    words: frozenset[str]
    ignore_case: bool = False

    def __call__(self, tokens: Tokens, flags: Flags) -> tuple[Tokens, Flags]:
        key = _java_lower if self.ignore_case else None
        keep = [(key(t) if key else t) not in self.words for t in tokens]
        kept = [t for t, k in zip(tokens, keep, strict=True) if k]
        if flags is not None:
            flags = [f for f, k in zip(flags, keep, strict=True) if k]
        return kept, flags


@dataclass(frozen=True)
class _KeywordMarker(_Filter):
    words: frozenset[str]
    ignore_case: bool = False

    def __call__(self, tokens: Tokens, flags: Flags) -> tuple[Tokens, Flags]:
        flags = flags or [False] * len(tokens)
        key = _java_lower if self.ignore_case else str
        return tokens, [f or key(t) in self.words for t, f in zip(tokens, flags, strict=True)]


@dataclass(frozen=True)
class _Porter(_Filter):
    def __call__(self, tokens: Tokens, flags: Flags) -> tuple[Tokens, Flags]:
        if flags is None:
            return list(map(_porter_stem, tokens)), flags
        return [t if f else _porter_stem(t) for t, f in zip(tokens, flags, strict=True)], flags


