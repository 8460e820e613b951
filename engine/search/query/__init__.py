"""The query DSL: ``parser`` (OpenSearch's query JSON to nodes), ``nodes`` (the executable tree: every node
scores a whole view at once), ``bm25`` (term scoring over a view's postings), ``params`` (the DSL's
parameters: minimum_should_match, rank-feature functions, k-NN method parameters).
"""

from .nodes import Matches, Node
from .params import minimum_should_match
from .parser import QueryParser

__all__ = ["Matches", "Node", "QueryParser", "minimum_should_match"]
