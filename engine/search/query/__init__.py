"""The query DSL: ``nodes`` (the executable query tree) and ``parser`` (OpenSearch's JSON to nodes)."""

from .parser import Matches, QueryParser

__all__ = ["Matches", "QueryParser"]
