"""The faust worker: ``scans`` → visits → ClickHouse, in one agent and one Kafka hop.

``build_visits`` reads the public ``scans`` topic in batches: the consumer hands it the fetched
records in per-partition lists (streams/draining.py ``Handoff``), not through faust's stream. Each
record is checked (schema, time, known venue); what fails goes to the dead-letter topic with its
reason. A valid scan must sit on its person's partition (murmur2 of the person id, as HTTP ingest
and any default-partitioned producer keying by person put it); one that does not (unkeyed or keyed
otherwise, e.g. from kcat) is produced again to ``scans`` keyed by its person and handled when that
copy arrives. So all of one person's scans are processed from one partition in offset order, the
person's recent scans live in a changelog-backed table on that partition, and each scan turns into
visit changes versioned by its offset (streams/processor.py). Rows go to ClickHouse in batches; the
scans are acknowledged only after ClickHouse accepted the batch (and the dead letters and re-keyed
copies were delivered), so a crash at any point replays from the last committed offset and rewrites
identical rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache
from typing import Any

import faust
import orjson
from kafka.partitioner.default import murmur2
from prometheus_client import Counter, Gauge, Histogram

from streams import draining
from streams.config import get_settings
from streams.intake import ParsedScan, Rejected, parse_scan
from streams.offsets import IntakeCursors
from streams.processor import PersonState, VisitRules, apply_batch
from streams.sink import VisitSink, visit_rows
from streams.venues import VenueCache
from streams.visits import Scan
from truyvet.events import DeadLetter, Topics
from truyvet.schema import connect

logger = logging.getLogger(__name__)

settings = get_settings()

CONSUMED = Counter("truyvet_streams_scans_consumed_total", "Scans read from the intake topic")
DUPLICATES = Counter("truyvet_streams_duplicates_total", "Scans dropped as duplicates", ["kind"])
DEAD_LETTERED = Counter("truyvet_streams_dead_lettered_total", "Scans sent to the dead-letter topic",
                        ["code"])
REPLAYED = Counter("truyvet_streams_scans_rewound_total",
                   "Scans dropped from state because their record is being redelivered (after a crash)")
BATCH_LATENCY = Histogram("truyvet_streams_batch_seconds", "Time from taking a batch to acknowledging it",
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
BATCH_SCANS = Histogram("truyvet_streams_batch_scans", "Scans per ClickHouse batch",
                        buckets=(1, 10, 100, 1000, 5000, 10_000, 20_000, 50_000))
REKEYED = Counter("truyvet_streams_scans_rekeyed_total",
                  "Scans found off their person's partition and produced again keyed by person")
STATES_EXPIRED = Counter("truyvet_streams_states_expired_total",
                         "People whose state was dropped: newest scan older than the state horizon")
PEOPLE_IN_STATE = Gauge("truyvet_streams_people_in_state", "People with state on this worker's partitions")
ASSIGNED = Gauge("truyvet_streams_assigned_partitions", "Intake partitions this worker holds")
LAG = Gauge("truyvet_streams_consumer_lag", "Records not yet consumed", ["topic", "partition"])

class WorkerApp(faust.App):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Topics whose fetched records skip faust's stream and go to an agent in lists (streams/draining.py).
        self.handoffs: dict[str, draining.Handoff] = {}

    def _new_transport(self) -> Any:
        transport = super()._new_transport()
        # records handed to streams without 4 tasks each, hand-off topics in lists
        transport.Consumer = draining.Consumer
        return transport

    def on_rebalance_start(self) -> None:
        super().on_rebalance_start()
        for handoff in self.handoffs.values():
            handoff.clear()  # the agents' cursors start again from the committed offsets


app = WorkerApp(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    datadir=str(settings.data_dir / "streams" / "{conf.name}-data"),  # not the working directory
    web_enabled=False,
    topic_partitions=settings.scans_partitions,
    topic_replication_factor=1,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    # Batch the produced records (by-person, changelog, dead letters): one request per few ms instead
    # of one per record, which on a busy 2-core machine was most of the worker's time.
    producer_linger=0.005,
    producer_max_batch_size=512 * 1024,
    producer_max_request_size=8 * 1024 * 1024,
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=settings.session_timeout_seconds / 5,
    broker_commit_every=5000,
    broker_commit_interval=1.0,
    table_standby_replicas=0,
    stream_buffer_maxsize=20_000,
    # A topic created moments before the worker starts (fresh cluster) may be missing from the first
    # metadata answer; with the default 5-minute refresh the worker then sat idle for 5 minutes.
    consumer_metadata_max_age_ms=10_000,
    producer_metadata_max_age_ms=10_000,
)

class RawSchema(faust.Schema):
    """Keys and values as the bytes Kafka holds, without a trip through faust's codec registry per record."""

    def loads_key(self, app: faust.types.AppT, message: faust.types.Message, *, loads: Any = None,
                  serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: faust.types.AppT, message: faust.types.Message, *, loads: Any = None,
                    serializer: Any = None) -> Any:
        return message.value


# No faust acknowledgements on the intake: the agent decides what is processed and commits its own
# cursors (streams/offsets.py).
scans_topic = app.topic(settings.topic(Topics.SCANS), schema=RawSchema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"), acks=False)
# The consumer puts the fetched records of ``scans`` in lists on this hand-off, bypassing faust's
# per-record Message/Event/stream path; build_visits takes them in batches (streams/draining.py).
scans_handoff = app.handoffs[scans_topic.get_topic_name()] = draining.Handoff(
    scans_topic.get_topic_name(), capacity=2 * settings.sink_batch_size)
dlq_topic = app.topic(settings.topic(Topics.SCANS_DLQ), key_serializer="raw", value_serializer="raw")

# Keys are person ids as raw bytes and the changelog is partitioned like ``scans`` by the
# producer's key partitioner (use_partitioner), so a person's state sits with their scans.
person_scans = app.Table(
    f"{settings.topic_prefix}person-scans",
    default=None,
    partitions=settings.scans_partitions,
    schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="raw"),
    use_partitioner=True,
    extra_topic_configs={"cleanup.policy": "compact"},
)
# A table takes its serializers from its key/value types (bytes -> "json") and passes them to its
# changelog topic over the schema's; recovery would then JSON-decode the raw keys, fail on every
# record and never finish. So set them, then remake the changelog topic with them.
person_scans.key_serializer = "raw"
person_scans.value_serializer = "raw"  # values are orjson bytes (PersonState.to_bytes)
person_scans.changelog_topic = person_scans._new_changelog_topic()

venues = VenueCache(connect=lambda: connect(settings), default_stay_minutes=settings.default_stay_minutes,
                    category_stay_minutes=settings.category_stay_minutes)
sink = VisitSink(connect=lambda: connect(settings), max_backoff=settings.sink_max_backoff_seconds)
cursors = IntakeCursors(app, scans_topic.get_topic_name())
rules = VisitRules(stay_for=venues.stay_seconds, max_stay=settings.max_stay_minutes * 60,
                   dedup_window=settings.dedup_window_minutes * 60,
                   horizon=settings.state_horizon_hours * 3600)


@lru_cache(maxsize=1 << 18)  # murmur2 is pure Python; people come back batch after batch
def home_partition(person_id: str) -> int:
    """The ``scans`` partition of a person: the default (murmur2) partitioner on the raw person id."""
    return (murmur2(person_id.encode()) & 0x7FFFFFFF) % settings.scans_partitions


def dead_letter(raw: bytes, reason: str, code: str, message: Any) -> bytes:
    """The dead letter of a record (``message``: anything with topic, partition and offset, or None)."""
    DEAD_LETTERED.labels(code).inc()
    return DeadLetter(
        reason=reason, error_code=code, raw=raw.decode("utf-8", errors="replace"),
        topic=message.topic if message else "", partition=message.partition if message else -1,
        offset=message.offset if message else -1,
    ).to_json()


def check(parsed: ParsedScan | Rejected, now: int) -> tuple[ParsedScan | None, str, str]:
    """Check one parsed scan (``now`` in epoch seconds): (scan, "", "") or (None, reason, code)."""
    if isinstance(parsed, Rejected):
        return None, parsed.reason, "invalid_scan"
    t = parsed.scan.t
    if t > now + 5 * 60:
        return None, "scanned_at: more than 5 minutes in the future", "future"
    if t < now - settings.retention_days * 86400:
        return None, "scanned_at: older than the retention period", "too_old"
    venue_id = parsed.scan.venue_id
    if not venues.known(venue_id):
        return None, f"venue_id: unknown venue {venue_id!r}", "unknown_venue"
    return parsed, "", ""


@app.agent(scans_topic)
async def build_visits(stream: faust.StreamT[bytes]) -> None:
    # The agent subscribes faust's consumer to ``scans``, but its records never reach this stream:
    # the consumer puts them on ``scans_handoff`` (aiokafka records, per partition lists).
    # use_partitioner makes the producer hash table keys itself, synchronously, from its metadata; on a
    # fresh cluster it has none for the new changelog topic yet and every table write would crash.
    producer = app.producer._ensure_producer()
    changelog = person_scans.changelog_topic.get_topic_name()
    await producer.partitions_for(changelog)
    # Pipelined: a batch's rows are written and its offsets committed by a task (one at a time, in
    # batch order) while the agent already processes the next batch.
    inflight: asyncio.Future[bool] | None = None
    try:
        while not app.should_stop:
            chunks = await scans_handoff.take(settings.sink_batch_size, settings.sink_flush_seconds)
            if not chunks:
                if cursors.generation is None and cursors.next:
                    # A failed write dropped the cursors and nothing new is arriving: start them (and
                    # seek back to the committed offsets) now rather than at the next record.
                    await cursors.batch()
                continue
            started = time.perf_counter()
            n_records = sum(len(records) for _, records in chunks)
            batch_next = await cursors.batch()
            if batch_next is None:  # rebalancing or recovering: faust seeks back to the committed offsets after
                cursors.skipped("not_ready", n_records)
                continue
            # The records to process, in fetch order (each partition's in offset order).
            events = [message for tp, records in chunks for message in cursors.process_run(batch_next, tp, records)]
            rows: list[tuple[object, ...]] = []
            now = int(time.time())
            states: dict[bytes, PersonState] = {}
            pending: list[asyncio.Future] = []  # dead letters, re-keyed copies, changelog: delivered before the ack
            parsed = [parse_scan(message.value) for message in events]
            if not await _lookup_venues({p.scan.venue_id for p in parsed if type(p) is ParsedScan}):
                return  # stopping while ClickHouse is away: nothing acknowledged, the batch is redelivered
            groups: dict[bytes, list[tuple[int, Scan]]] = {}  # one person's records: one partition, offset order
            consumed = rekeyed = 0
            for message, scan in zip(events, parsed, strict=True):
                checked, reason, code = check(scan, now)
                if checked is None:
                    consumed += 1
                    logger.info("dead-lettering scan at %s[%s]@%s: %s", message.topic, message.partition,
                                message.offset, reason)
                    pending.append(await dlq_topic.send(key=message.key,
                                                        value=dead_letter(message.value, reason, code, message)))
                elif message.partition != home_partition(checked.person_id):
                    rekeyed += 1
                    pending.append(await scans_topic.send(key=checked.person_id.encode(), value=message.value))
                else:
                    consumed += 1
                    groups.setdefault(checked.person_id.encode(), []).append((message.offset, checked.scan))
            CONSUMED.inc(consumed)
            REKEYED.inc(rekeyed)
            loaded = []  # states read from the table's bytes (not kept from an earlier batch of this worker)
            for key in groups:
                states[key], fresh = _state_of(key)
                if fresh:
                    loaded.append(states[key])
            # Visits depend on the default stay of every venue in the touched people's state, not only of
            # this batch's venues (after a restart the cache is empty); a state kept from an earlier batch
            # only names venues looked up then (the venue cache keeps them).
            if not await _lookup_venues({s.venue_id for state in loaded for s in state.scans.values()}):
                return
            window_dups = id_dups = rewound = 0
            for key, records in groups.items():
                person_id = key.decode()
                for (offset, _), outcome in zip(records, apply_batch(states[key], records, rules), strict=True):
                    if outcome.duplicate == "window":
                        window_dups += 1
                    elif outcome.duplicate:
                        id_dups += 1
                    rewound += outcome.rewound
                    if outcome.upserts:
                        rows += visit_rows(person_id, outcome.upserts, offset + 1, False, now)
                    if outcome.deletes:
                        rows += visit_rows(person_id, outcome.deletes, offset + 1, True, now)
            DUPLICATES.labels("window").inc(window_dups)
            DUPLICATES.labels("scan_id").inc(id_dups)
            REPLAYED.inc(rewound)
            # One changelog record per person and batch, produced here in per-partition batches (faust's
            # one-send-per-key path was a fifth of the worker) and confirmed before the ack. The partition
            # is the one faust's partitioner would choose (use_partitioner: murmur2 of the key).
            batches: dict[int, Any] = {}
            for key, state in states.items():
                value = state.to_bytes()
                person_scans.data[key] = value  # the store only; the changelog record follows
                _parsed[key] = (value, state)
                partition = home_partition(key.decode())
                batch = batches.get(partition)
                if batch is None or batch.append(key=key, value=value, timestamp=None) is None:
                    if batch is not None:
                        pending.append(await producer.send_batch(batch, changelog, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for partition, batch in batches.items():
                pending.append(await producer.send_batch(batch, changelog, partition=partition))
            # The next batch continues from this one's cursors; they are committed once it is written.
            offsets = cursors.advance(batch_next)
            if inflight is not None and not await inflight:
                return  # stopping: nothing more acknowledged, the rest is redelivered
            inflight = asyncio.ensure_future(_finish_batch(rows, pending, offsets, started, n_records))
    finally:
        if inflight is not None and not inflight.done():
            inflight.cancel()  # stopping: its offsets stay uncommitted, the batch is redelivered


async def _finish_batch(rows: list[tuple[object, ...]], pending: list[asyncio.Future], offsets: dict[Any, int],
                        started: float, n_records: int) -> bool:
    """Write a processed batch, then commit its offsets; False if the worker stopped meanwhile.

    Its cursors already moved on (the next batch is processed meanwhile): if the batch is not
    written, they are dropped, so the next batch starts again from the committed offsets.
    """
    try:
        written = await asyncio.get_running_loop().run_in_executor(
            None, lambda batch=rows: sink.write(batch, should_stop=lambda: app.should_stop))
        if not written:
            cursors.invalidate()
            return False  # stopping: nothing acknowledged, the batch is redelivered
        await alerts.visits_written(rows)  # issue 6 (alerts): written visits -> exposure matching
        if pending:
            await asyncio.gather(*pending)
    except BaseException:
        cursors.invalidate()
        raise
    await cursors.commit_offsets(offsets)
    BATCH_LATENCY.observe(time.perf_counter() - started)
    BATCH_SCANS.observe(n_records)
    return True


@app.timer(1.0)
async def seek_back_over_gaps() -> None:
    """A partition whose next record has not come while later ones did is read again from its cursor."""
    await cursors.heal()


# Parsed states by person, valid while the table still holds the very bytes object we wrote (a
# recovery or another worker's write replaces it, and the state is parsed again).
_parsed: dict[bytes, tuple[bytes, PersonState]] = {}


def _state_of(key: bytes) -> tuple[PersonState, bool]:
    """The person's state, and whether it was parsed now (rather than kept from an earlier batch)."""
    value = person_scans.get(key)
    cached = _parsed.get(key)
    if cached is not None and value is not None and cached[0] is value:
        return cached[1], False
    _parsed.pop(key, None)
    return PersonState.from_bytes(value), True


async def _lookup_venues(venue_ids: set[str]) -> bool:
    """Cache the venues (waiting out a ClickHouse outage); False if the worker is stopping meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: venues.prefetch(venue_ids, should_stop=lambda: app.should_stop))


@app.timer(settings.state_sweep_seconds)
async def expire_state() -> None:
    """Bound the state: forget people whose newest scan is older than the state horizon (wall clock).

    Only keys of intake partitions this worker holds are touched (their changelog partition has no
    other writer); cached parsed states of other partitions are dropped too, and cached timelines
    of all.
    """
    held = {tp.partition for tp in app.consumer.assignment() if tp.topic == scans_topic.get_topic_name()}
    cutoff = int(time.time()) - settings.state_horizon_hours * 3600
    expired = []
    for key, value in list(person_scans.items()):
        if home_partition(key.decode()) not in held:
            _parsed.pop(key, None)
            continue
        rows = orjson.loads(value)["s"] if value else []
        if not rows or max(row[0] for row in rows) < cutoff:
            expired.append(key)
    # Tombstones go straight to the producer, like build_visits' changelog batches, so a person
    # forgotten here and written again by the next batch gets the two records in that order.
    producer = app.producer._ensure_producer()
    changelog = person_scans.changelog_topic.get_topic_name()
    sent = []
    for key in expired:
        person_scans.data.pop(key, None)
        _parsed.pop(key, None)
        sent.append(await producer.send(changelog, key=key, value=None, partition=home_partition(key.decode())))
    if sent:
        await asyncio.gather(*sent)
    # Timelines (the visits kept with a parsed state, ~4 KB a person) are rebuilt at a person's next
    # scan: dropping them here bounds their memory to the people scanned since the last sweep.
    for _, state in _parsed.values():
        state.timeline = None
    STATES_EXPIRED.inc(len(expired))
    PEOPLE_IN_STATE.set(sum(1 for key in person_scans if home_partition(key.decode()) in held))


@app.timer(settings.retention_check_seconds, on_leader=True)
async def drop_expired_partitions() -> None:
    """Retention: drop whole daily partitions older than the retention period."""
    from streams.retention import drop_expired

    await asyncio.get_running_loop().run_in_executor(None, drop_expired, settings)


@app.timer(2.0)
async def report_lag() -> None:
    consumer = app.consumer
    intake = [tp for tp in consumer.assignment() if tp.topic == scans_topic.get_topic_name()]
    ASSIGNED.set(len(intake))
    LAG.clear()  # partitions moved to another worker by a rebalance are no longer ours to report
    for tp in intake:
        try:
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
        except Exception:  # noqa: BLE001, S112 - lag is best-effort telemetry during rebalances
            continue
        if highwater is not None and position is not None:
            LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))


from streams import alerts  # noqa: E402 - issue 6: the alert matcher's agents and tables (uses `app`)
