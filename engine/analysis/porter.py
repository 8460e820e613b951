"""The Porter stemmer as Lucene's PorterStemFilter runs it, with Snowball's where the two agree (memoised)."""

from __future__ import annotations

import re
import threading

import Stemmer

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


