"""The analyzer registry: the built-in analyzers (fused pipelines: the indexing hot path) and the custom
analyzers, tokenizers and filters that index settings define."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from itertools import chain
from typing import Any, cast

from .base import (
    DEFAULT_MAX_TOKEN_LENGTH,
    ENGLISH_STOP_WORDS,
    MAX_TOKEN_LENGTH_LIMIT,
    AnalysisError,
    Analyzer,
    Tokens,
)
from .char_tokenizers import _keyword_tokens, _letter_tokens, _whitespace_tokens
from .filters import (
    _Filter,
    _java_lower,
    _java_upper,
    _KeywordMarker,
    _Map,
    _Porter,
    _Stop,
    _strip_possessive,
)
from .porter import _STEMS, _porter_stem
from .standard import _ASCII_NON_WORD, _standard_chunk, _standard_tokens

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
        return list(chain.from_iterable(cast("list[tuple[str, ...]]", found)))  # no None is left

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

