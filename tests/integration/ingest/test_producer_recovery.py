"""A delivery Kafka refuses is answered as unavailable (never acknowledged), the ingest's idempotent
producer is replaced, and the next writes of the same person's partition get through once.

aiokafka has no KIP-360 epoch bump: a failed batch that leaves a gap in a partition's sequence
numbers (seen in a broker restart with short timeouts: LeaderNotAvailable, then OutOfOrderSequence
on every later batch) would block that partition for good; hence the replacement. Here the broker
refuses a batch larger than the topic's ``max.message.bytes`` (MESSAGE_TOO_LARGE), on the real Kafka;
this failure does not itself leave such a gap, so the test shows the replacement works and is safe.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from ingest.exceptions import KafkaUnavailable
from ingest.producer import ScanProducer
from truyvet.kafka_clients import client_kwargs, security_options
from truyvet.settings import CommonSettings


def _record(person: str, pad: int = 0) -> tuple[str, str, bytes]:
    scan_id = str(uuid.uuid4())
    value = orjson.dumps({"scan_id": scan_id, "scanned_at": "2026-11-26T06:00:00Z", "direction": "in",
                          "venue_id": "vrecovery", "person_id": person, "source": "batch",
                          "received_at": "2026-11-26T06:00:00Z", "pad": "x" * pad})
    return scan_id, person, value


def test_failed_batch_replaces_the_producer_and_later_scans_get_through(infra: CommonSettings) -> None:
    topic = infra.topic(f"ingest-tiny-{uuid.uuid4().hex[:6]}")
    admin = KafkaAdminClient(**client_kwargs(infra))
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "4096"})])
    finally:
        admin.close()

    person = "same-person-same-partition"
    big = [_record(person, pad=200) for _ in range(100)]  # one record batch of ~30 KB
    small = [_record(person) for _ in range(3)]

    async def scenario() -> tuple[int, int]:
        producer = ScanProducer(bootstrap=infra.kafka_bootstrap, topic=topic, timeout_seconds=20,
                                recent_capacity=1000, client_options=security_options(infra))
        await producer.start()
        first = producer._producer
        try:
            with pytest.raises(KafkaUnavailable):
                await producer.send(big)
            for _ in range(200):  # the replacement connects in the background
                if producer.connected:
                    break
                await asyncio.sleep(0.05)
            assert producer._producer is not None and producer._producer is not first
            duplicates = await producer.send(small)
            again = await producer.send(small)  # confirmed ones are remembered, not written twice
            return duplicates, again
        finally:
            await producer.stop()

    assert asyncio.run(scenario()) == (0, 3)
    consumer = KafkaConsumer(**client_kwargs(infra), enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        ids = [orjson.loads(r.value)["scan_id"] for r in consumer]
    finally:
        consumer.close()
    assert sorted(ids) == sorted(s for s, _, _ in small)
