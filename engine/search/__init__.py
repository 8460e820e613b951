"""Search: the query DSL, scoring, and a search request from its JSON to the response (Lucene's ``search``).

    query/           nodes (the executable query tree) and parser (the DSL's JSON to nodes)
    similarity       BM25, rank features and k-NN scores, bit for bit as Lucene/OpenSearch compute them
    request          a search request parsed from its JSON and URL parameters, as OpenSearch refuses them
    sort             ordering the matches (score, sort values, search_after), across views
    fetch            rendering hits: _source filtering, fields, docvalue_fields, stored_fields
    service          the search function: parse, run on each view, order, page, fetch, respond
    slicing          sliced scroll (``slice``); source_filter: ``_source`` includes/excludes

Search reads :mod:`..index` (through :class:`~nirbridge.engine.index.Searcher` views) and never writes it.
"""

from .fetch import stored_fields_of
from .query import Matches, QueryParser
from .request import Request, parse_request
from .service import build_response, count_views, search_views
from .sort import ordered_hits
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
