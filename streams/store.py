"""Partitioned state backed by a compacted changelog topic, restored with aiokafka's public consumer.

A :class:`ChangelogStore` holds the state of the intake partitions this worker is assigned: per
partition a dict of key (bytes) to value (bytes). State of intake partition ``p`` is written to
partition ``p`` of its changelog topic (co-partitioned), so restoring an assigned partition means
reading one changelog partition from its beginning to its end. Each store has one :class:`Codec`,
used by the writer (:meth:`put`) and by the restore alike, so the two cannot disagree (the stall of
issue 16: faust wrote raw keys and recovered them as JSON, for ever). A record the codec cannot read is
a :class:`~streams.exceptions.StateRecoveryError` naming topic, partition and offset: the worker stops
loudly rather than warn for ever.

Writes are buffered per batch (:meth:`put`, :meth:`delete`) and produced with :meth:`flush`, whose
futures the caller awaits before committing the intake offsets (state, then offsets: a crash between
the two replays records whose effect the state already holds, which the processors rewind).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from streams.exceptions import StateRecoveryError

logger = logging.getLogger(__name__)

RESTORED = Counter("truyvet_streams_state_records_restored_total", "Changelog records read while restoring state",
                   ["store"])
RESTORE_REMAINING = Gauge("truyvet_streams_state_restore_remaining_records",
                          "Changelog records still to read before processing may start", ["store"])
RESTORE_SECONDS = Gauge("truyvet_streams_state_restore_seconds", "Duration of the last state restore", ["store"])
KEYS = Gauge("truyvet_streams_state_keys", "Keys held in the store on this worker", ["store"])


@dataclass(frozen=True)
class Codec:
    """How a store's values are checked on restore: the writer stores exactly what :attr:`check` accepts."""

    name: str
    check: Callable[[bytes], object]


def _json(value: bytes) -> object:
    return orjson.loads(value)


JSON = Codec("json", _json)


class ChangelogStore:
    """Key-value state per intake partition, backed by ``topic`` (compacted, co-partitioned with the intake).

    :param bootstrap: Kafka bootstrap servers (for the restore consumer).
    :param client_options: extra keyword arguments of the restore consumer (security settings).
    """

    def __init__(self, name: str, topic: str, *, codec: Codec, bootstrap: str,
                 client_options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.topic = topic
        self.codec = codec
        self._bootstrap = bootstrap
        self._client_options = client_options or {}
        self.partitions: dict[int, dict[bytes, bytes]] = {}
        self._pending: dict[int, dict[bytes, bytes | None]] = {}

    # -- reads -------------------------------------------------------------------------------------
    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.partitions[partition].get(key)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.partitions.get(partition, {}).items()))

    def __len__(self) -> int:
        return sum(len(data) for data in self.partitions.values())

    # -- writes ------------------------------------------------------------------------------------
    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.partitions[partition][key] = value
        self._pending.setdefault(partition, {})[key] = value

    def delete(self, partition: int, key: bytes) -> None:
        if self.partitions[partition].pop(key, None) is not None or key in self._pending.get(partition, {}):
            self._pending.setdefault(partition, {})[key] = None

    async def flush(self, producer: AIOKafkaProducer) -> list[Any]:
        """Produce the buffered writes (last value per key), in per-partition batches; the delivery
        futures are returned for the caller to await before it commits."""
        futures: list[Any] = []
        pending, self._pending = self._pending, {}
        for partition, writes in pending.items():
            batch = producer.create_batch()
            for key, value in writes.items():
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, self.topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            if batch.record_count():
                futures.append(await producer.send_batch(batch, self.topic, partition=partition))
        KEYS.labels(self.name).set(len(self))
        return futures

    # -- assignment --------------------------------------------------------------------------------
    def drop(self, partitions: set[int]) -> None:
        """Forget revoked partitions (their new owner restores them from the changelog)."""
        for partition in partitions:
            self.partitions.pop(partition, None)
            self._pending.pop(partition, None)
        KEYS.labels(self.name).set(len(self))

    async def restore(self, partitions: set[int], *, progress: Callable[[int], None] | None = None) -> int:
        """Read the changelog partitions of ``partitions`` from beginning to end; return records read.

        :raises StateRecoveryError: a record the codec cannot read (topic, partition, offset named).
        """
        todo = {p for p in partitions if p not in self.partitions}
        if not todo:
            return 0
        started = time.monotonic()
        tps = [TopicPartition(self.topic, p) for p in sorted(todo)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", **self._client_options)
        await consumer.start()
        read = 0
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            remaining = {tp: end for tp, end in ends.items() if end > begins[tp]}
            total = sum(ends[tp] - begins[tp] for tp in remaining)
            RESTORE_REMAINING.labels(self.name).set(total)
            data: dict[int, dict[bytes, bytes]] = {p: {} for p in todo}
            await consumer.seek_to_beginning(*tps)
            check = self.codec.check
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=50_000)
                for tp, records in fetched.items():
                    target = data[tp.partition]
                    for record in records:
                        if record.key is None:
                            raise StateRecoveryError("changelog record without a key", store=self.name,
                                                     topic=tp.topic, partition=tp.partition, offset=record.offset)
                        if record.value is None:
                            target.pop(record.key, None)
                            continue
                        try:
                            check(record.value)
                        except Exception as exc:  # noqa: BLE001 - any decoding failure is the same fault
                            raise StateRecoveryError(f"changelog value is not {self.codec.name}: {exc}",
                                                     store=self.name, topic=tp.topic, partition=tp.partition,
                                                     offset=record.offset) from exc
                        target[record.key] = record.value
                    read += len(records)
                # Compaction and transaction markers leave holes: the position, not the last record, tells.
                left = 0
                for tp in list(remaining):
                    behind = remaining[tp] - await consumer.position(tp)
                    if behind <= 0:
                        del remaining[tp]
                    left += max(0, behind)
                RESTORE_REMAINING.labels(self.name).set(left)
                RESTORED.labels(self.name).inc(sum(len(r) for r in fetched.values()))
                if progress is not None:
                    progress(left)
        finally:
            await consumer.stop()
        self.partitions.update(data)
        RESTORE_REMAINING.labels(self.name).set(0)
        RESTORE_SECONDS.labels(self.name).set(time.monotonic() - started)
        KEYS.labels(self.name).set(len(self))
        logger.info("store %s: restored partitions %s from %s (%d records, %d keys) in %.1fs", self.name,
                    sorted(todo), self.topic, read, sum(len(data[p]) for p in todo), time.monotonic() - started)
        return read
