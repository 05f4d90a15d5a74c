"""The coverage query equals a direct count, on ClickHouse 18.16 (server) and current ClickHouse (chdb).

Each test uses its own ward codes, so other tests' venues and scans in the same database do not count.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from trace_api.reports import coverage, totals, trend
from truyvet.events import Category
from truyvet.roster import RosterError, load_roster

VISIT_COLUMNS = ["visit_id", "person_id", "venue_id", "t_in", "t_out", "source_in", "source_out", "version",
                 "deleted", "written_at"]
VENUE_COLUMNS = ["venue_id", "name", "category", "ward_code", "address", "phone", "default_stay_minutes",
                 "valid_from", "valid_until", "created_at", "updated_at"]
DAY = date(2021, 7, 14)
DAY_START = datetime(2021, 7, 13, 17, tzinfo=UTC)  # 00:00 in Vietnam (UTC+7)
DAY_END = DAY_START + timedelta(days=1)


def _wards(db, n: int) -> list[str]:
    codes = [f"T{secrets.token_hex(4)}" for _ in range(n)]
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("units", ["code", "name", "level", "parent_code", "loaded_at"],
              [(c, f"Phường thử {c}", "ward", "058", now) for c in codes])
    return codes


def _roster_file(tmp_path: Path, rows: list[tuple[str, str, str, str]], name: str) -> Path:
    path = tmp_path / name
    lines = ["ward_code,category,name,address"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_coverage_equals_a_direct_count(any_db, tmp_path: Path) -> None:
    db, rnd = any_db, random.Random(7)
    wards = _wards(db, 3)
    cats = [Category.karaoke.value, Category.school.value, Category.market_shop.value]

    # Roster: a first load, then a second load replacing the first two wards' lists (the third keeps its own).
    old = [(w, rnd.choice(cats), f"Cơ sở cũ {i}", "") for i, w in enumerate(wards * 4)]
    load_roster(db, _roster_file(tmp_path, old, "old.csv"))
    new = [(w, rnd.choice(cats), f"Cơ sở {i}", f"Tổ {i}") for i, w in enumerate(wards[:2] * 7)]
    assert load_roster(db, _roster_file(tmp_path, new, "new.csv")) == {wards[0]: 7, wards[1]: 7}
    current = new + [r for r in old if r[0] == wards[2]]

    # Venues: some registered after the day (not yet registered that day), one re-registered in another ward.
    venues, rows = {}, []
    for i in range(30):
        ward, cat = rnd.choice(wards), rnd.choice(cats)
        created = DAY_START + timedelta(hours=rnd.choice([-48, -1, 3, 23, 25]))
        vid = f"v{secrets.token_hex(6)}"
        rows.append((vid, f"Quán {i}", cat, ward, "", "", 0, created, created, created, created))
        venues[vid] = (ward, cat, created)
    moved = next(iter(venues))
    w, c, created = venues[moved]
    later = created + timedelta(minutes=5)
    rows.append((moved, "Quán chuyển", cats[0], wards[2], "", "", 0, created, created, created, later))
    venues[moved] = (wards[2], cats[0], created)
    db.insert("venues", VENUE_COLUMNS, rows)

    # Visits around the day's bounds: in/out scans, orphan outs, deleted visits, superseded versions.
    scans: dict[str, set[str]] = {}
    visit_rows = []
    for i in range(400):
        vid = rnd.choice(list(venues))
        t_in = DAY_START + timedelta(minutes=rnd.randint(-20 * 60, 26 * 60))
        t_out = t_in + timedelta(minutes=rnd.randint(1, 180))
        src_in = "" if rnd.random() < 0.1 else f"s{i}i"
        src_out = f"s{i}o" if (rnd.random() < 0.5 or not src_in) else ""
        deleted = rnd.random() < 0.1
        visit_id = f"x{secrets.token_hex(8)}"
        # an older version with other times: FINAL must pick version 2
        stale_out = t_out + timedelta(hours=5)
        visit_rows.append((visit_id, f"p{i}", vid, t_in, stale_out, src_in, f"old{i}", 1, 0, t_in))
        visit_rows.append((visit_id, f"p{i}", vid, t_in, t_out, src_in, src_out, 2, int(deleted), t_in))
        if deleted:
            continue
        for src, at in ((src_in, t_in), (src_out, t_out)):
            if src and DAY_START <= at < DAY_END:
                scans.setdefault(vid, set()).add(src)
    db.insert("visits", VISIT_COLUMNS, visit_rows)

    expected: dict[tuple[str, str], list[int]] = {}
    for ward, cat, _, _ in current:
        expected.setdefault((ward, cat), [0, 0, 0, 0])[0] += 1
    for vid, (ward, cat, created) in venues.items():
        if created < DAY_END:
            expected.setdefault((ward, cat), [0, 0, 0, 0])[1] += 1
        if scans.get(vid):
            counts = expected.setdefault((ward, cat), [0, 0, 0, 0])
            counts[2] += 1
            counts[3] += len(scans[vid])
    got = {(r.ward_code, r.category): [r.required, r.registered, r.active, r.scans]
           for r in coverage(db, DAY, max_stay_minutes=12 * 60, wards=tuple(wards))}
    assert got == expected
    assert sum(c[3] for c in got.values()) > 50 and sum(c[2] for c in got.values()) > 5

    only = coverage(db, DAY, max_stay_minutes=12 * 60, wards=(wards[1],))
    assert {(r.ward_code, r.category) for r in only} == {k for k in expected if k[0] == wards[1]}
    assert all(r.ward_name == f"Phường thử {wards[1]}" for r in only)

    # The trend (three queries for any number of days) gives each day the totals of that day's report:
    # also with a maximum stay shorter than many of these visits, with one ward, and at another offset.
    first, last = DAY - timedelta(days=2), DAY + timedelta(days=1)
    for stay, scope, offset in ((12 * 60, tuple(wards), 420), (60, tuple(wards), 420), (60, (wards[1],), 420),
                                (90, tuple(wards), -300), (60, (), 420)):
        series = trend(db, first, last, max_stay_minutes=stay, utc_offset_minutes=offset, wards=scope)
        assert [d["date"] for d in series] == [(first + timedelta(days=i)).isoformat() for i in range(4)]
        for item in series:
            day_report = coverage(db, date.fromisoformat(str(item["date"])), max_stay_minutes=stay,
                                  utc_offset_minutes=offset, wards=scope)
            assert item == {"date": item["date"], **asdict(totals(day_report))}, (stay, scope, offset)
    assert sum(int(d["scans"]) for d in trend(db, first, last, max_stay_minutes=60, utc_offset_minutes=420,
                                                wards=tuple(wards))) > 50


def test_roster_with_an_unknown_ward_is_refused(any_db, tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="not among the loaded wards"):
        load_roster(any_db, _roster_file(tmp_path, [("NOPE-1", "bar", "X", "")], "bad.csv"))
