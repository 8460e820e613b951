"""Search: the query DSL, scoring, and a search request from its JSON to the response (Lucene's ``search``).

    query/           nodes (the executable query tree) and parser (the DSL's JSON to nodes)
    similarity       BM25, rank features and k-NN scores, bit for bit as Lucene/OpenSearch compute them
    request          a search request: parse, run over the views, sort, page, fetch, build the response
    slicing          sliced scroll (``slice``); source_filter: ``_source`` includes/excludes

Search reads :mod:`..index` (through :class:`~nirbridge.engine.index.Searcher` views) and never writes it.
"""

from .query import Matches, QueryParser
from .request import (
    Request,
    build_response,
    count_views,
    ordered_hits,
    parse_request,
    search_views,
    stored_fields_of,
)
from .source_filter import filter_source, parse_source_param

__all__ = [
    "Matches",
    "QueryParser",
    "Request",
    "build_response",
    "count_views",
    "filter_source",
    "ordered_hits",
    "parse_request",
    "parse_source_param",
    "search_views",
    "stored_fields_of",
]
