"""engine.analysis against Lucene's own expectations and against independent implementations.

Expected tokens are written by hand, each with the Lucene test or OpenSearch page it comes from.  The three
StandardTokenizer implementations (ASCII fast path, ICU path, transcribed JFlex grammar) are held equal on
both corpora, on every code point and on random strings; Porter stems are held equal to NLTK's PorterStemmer
in MARTIN_EXTENSIONS mode (Martin Porter's own release, which Lucene's PorterStemmer is).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import icu
import pytest

from nirbridge.engine.analysis import (
    BUILTIN_ANALYZERS,
    ENGLISH_STOP_WORDS,
    AnalysisError,
    Analyzer,
    analyzers,
    base,
    filters,
    get_analyzer,
    porter,
    standard,
)

# the analysis modules whose internals this file probes, under the one name it used before the split
analysis = SimpleNamespace(
    **{k: v for m in (base, standard, porter, filters, analyzers) for k, v in vars(m).items()}
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = ("scifact", "nfcorpus")


def corpus_texts(name: str) -> list[str]:
    path = DATA / name / "corpus.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is missing: the shared data sets live beside the repository in ../shared/data")
    with path.open(encoding="utf-8") as lines:
        return [f"{d['title']} {d['text']}" for d in map(json.loads, lines)]


def tokenizer(name: str = "standard", **settings: object) -> Analyzer:
    """A custom analyzer made of one tokenizer and no filter: the tokenizer's raw output."""
    definition = {"type": name, **settings}
    return get_analyzer("t", {"analyzer": {"t": {"tokenizer": "tk"}}, "tokenizer": {"tk": definition}})


def standard_tokens(text: str) -> list[str]:
    return tokenizer().tokens(text)


def three_ways(text: str) -> tuple[list[str], list[str], list[str]]:
    """StandardTokenizer by the default path, by ICU over the whole text, by the transcribed grammar."""
    return (
        analysis._standard_tokens(text),
        analysis._chop(analysis._icu_tokens(text), analysis.DEFAULT_MAX_TOKEN_LENGTH),
        analysis._grammar_tokens(text),
    )


# ----------------------------------------------------------------------------------------------------------
# The built-in analyzers on OpenSearch's documented example
# ----------------------------------------------------------------------------------------------------------

QUICK = "The 2 QUICK Brown-Foxes jumped over the lazy dog's bone."


def test_standard_analyzer_on_the_opensearch_example() -> None:
    # OpenSearch docs, "Standard analyzer" / _analyze examples: lowercased, hyphen splits, possessive kept.
    assert get_analyzer("standard").tokens(QUICK) == [
        "the", "2", "quick", "brown", "foxes", "jumped", "over", "the", "lazy", "dog's", "bone",
    ]


def test_english_analyzer_on_the_opensearch_example() -> None:
    # EnglishAnalyzer: possessive and stop words ("the") removed, Porter stems (foxes -> fox, lazy -> lazi).
    assert get_analyzer("english").tokens(QUICK) == [
        "2", "quick", "brown", "fox", "jump", "over", "lazi", "dog", "bone",
    ]


def test_simple_stop_whitespace_keyword_on_the_example() -> None:
    # SimpleAnalyzer = LetterTokenizer + LowerCaseFilter: digits are not letters, "dog's" splits at the quote.
    assert get_analyzer("simple").tokens(QUICK) == [
        "the", "quick", "brown", "foxes", "jumped", "over", "the", "lazy", "dog", "s", "bone",
    ]
    # StopAnalyzer = SimpleAnalyzer + english stop words ("s" is not one of them).
    assert get_analyzer("stop").tokens(QUICK) == [
        "quick", "brown", "foxes", "jumped", "over", "lazy", "dog", "s", "bone",
    ]
    # WhitespaceAnalyzer: split at Character.isWhitespace, nothing else.
    assert get_analyzer("whitespace").tokens(QUICK) == [
        "The", "2", "QUICK", "Brown-Foxes", "jumped", "over", "the", "lazy", "dog's", "bone.",
    ]
    # KeywordAnalyzer: the whole input, even the empty string, is one token (KeywordTokenizer).
    assert get_analyzer("keyword").tokens(QUICK) == [QUICK]
    assert get_analyzer("keyword").tokens("") == [""]


def test_builtin_names() -> None:
    assert set(BUILTIN_ANALYZERS) == {"standard", "english", "simple", "stop", "whitespace", "keyword"}
    for name in BUILTIN_ANALYZERS:
        assert get_analyzer(name).name == name
    # The index's default analyzer is the standard one unless the index defines "default".
    assert get_analyzer("default").tokens("Foo BAR") == ["foo", "bar"]
    assert get_analyzer("default_search").tokens("Foo BAR") == ["foo", "bar"]


def test_english_stop_words_are_lucenes_set() -> None:
    # EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (= OpenSearch's _english_), 33 words.
    assert ENGLISH_STOP_WORDS == frozenset(
        "a an and are as at be but by for if in into is it no not of on or such that the their then there "
        "these they this to was will with".split()
    )


# ----------------------------------------------------------------------------------------------------------
# StandardTokenizer: Lucene's TestStandardAnalyzer, case by case
# ----------------------------------------------------------------------------------------------------------

# (input, tokens) from lucene/core/src/test/org/apache/lucene/analysis/standard/TestStandardAnalyzer.java
LUCENE_STANDARD_TOKENIZER_CASES = [
    # testChinese: each ideograph is a token; full-width digits and letters form words.
    ("我是中国人。 １２３４ Ｔｅｓｔｓ ", ["我", "是", "中", "国", "人", "１２３４", "Ｔｅｓｔｓ"]),
    # testJapanese: ideographs and hiragana one by one, a katakana run as one token.
    ("仮名遣い カタカナ", ["仮", "名", "遣", "い", "カタカナ"]),
    # testSupplementary: supplementary-plane ideographs.
    ("𩬅艱鍟䇹愯瀛", ["𩬅", "艱", "鍟", "䇹", "愯", "瀛"]),
    # testKoreanSA / testKorean: Hangul runs.
    ("안녕하세요 한글입니다", ["안녕하세요", "한글입니다"]),
    ("훈민정음", ["훈민정음"]),
    # testThai / testLao: a Complex_Context run is one token (no dictionary).
    ("การที่ได้ต้องแสดงว่างานดี. แล้วเธอจะไปไหน? ๑๒๓๔", ["การที่ได้ต้องแสดงว่างานดี", "แล้วเธอจะไปไหน", "๑๒๓๔"]),
    ("ສາທາລະນະລັດ ປະຊາທິປະໄຕ ປະຊາຊົນລາວ", ["ສາທາລະນະລັດ", "ປະຊາທິປະໄຕ", "ປະຊາຊົນລາວ"]),
    # testGreek (start of it).
    ("Γράφεται σε συνεργασία από εθελοντές με το λογισμικό wiki, κάτι", [
        "Γράφεται", "σε", "συνεργασία", "από", "εθελοντές", "με", "το", "λογισμικό", "wiki", "κάτι",
    ]),
    # testArabic (start): the quotes and the parenthesis go.
    ("الفيلم الوثائقي الأول عن ويكيبيديا يسمى \"الحقيقة بالأرقام: قصة ويكيبيديا\"", [
        "الفيلم", "الوثائقي", "الأول", "عن", "ويكيبيديا", "يسمى", "الحقيقة", "بالأرقام", "قصة", "ويكيبيديا",
    ]),
    # testEmpty.
    ("", []),
    (".", []),
    (" ", []),
    # testLUCENE1545: a combining mark stays in its word.
    ("moͤchte", ["moͤchte"]),
    # testAlphanumericSA, testDelimitersSA.
    ("B2B", ["B2B"]),
    ("2B", ["2B"]),
    ("some-dashed-phrase", ["some", "dashed", "phrase"]),
    ("dogs,chase,cats", ["dogs", "chase", "cats"]),
    ("ac/dc", ["ac", "dc"]),
    # testApostrophesSA.
    ("O'Reilly", ["O'Reilly"]),
    ("you're", ["you're"]),
    ("she's", ["she's"]),
    ("Jim's", ["Jim's"]),
    ("don't", ["don't"]),
    ("O'Reilly's", ["O'Reilly's"]),
    # testNumericSA.
    ("21.35", ["21.35"]),
    ("R2D2 C3PO", ["R2D2", "C3PO"]),
    ("216.239.63.104", ["216.239.63.104"]),
    # testTextWithNumbersSA, testVariousTextSA.
    ("David has 5000 bones", ["David", "has", "5000", "bones"]),
    ("C embedded developers wanted", ["C", "embedded", "developers", "wanted"]),
    ("foo      bar .  FOO <> BAR", ["foo", "bar", "FOO", "BAR"]),
    ('"QUOTED" word', ["QUOTED", "word"]),
    # testCombiningMarks.
    ("ざ", ["ざ"]),
    ("ザ", ["ザ"]),
    ("壹゙", ["壹゙"]),
    ("아゙", ["아゙"]),
    # testMid: ':' is MidLetter (UAX #29, not ICU's root rules), '.' MidNumLet, ',' MidNum, '_' ExtendNumLet.
    ("A:B", ["A:B"]),
    ("A::B", ["A", "B"]),
    ("1.2", ["1.2"]),
    ("A.B", ["A.B"]),
    ("1..2", ["1", "2"]),
    ("A..B", ["A", "B"]),
    ("1,2", ["1,2"]),
    ("1,,2", ["1", "2"]),
    ("A.:B", ["A", "B"]),
    ("A:.B", ["A", "B"]),
    ("1,.2", ["1", "2"]),
    ("1.,2", ["1", "2"]),
    ("A:B_A:B", ["A:B_A:B"]),
    ("A:B_A::B", ["A:B_A", "B"]),
    ("1.2_1.2", ["1.2_1.2"]),
    ("A.B_A.B", ["A.B_A.B"]),
    ("1.2_1..2", ["1.2_1", "2"]),
    ("A.B_A..B", ["A.B_A", "B"]),
    ("1,2_1,2", ["1,2_1,2"]),
    ("1,2_1,,2", ["1,2_1", "2"]),
    ("C_A.:B", ["C_A", "B"]),
    ("C_A:.B", ["C_A", "B"]),
    ("3_1,.2", ["3_1", "2"]),
    ("3_1.,2", ["3_1", "2"]),
    # testEmoji, testEmojiSequence, testEmojiSequenceWithModifier, testEmojiRegionalIndicator.
    ("💩 💩💩", ["💩", "💩", "💩"]),
    ("👩‍❤️‍👩", ["👩‍❤️‍👩"]),
    ("👨🏼‍⚕️", ["👨🏼‍⚕️"]),
    ("🇺🇸🇺🇸", ["🇺🇸", "🇺🇸"]),
    # testEmojiVariationSequence: keycaps, and text presentation selectors left out of emoji tokens.
    ("#️⃣", ["#️⃣"]),
    ("3️⃣", ["3️⃣"]),
    ("#\ufe0e", []),
    ("3\ufe0e", ["3\ufe0e"]),
    ("\u2b55\ufe0e", ["\u2b55"]),
    ("\u2b55\ufe0e\u200d\u2b55\ufe0e", ["\u2b55", "\u200d\u2b55"]),
    # testEmojiTagSequence.
    ("🏴󠁧󠁢󠁥󠁮󠁧󠁿", ["🏴󠁧󠁢󠁥󠁮󠁧󠁿"]),
    # testEmojiTokenization.
    ("poo💩poo", ["poo", "💩", "poo"]),
    ("💩中國💩", ["💩", "中", "國", "💩"]),
]


@pytest.mark.parametrize(("text", "expected"), LUCENE_STANDARD_TOKENIZER_CASES)
def test_standard_tokenizer_matches_lucenes_tests(text: str, expected: list[str]) -> None:
    assert standard_tokens(text) == expected
    default, icu_path, grammar = three_ways(text)
    assert default == icu_path == grammar == expected


# Cases where ICU's root word rules and Lucene's grammar part ways (found by the exhaustive comparison below);
# each expectation follows StandardTokenizerImpl.jflex (Lucene 9/10, Unicode 12.1).
GRAMMAR_CASES = [
    # ':' is MidLetter for UAX #29 and Lucene; ICU 72's root rules split.
    ("foo:bar Results: 3:4", ["foo:bar", "Results", "3", "4"]),
    # '@' is Other; ICU 72 keeps e-mail addresses together (CLDR-15767).
    ("contact gaog@mail.cbi.pku.edu.cn", ["contact", "gaog", "mail.cbi.pku.edu.cn"]),
    # ExtendNumLet alone is no token; "_" + combining mark stays in the word.
    ("___ __init__ a_\u0301 _", ["__init__", "a_\u0301"]),
    # Hangul syllables are ALetter: they join Latin letters (ICU breaks between them).
    ("a가b", ["a가b"]),
    # Hebrew letter + ' (WB7a) followed by a digit: a new part of the same token in Lucene's grammar.
    ("ב'1 אב' א\"ב", ["ב'1", "אב'", "א\"ב"]),
    # Ideographs outside the Han script are not tokens (Script=Common U+3006, Tangut).
    ("〆 \U00017000 〇", ["〇"]),
    # Extended_Pictographic includes © ® ™: emoji tokens (frequent in abstracts: "© 2013 Elsevier").
    ("© 2013 Elsevier B.V.® ™", ["©", "2013", "Elsevier", "B.V", "®", "™"]),
    # Complex_Context letters are not ALetter: "aไทย" is two tokens (ICU joins them).
    ("aไทย", ["a", "ไทย"]),
    # Katakana and letters join only through ExtendNumLet (WB13a/b).
    ("カ_a aカ", ["カ_a", "a", "カ"]),
    # U+202F is Other in Unicode 12.1 (ExtendNumLet since Unicode 14).
    ("10\u202f000 a\u202fb", ["10", "000", "a", "b"]),
    # MidNum ';' between digits, MidLetter '·' between letters.
    ("1;2 a;b mg·kg", ["1;2", "a", "b", "mg·kg"]),
    # A ZWJ after a letter extends the letter (WB4) and an emoji after it is its own token.
    ("a\u200d💩", ["a\u200d", "💩"]),
]


@pytest.mark.parametrize(("text", "expected"), GRAMMAR_CASES)
def test_standard_tokenizer_follows_lucenes_grammar_where_icu_differs(text: str, expected: list[str]) -> None:
    default, icu_path, grammar = three_ways(text)
    assert default == icu_path == grammar == expected


def test_max_token_length() -> None:
    # testMaxTokenLengthDefault: a 255-char token stays, a 256-char one is cut into 255 + 1.
    b = "b" * 255
    assert get_analyzer("standard").tokens(f"x {b} {b}b") == ["x", b, b, "b"]
    # testMaxTokenLengthNonDefault: max_token_length 5.
    spec = {"analyzer": {"s": {"type": "standard", "max_token_length": 5}}}
    assert get_analyzer("s", spec).tokens("ab cd toolong xy z") == ["ab", "cd", "toolo", "ng", "xy", "z"]
    # The cut is the longest match inside the scanner's buffer, and scanning resumes right after it.
    six = tokenizer(max_token_length=6)
    assert six.tokens("aaaa.bbb") == ["aaaa.b", "bb"]
    assert six.tokens("aaaaa.bb") == ["aaaaa", "bb"]
    # Non-ASCII: the same cut by the grammar engine; the length counts UTF-16 units.
    assert analysis._standard_tokens("é" * 300) == ["é" * 255, "é" * 45]
    assert analysis._standard_tokens("\U00010300" * 200) == ["\U00010300" * 127, "\U00010300" * 73]
    # testHugeDoc: 4094 spaces before the text.
    assert standard_tokens(" " * 4094 + "testing 1234") == ["testing", "1234"]


# ----------------------------------------------------------------------------------------------------------
# The three StandardTokenizer paths agree
# ----------------------------------------------------------------------------------------------------------

TRICKY = [
    "e.g. i.e. U.S.A. 3.14 1,000,000 10^-3 p<0.05 95%CI (n=12) x=1;y=2",
    "IL-1β TNF-α CD4+ Na+/K+-ATPase 5′-UTR 3' end mRNA's cells' Smith's",
    "“quoted” ‘single’ don’t rock'n'roll O’Neil ＇s",
    "www.example.com http://x.org/a_b?c=d user@example.org #hashtag @mention",
    "__init__ _private trailing_ ___ a__b 1_000 a_1 1_a",
    "naïve café Ångström résumé Straße İstanbul ΟΔΟΣ ǅemal",
    "αβγ β-catenin 10 µm ± 2 °C ≥ 5 × 10³ m² H₂O",
    "中文 日本語 ひらがな カタカナ ｶﾀｶﾅ 한국어 ไทย ລາວ ខ្មែរ မြန်မာ",
    "😀 👍🏽 👩‍👩‍👧 🇫🇷 1️⃣ ©️ ™ ↔ ▶️ ☺",
    "a\u00adb soft\u200bhyphen zero\u2060width rtl\u200emark l\u0301e\u0300x",
    "tab\tsep\nnew\rline\x0bvt\x0cff\x1cfs\x85nel\xa0nbsp\u2009thin\u3000ideo",
    "a:b:c a::b :a b: 1:2 a.b. .a 1.2.3 1..2 'a' a'' ''a",
    "ב'1 ב\"ג א׳ב x'1 '1 1' a'b'c",
    "x" * 300 + " " + "a.b" * 120 + " " + "1" * 600,
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_agree_on_all_paths(text: str) -> None:
    default, icu_path, grammar = three_ways(text)
    assert default == icu_path == grammar


@pytest.mark.parametrize("name", CORPORA)
def test_fast_path_equals_icu_path_on_every_document(name: str) -> None:
    # Title + " " + text of every document: the ASCII fast path (and the chunked default path for documents
    # with non-ASCII characters) gives exactly ICU's segmentation with Lucene's differences applied.
    mismatches = []
    for text in corpus_texts(name):
        default, icu_path = analysis._standard_tokens(text), analysis._chop(analysis._icu_tokens(text), 255)
        if text.isascii():
            assert analysis._ascii_words(text) == default
        if default != icu_path:
            mismatches.append(text[:80])
    assert mismatches == []


@pytest.mark.parametrize("name", CORPORA)
def test_grammar_engine_equals_the_other_paths_on_the_corpora(name: str) -> None:
    texts = corpus_texts(name)
    sample = [t for t in texts if not t.isascii()] + texts[::10]
    mismatches = [t[:80] for t in sample if analysis._grammar_tokens(t) != analysis._standard_tokens(t)]
    assert mismatches == []


def code_points(start: int, stop: int) -> Iterator[str]:
    for cp in range(start, stop):
        if not 0xD800 <= cp < 0xE000 and icu.Char.charType(cp) != icu.UCharCategory.UNASSIGNED:
            yield chr(cp)


@pytest.mark.parametrize("context", ["{}", "a{}b", "1{}2", "x{}", "{}{}"])
def test_icu_path_equals_grammar_on_every_code_point(context: str) -> None:
    # Every assigned code point of the BMP and the SMP (emoji, historic scripts) in a few contexts.
    grammar = analysis._grammar()
    mismatches = []
    for ch in code_points(0x20, 0x20000):
        text = context.replace("{}", ch)
        expected = [text[a:b] for a, b in grammar.spans(text.replace("\u202f", " "))]
        if analysis._icu_tokens(text) != expected:
            mismatches.append(f"U+{ord(ch):04X}")
    assert mismatches == []


FUZZ_POOL = list("aZé1٣_:.,;'\"@-/ ") + [
    "\u00ad", "\u0301", "\u200d", "\u200b", "\u2060", "\ufe0f", "\ufe0e", "\u20e3", "#", "*", "\u05d0",
    "\u05d1",
    "\u05f4", "\u00b7", "\u2019", "\u202f", "\u00a0", "\u3000", "\u2009", "中", "国", "い", "カ", "ー", "ｶ",
    "가", "ไ", "ท", "\u0e31", "ລ", "\U0001f4a9", "\U0001f469", "\U0001f3fd", "\u2764", "©", "™", "\U0001f1fa",
    "\U0001f1f8", "\U000e0067", "\U000e007f", "\u3006", "\U00017000", "\u2460", "\u2160", "ǅ", "\u0345",
    "\u1100", "\u1161", "\u11a8", "\u3031", "\u309b", "\u30fc", "\uff0e", "\uff1a", "\ufe55", "\ufe13",
    "\u0387", "\u055f",
]


def test_random_strings_agree_on_all_paths() -> None:
    rng = random.Random(29)
    mismatches = []
    for _ in range(20_000):
        text = "".join(rng.choice(FUZZ_POOL) for _ in range(rng.randint(1, 12)))
        default, icu_path, grammar = three_ways(text)
        if not default == icu_path == grammar:
            mismatches.append(ascii(text))
    assert mismatches == []


# ----------------------------------------------------------------------------------------------------------
# Filters: lowercase, possessive, stop, Porter
# ----------------------------------------------------------------------------------------------------------


def test_lowercase_is_javas_per_code_point_mapping() -> None:
    # LowerCaseFilter uses Character.toLowerCase(int): "İ" -> "i" (not "i̇"), "Σ" -> "σ" (no final sigma).
    assert get_analyzer("standard").tokens("İSTANBUL ΟΔΟΣ ΣΑΣ") == ["istanbul", "οδοσ", "σασ"]
    # Every code point against ICU's simple case mapping (Java's Character.toLowerCase / toUpperCase).
    for ch in code_points(0, 0x110000):
        assert analysis._java_lower(ch) == chr(icu.Char.tolower(ord(ch))), f"U+{ord(ch):04X}"
    upper = get_analyzer("u", {"analyzer": {"u": {"tokenizer": "whitespace", "filter": ["uppercase"]}}})
    # The simple mapping keeps ß and ﬁ (str.upper gives SS and FI).
    assert upper.tokens("straße ﬁx") == ["STRAßE", "ﬁX"]


def test_english_possessive_filter() -> None:
    # EnglishPossessiveFilter strips 's, ’s (U+2019) and ＇s (U+FF07), s or S, before lowercasing.
    assert get_analyzer("english").tokens("John's JOHN'S John’s John＇s Johns'") == [
        "john", "john", "john", "john", "john",
    ]
    possessive = {"type": "stemmer", "language": "possessive_english"}
    spec = {"analyzer": {"p": {"tokenizer": "whitespace", "filter": ["poss"]}},
            "filter": {"poss": possessive}}
    assert get_analyzer("p", spec).tokens("Dog's dogs' 's") == ["Dog", "dogs'", ""]


# Words where Lucene's PorterStemmer (Porter's release 3) and Snowball's "porter" disagree: Lucene's stems.
PORTER_CASES = [
    ("possibly", "possibl"),  # "-bli" -> "-ble" then step 5 ("-abli" in Snowball: "possibli")
    ("technology", "technolog"),  # "-logi" -> "-log" (no such rule in Snowball: "technologi")
    ("us", "us"),  # words of 2 chars are left alone (Snowball: "u")
    ("trekking", "trek"),  # any double consonant is undoubled after -ing (Snowball: "trekk")
    ("revved", "rev"),
    # PorterStemmer's own comments (step1): caresses -> caress, ponies -> poni, ties -> ti, cats -> cat,
    # feed -> feed, agreed -> agree, matting -> mat, mating -> mate, meeting -> meet, milling -> mill,
    # messing -> mess, meetings -> meet.
    ("caresses", "caress"),
    ("ponies", "poni"),
    ("ties", "ti"),
    ("cats", "cat"),
    ("feed", "feed"),
    ("agreed", "agre"),
    ("matting", "mat"),
    ("mating", "mate"),
    ("meeting", "meet"),
    ("milling", "mill"),
    ("messing", "mess"),
    ("meetings", "meet"),
    ("generalizations", "gener"),
    ("oscillators", "oscil"),
]


@pytest.mark.parametrize(("word", "stem"), PORTER_CASES)
def test_porter_stems(word: str, stem: str) -> None:
    porter = get_analyzer("p", {"analyzer": {"p": {"tokenizer": "whitespace", "filter": ["porter_stem"]}}})
    assert porter.tokens(word) == [stem]
    assert analysis._lucene_porter(word) == stem


def test_porter_equals_nltk_martin_on_the_corpora_vocabulary() -> None:
    nltk_porter = pytest.importorskip("nltk.stem.porter")
    reference = nltk_porter.PorterStemmer(mode=nltk_porter.PorterStemmer.MARTIN_EXTENSIONS)
    lowercase = get_analyzer("l", {"analyzer": {"l": {"tokenizer": "standard", "filter": ["lowercase"]}}})
    vocabulary = {t for name in CORPORA for text in corpus_texts(name) for t in lowercase.tokens(text)}
    words = sorted(vocabulary)  # digits, apostrophes and non-ASCII letters included
    assert len(words) > 45_000
    mismatches = [(w, analysis._porter_stem(w), reference.stem(w)) for w in words
                  if analysis._porter_stem(w) != reference.stem(w)]
    assert mismatches == []
    # The transcription of Lucene's PorterStemmer agrees with NLTK too: the split between PyStemmer and the
    # transcription is invisible.
    assert [analysis._lucene_porter(w) for w in words] == [analysis._porter_stem(w) for w in words]


def test_porter_split_is_invisible_on_random_words() -> None:
    rng = random.Random(5)
    suffixes = (
        "s es ies ed ing ly bly logy ational tional enci izer alli ousli ization ation ator alism iveness "
        "aliti iviti biliti icate ative alize iciti ical ful ness ance ence able ement ion ous ive ize eed ll"
    ).split()
    for alphabet in ("abcdefgilmnoprstuvyz", "aeiouybcdhjklnqsvwxyzt", "aeiy1'-_.AEIOUYSsdt"):
        for _ in range(20_000):
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))) + rng.choice(suffixes)
            assert analysis._porter_stem(word) == analysis._lucene_porter(word), word


def test_keywords_are_not_stemmed() -> None:
    # PorterStemFilter skips tokens whose KeywordAttribute is set (SetKeywordMarkerFilter: stem_exclusion).
    spec = {"analyzer": {"e": {"type": "english", "stem_exclusion": ["running"]}}}
    assert get_analyzer("e", spec).tokens("Running runs running") == ["running", "run", "running"]
    marker = {"type": "keyword_marker", "keywords": ["Jumping"]}
    spec = {"analyzer": {"k": {"tokenizer": "whitespace", "filter": ["km", "lowercase", "porter_stem"]}},
            "filter": {"km": marker}}
    # The mark is set on "Jumping" before lowercasing and travels with the token.
    assert get_analyzer("k", spec).tokens("Jumping jumping") == ["jumping", "jump"]


# ----------------------------------------------------------------------------------------------------------
# Other tokenizers
# ----------------------------------------------------------------------------------------------------------


def test_whitespace_tokenizer_uses_javas_whitespace() -> None:
    # Character.isWhitespace: no-break spaces (U+00A0, U+2007, U+202F) are not whitespace, U+0085 neither.
    tokens = get_analyzer("whitespace").tokens("a\u00a0b c\u2009d\te\u0085f")
    assert tokens == ["a\u00a0b", "c", "d", "e\u0085f"]
    # CharTokenizer cuts at max_token_length (255).
    assert get_analyzer("whitespace").tokens("y" * 300) == ["y" * 255, "y" * 45]
    assert tokenizer("whitespace", max_token_length=4).tokens("abcdefghij") == ["abcd", "efgh", "ij"]


def test_letter_tokenizer() -> None:
    # LetterTokenizer: runs of Character.isLetter (general category L*); digits and "²" are not letters.
    assert tokenizer("letter").tokens("x²y H2O naïve 日本") == ["x", "y", "H", "O", "naïve", "日本"]


# ----------------------------------------------------------------------------------------------------------
# Index settings: custom analyzers and their errors
# ----------------------------------------------------------------------------------------------------------


def test_custom_analyzer_with_stop_words_and_stemmer() -> None:
    settings = {
        "analyzer": {
            "my": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "my_stop", "stemmer"]},
            "plain": {"tokenizer": "standard", "filter": ["lowercase", "stop"]},
        },
        "filter": {"my_stop": {"type": "stop", "stopwords": ["quick", "brown"]}},
    }
    assert get_analyzer("my", settings).tokens(QUICK) == [
        "the", "2", "fox", "jump", "over", "the", "lazi", "dog'", "bone",
    ]
    assert get_analyzer("plain", settings).tokens(QUICK) == [
        "2", "quick", "brown", "foxes", "jumped", "over", "lazy", "dog's", "bone",
    ]
    assert get_analyzer("my", settings).name == "my"
    # A list setting may be a comma-separated string (Settings.getAsList).
    spec = {"analyzer": {"c": {"tokenizer": "standard", "filter": "lowercase, stop"}}}
    assert get_analyzer("c", spec).tokens("The Cat") == ["cat"]


def test_analyzer_types_with_parameters() -> None:
    settings = {
        "analyzer": {
            "std_stop": {"type": "standard", "stopwords": "_english_"},
            "en_none": {"type": "english", "stopwords": "_none_"},
            "stop_list": {"type": "stop", "stopwords": ["quick"]},
            "ws": {"type": "whitespace"},
            # A custom definition may shadow a built-in name.
            "standard": {"tokenizer": "whitespace"},
        },
        "filter": {},
    }
    assert get_analyzer("std_stop", settings).tokens("The Cat") == ["cat"]
    assert get_analyzer("en_none", settings).tokens("The Cats") == ["the", "cat"]
    assert get_analyzer("stop_list", settings).tokens("the quick fox") == ["the", "fox"]
    assert get_analyzer("ws", settings).tokens("A b") == ["A", "b"]
    assert get_analyzer("standard", settings).tokens("A-b c") == ["A-b", "c"]
    assert get_analyzer("standard").tokens("A-b c") == ["a", "b", "c"]
    ignore_case = {"analyzer": {"s": {"tokenizer": "whitespace", "filter": ["s"]}},
                   "filter": {"s": {"type": "stop", "stopwords": ["the"], "ignore_case": True}}}
    assert get_analyzer("s", ignore_case).tokens("THE The x") == ["x"]


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("nope", None, "analyzer [nope] has not been configured in mappings"),
        ("nope", {"analyzer": {"x": {"tokenizer": "standard"}}},
         "analyzer [nope] has not been configured in mappings"),
        ("a", {"analyzer": {"a": {"filter": ["lowercase"]}}},
         "analyzer [a] must specify either an analyzer type, or a tokenizer"),
        ("a", {"analyzer": {"a": {"type": "custom"}}},
         "Custom Analyzer [a] must be configured with a tokenizer"),
        ("a", {"analyzer": {"a": {"tokenizer": "nope"}}},
         "Custom Analyzer [a] failed to find tokenizer under name [nope]"),
        ("a", {"analyzer": {"a": {"tokenizer": "standard", "filter": ["lowercase", "nope"]}}},
         "Custom Analyzer [a] failed to find filter under name [nope]"),
        ("a", {"analyzer": {"a": {"tokenizer": "standard", "char_filter": ["html_strip"]}}},
         "Custom Analyzer [a] failed to find char_filter under name [html_strip]"),
        ("a", {"analyzer": {"a": {"type": "fancy"}}}, "Unknown analyzer type [fancy] for [a]"),
        ("a", {"analyzer": {"a": {"tokenizer": "standard", "filter": ["f"]}},
               "filter": {"f": {"type": "nope"}}}, "Unknown filter type [nope] for [f]"),
        ("a", {"analyzer": {"a": {"tokenizer": "standard", "filter": ["f"]}}, "filter": {"f": {}}},
         "filter [f] must specify either an analyzer type, or a tokenizer"),
        ("a", {"analyzer": {"a": {"tokenizer": "t"}}, "tokenizer": {"t": {"type": "nope"}}},
         "Unknown tokenizer type [nope] for [t]"),
        ("a", {"analyzer": {"a": {"type": "standard", "max_token_length": 0}}},
         "maxTokenLength must be greater than zero"),
        ("a", {"analyzer": {"a": {"type": "standard", "stopwords": "_french_"}}}, "word list [_french_]"),
        ("a", {"analyzer": {"a": {"tokenizer": "standard", "filter": ["f"]}},
               "filter": {"f": {"type": "stemmer", "language": "german"}}},
         "language [german] is not supported"),
    ],
)
def test_configuration_errors(name: str, settings: dict | None, message: str) -> None:
    with pytest.raises(AnalysisError) as raised:
        get_analyzer(name, settings)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


# ----------------------------------------------------------------------------------------------------------
# The analyzer object
# ----------------------------------------------------------------------------------------------------------


def test_analyzer_is_immutable() -> None:
    analyzer = get_analyzer("english")
    with pytest.raises(AttributeError):
        analyzer.name = "other"  # type: ignore[misc]


def test_analyzers_are_reused_and_thread_safe() -> None:
    texts = corpus_texts("nfcorpus")[:400]
    expected = {name: [get_analyzer(name).tokens(t) for t in texts] for name in ("english", "standard")}
    analysis._STEMS.clear()
    failures: list[str] = []

    def work(name: str) -> None:
        analyzer = get_analyzer(name)
        if [analyzer.tokens(t) for t in texts] != expected[name]:
            failures.append(name)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("english", "standard") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    # Memoised chunks give the same terms as a fresh analyzer.
    fresh = Analyzer("english", analysis._english_analyzer())
    assert [fresh.tokens(t) for t in texts] == expected["english"]
