"""Lucene's StandardTokenizer (UAX #29 word breaks): an ASCII fast path, the JFlex grammar over ICU's
Unicode sets, and the ICU BreakIterator path; tokens
longer than ``max_token_length`` are chopped as Lucene does."""

from __future__ import annotations

import bisect
import functools
import re
import threading

import icu

from .base import DEFAULT_MAX_TOKEN_LENGTH, Tokens

# ----------------------------------------------------------------------------------------------------------
# StandardTokenizer, ASCII fast path
# ----------------------------------------------------------------------------------------------------------

# JFlex's WORD/NUM rules restricted to ASCII: parts are letter runs joined by MidLetter/MidNumLet/Single_Quote
# (WB6/7) or digit runs joined by MidNum/MidNumLet/Single_Quote (WB11/12); parts touch directly (WB9/10) or
# through "_" (WB13a/b); "_" may lead and trail but is never a token on its own.  Every part is a maximal
# munch of its own character kind, so Python's greedy match is JFlex's longest match here.
_ASCII_PART = r"(?:[A-Za-z]+(?:[:.'][A-Za-z]+)*|[0-9]+(?:[,.;'][0-9]+)*)"
_ASCII_WORD = re.compile(rf"_*{_ASCII_PART}(?:_*{_ASCII_PART})*_*")
_ASCII_LETTERS = re.compile(r"[A-Za-z]+")
_WHITESPACE = re.compile(r"\s")
_ASCII_NON_WORD = "".join(chr(c) for c in range(128) if not (chr(c).isalnum() or chr(c) == "_"))


def _ascii_words(text: str) -> Tokens:
    """``_ASCII_WORD.findall(text)`` for ASCII text, about twice as fast on prose: a token never spans
    whitespace and never starts or ends with a character outside [A-Za-z0-9_], so a whitespace-delimited
    chunk whose remainder is letters and digits only (WB5, WB8-10) is one token; the regex reads the other
    chunks."""
    out: Tokens = []
    findall = _ASCII_WORD.findall
    for chunk in text.split():
        if chunk.isalnum():
            out.append(chunk)
            continue
        chunk = chunk.strip(_ASCII_NON_WORD)
        if chunk.isalnum():
            out.append(chunk)
        elif chunk:
            out.extend(findall(chunk))
    return out


def _ascii_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    return [m.span() for m in _ASCII_WORD.finditer(text, start, len(text) if end is None else end)]


# ----------------------------------------------------------------------------------------------------------
# StandardTokenizer, the grammar engine (StandardTokenizerImpl.jflex over ICU's Unicode sets)
# ----------------------------------------------------------------------------------------------------------


def _icu_class(pattern: str) -> str:
    """A regex character class holding exactly the code points of an ICU UnicodeSet pattern."""
    ranges = [
        f"\\U{ord(lo):08x}" if lo == hi else f"\\U{ord(lo):08x}-\\U{ord(hi):08x}"
        for lo, hi in icu.UnicodeSet(pattern).ranges()
    ]
    return "[" + "".join(ranges) + "]" if ranges else "(?!)"


_WB_X = r"\p{WB=Format}\p{WB=Extend}\p{WB=ZWJ}"
# Unicode 12.1 pin: U+202F is ExtendNumLet only since Unicode 14.
_WB_EXTEND_NUM_LET = r"[\p{WB=ExtendNumLet}-[\u202F]]"
# EmojiChar = Extended_Pictographic | (Emoji minus RI, keycap bases, "accidental" ©®™〰〽, modifiers)
_EMOJI_CHAR = (
    r"[\p{Extended_Pictographic}"
    r"[\p{Emoji}-\p{Regional_Indicator}-[0-9#*]-[\u00A9\u00AE\u2122\u3030\u303D]-\p{Emoji_Modifier}]]"
)
# Characters around which ICU's root rules and Lucene's grammar differ (see the module docstring).
_TRIGGERS = (
    r"[\p{Script=Han}\p{Ideographic}\p{Script=Hiragana}\p{WB=Katakana}\p{Script=Hangul}\p{WB=Hebrew_Letter}"
    r"\p{Line_Break=Complex_Context}"
    + _EMOJI_CHAR
    + r"\p{Emoji_Modifier_Base}\p{Emoji_Modifier}\p{Regional_Indicator}\u20E3\u003A\uFE55\uFF1A@]"
)


# The grammar's character sets, as ICU UnicodeSet patterns.
_SETS: dict[str, str] = {
    "X": f"[{_WB_X}]",  # ExtFmtZwj: UAX #29 WB4, X (Extend | Format | ZWJ)* -> X
    "PS": r"[\uFE0E\uFE0F]",  # presentation selectors, left out of ExtFmtZwjSansPresSel
    "FE0F": r"[\uFE0F]",
    "A": r"[\p{WB=ALetter}\p{WB=Hebrew_Letter}]",
    "H": r"[\p{WB=Hebrew_Letter}]",
    "D": r"[\p{WB=Numeric}]",
    "K": r"[\p{WB=Katakana}]",
    "ML": r"[\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=Single_Quote}]",
    "MN": r"[\p{WB=MidNum}\p{WB=MidNumLet}\p{WB=Single_Quote}]",
    "U": _WB_EXTEND_NUM_LET,
    "SQ": r"[\p{WB=Single_Quote}]",
    "DQ": r"[\p{WB=Double_Quote}]",
    "HAN": r"[\p{Script=Han}]",
    "HIRA": r"[\p{Script=Hiragana}]",
    "SA": r"[\p{Line_Break=Complex_Context}]",
    "EC": _EMOJI_CHAR,
    "EMB": r"[\p{Emoji_Modifier_Base}]",
    "EM": r"[\p{Emoji_Modifier}]",
    "RI": r"[\p{Regional_Indicator}]",
    "ZWJ": r"[\u200D]",
    "KCB": r"[0-9#*]",
    "KC": r"[\u20E3]",
    "TS": r"[\U000E0020-\U000E007E]",
    "TT": r"[\U000E007F]",
}


class _ClassOf(dict[str, str]):
    """Character -> the letter naming its combination of grammar sets (filled on demand)."""

    def __init__(self, starts: list[int], letters: list[str]) -> None:
        super().__init__()
        self.starts, self.letters = starts, letters

    def __missing__(self, ch: str) -> str:
        letter = self[ch] = self.letters[bisect.bisect_right(self.starts, ord(ch)) - 1]
        return letter


# States of the EMOJI rule's automaton (see _Grammar._emoji_length).
_E_START, _E_KEYCAP_BASE, _E_KEYCAP_SEL, _E_KEYCAP, _E_RI1, _E_RI2, _E_JOIN, _E_TAGS, _E_TAG_END = range(9)
_E_ZWJS, _E_CHAR, _E_CHAR_SEL, _E_MOD_BASE, _E_MOD = 10, 12, 14, 16, 18  # + 1 when not the first sequence
_E_ACCEPT = frozenset(
    {_E_KEYCAP, _E_RI2, _E_TAG_END, _E_CHAR, _E_CHAR + 1, _E_CHAR_SEL, _E_CHAR_SEL + 1, _E_MOD, _E_MOD + 1}
)


class _Grammar:
    """StandardTokenizerImpl.jflex (Lucene 9/10), rule by rule, with JFlex's longest-match semantics.

    Each code point is mapped to a letter standing for its combination of the grammar's sets (a sweep over
    ICU's ranges partitions the code space), and the rules run over that string of letters:

    * WORD (with its sub-languages NUM, KATAKANA, HANGUL) over the letters with Extend/Format/ZWJ removed
      (WB4: they only ever extend the character before them).  The JFlex expression is then "local": a string
      is a token iff each character may follow the one before it, so one deterministic regex whose greedy
      match is the longest match: a letter may follow a letter, digit, "_" or a Hebrew letter's quote, a digit
      likewise, katakana only katakana or "_"; a MidLetter/MidNumLet/Single_Quote only between letters
      (WB6/7), a MidNum/MidNumLet/Single_Quote only between digits (WB11/12); Single_Quote after a Hebrew
      letter (WB7a), Double_Quote between Hebrew letters (WB7b/c); "_" anywhere (WB13a/b), but never alone.
    * EMOJI by a small automaton (the rule's ZWJ may extend a character or join two, so a regex would need
      backtracking to find the longest match).
    * SOUTH_EAST_ASIAN runs, IDEOGRAPHIC and HIRAGANA characters by plain regexes.
    """

    def __init__(self) -> None:
        names = list(_SETS)
        events: dict[int, int] = {}
        for bit, name in enumerate(names):
            for lo, hi in icu.UnicodeSet(_SETS[name]).ranges():  # disjoint, non-adjacent ranges
                events[ord(lo)] = events.get(ord(lo), 0) ^ (1 << bit)
                events[ord(hi) + 1] = events.get(ord(hi) + 1, 0) ^ (1 << bit)
        letter_of_mask: dict[int, str] = {0: "\u0100"}
        starts, letters, mask = [0], ["\u0100"], 0
        for cp in sorted(events):
            mask ^= events[cp]
            letter = letter_of_mask.setdefault(mask, chr(0x100 + len(letter_of_mask)))
            if letter != letters[-1]:
                starts.append(cp)
                letters.append(letter)
        self.class_of = _ClassOf(starts, letters)
        self.bit = {name: 1 << i for i, name in enumerate(names)}
        self.mask_of = {letter: m for m, letter in letter_of_mask.items()}

        def c(*include: str, exclude: tuple[str, ...] = ()) -> str:
            inc = sum(self.bit[n] for n in include)
            exc = sum(self.bit[n] for n in exclude)
            out = sorted(letter for m, letter in letter_of_mask.items() if m & inc and not m & exc)
            return "[" + "".join(out) + "]" if out else "(?!)"

        self.x = re.compile(c("X"))
        a, h, d, k, u = c("A"), c("H"), c("D"), c("K"), c("U")
        step = "|".join(
            (
                f"(?<![{k[1:-1]}]){a}",  # letter after anything but katakana
                f"(?<![{k[1:-1]}]){d}",  # digit likewise
                f"(?<=[{k[1:-1]}{u[1:-1]}]){k}",  # katakana after katakana or ExtendNumLet
                u,
                f"(?<=[{a[1:-1]}]){c('ML')}(?=[{a[1:-1]}])",
                f"(?<=[{d[1:-1]}]){c('MN')}(?=[{d[1:-1]}])",
                f"(?<=[{h[1:-1]}]){c('SQ')}",
                f"(?<=[{h[1:-1]}]){c('DQ')}(?=[{h[1:-1]}])",
            )
        )
        core = f"{a[1:-1]}{d[1:-1]}{k[1:-1]}"
        self.word = re.compile(f"(?=[{u[1:-1]}]*[{core}])[{core}{u[1:-1]}](?:{step})*")
        x = c("X")
        self.complex_context = re.compile(f"(?:{c('SA')}{x}*)+")  # SOUTH_EAST_ASIAN_TYPE
        self.han, self.hiragana = re.compile(f"{c('HAN')}{x}*"), re.compile(f"{c('HIRA')}{x}*")
        self.word_start = re.compile(c("A", "D", "K", "U"))
        self.emoji_start = re.compile(c("EC", "EMB", "EM", "RI", "ZWJ", "KCB"))
        self.any_start = re.compile(
            c("A", "D", "K", "U", "EC", "EMB", "EM", "RI", "ZWJ", "KCB", "HAN", "HIRA", "SA")
        )
        self.extend_num_let_only = re.compile(f"{u}(?:{u}|{x})*")
        # ICU path: where ICU's root rules and the grammar part ways (see the module docstring), and ICU's
        # status 0 for a word that ends in ExtendNumLet + Extend/Format/ZWJ ("a_" + U+0301).
        self.triggers = re.compile(
            f"{_icu_class(_TRIGGERS)}|{_icu_class(_SETS['U'])}{_icu_class(_SETS['X'])}"
        )
        self.ext_num_let_chars = frozenset(icu.UnicodeSet(_SETS["U"]))

    def classes(self, text: str) -> str:
        return "".join(map(self.class_of.__getitem__, text))

    def _emoji_length(self, cls: str, pos: int) -> int:
        """Longest match of the EMOJI rule at ``pos``:

            Seq (ZWJ Seq)* | Seq TagSpec+ TagTerm | KeyCapBase XS* FE0F? KeyCap XS* | (RI X*){2}
            Seq = ZWJ* EmojiChar XS* FE0F? | (ZWJ* ModifierBase XS*)? Modifier XS*

        XS = Extend/Format/ZWJ minus the presentation selectors; a set of states runs in one pass."""
        bit, masks = self.bit, self.mask_of
        x, ps, fe0f, zwj = bit["X"], bit["PS"], bit["FE0F"], bit["ZWJ"]
        ec, emb, em, ri = bit["EC"], bit["EMB"], bit["EM"], bit["RI"]
        kcb, kc, ts, tt = bit["KCB"], bit["KC"], bit["TS"], bit["TT"]
        states, best = {_E_START}, 0
        for i in range(pos, len(cls)):
            m = masks[cls[i]]
            xs = m & x and not m & ps
            nxt: set[int] = set()
            for s in states:
                if s in (_E_START, _E_JOIN) or s in (_E_ZWJS, _E_ZWJS + 1):
                    later = 0 if s == _E_START or s == _E_ZWJS else 1  # 1: a sequence after a joining ZWJ
                    if m & zwj:
                        nxt.add(_E_ZWJS + later)
                    if m & ec:
                        nxt.add(_E_CHAR + later)
                    if m & emb:
                        nxt.add(_E_MOD_BASE + later)
                    if m & em and s not in (_E_ZWJS, _E_ZWJS + 1):  # the ZWJ* prefix needs a modifier base
                        nxt.add(_E_MOD + later)
                    if s == _E_START:
                        if m & kcb:
                            nxt.add(_E_KEYCAP_BASE)
                        if m & ri:
                            nxt.add(_E_RI1)
                elif s in (_E_CHAR, _E_CHAR + 1, _E_CHAR_SEL, _E_CHAR_SEL + 1, _E_MOD, _E_MOD + 1):
                    first = s in (_E_CHAR, _E_CHAR_SEL, _E_MOD)
                    if xs and s not in (_E_CHAR_SEL, _E_CHAR_SEL + 1):
                        nxt.add(s)
                    if m & fe0f and s in (_E_CHAR, _E_CHAR + 1):
                        nxt.add(s + 2)
                    if m & zwj:
                        nxt.add(_E_JOIN)
                    if m & ts and first:
                        nxt.add(_E_TAGS)
                elif s in (_E_MOD_BASE, _E_MOD_BASE + 1):
                    if xs:
                        nxt.add(s)
                    if m & em:
                        nxt.add(_E_MOD + (s - _E_MOD_BASE))
                elif s == _E_TAGS:
                    if m & ts:
                        nxt.add(_E_TAGS)
                    if m & tt:
                        nxt.add(_E_TAG_END)
                elif s == _E_KEYCAP_BASE:
                    if xs:
                        nxt.add(s)
                    if m & fe0f:
                        nxt.add(_E_KEYCAP_SEL)
                    if m & kc:
                        nxt.add(_E_KEYCAP)
                elif s == _E_KEYCAP_SEL:
                    if m & kc:
                        nxt.add(_E_KEYCAP)
                elif s == _E_KEYCAP:
                    if xs:
                        nxt.add(s)
                elif s in (_E_RI1, _E_RI2):
                    if m & x:
                        nxt.add(s)
                    if m & ri and s == _E_RI1:
                        nxt.add(_E_RI2)
            if not nxt:
                break
            states = nxt
            if states & _E_ACCEPT:
                best = i + 1 - pos
        return best

    def spans(self, text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """Token spans of ``text[start:end]``, the end acting as end of input."""
        cls = self.classes(text[start:end])
        # WORD runs over the letters without Extend/Format/ZWJ: ``kept`` maps its positions back.
        kept = [i for i, ch in enumerate(cls) if not self.x.match(ch)] + [len(cls)]
        core = "".join(cls[i] for i in kept[:-1])
        core_at = {i: j for j, i in enumerate(kept)}
        out: list[tuple[int, int]] = []
        pos = 0
        while True:
            m = self.any_start.search(cls, pos)
            if m is None:
                break
            pos = m.start()
            best = 0
            if self.word_start.match(cls, pos):
                w = self.word.match(core, core_at[pos])
                if w is not None:
                    best = kept[w.end()] - pos
            if self.emoji_start.match(cls, pos):
                best = max(best, self._emoji_length(cls, pos))
            for rule in (self.complex_context, self.han, self.hiragana):
                r = rule.match(cls, pos)
                if r is not None:
                    best = max(best, r.end() - pos)
            if best:
                out.append((start + pos, start + pos + best))
                pos += best
            else:
                pos += 1  # the grammar's catch-all rule: skip one character
        return out

    def only_extend_num_let(self, token: str) -> bool:
        return self.extend_num_let_only.fullmatch(self.classes(token)) is not None


@functools.cache
def _grammar() -> _Grammar:
    return _Grammar()  # built on first use


def _grammar_tokens(text: str) -> Tokens:
    """StandardTokenizer by the transcribed grammar alone (tests compare it with the other two paths)."""
    tokens = [text[a:b] for a, b in _grammar().spans(text.replace("\u202f", " "))]
    return _chop(tokens, DEFAULT_MAX_TOKEN_LENGTH)


# ----------------------------------------------------------------------------------------------------------
# StandardTokenizer, the ICU path
# ----------------------------------------------------------------------------------------------------------

_ICU = threading.local()  # BreakIterator instances are not thread-safe: one per thread


def _icu_word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the segments with a word rule status (UBRK_WORD_NUMBER/LETTER/KANA/IDEO, i.e. != 0)."""
    bi = getattr(_ICU, "word", None)
    if bi is None:
        bi = _ICU.word = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
    bi.setText(text)
    spans = []
    start = 0
    for stop in bi:  # offsets are UTF-16 units
        if bi.getRuleStatus():
            spans.append((start, stop))
        start = stop
    if text and max(text) > "\uffff":
        index = []
        for i, ch in enumerate(text):
            index.append(i)
            if ch > "\uffff":
                index.append(i)
        index.append(len(text))
        spans = [(index[a], index[b]) for a, b in spans]
    return spans


def _icu_tokens(text: str) -> Tokens:
    """StandardTokenizer via ICU's UAX #29 segmentation, with Lucene's differences applied (no length cut)."""
    g = _grammar()
    if "\u202f" in text:
        text = text.replace("\u202f", " ")  # Unicode 12.1: Other, never inside a token (same length)
    spans = _icu_word_spans(text)
    enl = g.ext_num_let_chars
    if not g.triggers.search(text):
        return [
            text[a:b] for a, b in spans if text[a] not in enl or not g.only_extend_num_let(text[a:b])
        ]
    # Re-read each whitespace-delimited chunk that holds a trigger with the grammar engine.
    chunks: list[tuple[int, int]] = []
    for m in g.triggers.finditer(text):
        if chunks and m.start() < chunks[-1][1]:
            continue
        s = m.start()
        while s > 0 and not text[s - 1].isspace():
            s -= 1
        w = _WHITESPACE.search(text, m.end())
        chunks.append((s, w.start() if w else len(text)))
    out: Tokens = []
    ci = 0
    for a, b in spans:
        while ci < len(chunks) and chunks[ci][1] <= a:
            out.extend(text[p:q] for p, q in g.spans(text, *chunks[ci]))
            ci += 1
        if ci < len(chunks) and chunks[ci][0] <= a:
            continue  # inside a re-read chunk
        if text[a] not in enl or not g.only_extend_num_let(text[a:b]):
            out.append(text[a:b])
    for cs, ce in chunks[ci:]:
        out.extend(text[p:q] for p, q in g.spans(text, cs, ce))
    return out


def _standard_tokens(text: str, max_len: int = DEFAULT_MAX_TOKEN_LENGTH) -> Tokens:
    """Lucene's StandardTokenizer: ASCII text by the fast path; otherwise chunk by chunk, ASCII chunks by the
    fast path and the others by the ICU path.  Whitespace (str.split's, which Lucene's grammar never puts in
    or beside a token: all of it is WB Other/WSegSpace/Newline in Unicode 12.1) separates tokens absolutely,
    so the tokens of a text are the tokens of its chunks, one after another."""
    if text.isascii():
        tokens = _ascii_words(text)
        return _chop(tokens, max_len) if tokens and max(map(len, tokens)) > max_len else tokens
    out: Tokens = []
    for chunk in text.split():
        out.extend(_standard_chunk(chunk, max_len))
    return out


def _standard_chunk(chunk: str, max_len: int = DEFAULT_MAX_TOKEN_LENGTH) -> Tokens:
    """StandardTokenizer on a chunk without whitespace."""
    if chunk.isalnum() and chunk.isascii() and len(chunk) <= max_len:
        return [chunk]
    if chunk.isascii():
        core = chunk.strip(_ASCII_NON_WORD)
        tokens = [core] if core.isalnum() else _ASCII_WORD.findall(core)
        return _chop(tokens, max_len) if len(chunk) > max_len else tokens
    tokens = _icu_tokens(chunk)
    return _chop(tokens, max_len) if 2 * len(chunk) > max_len else tokens


def _utf16_len(token: str) -> int:
    return len(token) if token.isascii() or max(token) <= "\uffff" else len(token.encode("utf-16-le")) // 2


def _chop(tokens: Tokens, max_len: int) -> Tokens:
    """Cut tokens longer than ``max_len`` UTF-16 units as the JFlex scanner with a ``max_len`` buffer does:
    the longest match inside the buffer, then scanning resumes right after it."""
    if all(_utf16_len(t) <= max_len for t in tokens):
        return tokens
    out: Tokens = []
    for token in tokens:
        if _utf16_len(token) <= max_len:
            out.append(token)
            continue
        scan = _ascii_spans if token.isascii() else _grammar().spans
        pos = 0
        while pos < len(token):
            window = pos + max_len
            while _utf16_len(token[pos:window]) > max_len:
                window -= 1
            spans = scan(token, pos, min(window, len(token)))
            if not spans or spans[0][0] != pos:
                pos += 1  # no match starts here within the buffer: the catch-all rule skips a character
                continue
            out.append(token[pos : spans[0][1]])
            pos = spans[0][1]
    return out


