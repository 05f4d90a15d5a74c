"""Streaming exposure matching: late scans raise alerts by themselves.

The ``scans`` processor puts notices of each batch's written visits on ``exposure-matching``, keyed by
venue (streams/visits_worker.py); the trace API puts the exposure windows of each registered case on
the same topic keyed by venue, so for one venue windows and visits are seen in the order they were
produced. :class:`MatchingProcessor` keeps the active windows per venue in a changelog-backed store
and raises one alert per (case, contact) on ``alerts`` (deterministic alert_id; a second store
remembers what was raised until the case's follow-up ends, and the dispatcher drops any duplicate
that still gets through).

A late visit that makes someone a generation-1 contact also publishes that contact's own visits
(from that exposure to the case's end) as generation-2 windows marked ``backfill``: when such a
window arrives, the visits already in ClickHouse at its venue are matched too.

Both stores are pruned by :meth:`MatchingProcessor.expire` (windows past their follow-up, alerts
whose follow-up ended), so their size and the restore time stay bounded.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from streams.alerting.settings import RAISED
from streams.alerting.traced import TracedPersons
from streams.alerting.windows import Match, VenueWindows
from streams.config import StreamsSettings
from streams.store import JSON, ChangelogStore
from truyvet.alerts import addressee_wards, alert_id
from truyvet.events import VISIT, Alert, ExposureWindow, Topics, TracedPerson, Visit
from truyvet.partitioning import partition_for
from truyvet.schema.db import Database, DatabaseError

logger = logging.getLogger(__name__)

CHECKED = Counter("truyvet_alerts_visits_checked_total", "Visit notices checked against exposure windows")
SUPPRESSED = Counter(
    "truyvet_alerts_duplicates_suppressed_total", "Matches for a (case, contact) that was already alerted"
)
WINDOWS_ACTIVE = Counter("truyvet_alerts_windows_added_total", "Exposure windows added to the worker's store")
WINDOWS_EXPIRED = Counter("truyvet_alerts_windows_expired_total", "Exposure windows dropped after follow-up")
PUBLISHED_MEMORY = 200_000  # windows remembered as published (a repeat notice publishes nothing new)

ALERTED_EXPIRED = Counter("truyvet_alerts_dedup_expired_total",
                          "Remembered (case, contact) alerts forgotten after the case's follow-up")


class _Db:
    """One ClickHouse client for the matcher's lookups (run in the executor, one at a time)."""

    def __init__(self, connect: Callable[[], Database]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._db: Database | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self._db is None:
                self._db = self._connect()
            try:
                return fn(self._db, *args)
            except Exception:
                self._db.close()
                self._db = None
                raise


def _visits(rows: Sequence[Sequence[object]]) -> list[Visit]:
    latest: dict[str, tuple[object, ...]] = {}
    for row in rows:
        latest[str(row[0])] = tuple(row)  # FINAL already merged versions
    return [Visit(visit_id=str(v), person_id=str(p), venue_id=str(ven), t_in=_epoch(a), t_out=_epoch(b))
            for v, p, ven, a, b, deleted in latest.values() if not deleted]


def _epoch(value: object) -> int:
    return value if isinstance(value, int) else int(value.timestamp())  # type: ignore[attr-defined]


def venue_visits(db: Database, venue: str, lo: int, hi: int) -> list[Visit]:
    rows = db.execute(
        "SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits_by_venue FINAL "
        "WHERE venue_id = %(v)s AND t_in >= %(lo)s AND t_in <= %(hi)s",
        {"v": venue, "lo": datetime.fromtimestamp(lo, UTC), "hi": datetime.fromtimestamp(hi, UTC)},
    )
    return _visits(rows)


def person_visits(db: Database, person: str, start: int, end: int, longest: int) -> list[Visit]:
    rows = db.execute(
        "SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits FINAL "
        "WHERE person_id = %(p)s AND t_in >= %(lo)s AND t_in <= %(hi)s",
        {"p": person, "lo": datetime.fromtimestamp(start - longest, UTC), "hi": datetime.fromtimestamp(end, UTC)},
    )
    return [v for v in _visits(rows) if v.t_out >= start and v.t_in <= end]


class MatchingProcessor:
    """:class:`streams.consumer.BatchProcessor` of the ``exposure-matching`` topic."""

    def __init__(self, settings: StreamsSettings, *, producer: AIOKafkaProducer, connect: Callable[[], Database],
                 depth: int, traced: TracedPersons, client_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.producer = producer
        self.depth = depth
        self.traced = traced
        self.traced_topic = settings.topic(Topics.TRACED)
        # Windows this worker published from traced persons' visits: (case, generation, visit) -> span.
        self._published: OrderedDict[tuple[str, int, str], tuple[str, int, int]] = OrderedDict()
        self.db = _Db(connect)
        self.windows = ChangelogStore("exposure-windows", settings.state_topic("exposure-windows"), codec=JSON,
                                      bootstrap=settings.kafka_bootstrap, client_options=client_options)
        self.alerted = ChangelogStore("alerted", settings.state_topic("alerted"), codec=JSON,
                                      bootstrap=settings.kafka_bootstrap, client_options=client_options)
        self.stores = [self.windows, self.alerted]
        self.topic = settings.topic(Topics.EXPOSURE_MATCHING)
        self.alerts_topic = settings.topic(Topics.ALERTS)
        # Longest a visit can last (an orphan out's default stay may reach 24 h): bounds the range reads.
        self.longest_visit = max(settings.max_stay_minutes * 60, 24 * 3600)

    def assigned(self, partitions: set[int]) -> None:
        pass

    def revoked(self, partitions: set[int]) -> None:
        pass

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a lookup, retrying with capped backoff while ClickHouse is unavailable: a lookup is never
        skipped, so no alert is dropped on the way."""
        delay = 0.2
        while True:
            try:
                return await asyncio.get_running_loop().run_in_executor(None, self.db.run, fn, *args)
            except DatabaseError as exc:
                logger.warning("alert matcher lookup failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def process(self, batch: dict[int, list[Any]]) -> None:
        try:
            await self._process(batch)
        except BaseException:
            # The batch is replayed: windows sent but maybe not confirmed must go out again.
            self._published.clear()
            raise

    async def _process(self, batch: dict[int, list[Any]]) -> None:
        await self.traced.catch_up()
        pending: list[Awaitable[object]] = []
        for partition, records in batch.items():
            for record in records:
                now = int(time.time())
                try:
                    message = orjson.loads(record.value)
                    if type(message) is not dict:
                        raise ValueError("not a JSON object")
                    if message.get("kind") == "window":
                        pending += await self._add_window(partition, ExposureWindow.model_validate(message), now)
                    else:
                        notices = [VISIT.validate_python(n) for n in message.get("visits", ())]
                        pending += await self._check_visits(partition, notices, now)
                except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError; None value
                    # Only the worker and the trace API write here; anything else is logged and skipped.
                    logger.error("exposure-matching record %s[%d]@%d skipped: %s", record.topic, partition,
                                 record.offset, str(exc)[:200])
        pending += await self.windows.flush(self.producer)
        pending += await self.alerted.flush(self.producer)
        if pending:
            await asyncio.gather(*pending)

    # -- windows -------------------------------------------------------------------------------------------
    def _load(self, partition: int, venue_id: str, now: int) -> VenueWindows:
        """A venue's active windows; expired ones are dropped (and the store updated) on the way."""
        key = venue_id.encode()
        raw = self.windows.get(partition, key)
        state = VenueWindows.from_json(orjson.loads(raw) if raw else None)
        expired = state.prune(now)
        if expired:
            WINDOWS_EXPIRED.inc(expired)
            self._save(partition, venue_id, state)
        return state

    def _save(self, partition: int, venue_id: str, state: VenueWindows) -> None:
        if state.windows:
            self.windows.put(partition, venue_id.encode(), orjson.dumps(state.to_json()))
        else:
            self.windows.delete(partition, venue_id.encode())

    async def _add_window(self, partition: int, window: ExposureWindow, now: int) -> list[Awaitable[object]]:
        if window.expires_at <= now:
            return []
        state = self._load(partition, window.venue_id, now)
        if not state.add(window):
            return []
        WINDOWS_ACTIVE.inc()
        self._save(partition, window.venue_id, state)
        if not window.backfill:
            return []
        lo, hi = window.t_in - window.window - self.longest_visit, window.t_out + window.window
        present = await self._in_db(venue_visits, window.venue_id, lo, hi)
        # Whom this window finds is matched against all the venue's windows: one that a lower generation's
        # window here also finds is alerted at that generation (its own notice may still be on its way:
        # the alert, raised once, must not be the higher generation's).
        found = [v for v in present if VenueWindows([window]).matches(v)]
        return await self._raise(partition, state.matches_all(found), now)

    async def _check_visits(self, partition: int, notices: list[Visit], now: int) -> list[Awaitable[object]]:
        """Match visit notices against their venues' windows (most venues have none: one dict lookup)."""
        loaded: dict[str, VenueWindows] = {}
        held = self.windows.partitions.get(partition, {})
        matches: list[Match] = []
        for notice in notices:
            venue = notice.venue_id
            if venue not in loaded:
                loaded[venue] = self._load(partition, venue, now) if venue.encode() in held else VenueWindows()
            if loaded[venue].windows:
                matches += loaded[venue].matches(notice)
        CHECKED.inc(len(notices))
        futures = await self._traced_windows(notices, now)
        if not matches:
            return futures
        matches.sort(key=lambda m: (m.window.generation, m.window.case_id, m.window.t_in))
        return futures + await self._raise(partition, matches, now)

    async def _traced_windows(self, notices: list[Visit], now: int) -> list[Awaitable[object]]:
        """Visits of traced persons (the case person, generation-1 contacts) written at any time become
        exposure windows of the next generation, which also check the visits already stored at the venue.
        Late data: docs/tracing.md."""
        futures: list[Awaitable[object]] = []
        for notice in notices:
            for t in self.traced.of(notice.person_id, now):
                if t.generation >= self.depth or notice.t_in > t.t_to or notice.t_out < t.t_from:
                    continue
                window = ExposureWindow(
                    case_id=t.case_id, case_person_id=t.case_person_id, generation=t.generation + 1,
                    via_person_id=notice.person_id if t.generation else None, venue_id=notice.venue_id,
                    visit_id=notice.visit_id, t_in=notice.t_in, t_out=notice.t_out, window=t.window,
                    min_overlap=t.min_overlap, case_end=t.t_to, expires_at=t.expires_at, backfill=True)
                futures += await self._publish(window)
        return futures

    async def _publish(self, window: ExposureWindow) -> list[Awaitable[object]]:
        """Put a window on its venue's partition, unless this worker published the same span already."""
        key = (window.case_id, window.generation, window.visit_id)
        span = (window.venue_id, window.t_in, window.t_out)
        if self._published.get(key) == span:
            return []
        self._published[key] = span
        self._published.move_to_end(key)
        while len(self._published) > PUBLISHED_MEMORY:
            self._published.popitem(last=False)
        return [await self.producer.send(
            self.topic, key=window.venue_id.encode(), value=window.to_json(),
            partition=partition_for(window.venue_id, self.settings.scans_partitions))]

    # -- alerts --------------------------------------------------------------------------------------------
    def _was_alerted(self, m: Match, key: bytes) -> bool:
        """Raised before: by this matcher (``alerted``), or, for generation 1, by whoever traced the person
        (the registration's trace or another worker's matcher)."""
        if m.window.generation == 1 and self.traced.get(m.window.case_id, m.visit.person_id) is not None:
            return True
        return any(key in data for data in self.alerted.partitions.values())

    async def _raise(self, partition: int, matches: list[Match], now: int) -> list[Awaitable[object]]:
        """One alert per (case, contact) among ``matches``, unless raised before; cascade new F1s.

        The alerts are confirmed by Kafka before they are remembered (a crash in between raises them
        again; the dispatcher drops the copy by its alert_id)."""
        # Whether each match was alerted before is decided before any contact is traced below (a traced
        # generation-1 contact counts as alerted).
        fresh: dict[str, Match] = {}
        earliest: dict[str, Match] = {}  # per new or known generation-1 contact: the earliest exposure
        for m in matches:
            aid = alert_id(m.window.case_id, m.visit.person_id)
            if m.window.generation == 1 and (aid not in earliest or m.visit.t_in < earliest[aid].visit.t_in):
                earliest[aid] = m
            if aid in fresh:
                continue
            if self._was_alerted(m, aid.encode()):
                SUPPRESSED.inc()
                continue
            fresh[aid] = m
        traced: list[Awaitable[object]] = []
        if self.depth >= 2:
            for m in earliest.values():  # also when alerted before: the exposure may be an earlier one
                traced += await self._trace_contact(m)
        if not fresh:
            return traced
        wards = await self._in_db(addressee_wards, {m.visit.person_id: m.visit.venue_id for m in fresh.values()})
        created = datetime.fromtimestamp(now, UTC)
        sent: list[Awaitable[object]] = []
        for aid, m in fresh.items():
            alert = Alert(alert_id=aid, case_id=m.window.case_id, person_id=m.visit.person_id,
                          generation=m.window.generation, ward_code=wards.get(m.visit.person_id, ""),
                          venue_id=m.visit.venue_id, created_at=created)
            sent.append(await self.producer.send(self.alerts_topic, key=aid.encode(),
                                                 value=alert.model_dump_json().encode()))
        await asyncio.gather(*sent, *traced)
        for aid, m in fresh.items():
            self.alerted.put(partition, aid.encode(), orjson.dumps(m.window.expires_at))
        RAISED.labels("late").inc(len(fresh))
        logger.info("late visits raised %d alerts", len(fresh))
        return []

    async def _trace_contact(self, m: Match) -> list[Awaitable[object]]:
        """A generation-1 contact met here: traced from this exposure (or from an earlier one already
        known) to the case's end; the record goes out first, so a visit of theirs written after the read
        below meets it as a notice. Their visits already stored in that period become generation-2
        windows, every time (a replay after a crash re-publishes what may not have been confirmed; the
        matcher drops windows it holds already)."""
        known = self.traced.get(m.window.case_id, m.visit.person_id)
        start = m.visit.t_in if known is None else min(known.t_from, m.visit.t_in)
        if known is None or known.t_from > start:
            record = TracedPerson(case_id=m.window.case_id, case_person_id=m.window.case_person_id,
                                  person_id=m.visit.person_id, generation=1, t_from=start, t_to=m.window.case_end,
                                  window=m.window.window, min_overlap=m.window.min_overlap,
                                  expires_at=m.window.expires_at)
            await (await self.producer.send(
                self.traced_topic, key=record.key, value=record.to_json(),
                partition=partition_for(record.key.decode(), self.settings.scans_partitions)))
            self.traced.add(record)
        own = await self._in_db(person_visits, m.visit.person_id, start, m.window.case_end, self.longest_visit)
        futures: list[Awaitable[object]] = []
        for v in own:
            futures += await self._publish(ExposureWindow(
                case_id=m.window.case_id, case_person_id=m.window.case_person_id, generation=2,
                via_person_id=v.person_id, venue_id=v.venue_id, visit_id=v.visit_id, t_in=v.t_in, t_out=v.t_out,
                window=m.window.window, min_overlap=m.window.min_overlap, case_end=m.window.case_end,
                expires_at=m.window.expires_at, backfill=True))
        return futures

    # -- pruning -------------------------------------------------------------------------------------------
    async def expire(self, partitions: set[int]) -> None:
        """Drop windows past their follow-up and forget alerts whose follow-up ended (both bounded)."""
        now = int(time.time())
        for partition in partitions:
            for key, _ in self.windows.items(partition):
                self._load(partition, key.decode(), now)
            for key, raw in self.alerted.items(partition):
                if int(orjson.loads(raw)) <= now:
                    self.alerted.delete(partition, key)
                    ALERTED_EXPIRED.inc()
        futures = await self.windows.flush(self.producer) + await self.alerted.flush(self.producer)
        if futures:
            await asyncio.gather(*futures)
