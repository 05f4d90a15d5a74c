"""GET /v1/reports/coverage end to end: roster loaded by the CLI, venues and scans through the real
ingest API, Kafka and stream worker; the report must equal a direct count of what this test sent.

The test's wards are its own units, so venues and scans of other tests in the database do not count.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from click.testing import CliRunner

from trace_api.reports import day_bounds
from truyvet.auth import Role
from truyvet.cli import cli

VN = timedelta(hours=7)


def _units(tmp_path: Path, wards: dict[str, str]) -> Path:
    path = tmp_path / "units.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["code", "name", "level", "parent_code"])
        writer.writerows([c, n, "ward", "058"] for c, n in wards.items())
    return path


def test_coverage_equals_a_direct_count_of_roster_and_scans(profile, http: httpx.Client,  # noqa: ANN001
                                                           tmp_path: Path) -> None:
    services, token = profile.services, profile.token  # both profiles (issue 12); the CLI with the profile's env
    a, b = f"TA{secrets.token_hex(3)}", f"TB{secrets.token_hex(3)}"
    names = {a: "Phường Thử Nghiệm Đức Xuân", b: "=HYPERLINK(\"http://x\")"}  # a formula a spreadsheet would run
    runner = CliRunner(env=dict(services.env))
    result = runner.invoke(cli, ["units", "load", str(_units(tmp_path, names))])
    assert result.exit_code == 0, result.output

    roster = [(a, "karaoke", f"Karaoke {i}", f"Tổ {i}") for i in range(3)] + \
             [(a, "school", f"Trường {i}", "") for i in range(2)] + \
             [(b, "market_shop", f"Chợ {i}", "") for i in range(4)]
    roster_file = tmp_path / "roster.csv"
    roster_file.write_text("ward_code,category,name,address\n" + "".join(
        f'{w},{c},{n},"{addr}"\n' for w, c, n, addr in roster), encoding="utf-8")
    result = runner.invoke(cli, ["roster", "load", str(roster_file)])
    assert result.exit_code == 0, result.output
    assert "loaded 9 establishments in 2 wards" in result.output

    registrar, device = token(Role.registrar), token(Role.device)
    venues: dict[str, tuple[str, str]] = {}
    for ward, category, count in ((a, "karaoke", 2), (a, "school", 1), (a, "bar", 1), (b, "market_shop", 3)):
        for i in range(count):
            r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                          json={"name": f"{category} {i}", "category": category, "ward_code": ward})
            assert r.status_code == 201, r.text
            venues[r.json()["venue_id"]] = (ward, category)
    ids = list(venues)

    now = datetime.now(UTC).replace(microsecond=0)
    day = (now + VN).date()
    start, end = day_bounds(day, 7 * 60)
    t0 = max(start + timedelta(minutes=1), now - timedelta(hours=3))
    scans, counted = [], []

    def scan(venue: str, person: str, at: datetime, direction: str = "in") -> None:
        item = {"scan_id": str(uuid.uuid4()), "scanned_at": at.isoformat(), "direction": direction,
                "venue_id": venue, "person_id": person}
        scans.append(item)
        if start <= at < end:
            counted.append(venue)

    # karaoke 0: three people in, one of them scans out; karaoke 1: only a scan before local midnight
    for i in range(3):
        scan(ids[0], f"pk{i}-{a}", t0 + timedelta(seconds=i))
    scan(ids[0], f"pk0-{a}", t0 + timedelta(seconds=30), "out")
    scan(ids[1], f"px-{a}", start - timedelta(minutes=30))
    scan(ids[2], f"ps-{a}", t0)  # school
    scan(ids[3], f"pb-{a}", t0)  # bar: registered and active, though not on the roster
    scan(ids[4], f"pm0-{b}", t0)  # markets: two scan, one only scans out (orphan out), one stays quiet
    scan(ids[4], f"pm1-{b}", t0 + timedelta(seconds=5))
    scan(ids[5], f"pm2-{b}", t0 + timedelta(seconds=5), "out")
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=scans)
    assert r.status_code == 202 and r.json()["accepted"] == len(scans), r.text

    expected: dict[tuple[str, str], dict[str, int]] = {}

    def bump(key: tuple[str, str], field: str, n: int = 1) -> None:
        expected.setdefault(key, {"required": 0, "registered": 0, "active": 0, "scans": 0})[field] += n

    for ward, category, _, _ in roster:
        bump((ward, category), "required")
    for ward, category in venues.values():
        bump((ward, category), "registered")
    per_venue = Counter(counted)
    for venue, n in per_venue.items():
        bump(venues[venue], "active")
        bump(venues[venue], "scans", n)
    assert sum(per_venue.values()) == 9 and len(per_venue) == 5  # the test's own arithmetic, spelled out

    epi = token(Role.epidemiologist)
    deadline, rows = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        r = http.get(f"{services.trace_url}/v1/reports/coverage", params={"date": day.isoformat()}, headers=epi)
        assert r.status_code == 200, r.text
        body = r.json()
        rows = {(x["ward_code"], x["category"]): {k: x[k] for k in ("required", "registered", "active", "scans")}
                for x in body["rows"] if x["ward_code"] in (a, b)}
        if sum(v["scans"] for v in rows.values()) >= 9:
            break
        time.sleep(0.3)
    assert rows == expected
    assert {x["ward_name"] for x in body["rows"] if x["ward_code"] in (a, b)} == set(names.values())
    assert body["date"] == day.isoformat()

    # CSV: the same numbers, the formula-like ward name neutralised
    r = http.get(f"{services.trace_url}/v1/reports/coverage", params={"date": day.isoformat(), "format": "csv"},
                 headers=token(Role.viewer))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM; Vietnamese headers (docs/api.md, "Exports")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    columns = {"Phải quét": "required", "Đã đăng ký": "registered", "Có quét": "active", "Lượt quét": "scans"}
    mine = {(x["Mã phường/xã"], x["Loại hình"]): x for x in table if x["Mã phường/xã"] in (a, b)}
    assert {k: {f: int(v[vi]) for vi, f in columns.items()} for k, v in mine.items()} == expected
    assert {x["Phường/xã"] for x in mine.values()} == {names[a], "'" + names[b]}

    # A health center sees its own ward only; another ward is 403; no token is 401.
    health = token(Role.health_center, a)
    r = http.get(f"{services.trace_url}/v1/reports/coverage", params={"date": day.isoformat()}, headers=health)
    assert r.status_code == 200 and {x["ward_code"] for x in r.json()["rows"]} == {a}
    r = http.get(f"{services.trace_url}/v1/reports/coverage", params={"ward_code": b}, headers=health)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert http.get(f"{services.trace_url}/v1/reports/coverage").status_code == 401

    # The trend: today's totals for ward a are those of the day's report.
    r = http.get(f"{services.trace_url}/v1/reports/coverage/trend",
                 params={"to": day.isoformat(), "days": 3, "ward_code": a}, headers=epi)
    assert r.status_code == 200, r.text
    days = r.json()["days"]
    assert [d["date"] for d in days] == [(day - timedelta(days=i)).isoformat() for i in (2, 1, 0)]
    want = {f: sum(v[f] for k, v in expected.items() if k[0] == a) for f in ("required", "registered", "active",
                                                                           "scans")}
    assert {f: days[-1][f] for f in want} == want
    # yesterday: no venue registered yet, and the one scan sent before local midnight (karaoke 1)
    assert (days[-2]["registered"], days[-2]["active"], days[-2]["scans"]) == (0, 1, 1)


def test_coverage_rejects_a_bad_date(services, token, http: httpx.Client) -> None:
    r = http.get(f"{services.trace_url}/v1/reports/coverage", params={"date": "26/11/2026"},
                 headers=token(Role.viewer))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_roster_load_refuses_a_bad_file_and_keeps_the_old_roster(db, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ward_code,category,name,address\n01840,bar,Quán A,\n01840,casino,Sòng B,\n", encoding="utf-8")
    before = db.execute("SELECT count() FROM roster")[0][0]
    result = CliRunner().invoke(cli, ["roster", "load", str(bad)])
    assert result.exit_code == 1 and ":3: unknown category 'casino'" in result.output
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("ward_code,category,name,address\n99999,bar,Quán A,\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["roster", "load", str(unknown)])
    assert result.exit_code == 1 and "['99999']" in result.output
    assert db.execute("SELECT count() FROM roster")[0][0] == before


def test_concurrent_report_requests_each_get_their_own_connection(services, token) -> None:
    """The coverage page asks for the day and the trend at once; many such requests must all succeed."""
    from concurrent.futures import ThreadPoolExecutor

    viewer = token(Role.viewer)
    paths = ["/v1/reports/coverage", "/v1/reports/coverage/trend", "/v1/dashboard/me"] * 16
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=12)) as client, ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda p: client.get(f"{services.trace_url}{p}", headers=viewer).status_code, paths))
    assert codes == [200] * len(paths)
