"""The compliance and declaration queries on ClickHouse 18.16 (server) and current ClickHouse (chdb): rows
written directly, statuses, last scan dates, the trend and the per-day declarations equal what was written."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from trace_api.compliance import compliance, trend
from truyvet.roster import load_roster, roster_id

VISIT_COLUMNS = ["visit_id", "person_id", "venue_id", "t_in", "t_out", "source_in", "source_out", "version",
                 "deleted", "written_at"]
VENUE_COLUMNS = ["venue_id", "name", "category", "ward_code", "address", "phone", "default_stay_minutes",
                 "valid_from", "valid_until", "created_at", "updated_at"]
DAY = date(2021, 7, 14)
START = datetime(2021, 7, 13, 17, tzinfo=UTC)  # 00:00 in Vietnam
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_statuses_and_trend_on_both_engines(any_db, tmp_path: Path) -> None:
    db = any_db
    ward = f"Q{secrets.token_hex(4)}"
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("units", ["code", "name", "level", "parent_code", "loaded_at"], [(ward, "Phường Q", "ward", "058", now)])
    roster = tmp_path / "roster.csv"
    roster.write_text("ward_code,category,name,address\n"
                      f"{ward},bar,Quán Bar Mây,Tổ 1\n{ward},bar,Quán Bar Gió,Tổ 2\n{ward},gym,Phòng Gym Khỏe,Tổ 3\n",
                      encoding="utf-8")
    load_roster(db, roster)
    v1, v2, v3 = (f"v{secrets.token_hex(6)}" for _ in range(3))
    db.insert("venues", VENUE_COLUMNS, [
        (v1, "quán bar mây", "bar", ward, "tổ 1", "", 0, EPOCH, EPOCH, START - timedelta(days=10), now),
        (v2, "Gym số 1", "gym", ward, "", "", 0, EPOCH, EPOCH, START - timedelta(days=2), now),
        (v3, "Bar Gió (mới)", "bar", ward, "", "", 0, EPOCH, EPOCH, START + timedelta(days=1), now)])  # later
    db.insert("venue_roster", ["venue_id", "roster_id", "updated_at"],
              [(v2, roster_id(ward, "Phòng Gym Khỏe", "Tổ 3"), now),
               (v3, roster_id(ward, "Quán Bar Gió", "Tổ 2"), now)])
    visits = [  # v1: scans 1 and 5 days before DAY; a deleted visit on DAY does not count; v2 never scans
        (f"a{secrets.token_hex(4)}", "p1", v1, START - timedelta(days=1, hours=-3), START - timedelta(days=1, hours=-4),
         "s1", "", 1, 0, now),
        (f"b{secrets.token_hex(4)}", "p2", v1, START - timedelta(days=5, hours=-3), START - timedelta(days=5, hours=-4),
         "s2", "", 1, 0, now),
        (f"c{secrets.token_hex(4)}", "p3", v1, START + timedelta(hours=3), START + timedelta(hours=4), "s3", "", 1, 1,
         now),
    ]
    db.insert("visits", VISIT_COLUMNS, visits)
    if not db.execute("SELECT count() FROM visits_by_venue WHERE venue_id = %(v)s", {"v": v1})[0][0]:
        db.insert("visits_by_venue", VISIT_COLUMNS, visits)
    rows = {r.name: r for r in compliance(db, DAY, wards=(ward,), category=None, silent_days=3,
                                          utc_offset_minutes=420, max_stay_minutes=720)}
    assert (rows["Quán Bar Mây"].status, rows["Quán Bar Mây"].venue_ids, rows["Quán Bar Mây"].last_scan_date) == (
        "scanning", [v1], (DAY - timedelta(days=1)).isoformat())
    assert (rows["Phòng Gym Khỏe"].status, rows["Phòng Gym Khỏe"].venue_ids) == ("silent", [v2])
    assert rows["Quán Bar Gió"].status == "not_registered"  # its venue came the day after
    series = trend(db, DAY, 7, wards=(ward,), category=None, silent_days=3, utc_offset_minutes=420,
                   max_stay_minutes=720)
    by_day = {d["date"]: (d["not_registered"], d["silent"], d["scanning"]) for d in series}
    assert by_day[DAY.isoformat()] == (1, 1, 1)
    assert by_day[(DAY - timedelta(days=3)).isoformat()] == (2, 0, 1)  # the gym is not registered yet; 5 days' scan
    # the gym registered; the bar's scans are 3 days before and 1 day after: silent too
    assert by_day[(DAY - timedelta(days=2)).isoformat()] == (1, 2, 0)
    only_gym = compliance(db, DAY, wards=(ward,), category="gym", silent_days=3, utc_offset_minutes=420,
                          max_stay_minutes=720)
    assert [r.name for r in only_gym] == ["Phòng Gym Khỏe"]


def test_declarations_per_day_query_on_both_engines(any_db) -> None:
    from trace_api.routes.declarations import _PER_DAY_SQL

    db, ward = any_db, f"Q{secrets.token_hex(4)}"
    now = datetime.now(UTC).replace(microsecond=0)
    cols = ["declaration_id", "declared_at", "person_id", "ward_code", "venue_id", "symptoms", "other_symptoms",
            "contact_with_case", "travel", "source", "received_at"]
    db.insert("declarations", cols, [
        ("d1", START + timedelta(hours=1), "p1", ward, "", ["fever"], "", 0, "", "device", now),
        ("d2", START + timedelta(hours=2), "p2", ward, "", [], "", 1, "", "device", now),
        ("d3", START + timedelta(hours=3), "p3", ward, "", [], "", 0, "", "device", now),
        ("d4", START - timedelta(hours=1), "p4", ward, "", [], "ho nhẹ", 0, "", "device", now)])  # the day before
    rows = db.execute(_PER_DAY_SQL.format(wards="AND ward_code IN %(wards)s"),
                      {"start": START - timedelta(days=1), "end": START + timedelta(days=1), "offset": 25200,
                       "wards": (ward,)})
    got = [((date(1970, 1, 1) + timedelta(days=int(d))).isoformat(), w, int(n), int(s), int(c), int(a))
           for d, w, n, s, c, a in rows]
    assert got == [((DAY - timedelta(days=1)).isoformat(), ward, 1, 1, 0, 1), (DAY.isoformat(), ward, 3, 1, 1, 2)]
