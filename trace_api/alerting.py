"""Alerts on case registration: the trace API reads, streams/alerting/publish.py publishes.

Order matters for late data. The case person is published as traced, then the case's own visits are
read and published as exposure windows *before* the trace reads the co-visitors, so a visit written
after that read is seen by the stream worker's matcher (its notice is produced after its ClickHouse
write, on the same venue-keyed topic; a traced person's later visit becomes a window there). The
generation-1 contacts are published as traced before their own visits are read for the generation-2
windows. Everything is confirmed by Kafka (acks=all) before the case is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.alerting.publish import AlertPublishError, CasePublisher
from streams.alerting.settings import get_settings as alert_settings
from trace_api import queries
from trace_api.contacts import TraceParams, trace
from trace_api.tracing import overlapping
from truyvet.alerts import addressee_wards
from truyvet.events import Alert, Visit
from truyvet.schema.db import Database
from truyvet.web import ApiError

logger = logging.getLogger(__name__)


def depth() -> int:
    """Depth of the trace that raises a case's alerts (``ALERTS_DEPTH``, default 2)."""
    return alert_settings().depth


def _window_for(db: Database, params: TraceParams, visits: list[Visit]) -> Callable[[str], int]:
    category_window = params.category_window
    if not category_window or not visits:
        return lambda _venue: params.window
    categories = queries.venue_categories(db, {v.venue_id for v in visits})
    return lambda venue: category_window.get(categories.get(venue, ""), params.window)


def raise_case_alerts(
    db: Database, *, case_id: str, person_id: str, start: int, end: int, params: TraceParams
) -> list[Alert]:
    """Publish the case's traced persons, exposure windows and one alert per contact; return the alerts.

    :param params: the trace parameters (depth from ``ALERTS_DEPTH``, W and M as configured).
    :raises ApiError: 503 when Kafka did not confirm every record (the case itself is stored).
    """
    try:
        return _publish(db, case_id=case_id, person_id=person_id, start=start, end=end, params=params)
    except AlertPublishError as exc:
        raise ApiError(503, "unavailable", "alerts could not be queued; retry") from exc


def _publish(db: Database, *, case_id: str, person_id: str, start: int, end: int, params: TraceParams) -> list[Alert]:
    publish = CasePublisher(case_id=case_id, case_person=person_id, start=start, end=end,
                            window_for=lambda _venue: params.window, default_window=params.window,
                            min_overlap=params.min_overlap)
    # Traced before the visits are read: a visit written after the read reaches the worker as a traced
    # person's visit.
    publish.traced({person_id: start}, generation=0)
    case_visits = overlapping(queries.person_visits(db, [person_id], start, end, params.max_stay), start, end)
    publish.window_for = _window_for(db, params, case_visits)
    windows = publish.windows(case_visits, generation=1)

    contacts = trace(db, person_id=person_id, start=start, end=end, params=params).contacts
    # Alerts first: the dispatcher starts delivering while the F2 windows are being read.
    wards = addressee_wards(db, {c.person_id: c.exposures[0].venue_id for c in contacts})
    alerts = publish.alerts([(c.person_id, c.generation, c.exposures[0].venue_id) for c in contacts], wards)

    f1 = {c.person_id: min(e.contact_visit.t_in for e in c.exposures) for c in contacts if c.generation == 1}
    if params.depth >= 2 and f1:
        publish.traced(f1, generation=1)
        visits = queries.person_visits(db, sorted(f1), min(f1.values()), end, params.max_stay)
        live = [v for v in visits if v.t_in <= end and v.t_out >= f1[v.person_id]]
        publish.window_for = _window_for(db, params, live)
        windows += publish.windows(live, generation=2)
    logger.info("case %s: %d alerts, %d exposure windows", case_id, len(alerts), windows)
    return alerts
