"""Text analysis exactly as OpenSearch 2.x/3.x does it (Lucene 9/10 analyzers).

Public surface::

    get_analyzer("english").tokens("The dog's bones")  ->  ["dog", "bone"]
    get_analyzer("my", {"analyzer": {"my": {"tokenizer": "standard", "filter": ["lowercase"]}}})

Built-in analyzers (Lucene's components, in Lucene's order):

    standard    StandardTokenizer(max_token_length 255) -> LowerCaseFilter [-> StopFilter, default none]
    english     StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter -> StopFilter(english)
                [-> SetKeywordMarkerFilter(stem_exclusion)] -> PorterStemFilter
    simple      LetterTokenizer -> LowerCaseFilter
    stop        LetterTokenizer -> LowerCaseFilter -> StopFilter(english)
    whitespace  WhitespaceTokenizer
    keyword     KeywordTokenizer (the whole input is one token, even when empty)

StandardTokenizer.  Lucene's is a JFlex grammar (StandardTokenizerImpl.jflex, ``%unicode 12.1``) for the
Unicode UAX #29 word-break rules, plus Lucene's own token kinds.  Here it is three implementations that the
tests hold equal to each other:

* the ICU path: PyICU's word BreakIterator (root locale) is the UAX #29 engine; a segment is a token when its
  rule status is not UBRK_WORD_NONE (0).  Where ICU's root rules and Lucene's grammar part ways, the affected
  whitespace-delimited chunk (tokens never span whitespace in either) is re-read by the grammar engine:

  - colon: UAX #29 and Lucene keep ``:`` (and U+FE55, U+FF1A) in MidLetter, so "foo:bar" is one token
    (TestStandardAnalyzer.testMid: "A:B" -> ["A:B"], "A::B" -> ["A", "B"]); ICU's root rules drop them from
    MidLetter (word.txt; Swedish is now a tailoring) and split.
  - ideographs and kana: Lucene emits each Han ideograph and each hiragana as its own token and a katakana run
    as one (testChinese: "我是中国人" -> 我/是/中/国/人, testJapanese: "仮名遣い カタカナ" ->
    仮/名/遣/い/カタカナ); ICU segments them with its CJ dictionary.
  - South-East Asian scripts (Line_Break=Complex_Context: Thai, Lao, Khmer, Myanmar): Lucene keeps a run
    together (testThai: "การที่ได้ต้องแสดงว่างานดี" is one token); ICU splits it with dictionaries, and
    treats such letters as ALetter (so "aไทย" would be one word; Lucene gives "a", "ไทย").
  - emoji: Lucene emits emoji sequences as <EMOJI> tokens (TR #51 emoji_sequence: ZWJ, modifier, keycap,
    flag and tag sequences; testEmoji*), and Extended_Pictographic includes © ® ™, so "© 2013" gives
    ["©", "2013"]; ICU gives emoji rule status 0.
  - "@": ICU 72 stopped breaking around it (CLDR-15767, for e-mail addresses: "a@b.org" is one ICU word);
    in UAX #29 and Lucene it is Other, so StandardTokenizer gives "a", "b.org" (e-mails are
    UAX29URLEmailTokenizer's business).
  - Hangul: ICU breaks between Hangul syllables and other letters; UAX #29 and Lucene do not (both ALetter),
    so "a가b" is one token.
  - Hebrew: Lucene's grammar keeps a Hebrew letter + ' + digit together ("ב'1", WB7a followed by a new part),
    where UAX #29 and ICU break before the digit.
  - ideographs outside the Han script (U+3006, Tangut, Nüshu, Khitan): ICU gives them the ideographic status;
    for Lucene they are neither Han nor letters and give no token.
  - ExtendNumLet: ICU gives "__" word status (WB13a) and a word ending in "_" + Extend/Format/ZWJ status 0;
    Lucene's grammar needs a letter, digit or kana and takes the trailing marks, so "___" gives no token,
    "a_" + U+0301 is one token and "__init__" is one token in both.
  - U+202F NARROW NO-BREAK SPACE became ExtendNumLet in Unicode 14; Lucene's grammar is Unicode 12.1, where it
    is Other, so it separates tokens here.
  These differences were found by comparing the ICU path with the grammar engine on every code point in
  several contexts and on random strings; the tests keep both comparisons.
  Everything else (Unicode properties) comes from ICU's Unicode 15 data: characters assigned after Unicode
  12.1 are tokens here and skipped by Lucene (documented deviation, vanishingly rare in real text).

* the grammar engine (_Grammar): StandardTokenizerImpl.jflex transcribed rule by rule over ICU's Unicode sets,
  with JFlex's longest-match semantics (the longest match among all rules at each position; a character no
  rule matches is skipped).

* the ASCII fast path: the same grammar restricted to ASCII, one compiled regex (and a shortcut for chunks
  that are letters and digits only), used for ASCII text and ASCII chunks.  For ASCII the Unicode 12.1
  word-break classes are: letters [A-Za-z]; Numeric [0-9]; ExtendNumLet "_"; MidLetter ":"; MidNumLet ".";
  MidNum "," ";"; Single_Quote "'".

Tokens never span whitespace and every filter here reads one token at a time, so the built-in analyzers read a
text chunk by chunk (str.split) and remember each chunk's terms: prose repeats its words.

Tokens longer than max_token_length (255) UTF-16 units are cut the way the JFlex scanner cuts them (its buffer
is max_token_length long: the longest match inside the buffer, then scanning resumes after it;
testMaxTokenLengthDefault: 256 b's -> 255 b's + "b").

Porter.  Lucene's PorterStemFilter uses Lucene's PorterStemmer (Martin Porter's own C/Java release 3: it stems
"-bli" to "-ble" and "-logi" to "-log", and leaves words of length <= 2 alone).  PyStemmer's "porter" is
the Snowball version of the 1980 paper ("-abli" to "-able", no "-logi" rule, stems "as" to "a").  Outside
those cases they agree (checked against NLTK's PorterStemmer in MARTIN_EXTENSIONS mode on every word of
SciFact and NFCorpus), so PyStemmer stems the words that contain neither "bl" nor "log" and a transcription
of Lucene's PorterStemmer the rest; stems are memoised.  Tokens marked as keywords are not stemmed
(PorterStemFilter checks KeywordAttribute).

Lowercasing.  Lucene's LowerCaseFilter maps each code point with Character.toLowerCase (simple case mapping):
"İ" -> "i" (Python's str.lower gives "i̇") and "Σ" -> "σ" everywhere (Python applies the final-sigma rule).
"""

from __future__ import annotations

import bisect
import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import icu
import Stemmer

__all__ = [
    "AnalysisError",
    "Analyzer",
    "BUILTIN_ANALYZERS",
    "ENGLISH_STOP_WORDS",
    "get_analyzer",
]

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
    chunks = []
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


# --- Porter ------------------------------------------------------------------------------------------------


class _LucenePorter:
    """org.apache.lucene.analysis.en.PorterStemmer, transcribed (Porter's release 3 with the "-bli" and
    "-logi" departures).  Works on UTF-16 units, as Java's char[] does."""

    __slots__ = ("b", "j", "k")

    def __init__(self, word: str) -> None:
        self.b = list(word)
        self.j = 0
        self.k = len(word) - 1

    def stem(self) -> str:
        if self.k > 1:
            self.step1()
            self.step2()
            self.step3()
            self.step4()
            self.step5()
            self.step6()
        return "".join(self.b[: self.k + 1])

    def cons(self, i: int) -> bool:
        ch = self.b[i]
        if ch in "aeiou":
            return False
        if ch == "y":
            return i == 0 or not self.cons(i - 1)
        return True

    def m(self) -> int:
        n, i, j = 0, 0, self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowel_in_stem(self) -> bool:
        return any(not self.cons(i) for i in range(self.j + 1))

    def doublec(self, j: int) -> bool:
        return j >= 1 and self.b[j] == self.b[j - 1] and self.cons(j)

    def cvc(self, i: int) -> bool:
        if i < 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in "wxy"

    def ends(self, s: str) -> bool:
        o = self.k - len(s) + 1
        if o < 0 or "".join(self.b[o : self.k + 1]) != s:
            return False
        self.j = self.k - len(s)
        return True

    def setto(self, s: str) -> None:
        o = self.j + 1
        del self.b[o:]
        self.b.extend(s)
        self.k = self.j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.setto(s)

    def step1(self) -> None:  # plurals, -ed, -ing
        if self.b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.setto("i")
            elif self.b[self.k - 1] != "s":
                self.k -= 1
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowel_in_stem():
            self.k = self.j
            if self.ends("at"):
                self.setto("ate")
            elif self.ends("bl"):
                self.setto("ble")
            elif self.ends("iz"):
                self.setto("ize")
            elif self.doublec(self.k):
                self.k -= 1
                if self.b[self.k + 1] in "lsz":
                    self.k += 1
            elif self.m() == 1 and self.cvc(self.k):
                self.setto("e")

    def step2(self) -> None:  # terminal y -> i when the stem has a vowel
        if self.ends("y") and self.vowel_in_stem():
            self.b[self.k] = "i"
            del self.b[self.k + 1 :]

    _STEP3 = {
        "a": (("ational", "ate"), ("tional", "tion")),
        "c": (("enci", "ence"), ("anci", "ance")),
        "e": (("izer", "ize"),),
        "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
        "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
        "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
        "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
        "g": (("logi", "log"),),
    }
    _STEP4 = {
        "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
        "i": (("iciti", "ic"),),
        "l": (("ical", "ic"), ("ful", "")),
        "s": (("ness", ""),),
    }
    _STEP5 = {
        "a": ("al",), "c": ("ance", "ence"), "e": ("er",), "i": ("ic",), "l": ("able", "ible"),
        "n": ("ant", "ement", "ment", "ent"), "s": ("ism",), "t": ("ate", "iti"), "u": ("ous",),
        "v": ("ive",), "z": ("ize",),
    }

    def _replace(self, table: dict[str, tuple[tuple[str, str], ...]], key: str) -> None:
        for suffix, repl in table.get(key, ()):
            if self.ends(suffix):
                self.r(repl)
                return

    def step3(self) -> None:  # double suffixes
        if self.k == 0:
            return
        self._replace(self._STEP3, self.b[self.k - 1])

    def step4(self) -> None:  # -ic-, -full, -ness
        self._replace(self._STEP4, self.b[self.k])

    def step5(self) -> None:  # -ant, -ence, ... in <c>vcvc<v>
        if self.k == 0:
            return
        key = self.b[self.k - 1]
        if key == "o":
            found = (self.ends("ion") and self.j >= 0 and self.b[self.j] in "st") or self.ends("ou")
        else:
            found = any(self.ends(s) for s in self._STEP5.get(key, ()))
        if found and self.m() > 1:
            self.k = self.j

    def step6(self) -> None:  # final -e, -ll
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.doublec(self.k) and self.m() > 1:
            self.k -= 1


def _lucene_porter(word: str) -> str:
    if word.isascii() or max(word) <= "\uffff":
        return _LucenePorter(word).stem()
    data = word.encode("utf-16-le", "surrogatepass")
    units = "".join(chr(int.from_bytes(data[i : i + 2], "little")) for i in range(0, len(data), 2))
    stem = _LucenePorter(units).stem().encode("utf-16-le", "surrogatepass")
    return stem.decode("utf-16-le", "surrogatepass")


_SNOWBALL = threading.local()  # PyStemmer objects are not thread-safe: one per thread
# The words on which Snowball's "porter" may differ from Lucene's PorterStemmer go to the transcription: "bl"
# (Snowball stems "-abli", Lucene "-bli"), "log" (Lucene's "-logi" rule), a doubled character that Lucene
# undoubles after -ed/-ing and Snowball does not (Snowball's list is bb dd ff gg mm nn pp rr tt; Lucene's
# doublec takes any two equal consonants, and a digit, capital or apostrophe is a consonant to it: "trekking"
# -> "trek" in Lucene, "trekk" in Snowball), "Y" (Snowball turns a literal "Y" into "y"), non-ASCII words.
_SNOWBALL_AGREES = re.compile(r"(?!.*(?:bl|log|Y|([^aeioubdfglmnprstz])\1))[\x00-\x7f]*", re.DOTALL)
_STEMS: dict[str, str] = {}
_STEMS_MAX = 1 << 20


def _porter_stem(word: str) -> str:
    """Lucene's PorterStemmer.stem, memoised."""
    stem = _STEMS.get(word)
    if stem is None:
        if _SNOWBALL_AGREES.fullmatch(word):
            if len(word) <= 2:
                stem = word  # Lucene stems only words of 3+ chars; Snowball stems "as" to "a"
            else:
                snowball = getattr(_SNOWBALL, "porter", None)
                if snowball is None:
                    snowball = _SNOWBALL.porter = Stemmer.Stemmer("porter")
                stem = snowball.stemWord(word)
        else:
            stem = _lucene_porter(word)
        if len(_STEMS) >= _STEMS_MAX:
            _STEMS.clear()
        _STEMS[word] = stem
    return stem


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


# ----------------------------------------------------------------------------------------------------------
# Built-in analyzers (fused pipelines: this is the indexing hot path)
# ----------------------------------------------------------------------------------------------------------


_MEMO_MAX = 1 << 18  # chunks remembered per analyzer before the memo starts afresh
_MEMO_CHUNK_MAX = 64  # longer chunks (rare, and rarely repeated) are not remembered


def _chunk_memoised(analyze_chunk: Callable[[str], tuple[str, ...]]) -> Callable[[str], Tokens]:
    """An analyzer that reads a text chunk by chunk (see _standard_tokens: the tokenizers split at whitespace
    absolutely, and every filter here looks at one token at a time), remembering each chunk's terms: prose
    repeats its chunks, so a document costs about one dict lookup per word.  ASCII text is lowercased first,
    which changes no token boundary and lets "The" and "the" share an entry; ``analyze_chunk`` lowercases
    itself, so it gives the same terms for either form."""
    memo: dict[str, tuple[str, ...]] = {}

    def run(text: str) -> Tokens:
        chunks = (text.lower() if text.isascii() else text).split()
        found = list(map(memo.get, chunks))
        if None in found:
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            i = -1
            try:
                while True:
                    i = found.index(None, i + 1)
                    chunk = chunks[i]
                    terms = memo.get(chunk)  # the chunk may have come earlier in this text
                    if terms is None:
                        terms = analyze_chunk(chunk)
                        if len(chunk) <= _MEMO_CHUNK_MAX:
                            memo[chunk] = terms
                    found[i] = terms
            except ValueError:
                pass
        return list(chain.from_iterable(found))

    return run


def _standard_analyzer(max_len: int = DEFAULT_MAX_TOKEN_LENGTH,
                       stop: frozenset[str] = frozenset()) -> Callable[[str], Tokens]:
    """StandardTokenizer -> LowerCaseFilter -> StopFilter."""

    def analyze_chunk(chunk: str) -> tuple[str, ...]:
        terms = map(_java_lower, _standard_chunk(chunk, max_len))
        return tuple(t for t in terms if t not in stop)

    return _chunk_memoised(analyze_chunk)


def _english_analyzer(stop: frozenset[str] = ENGLISH_STOP_WORDS,
                      stem_exclusion: frozenset[str] = frozenset()) -> Callable[[str], Tokens]:
    """StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter -> StopFilter
    [-> SetKeywordMarkerFilter(stem_exclusion)] -> PorterStemFilter (Lucene's EnglishAnalyzer)."""

    stems = _STEMS

    def analyze_chunk(chunk: str) -> tuple[str, ...]:
        ascii_chunk = chunk.isascii()
        if ascii_chunk:
            core = chunk.strip(_ASCII_NON_WORD)
            if core.isalnum() and len(core) <= DEFAULT_MAX_TOKEN_LENGTH:  # one plain word: the usual case
                term = core.lower()
                if term in stop:
                    return ()
                stem = term if term in stem_exclusion else stems.get(term)
                return (stem if stem is not None else _porter_stem(term),)
        terms = []
        for token in _standard_chunk(chunk):
            if ascii_chunk:
                term = token.lower()
                if term.endswith("'s"):
                    term = term[:-2]
            else:
                term = _java_lower(_strip_possessive(token))
            if term in stop:
                continue
            if term in stem_exclusion:
                terms.append(term)
            else:
                stem = stems.get(term)
                terms.append(stem if stem is not None else _porter_stem(term))
        return tuple(terms)

    return _chunk_memoised(analyze_chunk)


def _letter_analyzer(stop: frozenset[str] = frozenset()) -> Callable[[str], Tokens]:
    """LetterTokenizer -> LowerCaseFilter [-> StopFilter] (Lucene's SimpleAnalyzer, StopAnalyzer)."""

    def analyze_chunk(chunk: str) -> tuple[str, ...]:
        return tuple(t for t in map(_java_lower, _letter_tokens(chunk)) if t not in stop)

    return _chunk_memoised(analyze_chunk)


_BUILTINS: dict[str, Analyzer] = {
    "standard": Analyzer("standard", _standard_analyzer()),
    "english": Analyzer("english", _english_analyzer()),
    "simple": Analyzer("simple", _letter_analyzer()),
    "stop": Analyzer("stop", _letter_analyzer(ENGLISH_STOP_WORDS)),
    "whitespace": Analyzer("whitespace", _whitespace_tokens),
    "keyword": Analyzer("keyword", _keyword_tokens),
}


# ----------------------------------------------------------------------------------------------------------
# Index settings: custom analyzers, tokenizers and filters
# ----------------------------------------------------------------------------------------------------------


def get_analyzer(name: str, analysis_settings: Mapping[str, Any] | None = None) -> Analyzer:
    """The analyzer called ``name``: one defined under the index's ``analysis.analyzer`` (which may shadow a
    built-in), else a built-in.  ``default`` is the standard analyzer unless the index defines it, and
    ``default_search`` is ``default`` unless defined."""
    settings = analysis_settings or {}
    definitions = settings.get("analyzer") or {}
    if name in definitions:
        key = json.dumps([name, settings], sort_keys=True, default=str)
        return _custom_analyzer(key)
    if name in _BUILTINS:
        return _BUILTINS[name]
    if name == "default":
        return _BUILTINS["standard"]
    if name == "default_search":
        return get_analyzer("default", settings)
    raise AnalysisError(f"analyzer [{name}] has not been configured in mappings")


@functools.lru_cache(maxsize=256)
def _custom_analyzer(key: str) -> Analyzer:
    name, settings = json.loads(key)
    return _build_analyzer(name, settings["analyzer"][name], settings)


def _as_list(value: Any) -> list[Any]:
    """A list setting as Settings.getAsList reads it: a JSON array, or a string of comma-separated items."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [value]


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise AnalysisError(f"Failed to parse value [{value}] as only [true] or [false] are allowed for [{what}]")


def _max_token_length(spec: Mapping[str, Any]) -> int:
    value = spec.get("max_token_length", DEFAULT_MAX_TOKEN_LENGTH)
    try:
        length = int(value)
    except (TypeError, ValueError):
        raise AnalysisError(f"Failed to parse value [{value}] for setting [max_token_length]") from None
    if length < 1:
        raise AnalysisError("maxTokenLength must be greater than zero")
    if length > MAX_TOKEN_LENGTH_LIMIT:
        raise AnalysisError(f"maxTokenLength may not exceed {MAX_TOKEN_LENGTH_LIMIT}")
    return length


def _word_list(spec: Mapping[str, Any], key: str, default: frozenset[str]) -> frozenset[str]:
    """A word list setting as Analysis.parseWords reads it: a list, or a single value; `_english_` / `_none_`
    name predefined lists."""
    if key + "_path" in spec:
        raise AnalysisError(f"[{key}_path] is not supported: give the words inline in [{key}]")
    if key not in spec:
        return default
    words: set[str] = set()
    for item in _as_list(spec[key]):
        if item == "_english_":
            words |= ENGLISH_STOP_WORDS
        elif item == "_none_":
            continue
        elif isinstance(item, str) and item.startswith("_") and item.endswith("_"):
            raise AnalysisError(f"word list [{item}] is not supported; only [_english_] and [_none_] are")
        else:
            words.add(str(item))
    return frozenset(words)


def _build_analyzer(name: str, spec: Mapping[str, Any], settings: Mapping[str, Any]) -> Analyzer:
    kind = spec.get("type")
    if kind is None and spec.get("tokenizer") is None:
        raise AnalysisError(f"analyzer [{name}] must specify either an analyzer type, or a tokenizer")
    if kind is None or kind == "custom":
        return _build_custom(name, spec, settings)
    if kind == "standard":
        stop = _word_list(spec, "stopwords", frozenset())
        return Analyzer(name, _standard_analyzer(_max_token_length(spec), stop))
    if kind == "english":
        stop = _word_list(spec, "stopwords", ENGLISH_STOP_WORDS)
        return Analyzer(name, _english_analyzer(stop, _word_list(spec, "stem_exclusion", frozenset())))
    if kind == "stop":
        return Analyzer(name, _letter_analyzer(_word_list(spec, "stopwords", ENGLISH_STOP_WORDS)))
    if kind in ("simple", "whitespace", "keyword"):
        return Analyzer(name, _BUILTINS[kind].tokens)
    raise AnalysisError(f"Unknown analyzer type [{kind}] for [{name}]")


def _build_custom(name: str, spec: Mapping[str, Any], settings: Mapping[str, Any]) -> Analyzer:
    tokenizer_name = spec.get("tokenizer")
    if tokenizer_name is None:
        raise AnalysisError(f"Custom Analyzer [{name}] must be configured with a tokenizer")
    tokenize = _tokenizer(str(tokenizer_name), settings)
    if tokenize is None:
        raise AnalysisError(
            f"Custom Analyzer [{name}] failed to find tokenizer under name [{tokenizer_name}]"
        )
    for char_filter in _as_list(spec.get("char_filter")):
        raise AnalysisError(f"Custom Analyzer [{name}] failed to find char_filter under name [{char_filter}]")
    filters: list[_Filter] = []
    for filter_name in _as_list(spec.get("filter")):
        f = _token_filter(str(filter_name), settings)
        if f is None:
            raise AnalysisError(f"Custom Analyzer [{name}] failed to find filter under name [{filter_name}]")
        filters.append(f)
    chain = tuple(filters)

    def run(text: str) -> Tokens:
        tokens, flags = tokenize(text), None
        for f in chain:
            tokens, flags = f(tokens, flags)
        return tokens

    return Analyzer(name, run)


def _definition(settings: Mapping[str, Any], section: str, name: str) -> Mapping[str, Any] | None:
    spec = (settings.get(section) or {}).get(name)
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    if kind is None:
        raise AnalysisError(f"{section} [{name}] must specify either an analyzer type, or a tokenizer")
    return spec


def _tokenizer(name: str, settings: Mapping[str, Any]) -> Callable[[str], Tokens] | None:
    spec = _definition(settings, "tokenizer", name) or {"type": name}
    kind = spec["type"]
    if kind == "standard":
        max_len = _max_token_length(spec)
        return lambda text: _standard_tokens(text, max_len)
    if kind in ("whitespace", "letter"):
        max_len = _max_token_length(spec)
        fn = _whitespace_tokens if kind == "whitespace" else _letter_tokens
        return lambda text: fn(text, max_len)
    if kind == "keyword":
        return _keyword_tokens
    if name in (settings.get("tokenizer") or {}):
        raise AnalysisError(f"Unknown tokenizer type [{kind}] for [{name}]")
    return None


_STEMMER_LANGUAGES = {"english": "porter", "porter": "porter", "possessive_english": "possessive"}


def _token_filter(name: str, settings: Mapping[str, Any]) -> _Filter | None:
    spec = _definition(settings, "filter", name) or {"type": name}
    kind = spec["type"]
    custom = name in (settings.get("filter") or {})
    if kind == "lowercase":
        if spec.get("language") is not None:
            raise AnalysisError(f"lowercase filter [{name}]: language [{spec['language']}] is not supported")
        return _Map(_java_lower)
    if kind == "uppercase":
        return _Map(_java_upper)
    if kind == "stop":
        ignore_case = _as_bool(spec.get("ignore_case", False), "ignore_case")
        words = _word_list(spec, "stopwords", ENGLISH_STOP_WORDS)
        return _Stop(frozenset(map(_java_lower, words)) if ignore_case else words, ignore_case)
    if kind == "porter_stem":
        return _Porter()
    if kind == "stemmer":
        language = spec.get("language", spec.get("name", "porter"))
        chosen = _STEMMER_LANGUAGES.get(str(language).lower())
        if chosen is None:
            raise AnalysisError(f"stemmer filter [{name}]: language [{language}] is not supported; "
                                f"supported: {sorted(_STEMMER_LANGUAGES)}")
        return _Porter() if chosen == "porter" else _Map(_strip_possessive)
    if kind == "keyword_marker" and custom:
        ignore_case = _as_bool(spec.get("ignore_case", False), "ignore_case")
        if "keywords" not in spec:
            raise AnalysisError(
                "keyword filter requires either `keywords`, `keywords_path`, or `keywords_pattern` to be set"
            )
        words = _word_list(spec, "keywords", frozenset())
        return _KeywordMarker(frozenset(map(_java_lower, words)) if ignore_case else words, ignore_case)
    if custom:
        raise AnalysisError(f"Unknown filter type [{kind}] for [{name}]")
    return None

