"""Rollout coverage (docs/api.md ``GET /v1/reports/coverage``): per ward and category, computed in ClickHouse;
the service under trace_api/routes/reports.py.

Definitions (one reporting day = ``[date 00:00, date+1 00:00)`` at ``utc_offset_minutes``, default
+07:00, Vietnam time):
- ``required``: establishments on the ward's current roster (``truyvet roster load``);
- ``registered``: venues registered before the end of the day, counted by their current ward and category;
- ``active``: venues with at least one scan that day;
- ``scans``: the day's scans that became part of a visit: the distinct non-empty ``source_in``
  (scan time ``t_in``) and ``source_out`` (scan time ``t_out``) ids of the latest, non-deleted
  version of each visit. Scans dropped as duplicates or rejected are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta

from truyvet.auth import Principal, Role
from truyvet.roster import CURRENT
from truyvet.schema.db import Database
from truyvet.web import ApiError

VIETNAM_OFFSET_MINUTES = 7 * 60
MAX_TREND_DAYS = 62
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
READERS = (Role.viewer, Role.epidemiologist, Role.health_center)

_COVERAGE_SQL = f"""
SELECT ward_code, category, sum(required), sum(registered), sum(active), sum(scans) FROM (
    SELECT ward_code, category, count() AS required, toUInt64(0) AS registered, toUInt64(0) AS active,
           toUInt64(0) AS scans
    FROM {CURRENT} GROUP BY ward_code, category
  UNION ALL
    SELECT ward_code, category, toUInt64(0), count(), toUInt64(0), toUInt64(0)
    FROM (SELECT ward_code, category, created_at FROM venues FINAL)
    WHERE created_at < %(end)s GROUP BY ward_code, category
  UNION ALL
    SELECT ward_code, category, toUInt64(0), toUInt64(0), count(), sum(venue_scans) FROM (
        SELECT venue_id, uniqExact(src) AS venue_scans FROM (
            SELECT venue_id, t_in, t_out, source_in, source_out, deleted FROM visits_by_venue FINAL
            WHERE t_in >= %(lo)s AND t_in < %(end)s
        ) ARRAY JOIN [source_in, source_out] AS src, [t_in, t_out] AS scan_at
        WHERE deleted = 0 AND src != '' AND scan_at >= %(start)s AND scan_at < %(end)s
        GROUP BY venue_id
    ) AS per_venue
    ANY INNER JOIN (SELECT venue_id, ward_code, category FROM venues FINAL) AS venue USING venue_id
    GROUP BY ward_code, category
)
{{where}}
GROUP BY ward_code, category
ORDER BY ward_code, category
"""


@dataclass(frozen=True)
class CoverageRow:
    ward_code: str
    ward_name: str
    category: str
    required: int
    registered: int
    active: int
    scans: int


@dataclass(frozen=True)
class Totals:
    required: int
    registered: int
    active: int
    scans: int


def day_bounds(day: date, utc_offset_minutes: int) -> tuple[datetime, datetime]:
    """UTC start and end of the local calendar ``day``."""
    start = datetime.combine(day, time(), UTC) - timedelta(minutes=utc_offset_minutes)
    return start, start + timedelta(days=1)


def ward_names(db: Database) -> dict[str, str]:
    return {str(c): str(n) for c, n in db.execute(
        "SELECT code, name FROM units FINAL WHERE level IN ('ward', 'commune')")}


def coverage(db: Database, day: date, *, max_stay_minutes: int,
             utc_offset_minutes: int = VIETNAM_OFFSET_MINUTES, wards: tuple[str, ...] | None = None,
             names: dict[str, str] | None = None) -> list[CoverageRow]:
    """The coverage of ``day`` per (ward, category), only pairs with something to report.

    :param wards: restrict to these ward codes (a health center's own ward); ``None`` for all.
    """
    start, end = day_bounds(day, utc_offset_minutes)
    lo = start - timedelta(minutes=max_stay_minutes)
    params: dict[str, object] = {"start": start, "end": end, "lo": lo}
    where = ""
    if wards is not None:
        if not wards:
            return []
        where, params["wards"] = "WHERE ward_code IN %(wards)s", tuple(wards)
    names = ward_names(db) if names is None else names
    return [CoverageRow(str(w), names.get(str(w), ""), str(c), int(req), int(reg), int(act), int(sc))
            for w, c, req, reg, act, sc in db.execute(_COVERAGE_SQL.format(where=where), params)]


def totals(rows: list[CoverageRow]) -> Totals:
    return Totals(sum(r.required for r in rows), sum(r.registered for r in rows),
                  sum(r.active for r in rows), sum(r.scans for r in rows))


def ward_scope(principal: Principal, ward_code: str | None) -> tuple[str, ...] | None:
    """The wards a caller may see: a health center only its own (asking for another is 403)."""
    if principal.role == Role.health_center:
        if ward_code and ward_code != principal.ward_code:
            raise ApiError(403, "forbidden", "a health center token sees only its own ward")
        return (principal.ward_code,)
    return (ward_code,) if ward_code else None


def parse_day(value: str | None, offset: int) -> date:
    if value is None:
        return (datetime.now(UTC) + timedelta(minutes=offset)).date()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid_request", "date is not YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:  # ClickHouse DateTime ends in 2106; a day outside is a typo
        raise ApiError(422, "invalid_request", f"date must lie between {FIRST_DAY} and {LAST_DAY}")
    return day


_TREND_REGISTERED_SQL = """
SELECT intDiv(toUInt32(created_at) + %(offset)s, 86400) AS day, count()
FROM (SELECT ward_code, created_at FROM venues FINAL)
WHERE created_at < %(end)s {and_wards}
GROUP BY day
"""

# A scan counts on its local day, from a visit that began at most max_stay before that day (as in
# _COVERAGE_SQL for one day). ALL, not ANY: current ClickHouse's ANY INNER JOIN keeps one row per key on
# both sides, and a venue has a row per day here (venues FINAL has one row per venue).
_TREND_SCANS_SQL = """
SELECT day, count(), sum(venue_scans) FROM (
    SELECT venue_id, day, uniqExact(src) AS venue_scans FROM (
        SELECT venue_id, src, t_in, intDiv(toUInt32(scan_at) + %(offset)s, 86400) AS day FROM (
            SELECT venue_id, t_in, t_out, source_in, source_out, deleted FROM visits_by_venue FINAL
            WHERE t_in >= %(lo)s AND t_in < %(end)s
        ) ARRAY JOIN [source_in, source_out] AS src, [t_in, t_out] AS scan_at
        WHERE deleted = 0 AND src != '' AND scan_at >= %(start)s AND scan_at < %(end)s
    )
    WHERE toUInt32(t_in) + %(stay)s + %(offset)s >= day * 86400
    GROUP BY venue_id, day
) AS per_venue
ALL INNER JOIN (SELECT venue_id, ward_code FROM venues FINAL) AS venue USING venue_id
{where}
GROUP BY day
"""


def trend(db: Database, first: date, last: date, *, max_stay_minutes: int, utc_offset_minutes: int,
          wards: tuple[str, ...] | None) -> list[dict[str, object]]:
    """The totals of :func:`coverage` for each day of ``[first, last]``, in three queries whatever the
    number of days (one coverage query a day took 10 s for 53 days on a loaded machine)."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if wards is not None and not wards:
        return [{"date": d.isoformat(), **asdict(Totals(0, 0, 0, 0))} for d in days]
    start, _ = day_bounds(first, utc_offset_minutes)
    _, end = day_bounds(last, utc_offset_minutes)
    params: dict[str, object] = {"start": start, "end": end, "lo": start - timedelta(minutes=max_stay_minutes),
                                 "offset": utc_offset_minutes * 60, "stay": max_stay_minutes * 60}
    where = and_wards = ""
    if wards is not None:
        params["wards"] = tuple(wards)
        where, and_wards = "WHERE ward_code IN %(wards)s", "AND ward_code IN %(wards)s"
    required = int(db.execute(f"SELECT count() FROM {CURRENT} {where}", params)[0][0])
    epoch = date(1970, 1, 1)
    registered_by_day = {epoch + timedelta(days=int(d)): int(n)
                         for d, n in db.execute(_TREND_REGISTERED_SQL.format(and_wards=and_wards), params)}
    scans_by_day = {epoch + timedelta(days=int(d)): (int(a), int(n))
                    for d, a, n in db.execute(_TREND_SCANS_SQL.format(where=where), params)}
    registered = sum(n for d, n in registered_by_day.items() if d < first)
    out = []
    for day in days:
        registered += registered_by_day.get(day, 0)
        active, scans = scans_by_day.get(day, (0, 0))
        out.append({"date": day.isoformat(), **asdict(Totals(required, registered, active, scans))})
    return out
