"""The ``scans`` processor: a batch of records → visits in ClickHouse, notices for exposure matching.

Driven by :class:`streams.consumer.PartitionedConsumer`. Per batch: the venues named (and those in the
touched people's stored state) are looked up, :class:`streams.visit_batch.VisitBatch` makes the rows,
then the rows go to ClickHouse (retried while it is away), and the person states (changelog), dead
letters, re-keyed copies and visit notices go to Kafka; everything is confirmed before the consumer
commits. Why a crash or redelivery never loses or doubles a visit: streams/README.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram

from streams.config import StreamsSettings
from streams.processor import VisitRules
from streams.sink import VISIT_COLUMNS, VisitSink
from streams.store import ChangelogStore, Codec
from streams.venues import VenueCache
from streams.visit_batch import VisitBatch
from truyvet.cards import PublicKeys
from truyvet.events import Topics
from truyvet.partitioning import partition_for
from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

CONSUMED = Counter("truyvet_streams_scans_consumed_total", "Scans read from the intake topic")
DUPLICATES = Counter("truyvet_streams_duplicates_total", "Scans dropped as duplicates", ["kind"])
DEAD_LETTERED = Counter("truyvet_streams_dead_lettered_total", "Scans sent to the dead-letter topic", ["code"])
REPLAYED = Counter("truyvet_streams_scans_rewound_total",
                   "Scans dropped from state because their record is being redelivered (after a crash)")
BATCH_LATENCY = Histogram("truyvet_streams_batch_seconds", "Time from taking a batch to confirming its effects",
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
BATCH_SCANS = Histogram("truyvet_streams_batch_scans", "Scans per ClickHouse batch",
                        buckets=(1, 10, 100, 1000, 5000, 10_000, 20_000, 50_000))
REKEYED = Counter("truyvet_streams_scans_rekeyed_total",
                  "Scans found off their person's partition and produced again keyed by person")
STATES_EXPIRED = Counter("truyvet_streams_states_expired_total",
                         "People whose state was dropped: newest scan older than the state horizon")
PEOPLE_IN_STATE = Gauge("truyvet_streams_people_in_state", "People with state on this worker's partitions")

NOTICES_PER_MESSAGE = 2000  # ~250 KB: well under Kafka's 1 MB message limit
_I = {c: VISIT_COLUMNS.index(c) for c in ("visit_id", "person_id", "venue_id", "t_in", "t_out", "deleted")}


def _person_state(value: bytes) -> object:
    state = orjson.loads(value)
    if type(state) is not dict or type(state.get("s")) is not list:
        raise ValueError("not a person state ({'s': [...], 'p': ...})")
    return state


PERSON_STATE = Codec("person state (orjson)", _person_state)


def visit_notices(rows: Sequence[Sequence[object]], partitions: int) -> dict[int, list[bytes]]:
    """Messages of notices of the written (not deleted) visits, by the partition of their venue key, so
    a venue's notices share the partition (and the order) of that venue's exposure windows."""
    groups: dict[int, list[dict[str, object]]] = {}
    i_visit, i_person, i_venue, i_in, i_out, i_deleted = (
        _I[c] for c in ("visit_id", "person_id", "venue_id", "t_in", "t_out", "deleted"))
    for row in rows:
        if row[i_deleted]:
            continue
        venue = str(row[i_venue])
        notice = {"visit_id": row[i_visit], "person_id": row[i_person], "venue_id": venue,
                  "t_in": row[i_in], "t_out": row[i_out]}  # epoch seconds, as visit_rows writes them
        groups.setdefault(partition_for(venue, partitions), []).append(notice)
    return {p: [orjson.dumps({"kind": "visits", "visits": notices[i: i + NOTICES_PER_MESSAGE]})
                for i in range(0, len(notices), NOTICES_PER_MESSAGE)]
            for p, notices in groups.items()}


class VisitsProcessor:
    """:class:`streams.consumer.BatchProcessor` of the ``scans`` topic."""

    def __init__(self, settings: StreamsSettings, *, producer: AIOKafkaProducer, connect: Callable[[], Database],
                 should_stop: Callable[[], bool], client_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.producer = producer
        self.should_stop = should_stop
        self.venues = VenueCache(connect=connect, default_stay_minutes=settings.default_stay_minutes,
                                 category_stay_minutes=settings.category_stay_minutes)
        self.sink = VisitSink(connect=connect, max_backoff=settings.sink_max_backoff_seconds)
        self.store = ChangelogStore("person-scans", settings.state_topic("person-scans"), codec=PERSON_STATE,
                                    bootstrap=settings.kafka_bootstrap, client_options=client_options)
        self.stores = [self.store]
        rules = VisitRules(stay_for=self.venues.stay_seconds, max_stay=settings.max_stay_minutes * 60,
                           dedup_window=settings.dedup_window_minutes * 60,
                           horizon=settings.state_horizon_hours * 3600)
        self.batch = VisitBatch(rules=rules, store=self.store, known_venue=self.venues.known,
                                partitions=settings.scans_partitions,
                                retention_seconds=settings.retention_days * 86400,
                                person_card=PublicKeys(settings.card_keys_dir).verify)
        self.scans_topic = settings.topic(Topics.SCANS)
        self.dlq_topic = settings.topic(Topics.SCANS_DLQ)
        self.matching_topic = settings.topic(Topics.EXPOSURE_MATCHING)

    def assigned(self, partitions: set[int]) -> None:
        PEOPLE_IN_STATE.set(len(self.store))

    def revoked(self, partitions: set[int]) -> None:
        self.batch.forget(partitions)

    async def _lookup(self, venue_ids: set[str]) -> None:
        """Cache the venues, waiting out a ClickHouse outage; stopping meanwhile fails the batch."""
        if venue_ids and not await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.venues.prefetch(venue_ids, should_stop=self.should_stop)):
            raise asyncio.CancelledError("stopping while ClickHouse is away")

    async def process(self, batch: dict[int, list[Any]]) -> None:
        started = time.perf_counter()
        records = [record for records in batch.values() for record in records]
        parsed = self.batch.parse(records)
        await self._lookup(self.batch.venues_named(parsed))
        await self._lookup(self.batch.state_venues(parsed))
        result = self.batch.apply(parsed, int(time.time()))
        producer, pending = self.producer, []
        pending += await self.store.flush(producer)
        for key, value in result.dead_letters:
            pending.append(await producer.send(self.dlq_topic, key=key, value=value))
        for key, value in result.rekeyed:
            pending.append(await producer.send(
                self.scans_topic, key=key, value=value,
                partition=partition_for(key.decode(), self.settings.scans_partitions)))
        written = await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.sink.write(result.rows, should_stop=self.should_stop))
        if not written:
            raise asyncio.CancelledError("stopping while ClickHouse is away")
        for partition, messages in visit_notices(result.rows, self.settings.scans_partitions).items():
            for message in messages:
                pending.append(await producer.send(self.matching_topic, value=message, partition=partition))
        if pending:
            await asyncio.gather(*pending)
        CONSUMED.inc(result.consumed)
        REKEYED.inc(len(result.rekeyed))
        DUPLICATES.labels("window").inc(result.window_duplicates)
        DUPLICATES.labels("scan_id").inc(result.id_duplicates)
        REPLAYED.inc(result.rewound)
        for code, n in result.dead_by_code.items():
            DEAD_LETTERED.labels(code).inc(n)
        BATCH_LATENCY.observe(time.perf_counter() - started)
        BATCH_SCANS.observe(len(records))

    async def expire(self, partitions: set[int]) -> None:
        """Forget people whose newest scan is older than the state horizon (wall clock); tombstones
        go to the changelog."""
        cutoff = int(time.time()) - self.settings.state_horizon_hours * 3600
        expired = sum(self.batch.expire(p, cutoff) for p in partitions)
        futures = await self.store.flush(self.producer)
        if futures:
            await asyncio.gather(*futures)
        STATES_EXPIRED.inc(expired)
        PEOPLE_IN_STATE.set(len(self.store))
