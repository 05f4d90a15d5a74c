"""Alerts on case registration: contacts become alerts on Kafka, exposure windows go to the matcher.

Order matters for late data. The case's own visits are published as exposure windows *before* the
trace reads the co-visitors, so a visit written after that read is seen by the stream worker's
matcher (its notice is produced after its ClickHouse write, on the same venue-keyed topic).
Generation-2 windows (the contacts' own visits) can only be published once the trace has found the
generation-1 contacts. Everything is confirmed by Kafka (acks=all) before the case is answered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import Counter

from trace_api import queries
from trace_api.config import TraceSettings
from trace_api.contacts import Contact, TraceParams, trace
from trace_api.tracing import VisitRow, overlapping
from truyvet.alerts import RAISED, addressee_wards, alert_id
from truyvet.alerts import get_settings as alert_settings
from truyvet.events import Alert, ExposureWindow, Topics, TracedPerson
from truyvet.exceptions import TruyvetError
from truyvet.schema.db import Database
from truyvet.web import ApiError

logger = logging.getLogger(__name__)

WINDOWS = Counter(
    "truyvet_alerts_windows_registered_total", "Exposure windows published for streaming matching"
)


class AlertPublishError(TruyvetError):
    """Kafka did not confirm the case's alerts or exposure windows."""


_lock = threading.Lock()
_producer: KafkaProducer | None = None


def depth() -> int:
    """Depth of the trace that raises a case's alerts (``ALERTS_DEPTH``, default 2)."""
    return alert_settings().depth


def producer() -> KafkaProducer:
    """One idempotent producer per process (kafka-python's producer is thread-safe)."""
    global _producer
    with _lock:
        if _producer is None:
            _producer = KafkaProducer(
                bootstrap_servers=alert_settings().kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                retries=2**31 - 1,
                max_block_ms=10_000,
                request_timeout_ms=10_000,
                delivery_timeout_ms=15_000,
            )
        return _producer


def _window_for(db: Database, params: TraceParams, visits: list[VisitRow]) -> Callable[[str], int]:
    category_window = params.category_window
    if not category_window or not visits:
        return lambda _venue: params.window
    categories = queries.venue_categories(db, {v.venue_id for v in visits})
    return lambda venue: category_window.get(categories.get(venue, ""), params.window)


def _windows(
    db: Database,
    visits: list[VisitRow],
    *,
    case_id: str,
    case_person: str,
    generation: int,
    params: TraceParams,
    case_end: int,
    expires_at: int,
) -> list[ExposureWindow]:
    window_for = _window_for(db, params, visits)
    return [
        ExposureWindow(
            case_id=case_id,
            case_person_id=case_person,
            generation=generation,
            via_person_id=None if generation == 1 else v.person_id,
            venue_id=v.venue_id,
            visit_id=v.visit_id,
            t_in=v.t_in,
            t_out=v.t_out,
            window=window_for(v.venue_id),
            min_overlap=params.min_overlap,
            case_end=case_end,
            expires_at=expires_at,
        )
        for v in visits
    ]


def _send_all(sends: list[tuple[str, bytes, bytes]], timeout: float = 15.0) -> None:
    p = producer()
    try:
        futures = [p.send(topic, key=key, value=value) for topic, key, value in sends]
        for future in futures:
            future.get(timeout=timeout)
    except KafkaError as exc:
        logger.error("alerts not confirmed by Kafka (%d records): %s", len(sends), exc)
        cause = AlertPublishError("Kafka did not confirm the alerts", records=len(sends), error=str(exc))
        raise ApiError(503, "unavailable", "alerts could not be queued; retry") from cause


def raise_case_alerts(
    db: Database, *, case_id: str, person_id: str, start: int, end: int, params: TraceParams
) -> list[Alert]:
    """Publish the case's exposure windows and one alert per contact; return the alerts.

    :param params: the trace parameters (depth from ``ALERTS_DEPTH``, W and M as configured).
    :raises ApiError: 503 when Kafka did not confirm every record (the case itself is stored).
    """
    settings = alert_settings()
    expires_at = end + settings.followup_days * 86400
    matching = settings.topic(Topics.EXPOSURE_MATCHING)
    traced = settings.topic(Topics.TRACED)

    def traced_person(person: str, generation: int, t_from: int) -> tuple[str, bytes, bytes]:
        record = TracedPerson(case_id=case_id, case_person_id=person_id, person_id=person, generation=generation,
                              t_from=t_from, t_to=end, window=params.window, min_overlap=params.min_overlap,
                              expires_at=expires_at)
        return traced, record.key, record.to_json()

    # The case person first, before their visits are read: a visit written after that read is matched by
    # the worker, which knows the person is traced by then (streams/traced.py).
    _send_all([traced_person(person_id, 0, start)])
    case_visits = overlapping(queries.person_visits(db, [person_id], start, end, params.max_stay), start, end)
    first = _windows(
        db,
        case_visits,
        case_id=case_id,
        case_person=person_id,
        generation=1,
        params=params,
        case_end=end,
        expires_at=expires_at,
    )
    _send_all([(matching, w.venue_id.encode(), w.to_json()) for w in first])

    result = trace(db, person_id=person_id, start=start, end=end, params=params)
    contacts: list[Contact] = result.contacts

    # Alerts first: the dispatcher starts delivering while the F2 windows are being read.
    wards = addressee_wards(db, {c.person_id: c.exposures[0].venue_id for c in contacts})
    now = datetime.now(UTC).replace(microsecond=0)
    alerts = [
        Alert(
            alert_id=alert_id(case_id, c.person_id),
            case_id=case_id,
            person_id=c.person_id,
            generation=c.generation,
            ward_code=wards.get(c.person_id, ""),
            venue_id=c.exposures[0].venue_id,
            created_at=now,
        )
        for c in contacts
    ]
    topic = settings.topic(Topics.ALERTS)
    _send_all([(topic, a.alert_id.encode(), a.model_dump_json().encode()) for a in alerts])
    RAISED.labels("case").inc(len(alerts))

    second: list[ExposureWindow] = []
    f1 = {c.person_id: min(e.contact_visit.t_in for e in c.exposures) for c in contacts if c.generation == 1}
    if params.depth >= 2 and f1:
        _send_all([traced_person(p, 1, t_from) for p, t_from in f1.items()])
        visits = queries.person_visits(db, sorted(f1), min(f1.values()), end, params.max_stay)
        live = [v for v in visits if v.t_in <= end and v.t_out >= f1[v.person_id]]
        second = _windows(
            db,
            live,
            case_id=case_id,
            case_person=person_id,
            generation=2,
            params=params,
            case_end=end,
            expires_at=expires_at,
        )
        _send_all([(matching, w.venue_id.encode(), w.to_json()) for w in second])
    WINDOWS.inc(len(first) + len(second))
    logger.info("case %s: %d alerts, %d exposure windows", case_id, len(alerts), len(first) + len(second))
    return alerts


def trace_params(settings: TraceSettings) -> TraceParams:
    """The configured W (per venue category where configured) and M, at ``ALERTS_DEPTH``: the same
    parameters ``GET /v1/cases/{id}/contacts`` uses when the query sets none."""
    return TraceParams(
        depth=depth(),
        window=settings.window_minutes * 60,
        min_overlap=settings.min_overlap_minutes * 60,
        max_stay=max(settings.max_stay_minutes, settings.max_visit_minutes) * 60,
        category_window={c.value: m * 60 for c, m in settings.category_window_minutes.items()},
    )


def on_case_registered(db: Database, settings: TraceSettings, case_id: str, case: Any) -> list[Alert]:
    """``POST /v1/cases`` calls this once the case is stored (``case``: the request body)."""
    return raise_case_alerts(
        db,
        case_id=case_id,
        person_id=case.person_id,
        start=int(case.infectious_from.timestamp()),
        end=int(case.infectious_to.timestamp()),
        params=trace_params(settings),
    )
