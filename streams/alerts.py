"""Streaming exposure matching in the worker: late scans raise alerts by themselves.

``build_visits`` calls :func:`visits_written` with each batch of visit rows right after ClickHouse
accepted it (and before acknowledging the scans), which puts notices of the new or updated visits
on the ``exposure-matching`` topic, grouped by the partition of their venue key. The trace API puts
the exposure windows of each registered case on the same topic keyed by venue, so for one venue
windows and visits are seen in the order they were produced. :func:`match_exposures` keeps the
active windows per venue in a changelog-backed table and raises one alert per (case, contact) on
``alerts`` (deterministic alert_id; a second table remembers what was raised, and the dispatcher
drops any duplicate that still gets through).

A late visit that makes someone a generation-1 contact also publishes that contact's own visits
(from that exposure to the case's end) as generation-2 windows marked ``backfill``: when such a
window arrives, the visits already in ClickHouse at its venue are matched too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime

import faust
import orjson
from prometheus_client import Counter

from streams.app import app, settings
from streams.exposure import Match, VenueWindows, partition_of
from streams.offsets import IntakeCursors
from streams.sink import VISIT_COLUMNS
from truyvet.alerts import RAISED, addressee_wards, alert_id
from truyvet.alerts import get_settings as alert_settings
from truyvet.events import Alert, ExposureWindow, Topics, VisitNotice
from truyvet.schema import connect
from truyvet.schema.db import Database, DatabaseError

logger = logging.getLogger(__name__)

CHECKED = Counter("truyvet_alerts_visits_checked_total", "Visit notices checked against exposure windows")
SUPPRESSED = Counter(
    "truyvet_alerts_duplicates_suppressed_total", "Matches for a (case, contact) that was already alerted"
)
WINDOWS_ACTIVE = Counter("truyvet_alerts_windows_added_total", "Exposure windows added to the worker's table")
WINDOWS_EXPIRED = Counter("truyvet_alerts_windows_expired_total", "Exposure windows dropped after follow-up")

# Longest a visit can last (an orphan out's default stay may reach 24 h): bounds the range reads.
NOTICES_PER_MESSAGE = 2000  # ~250 KB: well under Kafka's 1 MB message limit
MAX_VISIT_SECONDS = max(settings.max_stay_minutes * 60, 24 * 3600)

_I = {c: VISIT_COLUMNS.index(c) for c in ("visit_id", "person_id", "venue_id", "t_in", "t_out", "deleted")}

matching_topic = app.topic(
    settings.topic(Topics.EXPOSURE_MATCHING),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.scans_partitions,
    internal=False,
    acks=False,  # offsets committed by the matcher's own cursors (streams/offsets.py), as for scans
)
matching_cursors = IntakeCursors(app, matching_topic.get_topic_name())
alerts_topic = app.topic(settings.topic(Topics.ALERTS), key_serializer="raw", value_serializer="raw")

# Both keyed by venue (raw bytes); a record goes to the changelog partition of the event being
# processed, i.e. the venue's partition of exposure-matching.
venue_windows = app.Table(
    f"{settings.topic_prefix}exposure-windows",
    default=None,
    partitions=settings.scans_partitions,
    schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
    extra_topic_configs={"cleanup.policy": "compact"},
)
alerted = app.Table(
    f"{settings.topic_prefix}alerted",
    default=None,
    partitions=settings.scans_partitions,
    schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
    extra_topic_configs={"cleanup.policy": "compact"},
)


class _Db:
    """One ClickHouse client for the matcher's lookups (run in the executor, one at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: Database | None = None

    def run(self, fn, *args):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._db is None:
                self._db = connect(settings)
            try:
                return fn(self._db, *args)
            except Exception:
                self._db.close()
                self._db = None
                raise


_db = _Db()


async def _in_db(fn, *args):  # type: ignore[no-untyped-def]
    """Run a lookup, retrying with capped backoff while ClickHouse is unavailable (the worker needs
    it for visits anyway); a lookup is never skipped, so no alert is dropped on the way."""
    delay = 0.2
    while True:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, _db.run, fn, *args)
        except DatabaseError as exc:
            logger.warning("alert matcher lookup failed (%s); retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


async def visits_written(rows: Sequence[Sequence[object]]) -> None:
    """Hook for ``build_visits``: notices of the written (not deleted) visits, confirmed by Kafka.

    Notices are grouped by the partition their venue key maps to, up to ``NOTICES_PER_MESSAGE`` per
    message, so the matcher pays one record per group rather than one per visit, and a venue's
    notices still share the partition (and the order) of that venue's exposure windows.
    """
    groups: dict[int, list[dict[str, object]]] = {}
    # About one row per scan goes through here: indices and functions as locals.
    i_visit, i_person, i_venue, i_in, i_out, i_deleted = (
        _I[c] for c in ("visit_id", "person_id", "venue_id", "t_in", "t_out", "deleted"))
    partitions, epoch = settings.scans_partitions, _epoch
    for row in rows:
        if row[i_deleted]:
            continue
        venue = str(row[i_venue])
        t_in, t_out = row[i_in], row[i_out]
        notice = {"visit_id": row[i_visit], "person_id": row[i_person], "venue_id": venue,
                  "t_in": t_in if type(t_in) is int else epoch(t_in),
                  "t_out": t_out if type(t_out) is int else epoch(t_out)}
        group = groups.get(partition := partition_of(venue, partitions))
        if group is None:
            group = groups[partition] = []
        group.append(notice)
    futures = []
    for partition, notices in groups.items():
        for i in range(0, len(notices), NOTICES_PER_MESSAGE):
            value = orjson.dumps({"kind": "visits", "visits": notices[i : i + NOTICES_PER_MESSAGE]})
            futures.append(await matching_topic.send(value=value, partition=partition))
    if futures:
        await asyncio.gather(*futures)


def _epoch(value: object) -> int:
    """Epoch seconds of a ClickHouse DateTime: an int as the worker writes it, or a timezone-aware
    datetime as ClickHouse returns it."""
    if type(value) is int:
        return value
    assert isinstance(value, datetime)
    return int(value.timestamp())


def _visits(rows: Sequence[Sequence[object]]) -> list[VisitNotice]:
    latest: dict[str, tuple[object, ...]] = {}
    for row in rows:
        latest[str(row[0])] = tuple(row)  # FINAL already merged versions; keep it simple and safe
    return [
        VisitNotice(
            visit_id=str(v),
            person_id=str(p),
            venue_id=str(ven),
            t_in=_epoch(a),
            t_out=_epoch(b),
        )
        for v, p, ven, a, b, deleted in latest.values()
        if not deleted
    ]


def _venue_visits(db: Database, venue: str, lo: int, hi: int) -> list[VisitNotice]:
    rows = db.execute(
        "SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits_by_venue FINAL "
        "WHERE venue_id = %(v)s AND t_in >= %(lo)s AND t_in <= %(hi)s",
        {"v": venue, "lo": datetime.fromtimestamp(lo, UTC), "hi": datetime.fromtimestamp(hi, UTC)},
    )
    return _visits(rows)


def _person_visits(db: Database, person: str, start: int, end: int) -> list[VisitNotice]:
    rows = db.execute(
        "SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits FINAL "
        "WHERE person_id = %(p)s AND t_in >= %(lo)s AND t_in <= %(hi)s",
        {
            "p": person,
            "lo": datetime.fromtimestamp(start - MAX_VISIT_SECONDS, UTC),
            "hi": datetime.fromtimestamp(end, UTC),
        },
    )
    return [v for v in _visits(rows) if v.t_out >= start and v.t_in <= end]


async def _raise(matches: list[Match], now: int) -> None:
    """One alert per (case, contact) among ``matches``, unless raised before; cascade new F1s."""
    fresh: dict[str, Match] = {}
    for m in matches:
        aid = alert_id(m.window.case_id, m.visit.person_id)
        if aid in fresh:
            continue
        if alerted.get(aid.encode()) is not None:
            SUPPRESSED.inc()
            continue
        fresh[aid] = m
    if not fresh:
        return
    wards = await _in_db(addressee_wards, {m.visit.person_id: m.visit.venue_id for m in fresh.values()})
    created = datetime.fromtimestamp(now, UTC)
    sent: list[Awaitable[object]] = []
    for aid, m in fresh.items():
        alert = Alert(
            alert_id=aid,
            case_id=m.window.case_id,
            person_id=m.visit.person_id,
            generation=m.window.generation,
            ward_code=wards.get(m.visit.person_id, ""),
            venue_id=m.visit.venue_id,
            created_at=created,
        )
        sent.append(await alerts_topic.send(key=aid.encode(), value=alert.model_dump_json().encode()))
        if m.window.generation == 1 and alert_settings().depth >= 2:
            sent += await _cascade(m, now)
    await asyncio.gather(*sent)
    for aid, m in fresh.items():
        alerted[aid.encode()] = m.window.expires_at
    RAISED.labels("late").inc(len(fresh))
    logger.info("late visits raised %d alerts", len(fresh))


async def _cascade(m: Match, now: int) -> list[Awaitable[object]]:
    """A new generation-1 contact: their visits from this exposure to the case's end become windows."""
    own = await _in_db(_person_visits, m.visit.person_id, m.visit.t_in, m.window.case_end)
    futures: list[Awaitable[object]] = []
    for v in own:
        w = ExposureWindow(
            case_id=m.window.case_id,
            case_person_id=m.window.case_person_id,
            generation=2,
            via_person_id=v.person_id,
            venue_id=v.venue_id,
            visit_id=v.visit_id,
            t_in=v.t_in,
            t_out=v.t_out,
            window=m.window.window,
            min_overlap=m.window.min_overlap,
            case_end=m.window.case_end,
            expires_at=m.window.expires_at,
            backfill=True,
        )
        futures.append(await matching_topic.send(key=v.venue_id.encode(), value=w.to_json()))
    return futures


@app.agent(matching_topic)
async def match_exposures(stream: faust.StreamT[bytes]) -> None:
    # Record by record: the tables are written under the record being processed (its partition).
    async for event in stream.events():
        tp, offset = event.message.tp, event.message.offset
        if not await matching_cursors.take(tp, offset):
            continue
        message = orjson.loads(event.value)
        now = int(time.time())
        if message.get("kind") == "window":
            await _add_window(ExposureWindow.model_validate(message), now)
        else:
            await _check_visits(message.get("visits", ()), now)
        matching_cursors.done(tp, offset)


@app.timer(1.0)
async def commit_matching() -> None:
    await matching_cursors.commit_done()


@app.timer(1.0)
async def seek_matching_back_over_gaps() -> None:
    await matching_cursors.heal()


def _load(venue_id: str, now: int) -> VenueWindows:
    """A venue's active windows; expired ones are dropped (and the table updated) on the way."""
    key = venue_id.encode()
    state = VenueWindows.from_json(venue_windows.get(key))
    expired = state.prune(now)
    if expired:
        WINDOWS_EXPIRED.inc(expired)
        if state.windows:
            venue_windows[key] = state.to_json()
        else:
            del venue_windows[key]
    return state


async def _add_window(window: ExposureWindow, now: int) -> None:
    if window.expires_at <= now:
        return
    state = _load(window.venue_id, now)
    if not state.add(window):
        return
    WINDOWS_ACTIVE.inc()
    venue_windows[window.venue_id.encode()] = state.to_json()
    if window.backfill:
        lo, hi = window.t_in - window.window - MAX_VISIT_SECONDS, window.t_out + window.window
        present = await _in_db(_venue_visits, window.venue_id, lo, hi)
        await _raise(VenueWindows([window]).matches_all(present), now)


async def _check_visits(notices: Sequence[dict[str, object]], now: int) -> None:
    """Match visit notices against their venues' windows (most venues have none: one dict lookup)."""
    loaded: dict[str, VenueWindows] = {}
    matches: list[Match] = []
    for notice in notices:
        venue = str(notice["venue_id"])
        if venue not in loaded:
            loaded[venue] = _load(venue, now) if venue.encode() in venue_windows else VenueWindows()
        if loaded[venue].windows:
            matches += loaded[venue].matches(VisitNotice.model_validate(notice))
    if matches:
        matches.sort(key=lambda m: (m.window.generation, m.window.case_id, m.window.t_in))
        await _raise(matches, now)
    CHECKED.inc(len(notices))
