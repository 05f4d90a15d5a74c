"""The stream worker, built by :func:`create_app`: nothing is made at import time.

Which library does what (streams/README.md, "Who does what"):
- aiokafka's public consumer runs the two intakes (``scans`` → visits, ``exposure-matching`` → alerts):
  ``getmany``, ``commit``, ``committed``, ``seek`` and a rebalance listener (streams/consumer.py); their
  state lives in changelog-backed stores restored on assignment (streams/store.py).
- faust-streaming runs the worker's life cycle (start, signals, graceful stop, logging) and its timers
  (state sweeps, retention on the leader only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from mode import Service

from streams.alerting.matcher import MatchingProcessor
from streams.alerting.settings import get_settings as alert_settings
from streams.alerting.traced import TracedPersons
from streams.config import StreamsSettings
from streams.consumer import PartitionedConsumer
from streams.retention import drop_expired, sweep
from streams.visits_worker import VisitsProcessor
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs, faust_credentials, security_options
from truyvet.schema import connect
from truyvet.schema.db import DatabaseError
from truyvet.stack.kafka import replication_configs

logger = logging.getLogger(__name__)

STORES = ("person-scans", "exposure-windows", "alerted")


def ensure_state_topics(settings: StreamsSettings) -> None:
    """The stores' changelogs: compacted, partitioned like the intake (a store's partition p is intake
    partition p's state). Made before the consumers start, so nothing auto-creates them otherwise."""
    admin = KafkaAdminClient(**client_kwargs(settings), request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        for store in STORES:
            name = settings.state_topic(store)
            if name in existing:
                continue
            try:
                admin.create_topics([NewTopic(name, settings.scans_partitions, settings.replication_factor,
                                              topic_configs={"cleanup.policy": "compact",
                                                             **replication_configs(settings)})])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class Worker:
    """The producer, the two intakes and their processors of one worker process.

    aiokafka clients belong to the running event loop, so they are made by :meth:`start`, not here.
    """

    def __init__(self, settings: StreamsSettings, *, should_stop: Callable[[], bool]) -> None:
        self.settings = settings
        self.should_stop = should_stop
        self.consumers: tuple[PartitionedConsumer, ...] = ()

    async def start(self) -> None:
        settings = self.settings
        security = security_options(settings)
        self.producer = AIOKafkaProducer(
            **client_kwargs(settings), acks="all", enable_idempotence=True,
            # One request per few ms instead of one per record (changelog, notices, dead letters).
            linger_ms=5, max_batch_size=512 * 1024, max_request_size=8 * 1024 * 1024,
            metadata_max_age_ms=10_000,
        )
        self.visits = VisitsProcessor(settings, producer=self.producer, connect=lambda: connect(settings),
                                      should_stop=self.should_stop, client_options=security)
        self.traced = TracedPersons(settings.topic(Topics.TRACED), bootstrap=settings.kafka_bootstrap,
                                    client_options=security)
        self.matching = MatchingProcessor(settings, producer=self.producer, connect=lambda: connect(settings),
                                          depth=alert_settings().depth, traced=self.traced, client_options=security)
        common: dict[str, Any] = {"bootstrap": settings.kafka_bootstrap, "stall_seconds": settings.stall_seconds,
                                  "session_timeout_seconds": settings.session_timeout_seconds,
                                  "client_options": security}
        self.scans = PartitionedConsumer(topic=settings.topic(Topics.SCANS), group_id=settings.group("scans"),
                                         processor=self.visits, max_records=settings.sink_batch_size,
                                         flush_seconds=settings.sink_flush_seconds, **common)
        self.exposures = PartitionedConsumer(topic=settings.topic(Topics.EXPOSURE_MATCHING),
                                             group_id=settings.group("matching"), processor=self.matching,
                                             max_records=500, flush_seconds=0.2, **common)
        await self.producer.start()
        await self.traced.start()  # who is traced, before any visit notice is matched
        for consumer in (self.scans, self.exposures):
            await consumer.start()
        self.consumers = (self.scans, self.exposures)

    async def stop(self) -> None:
        for consumer in self.consumers:
            await consumer.stop()
        if self.consumers:
            await self.traced.stop()
            await self.producer.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.visits.sink.close)

    def health(self) -> dict[str, Any]:
        if not self.consumers:
            return {"status": "starting", "consumers": []}
        parts = [c.health() for c in self.consumers]
        worst = next((p["status"] for p in parts if p["status"] != "ok"), "ok")
        return {"status": worst, "consumers": parts}


def create_app(settings: StreamsSettings) -> tuple[faust.App, Worker]:
    """The faust app (life cycle and timers) with the worker's intakes as its service."""
    app = faust.App(
        settings.app_id,
        broker=";".join(f"kafka://{address}" for address in settings.kafka_bootstrap.split(",")),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir / "streams" / "{conf.name}-data"),
        web_enabled=False,
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 5,
        consumer_metadata_max_age_ms=10_000,
        producer_metadata_max_age_ms=10_000,
    )
    worker = Worker(settings, should_stop=lambda: app.should_stop)

    @app.service
    class Intake(Service):
        """Starts the producer and both intakes with the app; stops them gracefully with it."""

        async def on_start(self) -> None:
            await worker.start()

        async def on_stop(self) -> None:
            await worker.stop()

        @Service.task
        async def _scans(self) -> None:
            await self._run(worker.scans)

        @Service.task
        async def _exposures(self) -> None:
            await self._run(worker.exposures)

        async def _run(self, consumer: PartitionedConsumer) -> None:
            try:
                await consumer.run(lambda: self.should_stop)
            except Exception as exc:
                # A store that cannot be restored, or a bug: stop the worker loudly (its supervisor restarts
                # it; /healthz said "failed" meanwhile), never keep running half blind.
                logger.critical("intake of %s stopped: %s", consumer.topic, exc, exc_info=True)
                consumer.state, consumer.error = "failed", str(exc)
                await app.crash(exc)

    @app.timer(settings.state_sweep_seconds)
    async def expire_person_state() -> None:
        """Bound the person state: forget people whose newest scan is older than the horizon."""
        if worker.consumers:
            await worker.scans.locked(worker.visits.expire)

    @app.timer(settings.matching_sweep_seconds)
    async def expire_matching_state() -> None:
        """Bound the matcher's stores: windows and remembered alerts past their follow-up."""
        if worker.consumers:
            await worker.exposures.locked(worker.matching.expire)
            worker.traced.prune(int(time.time()))

    @app.timer(settings.retention_check_seconds, on_leader=True)
    async def drop_expired_partitions() -> None:
        """Retention: drop whole daily partitions older than the retention period; expire records (issue 14)."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, drop_expired, settings)
            await asyncio.get_running_loop().run_in_executor(None, sweep, settings)
        except DatabaseError as exc:
            # The next tick tries again (e.g. the retention account not yet let into a new database).
            logger.warning("retention check failed, retried in %.0fs: %s", settings.retention_check_seconds,
                           str(exc).splitlines()[0][:300])

    return app, worker
