"""Document routing: which shard of an index a document belongs to, computed as OpenSearch computes it.

The engine keeps one store per index (statistics are index-wide), but it remembers each document's shard so
that a write with ``?refresh=true`` makes visible what OpenSearch would: the changes of that document's shard
only, while the other shards' pending changes wait for their own refresh.

OperationRouting: ``floorMod(murmur3(routing or _id), routing_num_shards) / routing_factor``, where murmur3 is
``Murmur3HashFunction.hash``: MurmurHash3 x86_32 (seed 0) of the string's UTF-16LE bytes.
"""

from __future__ import annotations

MASK32 = 0xFFFFFFFF


def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit of ``data`` as a signed Java int (Lucene's StringHelper.murmurhash3_x86_32)."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & MASK32
    rounded = len(data) & ~3
    for i in range(0, rounded, 4):
        k = int.from_bytes(data[i: i + 4], "little")
        k = (k * c1) & MASK32
        k = ((k << 15) | (k >> 17)) & MASK32
        k = (k * c2) & MASK32
        h ^= k
        h = ((h << 13) | (h >> 19)) & MASK32
        h = (h * 5 + 0xE6546B64) & MASK32
    tail = data[rounded:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & MASK32
        k = ((k << 15) | (k >> 17)) & MASK32
        k = (k * c2) & MASK32
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def routing_hash(routing: str) -> int:
    """OpenSearch's ``Murmur3HashFunction.hash(String)``: each UTF-16 code unit as two little-endian bytes."""
    return murmur3_x86_32(routing.encode("utf-16-le"))


def default_routing_shards(number_of_shards: int) -> int:
    """MetadataCreateIndexService.calculateNumRoutingShards: the largest ``shards * 2^n`` not above 1024
    (at least one split)."""
    log2_shards = (number_of_shards - 1).bit_length()
    splits = max(1, 10 - log2_shards)
    return number_of_shards << splits


def shard_id(
    doc_id: str, routing: str | None, number_of_shards: int, routing_shards: int | None = None
) -> int:
    """The shard a document with ``doc_id`` (and optional custom ``routing``) is written to."""
    if number_of_shards == 1:
        return 0
    routing_shards = routing_shards or default_routing_shards(number_of_shards)
    factor = routing_shards // number_of_shards
    return (routing_hash(routing if routing is not None else doc_id) % routing_shards) // factor
