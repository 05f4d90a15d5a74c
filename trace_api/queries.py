"""ClickHouse reads for tracing: primary-key range reads only, portable to 18.16 and current releases.

With FINAL only sorting-key columns (identical in every version of a row) may be filtered inside
the query; ``deleted`` and ``t_out`` differ between versions, so they are filtered after FINAL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from trace_api.tracing import VisitRow
from truyvet.schema.db import Database


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _rows(result: Iterable[tuple[object, ...]]) -> list[VisitRow]:
    return [
        VisitRow(str(vid), str(pid), str(ven), int(t_in.timestamp()), int(t_out.timestamp()))  # type: ignore[attr-defined]
        for vid, pid, ven, t_in, t_out, deleted in result
        if not deleted
    ]


def person_visits(db: Database, persons: Sequence[str], start: int, end: int, max_stay: int) -> list[VisitRow]:
    """Visits of ``persons`` that may overlap ``[start, end]`` (a visit lasts at most ``max_stay``)."""
    if not persons:
        return []
    rows = db.execute(
        "SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits FINAL "
        "WHERE person_id IN %(persons)s AND t_in >= %(lo)s AND t_in <= %(hi)s",
        {"persons": tuple(persons), "lo": ts(start - max_stay), "hi": ts(end)},
    )
    return [v for v in _rows(rows) if v.t_out >= start]


def venue_visits(db: Database, spans: Sequence[VisitRow], window: int, max_stay: int) -> list[VisitRow]:
    """Everyone's visits at the venues of ``spans`` that may meet them within ``window`` seconds.

    One query for all spans: an OR of (venue_id, t_in range) conditions, each a primary-key range of
    ``visits_by_venue``.
    """
    if not spans:
        return []
    ranges: dict[str, tuple[int, int]] = {}
    for a in spans:
        lo, hi = a.t_in - window - max_stay, a.t_out + window
        old = ranges.get(a.venue_id)
        ranges[a.venue_id] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
    clauses, params = [], {}
    for i, (venue, (lo, hi)) in enumerate(sorted(ranges.items())):
        clauses.append(f"(venue_id = %(v{i})s AND t_in >= %(lo{i})s AND t_in <= %(hi{i})s)")
        params.update({f"v{i}": venue, f"lo{i}": ts(lo), f"hi{i}": ts(hi)})
    rows = db.execute(
        "SELECT visit_id, person_id, venue_id, t_in, t_out, deleted FROM visits_by_venue FINAL WHERE "
        + " OR ".join(clauses),
        params,
    )
    return _rows(rows)


def venue_wards(db: Database, venue_ids: Iterable[str]) -> dict[str, str]:
    ids = tuple(sorted(set(venue_ids)))
    if not ids:
        return {}
    rows = db.execute("SELECT venue_id, ward_code FROM venues FINAL WHERE venue_id IN %(ids)s", {"ids": ids})
    return {str(v): str(w) for v, w in rows}
