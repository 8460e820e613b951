"""The index: what a document becomes and where it is kept (Lucene's ``index`` and ``store``, and the
mapping).

    mapping          the mapping JSON compiled to fields; a source document parsed into terms, values, vectors
    fields           field types, Field, ParsedDoc, and the checks and conversions of one value
    mapping_merge    dynamic mapping of new values, the additive merge of a put-mapping
    values, dates    numeric/boolean coercion and OpenSearch's date formats
    encoding         norms, FeatureField values, k-NN space types as Lucene stores them
    postings         the inverted store (terms -> ordinals, frequencies, norms; doc values; vectors per field)
    vectors          one k-NN vector field: exact scan, int8 pre-filter, faiss HNSW graph
    searcher         a point-in-time view of an index (what one refresh made visible)
    index            one index: documents, versions, refresh, the translog and the commit
    store, state     files: the commit and translog of an index, the node's metadata (crash-safe writes)
    settings         index settings and their validation
    routing          shard ids; metadata_fields: _id, _index, _routing ...
    quarantine       indices whose files cannot be read, kept aside rather than lost

Nothing here imports :mod:`..search` or :mod:`..rest`.
"""

from .fields import Field, ParsedDoc
from .index import DocVersion, Index
from .mapping import Mapping
from .searcher import Searcher
from .settings import IndexSettings
from .vectors import VectorIndex

__all__ = [
    "DocVersion",
    "Field",
    "Index",
    "IndexSettings",
    "Mapping",
    "ParsedDoc",
    "Searcher",
    "VectorIndex",
]
