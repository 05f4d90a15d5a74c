"""Compliance by establishment (docs/api.md ``GET /v1/reports/compliance``): which roster rows scan.

Each establishment of a ward's current roster (``truyvet roster load``) gets, for a local day ``date``:
- ``not_registered``: no venue registered by the end of ``date`` is linked to it;
- ``silent``: linked venues exist, but none has a scan in the ``silent_days`` days up to and including
  ``date`` (default 3, ``TRACE_COMPLIANCE_SILENT_DAYS`` or ``?silent_days=``);
- ``scanning``: a linked venue has a scan in those days.

Linking (the matching rule, docs/compliance.md): a venue registered with ``roster_id`` belongs to
that row. Any other venue belongs to the roster row of the *same ward* whose name and address equal the
venue's once both are compared by :func:`truyvet.roster.match_key` (no diacritics, đ = d, no case, no
punctuation, single spaces); when the venue has no address, a unique name match in the ward is enough.
Anything else (a different word, a missing house number) stays unmatched: a near miss is reported as
``not_registered`` rather than credited to the wrong establishment.

A scan is an accepted ``in`` or ``out`` scan that became part of a visit (as in coverage reports).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from trace_api.reports import day_bounds
from truyvet.roster import Establishment, current_roster, match_key
from truyvet.schema.db import Database

STATUSES = ("not_registered", "silent", "scanning")
DAY = 86400

_SCAN_DAYS_SQL = """
SELECT venue_id, intDiv(toUInt32(scan_at) + %(offset)s, 86400) AS day FROM (
    SELECT venue_id, t_in, t_out, source_in, source_out, deleted FROM visits_by_venue FINAL
    WHERE venue_id IN %(venues)s AND t_in >= %(lo)s AND t_in < %(end)s
) ARRAY JOIN [source_in, source_out] AS src, [t_in, t_out] AS scan_at
WHERE deleted = 0 AND src != '' AND scan_at >= %(start)s AND scan_at < %(end)s
GROUP BY venue_id, day
"""

_LAST_SCAN_SQL = """
SELECT venue_id, max(t_in) FROM visits_by_venue FINAL
WHERE venue_id IN %(venues)s AND t_in < %(end)s AND deleted = 0 AND source_in != ''
GROUP BY venue_id
"""


@dataclass(frozen=True)
class VenueRow:
    venue_id: str
    ward_code: str
    category: str
    name: str
    address: str
    created_at: datetime
    roster_id: str  # "" when registered without one


@dataclass
class EstablishmentStatus:
    roster_id: str
    ward_code: str
    category: str
    name: str
    address: str
    status: str
    venue_ids: list[str] = field(default_factory=list)
    last_scan_date: str | None = None


def link(roster: list[Establishment], venues: list[VenueRow]) -> dict[str, list[str]]:
    """roster_id -> ids of the venues that belong to it (the matching rule in the module's docstring)."""
    ids = {e.roster_id for e in roster}
    by_name_address: dict[tuple[str, str, str], str] = {}
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in roster:
        by_name_address.setdefault((e.ward_code, match_key(e.name), match_key(e.address)), e.roster_id)
        by_name[(e.ward_code, match_key(e.name))].append(e.roster_id)
    linked: dict[str, list[str]] = defaultdict(list)
    for v in venues:
        if v.roster_id:
            if v.roster_id in ids:
                linked[v.roster_id].append(v.venue_id)
            continue
        found = by_name_address.get((v.ward_code, match_key(v.name), match_key(v.address)))
        if found is None and not v.address.strip():
            candidates = by_name.get((v.ward_code, match_key(v.name)), [])
            found = candidates[0] if len(candidates) == 1 else None
        if found is not None:
            linked[found].append(v.venue_id)
    return linked


def venues_of(db: Database, wards: tuple[str, ...] | None, before: datetime) -> list[VenueRow]:
    where, params = "WHERE created_at < %(before)s", {"before": before}
    if wards is not None:
        where += " AND ward_code IN %(wards)s"
        params["wards"] = tuple(wards)  # type: ignore[assignment]
    rows = db.execute("SELECT venue_id, ward_code, category, name, address, created_at FROM "
                      f"(SELECT venue_id, ward_code, category, name, address, created_at FROM venues FINAL) {where}",
                      params)
    ids = tuple(str(r[0]) for r in rows)
    links: dict[str, str] = {}
    if ids:
        links = {str(v): str(r) for v, r in db.execute(
            "SELECT venue_id, roster_id FROM venue_roster FINAL WHERE venue_id IN %(ids)s", {"ids": ids})}
    return [VenueRow(str(v), str(w), str(c), str(n), str(a), t.astimezone(UTC), links.get(str(v), ""))
            for v, w, c, n, a, t in rows]


def scan_days(db: Database, venue_ids: list[str], first: date, last: date, *, utc_offset_minutes: int,
              max_stay_minutes: int) -> dict[str, set[date]]:
    """venue_id -> local days in ``[first, last]`` with at least one scan."""
    if not venue_ids:
        return {}
    start, _ = day_bounds(first, utc_offset_minutes)
    _, end = day_bounds(last, utc_offset_minutes)
    rows = db.execute(_SCAN_DAYS_SQL, {"venues": tuple(venue_ids), "start": start, "end": end,
                                       "lo": start - timedelta(minutes=max_stay_minutes),
                                       "offset": utc_offset_minutes * 60})
    out: dict[str, set[date]] = defaultdict(set)
    for venue_id, day in rows:
        out[str(venue_id)].add(date(1970, 1, 1) + timedelta(days=int(day)))
    return out


def last_scans(db: Database, venue_ids: list[str], end: datetime, utc_offset_minutes: int) -> dict[str, date]:
    if not venue_ids:
        return {}
    rows = db.execute(_LAST_SCAN_SQL, {"venues": tuple(venue_ids), "end": end})
    return {str(v): (t.astimezone(UTC) + timedelta(minutes=utc_offset_minutes)).date() for v, t in rows
            if t.timestamp() > 0}


def status_of(venue_ids: list[str], days: dict[str, set[date]], day: date, silent_days: int) -> str:
    if not venue_ids:
        return "not_registered"
    first = day - timedelta(days=silent_days - 1)
    if any(first <= d <= day for v in venue_ids for d in days.get(v, ())):
        return "scanning"
    return "silent"


def compliance(db: Database, day: date, *, wards: tuple[str, ...] | None, category: str | None,
               silent_days: int, utc_offset_minutes: int, max_stay_minutes: int) -> list[EstablishmentStatus]:
    """Every establishment of the wards' rosters (optionally one category) with its status on ``day``."""
    roster = [e for e in current_roster(db, wards) if category is None or e.category.value == category]
    _, end = day_bounds(day, utc_offset_minutes)
    venues = venues_of(db, wards, end)
    linked = link(roster, venues)
    venue_ids = sorted({v for ids in linked.values() for v in ids})
    days = scan_days(db, venue_ids, day - timedelta(days=silent_days - 1), day,
                     utc_offset_minutes=utc_offset_minutes, max_stay_minutes=max_stay_minutes)
    last = last_scans(db, venue_ids, end, utc_offset_minutes)
    out = []
    for e in roster:
        ids = sorted(linked.get(e.roster_id, []))
        dates = [last[v] for v in ids if v in last]
        out.append(EstablishmentStatus(e.roster_id, e.ward_code, e.category.value, e.name, e.address,
                                       status_of(ids, days, day, silent_days), ids,
                                       max(dates).isoformat() if dates else None))
    return out


def trend(db: Database, last: date, days: int, *, wards: tuple[str, ...] | None, category: str | None,
          silent_days: int, utc_offset_minutes: int, max_stay_minutes: int) -> list[dict[str, object]]:
    """Per day of the ``days`` days ending ``last``: how many establishments were in each status.

    Venues count from the day they were registered; the roster is today's (a ward's earlier lists are
    replaced by its latest load)."""
    roster = [e for e in current_roster(db, wards) if category is None or e.category.value == category]
    _, end = day_bounds(last, utc_offset_minutes)
    venues = venues_of(db, wards, end)
    linked = link(roster, venues)
    registered = {v.venue_id: v.created_at for v in venues}
    venue_ids = sorted({v for ids in linked.values() for v in ids})
    first = last - timedelta(days=days - 1)
    scanned = scan_days(db, venue_ids, first - timedelta(days=silent_days - 1), last,
                        utc_offset_minutes=utc_offset_minutes, max_stay_minutes=max_stay_minutes)
    per_row = [linked.get(e.roster_id, []) for e in roster]
    out: list[dict[str, object]] = []
    for i in range(days):
        day = first + timedelta(days=i)
        _, day_end = day_bounds(day, utc_offset_minutes)
        counts = dict.fromkeys(STATUSES, 0)
        for venues_of_row in per_row:
            ids = [v for v in venues_of_row if registered[v] < day_end]
            counts[status_of(ids, scanned, day, silent_days)] += 1
        out.append({"date": day.isoformat(), **counts})
    return out


def summary(rows: list[EstablishmentStatus], units: dict[str, tuple[str, str, str]], level: str,
            by_category: bool = False) -> list[dict[str, object]]:
    """Counts per status rolled up to ``level`` (ward, district, province) of the units' hierarchy.

    :param units: code -> (name, level, parent_code) of every loaded unit.
    """
    want = ("ward", "commune") if level == "ward" else (level,)

    def ancestor(code: str) -> str:
        for _ in range(10):  # a unit file with a parent loop must not hang the report
            if code not in units:
                return ""
            if units[code][1] in want:
                return code
            code = units[code][2]
        return ""

    groups: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        key = (ancestor(r.ward_code), r.category if by_category else "")
        counts = groups.setdefault(key, dict.fromkeys(("establishments", *STATUSES), 0))
        counts["establishments"] += 1
        counts[r.status] += 1
    out = []
    for (code, cat), counts in sorted(groups.items()):
        item: dict[str, object] = {"code": code, "name": units.get(code, ("", "", ""))[0], "level": level}
        if by_category:
            item["category"] = cat
        item.update(counts)
        item["scanning_share"] = round(counts["scanning"] / counts["establishments"], 4)
        out.append(item)
    return out


def unit_tree(db: Database) -> dict[str, tuple[str, str, str]]:
    return {str(c): (str(n), str(lv), str(p)) for c, n, lv, p in
            db.execute("SELECT code, name, level, parent_code FROM units FINAL")}
