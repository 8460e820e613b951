"""nirbridge: neural retrieval for the OpenSearch clusters people already run."""

__version__ = "0.1.0"
