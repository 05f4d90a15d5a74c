"""The faust worker: ``scans`` → validate → ``scans-by-person`` → visits → ClickHouse.

Two agents. ``validate`` reads the public ``scans`` topic (HTTP ingest and any Kafka client write
there, keyed or not), dead-letters what is invalid with its reason, and re-keys the rest by person
so that one person's scans meet on one partition. ``build_visits`` keeps each person's recent scans
in a changelog-backed table, turns every scan into visit changes, writes them to ClickHouse in
batches and acknowledges the scans only after ClickHouse accepted the batch: a crash at any point
replays from the last committed offset and rewrites identical rows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import faust
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from streams.config import get_settings
from streams.processor import PersonState, VisitRules, apply_scan, scan_of
from streams.sink import VisitSink, visit_row
from streams.venues import VenueCache
from truyvet.events import DeadLetter, ScanEvent, Topics
from truyvet.schema import connect

logger = logging.getLogger(__name__)

settings = get_settings()

CONSUMED = Counter("truyvet_streams_scans_consumed_total", "Scans read from the intake topic")
DUPLICATES = Counter("truyvet_streams_duplicates_total", "Scans dropped as duplicates", ["kind"])
DEAD_LETTERED = Counter("truyvet_streams_dead_lettered_total", "Scans sent to the dead-letter topic", ["code"])
LAG = Gauge("truyvet_streams_consumer_lag", "Records not yet consumed", ["topic", "partition"])

app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    web_enabled=False,
    topic_partitions=settings.scans_partitions,
    topic_replication_factor=1,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=5000,
    broker_commit_interval=1.0,
    table_standby_replicas=0,
    stream_buffer_maxsize=20_000,
)

scans_topic = app.topic(settings.topic(Topics.SCANS), key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")
by_person_topic = app.topic(settings.topic(Topics.SCANS_BY_PERSON), key_type=bytes, value_type=bytes,
                            key_serializer="raw", value_serializer="raw",
                            partitions=settings.scans_partitions, internal=False)
dlq_topic = app.topic(settings.topic(Topics.SCANS_DLQ), key_serializer="raw", value_serializer="raw")

# Keys are person ids as raw bytes and the changelog is partitioned like scans-by-person by the
# producer's key partitioner (use_partitioner), so a person's state sits with their scans.
person_scans = app.Table(
    f"{settings.topic_prefix}person-scans",
    default=None,
    partitions=settings.scans_partitions,
    schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
    use_partitioner=True,
    extra_topic_configs={"cleanup.policy": "compact"},
)

venues = VenueCache(connect=lambda: connect(settings), default_stay_minutes=settings.default_stay_minutes,
                    category_stay_minutes=settings.category_stay_minutes)
sink = VisitSink(connect=lambda: connect(settings), max_backoff=settings.sink_max_backoff_seconds)
rules = VisitRules(stay_for=venues.stay_seconds, max_stay=settings.max_stay_minutes * 60,
                   dedup_window=settings.dedup_window_minutes * 60, horizon=settings.state_horizon_hours * 3600)


def dead_letter(raw: bytes, reason: str, code: str, message: faust.types.Message | None) -> bytes:
    DEAD_LETTERED.labels(code).inc()
    return DeadLetter(
        reason=reason, error_code=code, raw=raw.decode("utf-8", errors="replace"),
        topic=message.topic if message else "", partition=message.partition if message else -1,
        offset=message.offset if message else -1,
    ).to_json()


def check(raw: bytes, now: datetime) -> tuple[ScanEvent | None, str, str]:
    """Parse and check one raw scan: (event, "", "") or (None, reason, code)."""
    try:
        event = ScanEvent.from_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"{where}: {first['msg']}" if where else first["msg"], "invalid_scan"
    if event.scanned_at > now + timedelta(minutes=5):
        return None, "scanned_at: more than 5 minutes in the future", "future"
    if event.scanned_at < now - timedelta(days=settings.retention_days):
        return None, "scanned_at: older than the retention period", "too_old"
    if not venues.known(event.venue_id):
        return None, f"venue_id: unknown venue {event.venue_id!r}", "unknown_venue"
    return event, "", ""


@app.agent(scans_topic)
async def validate(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        CONSUMED.inc()
        raw = event.value
        scan, reason, code = check(raw, datetime.now(UTC))
        if scan is None:
            logger.info("dead-lettering scan at %s[%s]@%s: %s", event.message.topic, event.message.partition,
                        event.message.offset, reason)
            await dlq_topic.send(key=event.key, value=dead_letter(raw, reason, code, event.message))
            continue
        await by_person_topic.send(key=scan.person_id.encode(), value=scan.to_json())


@app.agent(by_person_topic)
async def build_visits(stream: faust.StreamT[bytes]) -> None:
    # use_partitioner makes the producer hash table keys itself, synchronously, from its metadata; on a
    # fresh cluster it has none for the new changelog topic yet and every table write would crash.
    await app.producer._ensure_producer().partitions_for(person_scans.changelog_topic.get_topic_name())
    async for events in stream.noack_take(settings.sink_batch_size, within=settings.sink_flush_seconds):
        rows = []
        now = datetime.now(UTC).replace(microsecond=0)
        for event in events:
            scan = ScanEvent.from_json(event.value)
            key = scan.person_id.encode()
            state = PersonState.from_json(person_scans.get(key))
            outcome = apply_scan(state, scan_of(scan), rules)
            person_scans[key] = state.to_json()
            if outcome.duplicate:
                DUPLICATES.labels(outcome.duplicate).inc()
            version = event.message.offset + 1
            rows.extend(visit_row(scan.person_id, v, version, False, now) for v in outcome.upserts)
            rows.extend(visit_row(scan.person_id, v, version, True, now) for v in outcome.deletes)
        written = await asyncio.get_running_loop().run_in_executor(
            None, lambda: sink.write(rows, should_stop=lambda: app.should_stop))
        if not written:
            return  # stopping: nothing acknowledged, the batch is redelivered
        await alerts.visits_written(rows)  # issue 6 (alerts): written visits -> exposure matching
        for event in events:
            await stream.ack(event)


@app.timer(settings.retention_check_seconds, on_leader=True)
async def drop_expired_partitions() -> None:
    """Retention: drop whole daily partitions older than the retention period."""
    from streams.retention import drop_expired

    await asyncio.get_running_loop().run_in_executor(None, drop_expired, settings)


@app.timer(5.0)
async def report_lag() -> None:
    consumer = app.consumer
    for tp in consumer.assignment():
        try:
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
        except Exception:  # noqa: BLE001 - lag is best-effort telemetry during rebalances
            continue
        if highwater is not None and position is not None:
            LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))


from streams import alerts  # noqa: E402 - issue 6: the alert matcher's agents and tables (uses `app`)
