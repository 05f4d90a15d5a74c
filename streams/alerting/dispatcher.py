"""``python -m streams.alerting.dispatcher``: deliver alerts from Kafka to each ward's webhook, never losing one.

Reads ``alerts`` (keyed by alert_id, so every copy of an alert meets on one partition) and delivers
each alert concurrently: signed JSON POST, retried with exponential backoff and jitter, sent to
``alerts-dlq`` once the retry budget (``ALERTS_MAX_ATTEMPTS``) is spent. Each state change is
recorded in ClickHouse (``alerts``, shown by ``GET /v1/alerts``). An offset is committed only once
every alert before it on its partition is delivered or dead-lettered *and* that state is recorded,
so a crash redelivers (the receiver drops the copy by its ``Idempotency-Key``) and never loses.
An alert already delivered or dead-lettered (by id) is not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from pydantic import ValidationError

from streams.alerting.delivery import (
    ALERT_COLUMNS,
    OffsetTracker,
    Status,
    WebhookDirectory,
    alert_row,
    backoff,
    known_states,
    signed_headers,
)
from streams.alerting.settings import AlertSettings, get_settings
from streams.alerting.targets import PublicOnlyResolver, literal_host, refused
from truyvet.events import Alert, DeadLetter, Topics
from truyvet.followups import COLUMNS as followups_columns
from truyvet.followups import is_contact_alert, new_row
from truyvet.kafka_clients import client_kwargs
from truyvet.redact import install_log_scrubber
from truyvet.schema import connect
from truyvet.schema.db import Database, DatabaseError

logger = logging.getLogger(__name__)

DELIVERED = Counter("truyvet_alerts_delivered_total", "Alerts delivered to a ward webhook")
RETRIED = Counter("truyvet_alerts_delivery_retries_total", "Failed delivery attempts that will be retried")
DEAD_LETTERED = Counter("truyvet_alerts_dead_lettered_total", "Alerts sent to the dead-letter topic")
DUPLICATES = Counter("truyvet_alerts_redeliveries_dropped_total", "Alert copies dropped (already handled)")
IN_FLIGHT = Gauge("truyvet_alerts_in_flight", "Alerts being delivered or waiting for a retry")
LATENCY = Histogram(
    "truyvet_alerts_delivery_latency_seconds",
    "From alert raised (case or late visit) to delivered",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900),
)


class Recorder:
    """Batches alert state rows into ClickHouse; :meth:`record` returns once its row is written.

    Follow-up records (``new``, :mod:`truyvet.followups`) of the contacts alerts name go in the same
    batches, written before the batch's futures resolve: an alert's offset is committed only after its
    final state is recorded, so its follow-up record was written by then too.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
        self._followups: list[tuple[object, ...]] = []
        self._wake = asyncio.Event()
        self._version = 0

    def version(self) -> int:
        self._version = max(self._version + 1, time.time_ns())
        return self._version

    def follow_up(self, row: tuple[object, ...]) -> None:
        """Write a follow-up record with the next batch (see the class)."""
        self._followups.append(row)
        self._wake.set()

    def record(self, row: tuple[object, ...]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        self._wake.set()
        return future

    async def run(self) -> None:
        delay = 0.2
        while True:
            await self._wake.wait()
            await asyncio.sleep(0.05)  # gather a batch
            self._wake.clear()
            batch, self._queue = self._queue, []
            followups, self._followups = self._followups, []
            while True:
                try:
                    if followups:
                        await asyncio.get_running_loop().run_in_executor(
                            None, self._db.insert, "follow_ups", followups_columns, followups
                        )
                        followups = []
                    await asyncio.get_running_loop().run_in_executor(
                        None, self._db.insert, "alerts", ALERT_COLUMNS, [r for r, _ in batch]
                    )
                    break
                except Exception:
                    logger.exception("could not record %d alert states; retrying in %.1fs", len(batch), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30)
            delay = 0.2
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


class Dispatcher:
    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.topic = settings.topic(Topics.ALERTS)
        self.dlq = settings.topic(Topics.ALERTS_DLQ)
        self.db = connect(settings)
        self.lookup_db = connect(settings)
        self.hooks = WebhookDirectory(lambda: connect(settings), ttl=settings.webhook_cache_seconds)
        self.recorder = Recorder(self.db)
        self.final: dict[str, str] = {}  # alert_id -> delivered | dead_lettered (this process knows)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.offsets = OffsetTracker()
        self.stopping = asyncio.Event()

    # -- one alert ------------------------------------------------------------------------------
    async def deliver(
        self, alert: Alert, body: bytes, client: aiohttp.ClientSession, producer: AIOKafkaProducer
    ) -> None:
        s = self.settings
        if is_contact_alert(alert):  # on its ward's follow-up list from now on (issue 14)
            self.recorder.follow_up(new_row(alert))
        self.recorder.record(
            alert_row(alert, status=Status.PENDING, attempts=0, version=self.recorder.version())
        )
        attempts = 0
        while True:
            hook = self.hooks.cached(alert.ward_code) if self.hooks.fresh() else None
            if hook is None:  # not known, or the directory is old: read it (bounded, WebhookDirectory.get)
                hook = await asyncio.get_running_loop().run_in_executor(None, self.hooks.get, alert.ward_code)
            attempts += 1
            literal = None if hook is None or s.webhook_allow_private else literal_host(hook.url)
            if hook is None:
                error = f"no webhook configured for ward {alert.ward_code!r}"
            elif literal is not None and refused(literal):
                error = f"webhook address {literal} is not public; refused (ALERTS_WEBHOOK_ALLOW_PRIVATE)"
            else:
                try:
                    headers = signed_headers(hook.secret, body, alert.alert_id)
                    # Never a redirect: a 3xx would carry the signed body wherever the receiver points.
                    async with client.post(hook.url, data=body, headers=headers, allow_redirects=False) as response:
                        await response.read()
                        status = response.status
                    if 200 <= status < 300:
                        now = datetime.now(UTC)
                        # counted as it happens, so the metrics never lag the recorded state
                        DELIVERED.inc()
                        LATENCY.observe(max(0.0, (now - alert.created_at).total_seconds()))
                        await self.recorder.record(
                            alert_row(
                                alert,
                                status=Status.DELIVERED,
                                attempts=attempts,
                                delivered_at=now.replace(microsecond=0),
                                version=self.recorder.version(),
                            )
                        )
                        self.final[alert.alert_id] = Status.DELIVERED
                        return
                    error = f"HTTP {status} from {hook.url}" + (
                        " (redirects are not followed)" if 300 <= status < 400 else "")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"{type(exc).__name__} posting to {hook.url}: {exc}"
            if attempts >= s.max_attempts:
                await self.dead_letter(alert, body, error, attempts, producer)
                return
            RETRIED.inc()
            # The first failure of an alert is worth a line; its further retries are in the metrics and
            # in the recorded state (``GET /v1/alerts``).
            logger.log(
                logging.INFO if attempts == 1 else logging.DEBUG,
                "alert %s attempt %d failed (%s)",
                alert.alert_id,
                attempts,
                error,
            )
            self.recorder.record(
                alert_row(
                    alert,
                    status=Status.RETRYING,
                    attempts=attempts,
                    error=error,
                    version=self.recorder.version(),
                )
            )
            try:
                await asyncio.wait_for(
                    self.stopping.wait(),
                    backoff(attempts, base=s.backoff_base_seconds, cap=s.backoff_cap_seconds),
                )
            except TimeoutError:
                continue
            raise asyncio.CancelledError  # stopping: left uncommitted, redelivered after a restart

    async def dead_letter(
        self, alert: Alert, body: bytes, error: str, attempts: int, producer: AIOKafkaProducer
    ) -> None:
        letter = DeadLetter(
            reason=f"not delivered after {attempts} attempts: {error}",
            error_code="undeliverable",
            raw=body.decode(),
            topic=self.topic,
        )
        await (await producer.send(self.dlq, key=alert.alert_id.encode(), value=letter.to_json()))
        DEAD_LETTERED.inc()  # counted as it happens, so the metrics never lag the recorded state
        await self.recorder.record(
            alert_row(
                alert,
                status=Status.DEAD_LETTERED,
                attempts=attempts,
                error=error,
                version=self.recorder.version(),
            )
        )
        self.final[alert.alert_id] = Status.DEAD_LETTERED
        logger.warning("alert %s dead-lettered after %d attempts: %s", alert.alert_id, attempts, error)

    async def handle(
        self,
        tp: TopicPartition,
        offset: int,
        raw: bytes,
        client: aiohttp.ClientSession,
        producer: AIOKafkaProducer,
    ) -> None:
        """Deliver or dead-letter one record; only then may its offset be committed.

        An unexpected error leaves the offset uncommitted (logged): the alert is retried after a
        restart rather than lost.
        """
        try:
            await self._handle(tp, offset, raw, client, producer)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "alert at %s[%d]@%d not handled; it stays uncommitted", tp.topic, tp.partition, offset
            )
            raise
        self.offsets.done(tp, offset)

    async def _handle(
        self,
        tp: TopicPartition,
        offset: int,
        raw: bytes,
        client: aiohttp.ClientSession,
        producer: AIOKafkaProducer,
    ) -> None:
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            letter = DeadLetter(
                reason=f"not an alert: {exc.errors()[0]['msg']}",
                error_code="invalid_alert",
                raw=raw.decode(errors="replace"),
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
            )
            await (await producer.send(self.dlq, value=letter.to_json()))
            DEAD_LETTERED.inc()
            return
        if alert.alert_id in self.final:
            DUPLICATES.inc()
            return
        earlier = self.running.get(alert.alert_id)
        if earlier is not None:  # a copy of an alert being delivered: done when it is
            DUPLICATES.inc()
            await asyncio.shield(earlier)
            return
        task = asyncio.current_task()
        assert task is not None
        self.running[alert.alert_id] = task
        try:
            await self.deliver(alert, raw, client, producer)
        finally:
            self.running.pop(alert.alert_id, None)

    # -- the loop -------------------------------------------------------------------------------
    async def known(self, alert_ids: set[str]) -> dict[str, str]:
        """Recorded states of ``alert_ids``; waits (with backoff) while ClickHouse is unavailable."""
        delay = 0.2
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    None, known_states, self.lookup_db, alert_ids
                )
            except DatabaseError as exc:
                logger.warning("could not read alert states (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        self.offsets.forget(assigned)
        points = self.offsets.to_commit()
        if not points:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in points.items()})  # type: ignore[misc]
            self.offsets.committed(points)
        except Exception:
            logger.exception("offset commit failed (a rebalance?); alerts after it will be redelivered")

    async def run(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            self.topic,
            **client_kwargs(s),
            group_id=s.topic_prefix + s.dispatcher_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1000,
        )
        producer = AIOKafkaProducer(**client_kwargs(s), acks="all", enable_idempotence=True)
        await consumer.start()
        await producer.start()
        recorder = asyncio.create_task(self.recorder.run())
        tasks: set[asyncio.Task[None]] = set()
        paused = False
        try:
            # At most max_connections requests at once (a ward's server is not flooded); waiting for a
            # free connection is not a failed attempt, so the pool wait has no timeout.
            # (httpx's async pool managed ~140 requests/s here where aiohttp's managed ~3,000.)
            # Names resolve to public addresses only, checked at each connection (streams/alerting/targets.py).
            resolver = None if s.webhook_allow_private else PublicOnlyResolver()
            connector = aiohttp.TCPConnector(limit=s.max_connections, resolver=resolver)
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=s.request_timeout_seconds, sock_read=s.request_timeout_seconds
            )
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
                while not self.stopping.is_set():
                    inflight = self.offsets.in_flight()
                    IN_FLIGHT.set(inflight)
                    if inflight >= s.max_in_flight and not paused:
                        consumer.pause(*consumer.assignment())
                        paused = True
                    elif inflight < s.max_in_flight and paused:
                        consumer.resume(*consumer.assignment())
                        paused = False
                    batch = await consumer.getmany(timeout_ms=100, max_records=500)
                    records = [(tp, m) for tp, ms in batch.items() for m in ms]
                    unknown = {m.key.decode() for _, m in records if m.key} - set(self.final)
                    if unknown:
                        states = await self.known(unknown)
                        self.final.update({a: st for a, st in states.items() if st in Status.FINAL})
                    for tp, m in records:
                        self.offsets.add(tp, m.offset)
                        task = asyncio.create_task(self.handle(tp, m.offset, m.value, client, producer))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    await self.commit(consumer)
                if tasks:
                    await asyncio.wait(tasks, timeout=5)
                await self.commit(consumer)
        finally:
            for task in tasks:
                task.cancel()
            recorder.cancel()
            await consumer.stop()
            await producer.stop()
            self.db.close()
            self.lookup_db.close()


def main() -> None:
    install_log_scrubber()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = get_settings()
    start_http_server(settings.dispatcher_metrics_port, addr=settings.bind_host)
    dispatcher = Dispatcher(settings)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dispatcher.stopping.set)
        await dispatcher.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
