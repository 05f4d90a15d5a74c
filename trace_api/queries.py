"""ClickHouse reads for tracing: primary-key range reads only, portable to 18.16 and current releases.

The tables are ReplacingMergeTree(version): until a merge, a visit may have several versions. The
reads take every version in the key ranges (without FINAL, which on 18.16 merges in one stream and
cost ~5x the read), let the server keep the highest version of each visit (``argMax`` grouped by
the visit's sorting key, identical in every version), and only then filter on ``deleted`` and
``t_out``: a filter on a non-key column before that could drop a visit's latest version and keep an
older one. ``WHERE`` holds sorting-key columns only.
``visits`` is sorted by (person_id, t_in): a person's visits are one key range. ``visits_by_venue``
is sorted by (venue_id, t_in): the co-visitors of a venue around a time are one key range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from truyvet.events import Visit
from truyvet.schema.databases import personal
from truyvet.schema.db import Database

# Times as epoch seconds straight from the server: no datetime objects per row on the client.
LATEST = (
    "SELECT visit_id, person_id, venue_id, toUInt32(t_in), toUInt32(argMax(t_out, version)) AS latest_out "
    "FROM {table} {prewhere}WHERE {where} GROUP BY visit_id, person_id, venue_id, t_in "
    "HAVING argMax(deleted, version) = 0 AND {having}"
)
# Key ranges select whole granules: most rows read belong to other venues. One set look-up per row in
# PREWHERE drops them before the (dearer) range conditions and the rest of the columns are looked at;
# the range conditions stay in WHERE, where the primary-key analysis reads them.
VENUE_PREWHERE = "PREWHERE venue_id IN %(venues)s "


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _rows(result: Iterable[tuple[Any, ...]]) -> list[Visit]:
    return [Visit(*row) for row in result]


def person_visits(db: Database, persons: Sequence[str], start: int, end: int, max_stay: int) -> list[Visit]:
    """Visits of ``persons`` that may overlap ``[start, end]`` (a visit lasts at most ``max_stay`` s)."""
    if not persons:
        return []
    sql = LATEST.format(
        table="visits",
        prewhere="",
        where="person_id IN %(persons)s AND t_in >= %(lo)s AND t_in <= %(hi)s",
        having="latest_out >= %(start)s",
    )
    params = {"persons": tuple(persons), "lo": ts(start - max_stay), "hi": ts(end), "start": start}
    return _rows(db.execute(sql, params))


def venue_ranges(spans: Sequence[Visit], window: int, max_stay: int) -> list[tuple[str, int, int]]:
    """Per venue, the disjoint ``t_in`` ranges where a visit meeting ``spans`` within ``window`` starts."""
    wanted: dict[str, list[tuple[int, int]]] = {}
    for a in spans:
        wanted.setdefault(a.venue_id, []).append((a.t_in - window - max_stay, a.t_out + window))
    merged: list[tuple[str, int, int]] = []
    for venue in sorted(wanted):
        ranges = sorted(wanted[venue])
        lo, hi = ranges[0]
        for r_lo, r_hi in ranges[1:]:
            if r_lo <= hi + 1:
                hi = max(hi, r_hi)
            else:
                merged.append((venue, lo, hi))
                lo, hi = r_lo, r_hi
        merged.append((venue, lo, hi))
    return merged


# Past this many (venue, time) ranges one OR of ranges costs more in primary-key analysis than it saves
# (18.16 evaluates the whole OR per index mark: 1,000 ranges took seconds). Then the read is one
# ``venue_id IN set`` per day (the tables' daily partitions): the key analysis stays a few set
# look-ups, and a venue is read only in the days its ranges touch (a range spans about a day and a
# half, the whole read four or five days); it is narrowed to the exact ranges here.
MAX_OR_RANGES = 64
DAY = 86400


def _venue_days(ranges: Sequence[tuple[str, int, int]]) -> tuple[list[str], dict[str, Any]]:
    """Per UTC day (one partition), ``venue_id IN`` the venues whose ranges touch it, within their span."""
    days: dict[int, tuple[set[str], int, int]] = {}
    for venue, lo, hi in ranges:
        for day in range(lo // DAY, hi // DAY + 1):
            venues, d_lo, d_hi = days.get(day, (set(), hi, lo))
            venues.add(venue)
            days[day] = (venues, min(d_lo, max(lo, day * DAY)), max(d_hi, min(hi, day * DAY + DAY - 1)))
    clauses, params = [], {}
    for i, day in enumerate(sorted(days)):
        venues, lo, hi = days[day]
        clauses.append(f"(venue_id IN %(d{i})s AND t_in >= %(dlo{i})s AND t_in <= %(dhi{i})s)")
        params.update({f"d{i}": tuple(sorted(venues)), f"dlo{i}": ts(lo), f"dhi{i}": ts(hi)})
    return clauses, params


def venue_visits(db: Database, spans: Sequence[Visit], window: int, max_stay: int) -> list[Visit]:
    """Everyone's visits at the venues of ``spans`` that may meet them within ``window`` seconds.

    One query for all spans: an OR of (venue_id, t_in range) conditions, each a primary-key range of
    ``visits_by_venue``; or, for many ranges, ``venue_id IN (...)`` per day, narrowed to the exact
    ranges here. Either way a visit ending before the earliest
    ``a.t_in - window`` of its venue cannot meet any span there and is dropped by the server.
    """
    if not spans:
        return []
    ranges = venue_ranges(spans, window, max_stay)
    by_venue: dict[str, list[tuple[int, int]]] = {}
    for venue, lo, hi in ranges:
        by_venue.setdefault(venue, []).append((lo, hi))
    names = list(by_venue)
    # A range's lo is min(a.t_in) - window - max_stay of the spans merged into it.
    params: dict[str, Any] = {
        "venues": tuple(names),
        "names": names,
        "ends": [by_venue[v][0][0] + max_stay for v in names],
    }
    having = "latest_out >= transform(venue_id, %(names)s, %(ends)s, toUInt32(0))"
    if len(ranges) <= MAX_OR_RANGES:
        clauses = []
        for i, (venue, lo, hi) in enumerate(ranges):
            clauses.append(f"(venue_id = %(v{i})s AND t_in >= %(lo{i})s AND t_in <= %(hi{i})s)")
            params.update({f"v{i}": venue, f"lo{i}": ts(lo), f"hi{i}": ts(hi)})
        where = "(" + " OR ".join(clauses) + ")"
        sql = LATEST.format(table="visits_by_venue", prewhere=VENUE_PREWHERE, where=where, having=having)
        return _rows(db.execute(sql, params))
    clauses, day_params = _venue_days(ranges)
    params.update(day_params)
    where = "(" + " OR ".join(clauses) + ")"
    sql = LATEST.format(table="visits_by_venue", prewhere=VENUE_PREWHERE, where=where, having=having)
    rows = _rows(db.execute(sql, params))
    return [v for v in rows if any(lo <= v.t_in <= hi for lo, hi in by_venue[v.venue_id])]


def venues(db: Database, venue_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """venue_id -> {name, category, ward_code, address} for the registered ones among ``venue_ids``."""
    ids = tuple(sorted(set(venue_ids)))
    if not ids:
        return {}
    rows = db.execute(
        "SELECT venue_id, name, category, ward_code, address FROM venues FINAL WHERE venue_id IN %(ids)s",
        {"ids": ids},
    )
    return {
        str(v): {"name": str(n), "category": str(c), "ward_code": str(w), "address": str(a)} for v, n, c, w, a in rows
    }


def _venue_column(db: Database, venue_ids: Iterable[str], column: str) -> dict[str, str]:
    """venue_id -> one column: half the read of :func:`venues` (venues are random 8192-row granules)."""
    ids = tuple(sorted(set(venue_ids)))
    if not ids:
        return {}
    rows = db.execute(f"SELECT venue_id, {column} FROM venues FINAL WHERE venue_id IN %(ids)s", {"ids": ids})
    return {str(v): str(value) for v, value in rows}


def venue_categories(db: Database, venue_ids: Iterable[str]) -> dict[str, str]:
    return _venue_column(db, venue_ids, "category")


PERSONAL_FIELDS = ("full_name", "birth_date", "sex", "address")


def person_details(db: Database, persons: Iterable[str]) -> dict[str, dict[str, Any]]:
    """person_id -> {full_name, birth_date, sex, address, residence_ward_code} from the restricted store.

    The store is ``<db>_personal.person_details``, filled by ingest from CCCD scans and printed cards.
    """
    ids = tuple(sorted(set(persons)))
    if not ids:
        return {}
    rows = db.execute(
        "SELECT person_id, full_name, birth_date, sex, address, residence_ward_code "
        f"FROM {personal(db.name, 'person_details')} FINAL WHERE person_id IN %(ids)s",
        {"ids": ids},
    )
    return {
        str(p): {
            "full_name": str(n),
            "birth_date": str(b),
            "sex": str(s),
            "address": str(a),
            "residence_ward_code": str(w),
        }
        for p, n, b, s, a, w in rows
    }


def case_period(db: Database, case_id: str) -> tuple[str, int, int] | None:
    """(person_id, infectious_from, infectious_to) of a registered case, times as epoch seconds."""
    rows = db.execute(
        "SELECT person_id, infectious_from, infectious_to FROM cases FINAL WHERE case_id = %(c)s", {"c": case_id})
    if not rows:
        return None
    person, start, end = rows[0]
    return str(person), int(start.timestamp()), int(end.timestamp())


def insert_case(db: Database, *, case_id: str, person_id: str, infectious_from: datetime, infectious_to: datetime,
                label: str, created_by: str) -> None:
    db.insert("cases", ["case_id", "person_id", "infectious_from", "infectious_to", "label", "created_by",
                        "created_at"],
              [(case_id, person_id, infectious_from, infectious_to, label, created_by,
                datetime.now(UTC).replace(microsecond=0))])


def ward_names(db: Database) -> dict[str, str]:
    """Code -> name of every ward and commune, in code order."""
    return {str(c): str(n) for c, n in db.execute(
        "SELECT code, name FROM units FINAL WHERE level IN ('ward', 'commune') ORDER BY code")}


def venue_labels(db: Database, venue_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """venue_id -> (name, category, ward_code)."""
    ids = tuple(sorted(set(venue_ids)))
    if not ids:
        return {}
    rows = db.execute("SELECT venue_id, name, category, ward_code FROM venues FINAL WHERE venue_id IN %(ids)s",
                      {"ids": ids})
    return {str(v): (str(n), str(c), str(w)) for v, n, c, w in rows}


def alerted_venues(db: Database, ward_code: str, venue_ids: Iterable[str]) -> set[str]:
    """Those of ``venue_ids`` named by an alert addressed to ``ward_code`` (where its contacts were exposed)."""
    ids = tuple(sorted(set(venue_ids)))
    if not ids:
        return set()
    rows = db.execute("SELECT DISTINCT venue_id FROM alerts WHERE ward_code = %(w)s AND venue_id IN %(ids)s",
                      {"w": ward_code, "ids": ids})
    return {str(v) for (v,) in rows}


def detail_conflicts(db: Database, ward_code: str | None, limit: int) -> list[dict[str, Any]]:
    """Cards that disagreed with stored personal details, newest first; ``ward_code``: those where either
    the stored residence ward or the card's is that ward (None: all)."""
    columns = ["person_id", "full_name", "birth_date", "sex", "address", "residence_ward_code", "stored_ward_code",
               "reported_by", "received_at"]
    where = "" if ward_code is None else "WHERE stored_ward_code = %(w)s OR residence_ward_code = %(w)s"
    table = personal(db.name, "person_details_conflicts")
    rows = db.execute(f"SELECT {', '.join(columns)} FROM {table} {where} "
                      "ORDER BY received_at DESC, person_id LIMIT %(n)s", {"w": ward_code or "", "n": limit})
    return [dict(zip(columns, row, strict=True)) for row in rows]


def recent_cases(db: Database, limit: int) -> list[tuple[str, str, str, datetime, datetime, datetime]]:
    """The most recently registered cases: (case_id, person_id, label, infectious_from, infectious_to, created_at)."""
    rows = db.execute(
        "SELECT case_id, person_id, label, infectious_from, infectious_to, created_at FROM cases FINAL "
        "ORDER BY created_at DESC, case_id LIMIT %(n)s", {"n": limit})
    return [(str(c), str(p), str(lb), f, t, at) for c, p, lb, f, t, at in rows]
