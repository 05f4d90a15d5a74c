"""One partitioner (truyvet.partitioning) that agrees with the Kafka clients' default partitioner."""

from __future__ import annotations

from truyvet.partitioning import partition_for


def test_partition_for_is_the_default_partitioner_of_the_clients() -> None:
    from kafka.partitioner.default import DefaultPartitioner

    class Cluster:  # what kafka-python's partitioner asks of the cluster metadata
        def topics(self) -> set[str]:
            return {"t"}

        def partitions_for_topic(self, _topic: str) -> set[int]:
            return set(range(8))

        def available_partitions_for_topic(self, _topic: str) -> set[int]:
            return set(range(8))

    for venue in ["ven_1", "V", "bven12345", "qu\u00e1n-\u0111\u1ee9c-xu\u00e2n", "x" * 64]:
        # The trace API's kafka-python producer puts windows by key; the worker puts notices by number.
        key = venue.encode()
        assert partition_for(venue, 8) == DefaultPartitioner().partition(
            "t", venue, key, None, None, Cluster()
        )
