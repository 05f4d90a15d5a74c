"""The scan producer: idempotent, ``acks=all``, keyed by person so one person's scans keep order.

aiokafka rather than kafka-python: on this 2-core machine kafka-python's pure-Python record
building tops out near 16k records/s per core, aiokafka (C record builder) near 90k/s, and it
awaits deliveries on the event loop instead of parking a thread per request.

Nothing is acknowledged that Kafka did not confirm, and nothing is produced twice by this process:

- an idempotent producer retries an in-flight batch until the broker has it (the broker's
  sequence numbers drop a retried duplicate, also across a broker restart); a batch that never left
  (no leader) expires after ``request_timeout_ms`` and fails;
- a request waits at most ``timeout_seconds``; what is not confirmed by then is answered 503, and its
  still-running deliveries stay registered by ``scan_id``: a client's resend of such a scan waits for
  that delivery instead of producing the scan a second time. Kafka's own request timeout is longer
  (``kafka_timeout_seconds``) so that queued batches survive a broker restart instead of expiring;
- aiokafka's idempotent producer has no epoch bump (KIP-360): once a batch that already had a
  sequence number fails (e.g. it expired while the restarting broker had no partition leader),
  every later batch of that partition fails with OutOfOrderSequenceNumber. So any failed delivery
  replaces the producer (new producer id); the old one flushes what it can, then is closed, and the
  scan_ids it still held are released for the client's resend;
- confirmed ``scan_id``s are remembered (bounded FIFO), so a resend is answered as a duplicate
  without writing it again. Downstream dedup by ``scan_id`` remains the backstop across processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.exceptions import KafkaUnavailable
from truyvet.partitioning import key_hash

logger = logging.getLogger(__name__)

Record = tuple[str, str, bytes]  # scan_id, person_id (the key), ScanEvent JSON
SMALL = 32  # fewer scans than this for one partition go through the shared accumulator


class _Throttle(logging.Filter):
    """While a broker is down aiokafka's client retries in a tight loop and logs each failure (thousands
    of lines a second); let each message template through at most once per ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last.get(str(record.msg), -self.seconds) < self.seconds:
            return False
        self._last[str(record.msg)] = now
        return True


logging.getLogger("aiokafka.client").addFilter(_Throttle(5.0))


@dataclass(frozen=True)
class _Pending:
    future: asyncio.Future[object]
    producer: AIOKafkaProducer


class ScanProducer:
    """:param timeout_seconds: how long :meth:`send` waits before giving up (HTTP answers 503).
    :param kafka_timeout_seconds: aiokafka's request timeout: how long a batch may wait for a leader.
    :param recent_capacity: how many confirmed scan_ids to remember (0: none).
    """

    def __init__(self, *, bootstrap: str, topic: str, timeout_seconds: float,
                 kafka_timeout_seconds: float = 60, recent_capacity: int = 0,
                 client_options: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self.timeout = timeout_seconds
        self._kafka_timeout = max(kafka_timeout_seconds, timeout_seconds)
        self._bootstrap = bootstrap
        self._client_options = client_options or {}
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_capacity = recent_capacity
        self._inflight: dict[str, _Pending] = {}
        self._hashes: dict[bytes, int] = {}  # person key -> murmur2, as the Java client partitions

    # -- lifecycle -------------------------------------------------------------------------------
    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=int(self._kafka_timeout * 1000),
            retry_backoff_ms=200,
            **self._client_options,
        )

    async def start(self) -> None:
        """Connect; if Kafka is not reachable yet, keep trying in the background (sends answer 503)."""
        try:
            await self._connect()
        except (KafkaError, OSError) as exc:
            logger.warning("Kafka at %s not reachable at start (%s); retrying in the background",
                           self._bootstrap, exc)
            self._starting = asyncio.create_task(self._keep_connecting())

    async def _connect(self) -> None:
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _keep_connecting(self, first_wait: float = 2) -> None:
        wait = first_wait
        while self._producer is None:
            await asyncio.sleep(wait)
            wait = 2
            try:
                await self._connect()
                logger.info("connected to Kafka at %s", self._bootstrap)
            except (KafkaError, OSError) as exc:
                logger.warning("Kafka still not reachable: %s", exc)

    async def stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        if self._producer is not None:
            await self._producer.stop()
        for task in list(self._retiring):
            task.cancel()

    def _replace(self, failed: AIOKafkaProducer, error: BaseException) -> None:
        """A delivery failed: take a fresh producer (new id, sequences from 0), retire the old one."""
        if self._producer is not failed:
            return  # already replaced
        logger.warning("Kafka delivery failed (%s); replacing the producer", error)
        self._producer = None
        task = asyncio.get_running_loop().create_task(self._retire(failed))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._keep_connecting(first_wait=0))

    async def _retire(self, old: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(old.stop(), timeout=self._kafka_timeout)
        except (TimeoutError, KafkaError, OSError) as exc:
            # Its unsent batches expire after the request timeout (their futures fail); closing the
            # connections is all the public API offers, and nothing more can leave it.
            logger.warning("old Kafka producer did not flush (%r); closing its connections", exc)
            await old.client.close()
        # Nothing more can leave the old producer: release its scan_ids for the clients' resends.
        for key, pending in list(self._inflight.items()):
            if pending.producer is old:
                del self._inflight[key]

    @property
    def connected(self) -> bool:
        return self._producer is not None

    # -- producing -------------------------------------------------------------------------------
    async def send(self, scans: Sequence[Record]) -> int:
        """Write ``scans`` and return once Kafka confirmed every one; return how many were already
        confirmed earlier (duplicates, not written again).

        :raises KafkaUnavailable: if any write is not confirmed within the timeout; the caller must
            not acknowledge the scans (the client's resend is safe: see the module docstring).
        """
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("not connected to Kafka", topic=self.topic)
        waits: list[asyncio.Future[object]] = []
        duplicates = 0
        try:
            async with asyncio.timeout(self.timeout):
                partitions = sorted(await producer.partitions_for(self.topic))
                groups, duplicates = self._group(partitions, scans, waits)
                for partition, records in groups.items():
                    await self._send_partition(producer, partition, records, waits)
                if waits:
                    await asyncio.wait(set(waits))
        except TimeoutError:
            reason = f"no confirmation within {self.timeout:g}s"
            logger.warning("Kafka did not confirm %d scans: %s", len(scans), reason)
            raise KafkaUnavailable("Kafka did not confirm the scans", topic=self.topic, error=reason) from None
        except KafkaError as exc:
            self._replace(producer, exc)
            raise KafkaUnavailable("Kafka refused the scans", topic=self.topic, error=str(exc)) from exc
        failed = [f.exception() for f in waits if f.exception() is not None]
        if failed:
            logger.warning("Kafka did not confirm %d of %d batches: %r", len(failed), len(waits), failed[0])
            raise KafkaUnavailable("Kafka did not confirm the scans", topic=self.topic, error=repr(failed[0]))
        return duplicates

    def _group(self, partitions: list[int], scans: Sequence[Record],
               waits: list[asyncio.Future[object]]) -> tuple[dict[int, list[tuple[str, bytes, bytes]]], int]:
        """Scans to write, by partition (the Java client's murmur2 of the person key); scans already
        confirmed are skipped, scans still in flight from an earlier request are waited for."""
        if not partitions:
            raise KafkaUnavailable("no partitions known for the topic", topic=self.topic)
        groups: dict[int, list[tuple[str, bytes, bytes]]] = {}
        seen_pending: set[int] = set()
        duplicates = 0
        for key, person_id, value in scans:
            if key in self._recent:
                duplicates += 1
                continue
            pending = self._inflight.get(key)
            if pending is not None:
                if id(pending.future) not in seen_pending:
                    seen_pending.add(id(pending.future))
                    waits.append(pending.future)
                continue
            person = person_id.encode()
            digest = self._hashes.get(person)
            if digest is None:
                digest = key_hash(person)
                if len(self._hashes) > 500_000:
                    self._hashes.clear()
                self._hashes[person] = digest
            groups.setdefault(partitions[digest % len(partitions)], []).append((key, person, value))
        return groups, duplicates

    async def _send_partition(self, producer: AIOKafkaProducer, partition: int,
                              records: list[tuple[str, bytes, bytes]], waits: list[asyncio.Future[object]]) -> None:
        """Many scans: one record batch of their own (one delivery future). A few scans: through the
        accumulator, where concurrent small requests share batches (a batch of its own per request
        would queue behind the others: one batch per partition per produce request)."""
        if len(records) < SMALL:
            for key, person, value in records:
                future = await producer.send(self.topic, key=person, value=value, partition=partition)
                self._track(future, producer, [key], waits)
            return
        batch = producer.create_batch()
        keys: list[str] = []
        for key, person, value in records:
            if batch.append(key=person, value=value, timestamp=None) is None:
                await self._submit(producer, batch, partition, keys, waits)
                batch, keys = producer.create_batch(), []
                if batch.append(key=person, value=value, timestamp=None) is None:
                    raise KafkaUnavailable("scan larger than a record batch", topic=self.topic, scan_id=key)
            keys.append(key)
        if keys:
            await self._submit(producer, batch, partition, keys, waits)

    async def _submit(self, producer: AIOKafkaProducer, batch: object, partition: int, keys: list[str],
                      waits: list[asyncio.Future[object]]) -> None:
        future = await producer.send_batch(batch, self.topic, partition=partition)
        self._track(future, producer, keys, waits)

    def _track(self, future: asyncio.Future[object], producer: AIOKafkaProducer, keys: list[str],
               waits: list[asyncio.Future[object]]) -> None:
        pending = _Pending(future, producer)
        for key in keys:
            self._inflight[key] = pending
        future.add_done_callback(lambda f: self._settled(keys, f, producer))
        waits.append(future)

    def _settled(self, keys: list[str], future: asyncio.Future[object], producer: AIOKafkaProducer) -> None:
        for key in keys:
            pending = self._inflight.get(key)
            if pending is not None and pending.future is future:
                del self._inflight[key]
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._replace(producer, error)
            return
        if self._recent_capacity:
            for key in keys:
                self._recent[key] = None
            while len(self._recent) > self._recent_capacity:
                self._recent.popitem(last=False)

    async def send_raw(self, topic: str, key: bytes, value: bytes) -> None:
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("not connected to Kafka", topic=topic)
        try:
            future = await producer.send(topic, key=key, value=value)
            await asyncio.wait_for(asyncio.shield(future), timeout=self.timeout)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable("Kafka did not confirm the write", topic=topic, error=str(exc)) from exc
