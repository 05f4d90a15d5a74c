"""The partition of a key: Kafka's default partitioner (murmur2 of the key bytes), defined once.

Every producer of the pipeline keys by an id and lets this decide the partition: ingest keys scans by
person, the trace API keys exposure windows by venue, the worker puts a person's state on their scans'
partition and a venue's matching state on its windows' partition. Any Kafka client with the default
partitioner (the Java client, librdkafka's ``murmur2_random``, kafka-python, aiokafka) agrees with it,
so a scan written straight to Kafka keyed by its person lands where the worker expects it.
See docs/tracing.md ("Partitioning").
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 18)  # murmur2 is pure Python; the same people and venues come back batch after batch
def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key`` (its UTF-8 bytes) among ``partitions``, as the default partitioner picks it."""
    return key_hash(key.encode()) % partitions


def key_hash(key: bytes) -> int:
    """The positive murmur2 hash of ``key`` that the default partitioner takes modulo the partition count."""
    return int(murmur2(key)) & 0x7FFFFFFF
