"""A topic consumed in batches on aiokafka's public consumer, with state restored on assignment.

:class:`PartitionedConsumer` is the worker's intake loop (docs/operations.md, "Worker"): ``getmany`` a
batch, hand it to a :class:`BatchProcessor` (which stores its effects: ClickHouse rows, changelog
records, produced records, all confirmed), then ``commit`` the offsets after the last record of each
partition. So a committed offset always means "every record before it took effect", and a crash at
any point replays from there (processors make replays harmless: deterministic ids and versions, state
rewound to the replayed offset).

A rebalance listener finishes the in-flight batch before partitions are revoked (the batch holds a
lock that the revoke waits for) and restores the processor's changelog stores for newly assigned
partitions before any of their records is processed. The consumer keeps its own expected next offset
per partition: a record below it (a second copy) is skipped, a record above it (a hole) makes it seek
back; neither is processed out of order.

Health (:meth:`health`): ``restoring`` while stores load, ``stalled`` when records wait but nothing
was committed for ``stall_seconds``, ``failed`` after an unrecoverable error (a changelog record the
store cannot read), else ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Gauge

from streams.exceptions import StateRecoveryError
from streams.store import ChangelogStore

logger = logging.getLogger(__name__)

LAG = Gauge("truyvet_streams_consumer_lag", "Records not yet processed", ["topic", "partition"])
ASSIGNED = Gauge("truyvet_streams_assigned_partitions", "Partitions this worker holds", ["topic"])
SINCE_COMMIT = Gauge("truyvet_streams_seconds_since_commit",
                     "Seconds since this consumer last committed (or was assigned) while records wait", ["topic"])
HEALTHY = Gauge("truyvet_streams_healthy", "1 when the consumer is running and keeping up, else 0", ["topic"])
RESTORING = Gauge("truyvet_streams_restoring", "1 while state is restored from changelogs", ["topic"])
SKIPPED = Counter("truyvet_streams_records_skipped_total",
                  "Records not processed: second copies, or after a hole (sought back)", ["topic", "reason"])
BATCH_FAILURES = Counter("truyvet_streams_batch_failures_total",
                         "Batches whose effects were not all confirmed (state restored and records replayed)",
                         ["topic"])


class BatchProcessor(Protocol):
    """What the consumer drives: stores to restore, and a batch's processing."""

    stores: list[ChangelogStore]

    async def process(self, batch: dict[int, list[Any]]) -> None:
        """Process records by partition (each list in offset order) and confirm every effect before
        returning; raising means nothing of the batch may be committed."""

    def assigned(self, partitions: set[int]) -> None:
        """Partitions newly held (stores already restored)."""

    def revoked(self, partitions: set[int]) -> None:
        """Partitions given up (their in-flight batch finished)."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: PartitionedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.on_revoked({tp.partition for tp in revoked if tp.topic == self.owner.topic})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner.on_assigned({tp.partition for tp in assigned if tp.topic == self.owner.topic})


class PartitionedConsumer:
    """Consume ``topic`` as group ``group_id`` in batches for ``processor``.

    :param client_options: extra keyword arguments for the aiokafka consumer (security settings).
    """

    def __init__(self, *, topic: str, group_id: str, bootstrap: str, processor: BatchProcessor,
                 max_records: int, flush_seconds: float, session_timeout_seconds: float,
                 stall_seconds: float = 120.0, client_options: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self.processor = processor
        self.max_records = max_records
        self.flush_ms = int(flush_seconds * 1000)
        self.stall_seconds = stall_seconds
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(session_timeout_seconds * 1000 / 5),
            # A ClickHouse outage holds a batch for as long as it lasts; the session (heartbeats) says
            # whether the worker is alive, not how long a batch takes.
            max_poll_interval_ms=3600 * 1000, metadata_max_age_ms=10_000,
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024,
            **(client_options or {}),
        )
        self._lock = asyncio.Lock()
        self.expected: dict[int, int | None] = {}  # partition -> next offset to process (None: from the first)
        self.state = "starting"
        self.error = ""
        self.restore_remaining = 0
        self.last_progress = time.monotonic()
        self.lag: dict[int, int] = {}
        self._stopping = False
        # Computed when scraped, so a stuck loop still shows (the age keeps growing).
        SINCE_COMMIT.labels(topic).set_function(lambda: self.health()["seconds_since_commit"] if self.lag_total else 0)
        HEALTHY.labels(topic).set_function(lambda: 1.0 if self.health()["status"] == "ok" else 0.0)
        RESTORING.labels(topic).set_function(lambda: 1.0 if self.state == "restoring" else 0.0)

    # -- life cycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self.consumer.subscribe([self.topic], listener=_Listener(self))
        await self.consumer.start()

    async def stop(self) -> None:
        """Finish the in-flight batch, then leave the group (the partitions move at once)."""
        self._stopping = True
        async with self._lock:
            await self.consumer.stop()
        self.state = "stopped"

    async def locked(self, fn: Callable[[set[int]], Awaitable[None]]) -> None:
        """Run ``fn(held partitions)`` between batches (e.g. a state sweep that writes to the stores)."""
        async with self._lock:
            if self.state == "running":
                await fn(set(self.expected))

    async def run(self, should_stop: Callable[[], bool]) -> None:
        """The loop: batches until ``should_stop``; a failed batch is replayed after a state restore."""
        while not should_stop() and not self._stopping:
            if self.state == "failed":
                raise StateRecoveryError(f"intake of {self.topic} failed: {self.error}", topic=self.topic)
            try:
                batch = await self.consumer.getmany(timeout_ms=self.flush_ms, max_records=self.max_records)
            except KafkaError as exc:
                logger.warning("fetching %s failed (%s); trying again", self.topic, exc)
                await asyncio.sleep(1)
                continue
            async with self._lock:
                await self._update_lag()
                records = self._in_order(batch)
                if not records:
                    continue
                try:
                    await self.processor.process(records)
                except StateRecoveryError:
                    raise
                except Exception:
                    BATCH_FAILURES.labels(self.topic).inc()
                    logger.exception("a batch of %s (partitions %s) failed; restoring state and replaying it",
                                     self.topic, {p: (r[0].offset, r[-1].offset) for p, r in records.items()})
                    await self._replay(set(records))
                    continue
                for partition, recs in records.items():
                    self.expected[partition] = recs[-1].offset + 1
                await self._commit(set(records))

    # -- rebalances ------------------------------------------------------------------------------------
    async def on_revoked(self, partitions: set[int]) -> None:
        async with self._lock:  # the batch in flight finishes (and commits) first
            self.processor.revoked(partitions)
            for store in self.processor.stores:
                store.drop(partitions)
            for partition in partitions:
                self.expected.pop(partition, None)
                self.lag.pop(partition, None)
                with contextlib.suppress(KeyError):  # never reported
                    LAG.remove(self.topic, str(partition))
        ASSIGNED.labels(self.topic).set(len(self.expected))

    async def on_assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            self.state = "restoring"
            try:
                await self._restore(partitions)
                for partition in partitions:
                    self.expected[partition] = await self._committed(partition)
                self.processor.assigned(partitions)
            except Exception as exc:
                # aiokafka only logs a listener's error and goes on: the loop must stop the worker instead.
                self.state, self.error = "failed", str(exc)
                logger.critical("partitions %s of %s cannot be taken up: %s", sorted(partitions), self.topic, exc)
                raise
            self.state = "running"
            self.last_progress = time.monotonic()
        ASSIGNED.labels(self.topic).set(len(self.expected))

    async def _restore(self, partitions: set[int]) -> None:
        for store in self.processor.stores:
            store.drop(partitions)  # a partition held before is read again: its changelog may have moved on
            while True:
                try:
                    await store.restore(partitions, progress=self._restoring)
                    break
                except StateRecoveryError:
                    raise
                except (KafkaError, OSError) as exc:
                    logger.warning("restoring %s failed (%s); trying again", store.name, exc)
                    await asyncio.sleep(2)

    async def _committed(self, partition: int) -> int | None:
        """The group's committed offset of a partition (None: nothing committed), asked until Kafka answers."""
        while True:
            try:
                committed: int | None = await self.consumer.committed(TopicPartition(self.topic, partition))
                return committed
            except KafkaError as exc:
                logger.warning("committed offset of %s[%d] unknown (%s); asking again", self.topic, partition, exc)
                await asyncio.sleep(1)

    def _restoring(self, remaining: int) -> None:
        self.restore_remaining = remaining

    async def _replay(self, partitions: set[int]) -> None:
        """After a failed batch: state back to what the changelog holds, positions back to the committed
        offsets (each step waits for Kafka as long as it takes)."""
        self.state = "recovering"
        await self._restore(partitions)
        for partition in partitions:
            tp = TopicPartition(self.topic, partition)
            committed = self.expected[partition] = await self._committed(partition)
            if committed is not None:
                self.consumer.seek(tp, committed)
            else:
                await self.consumer.seek_to_beginning(tp)
        self.state = "running"

    # -- per batch ---------------------------------------------------------------------------------------
    def _in_order(self, batch: dict[Any, list[Any]]) -> dict[int, list[Any]]:
        """Each partition's records from its expected offset on, without holes; a hole seeks back."""
        ordered: dict[int, list[Any]] = {}
        for tp, records in batch.items():
            if tp.topic != self.topic or tp.partition not in self.expected or not records:
                continue
            expected = self.expected[tp.partition]
            if expected is not None and records[0].offset != expected:
                if records[0].offset < expected:
                    kept = [r for r in records if r.offset >= expected]
                    SKIPPED.labels(self.topic, "second_copy").inc(len(records) - len(kept))
                    records = kept
                if records and records[0].offset > expected:
                    SKIPPED.labels(self.topic, "after_hole").inc(len(records))
                    logger.warning("records of %s from offset %d did not arrive; seeking back to it", tp, expected)
                    self.consumer.seek(tp, expected)
                    continue
            if records:
                ordered[tp.partition] = records
        return ordered

    async def _commit(self, partitions: set[int]) -> None:
        offsets = {TopicPartition(self.topic, p): self.expected[p] for p in partitions
                   if self.expected.get(p) is not None}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Rebalanced meanwhile: the partitions' new owner replays the batch (harmless by design).
            logger.warning("commit of %s failed (%s); the batch will be replayed", self.topic, exc)
            return
        self.last_progress = time.monotonic()

    async def _update_lag(self) -> None:
        for partition, expected in self.expected.items():
            tp = TopicPartition(self.topic, partition)
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            position = expected if expected is not None else await self.consumer.position(tp)
            self.lag[partition] = max(0, high - position)
            LAG.labels(self.topic, str(partition)).set(self.lag[partition])
        if not any(self.lag.values()):
            self.last_progress = time.monotonic()  # nothing waits: idle is not stalled

    @property
    def lag_total(self) -> int:
        return sum(self.lag.values())

    # -- health -------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The consumer's health as the worker's ``/healthz`` reports it."""
        since = time.monotonic() - self.last_progress
        lag = self.lag_total
        status = self.state
        if status == "running":
            status = "stalled" if lag and since > self.stall_seconds else "ok"
        return {"topic": self.topic, "status": status, "lag": lag, "seconds_since_commit": round(since, 1),
                "partitions": sorted(self.expected), "restore_remaining_records": self.restore_remaining,
                "error": self.error}

