"""Reading the suite's Kafka topics, one way for every test (kafka-python's public API only).

- :func:`from_start`: a group-less consumer assigned every partition of some topics at their beginning
  (assigned, not subscribed: a subscription can miss records written before its first metadata answer);
- :func:`all_records`: every record those partitions hold now, read to the end offsets of that moment;
- :func:`records_until`: records from the start until a condition on what was read holds (records that
  are still on their way: dead letters, a venue's event);
- :func:`group_lags`: per partition, the records a consumer group has not committed yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from truyvet.kafka_clients import client_kwargs
from truyvet.settings import CommonSettings


@contextmanager
def from_start(settings: CommonSettings, *topics: str, wait: float = 60.0) -> Iterator[KafkaConsumer]:
    """A consumer (``settings``' account) on every partition of ``topics`` at its beginning; waits up to
    ``wait`` seconds for a topic just created to have partitions."""
    consumer = KafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    try:
        deadline = time.monotonic() + wait
        parts: list[TopicPartition] = []
        for topic in topics:
            while not consumer.partitions_for_topic(topic):
                assert time.monotonic() < deadline, f"{topic} has no partitions after {wait:.0f}s"
                time.sleep(0.2)
            parts += [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        if parts:  # none asked: a client to list topics with
            consumer.assign(parts)
            consumer.seek_to_beginning()
        yield consumer
    finally:
        consumer.close()


def all_records(settings: CommonSettings, *topics: str, timeout: float = 60.0,
                max_records: int = 10_000) -> list[ConsumerRecord]:
    """Every record of ``topics`` up to their end offsets when called (a test's "what is in Kafka now")."""
    with from_start(settings, *topics) as consumer:
        parts = sorted(consumer.assignment())
        end = consumer.end_offsets(parts)
        remaining = {tp for tp in parts if end[tp] > 0}
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while remaining:
            assert time.monotonic() < deadline, f"could not read to the end of {sorted(remaining)} in {timeout:.0f}s"
            for tp, records in consumer.poll(timeout_ms=500, max_records=max_records).items():
                found += [r for r in records if r.offset < end[tp]]
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return found


def records_until(settings: CommonSettings, topic: str, done: Callable[[list[ConsumerRecord]], bool], *,
                  timeout: float = 60.0, what: str = "the records awaited") -> list[ConsumerRecord]:
    """Records of ``topic`` from its start, read until ``done(every record read so far)`` holds."""
    with from_start(settings, topic) as consumer:
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while not done(found):
            assert time.monotonic() < deadline, f"{what}: not in {topic} within {timeout:.0f}s ({len(found)} read)"
            for records in consumer.poll(timeout_ms=500).values():
                found += records
        return found


def group_lags(admin: KafkaAdminClient, consumer: KafkaConsumer, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: records consumer group ``group`` has not committed (all, where it has
    committed nothing)."""
    committed = admin.list_group_offsets({group: None}).get(group, {})
    parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
    ends = consumer.end_offsets(parts)
    return {tp.partition: end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
            for tp, end in ends.items()}
