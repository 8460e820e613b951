"""What every analysis module shares: the analyzer type, its error, Lucene's defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

BUILTIN_ANALYZERS: tuple[str, ...] = ("standard", "english", "simple", "stop", "whitespace", "keyword")

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which is also OpenSearch's `_english_` list.
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)

# StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH, CharTokenizer.DEFAULT_MAX_WORD_LEN
DEFAULT_MAX_TOKEN_LENGTH = 255
MAX_TOKEN_LENGTH_LIMIT = 1024 * 1024  # StandardTokenizer.MAX_TOKEN_LENGTH_LIMIT


class AnalysisError(ValueError):
    """A bad analyzer name or definition; the message is worded as OpenSearch words it."""


Tokens = list[str]
Flags = list[bool] | None  # Lucene's KeywordAttribute per token, None when no filter set one


@dataclass(frozen=True, slots=True)
class Analyzer:
    """A named analysis chain; immutable, reusable and safe to share between threads."""

    name: str
    _run: Callable[[str], Tokens] = field(repr=False, compare=False)

    def tokens(self, text: str) -> Tokens:
        """The terms of ``text`` in order (positions are implied by the order)."""
        return self._run(text)


