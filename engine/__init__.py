"""The embedded OpenSearch-compatible engine (README.md), along Lucene's lines:

    analysis/   text analysis: tokenizers, filters, the analyzers (imports nothing else of the engine)
    index/      what a document becomes and where it is kept: mappings, postings, vectors, files
    search/     the query DSL, scoring and search requests, over the index's point-in-time views
    node.py     the node: indices, aliases, metadata, recovery
    rest/       OpenSearch's HTTP API over the node, and the server (``rest.serve``)
    errors.py   OpenSearch's errors; limits.py: request bounds

Nothing is imported here, so that a light import (``nirbridge.engine.rest.security`` for ``hash-password``)
stays light; each subpackage's ``__init__`` states its public surface.
"""
