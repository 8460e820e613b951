"""Lucene's CharTokenizers: whitespace and letter (cut at the maximum word length), and keyword."""

from __future__ import annotations

import functools
import re

from .base import DEFAULT_MAX_TOKEN_LENGTH, Tokens
from .standard import _ASCII_LETTERS, _icu_class, _utf16_len

# ----------------------------------------------------------------------------------------------------------
# CharTokenizers: whitespace, letter; keyword
# ----------------------------------------------------------------------------------------------------------

# Java's Character.isWhitespace: Zs/Zl/Zp except the no-break spaces U+00A0, U+2007, U+202F, plus
# U+0009-U+000D and U+001C-U+001F.  (Python's str.isspace also counts U+0085 and the no-break spaces.)
_JAVA_WHITESPACE = re.compile(
    "[\t\n\x0b\x0c\r\x1c-\x20\u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000]+"
)


@functools.cache
def _letters() -> re.Pattern[str]:
    return re.compile(_icu_class(r"[\p{L}]") + "+")  # Character.isLetter: general category L*


def _cut_char_tokens(tokens: Tokens, max_len: int) -> Tokens:
    """CharTokenizer emits a token as soon as it holds >= max_len UTF-16 units (a surrogate pair may make it
    max_len + 1)."""
    if all(_utf16_len(t) <= max_len for t in tokens):
        return tokens
    out: Tokens = []
    for token in tokens:
        if _utf16_len(token) <= max_len:
            out.append(token)
            continue
        piece, units = [], 0
        for ch in token:
            piece.append(ch)
            units += 2 if ch > "\uffff" else 1
            if units >= max_len:
                out.append("".join(piece))
                piece, units = [], 0
        if piece:
            out.append("".join(piece))
    return out


def _whitespace_tokens(text: str, max_len: int = DEFAULT_MAX_TOKEN_LENGTH) -> Tokens:
    tokens = text.split() if text.isascii() else [t for t in _JAVA_WHITESPACE.split(text) if t]
    return _cut_char_tokens(tokens, max_len)


def _letter_tokens(text: str, max_len: int = DEFAULT_MAX_TOKEN_LENGTH) -> Tokens:
    tokens = _ASCII_LETTERS.findall(text) if text.isascii() else _letters().findall(text)
    return _cut_char_tokens(tokens, max_len)


def _keyword_tokens(text: str) -> Tokens:
    return [text]  # KeywordTokenizer: one token, the empty one for empty input


