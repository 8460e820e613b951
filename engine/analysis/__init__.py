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

Layout: ``base`` (the Analyzer type, its error, the defaults), ``standard`` (StandardTokenizer: UAX #29),
``char_tokenizers`` (whitespace, letter, keyword), ``porter`` (the stemmer), ``filters`` (token filters),
``analyzers`` (the built-in analyzers and the registry that index settings extend).
"""

from .analyzers import get_analyzer
from .base import BUILTIN_ANALYZERS, ENGLISH_STOP_WORDS, AnalysisError, Analyzer

__all__ = [
    "AnalysisError",
    "Analyzer",
    "BUILTIN_ANALYZERS",
    "ENGLISH_STOP_WORDS",
    "get_analyzer",
]
