"""Who is traced, on every worker: the whole compacted ``traced-persons`` topic, read at start and tailed.

A case person's visits (generation 0) and a generation-1 contact's visits (generation 1) make others
contacts, also when those visits are written later than the case's registration (late scans). The trace
API puts the case person and the contacts it finds on the topic; the matcher adds the contacts it finds
later. Visit notices reach the matcher by venue, so any worker may meet any traced person's visit: each
worker keeps the whole topic (small: the live cases' contacts, dropped after their follow-up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge
from pydantic import ValidationError

from truyvet.events import TracedPerson

logger = logging.getLogger(__name__)

TRACED = Gauge("truyvet_alerts_traced_persons", "Case persons and contacts whose later visits raise alerts")


class TracedPersons:
    """person_id -> case_id -> :class:`TracedPerson`, kept current from the topic."""

    def __init__(self, topic: str, *, bootstrap: str, client_options: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._options = client_options or {}
        self.by_person: dict[str, dict[str, TracedPerson]] = {}
        self._consumer: AIOKafkaConsumer | None = None

    def of(self, person_id: str, now: int) -> list[TracedPerson]:
        cases = self.by_person.get(person_id)
        if not cases:
            return []
        return [t for t in cases.values() if t.expires_at > now]

    def get(self, case_id: str, person_id: str) -> TracedPerson | None:
        return self.by_person.get(person_id, {}).get(case_id)

    def _apply(self, key: bytes | None, value: bytes | None, where: str) -> None:
        if key is None:
            return
        case_id, _, person_id = key.decode(errors="replace").partition("|")
        if value is None:
            cases = self.by_person.get(person_id, {})
            cases.pop(case_id, None)
            if not cases:
                self.by_person.pop(person_id, None)
            return
        try:
            traced = TracedPerson.model_validate_json(value)
        except ValidationError as exc:
            logger.error("traced-persons record %s skipped: %s", where, str(exc)[:200])
            return
        self.by_person.setdefault(traced.person_id, {})[traced.case_id] = traced

    def prune(self, now: int) -> None:
        for person in [p for p, cases in self.by_person.items() if all(t.expires_at <= now for t in cases.values())]:
            del self.by_person[person]
        TRACED.set(sum(len(c) for c in self.by_person.values()))

    async def start(self) -> None:
        """Read the topic to its end (before the matcher processes anything), then keep tailing it."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", metadata_max_age_ms=10_000, **self._options)
        await consumer.start()
        self._consumer = consumer
        partitions: set[int] | None = None
        while not partitions:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await consumer.topics()  # refreshes the metadata
                await asyncio.sleep(0.5)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        await self.catch_up()
        self.prune(int(time.time()))
        logger.info("traced persons: %d read from %s", sum(len(c) for c in self.by_person.values()), self.topic)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        fetched = await consumer.getmany(timeout_ms=500, max_records=10_000)
        for tp, records in fetched.items():
            for record in records:
                self._apply(record.key, record.value, f"{tp.topic}[{tp.partition}]@{record.offset}")

    async def catch_up(self) -> None:
        """Read up to the topic's current end: every person traced before a visit notice was written is
        known when the notice is matched (the matcher calls this before each batch)."""
        consumer = self._consumer
        assert consumer is not None
        tps = list(consumer.assignment())
        try:
            ends = await consumer.end_offsets(tps)
            while True:
                behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
                if not behind:
                    break
                await self._poll(consumer)
        except KafkaError as exc:
            logger.warning("reading %s failed (%s); the batch waits for it", self.topic, exc)
            raise
        TRACED.set(sum(len(c) for c in self.by_person.values()))

    def add(self, traced: TracedPerson) -> None:
        """A record this worker just produced (and Kafka confirmed): known at once, before it is read back."""
        self.by_person.setdefault(traced.person_id, {})[traced.case_id] = traced

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
