"""Compliance by establishment end to end (issue 15): roster by the CLI, venues and scans through the real
ingest API, Kafka and the stream worker; statuses, matching, exports, roll-ups and the 28-day trend.

Then posters in bulk from the same ward: the API's and the CLI's PDF rendered by pdftoppm at 150 dpi,
every page's QR decoded by zbarimg and equal to the venue's signed code; fonts embedded.
"""

from __future__ import annotations

import csv
import io
import secrets
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from trace_api.reports import day_bounds
from truyvet.auth import Role
from truyvet.cli import cli
from truyvet.roster import roster_id

pytestmark = pytest.mark.integration
VN = timedelta(hours=7)


@pytest.fixture(scope="module")
def city(services, token, tmp_path_factory) -> dict[str, object]:
    """Two wards of the test's own, their roster, venues (matched by name, by roster_id, near misses) and scans."""
    tmp = tmp_path_factory.mktemp("compliance")
    a, b = f"CA{secrets.token_hex(3)}", f"CB{secrets.token_hex(3)}"
    district = f"CD{secrets.token_hex(3)}"
    units = tmp / "units.csv"
    units.write_text("code,name,level,parent_code\n"
                     f"{district},Thành phố Thử Nghiệm,district,06\n"
                     f"{a},Phường Đức Xuân Thử,ward,{district}\n{b},Xã Dương Quang Thử,commune,{district}\n",
                     encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli, ["units", "load", str(units)]).exit_code == 0
    roster = [
        (a, "food_drink", "Quán Phở Đức Xuân", "Tổ 15, Phường Đức Xuân"),
        (a, "food_drink", "Quán Phở Đức Xuân 2", "Tổ 16, Phường Đức Xuân"),
        (a, "school", "Trường Tiểu học Đức Xuân", "Tổ 2, Phường Đức Xuân"),
        (a, "karaoke", "Karaoke Hoa Mai", "Tổ 3, Phường Đức Xuân"),
        (b, "market_shop", "Chợ Dương Quang", ""),
    ]
    path = tmp / "roster.csv"
    path.write_text("ward_code,category,name,address\n" + "".join(f'{w},{c},{n},"{ad}"\n' for w, c, n, ad in roster),
                    encoding="utf-8")
    assert runner.invoke(cli, ["roster", "load", str(path)]).exit_code == 0
    ids = {name: roster_id(w, name, ad) for w, _, name, ad in roster}

    registrar = token(Role.registrar)
    with httpx.Client(timeout=30) as http:
        def register(**body: object) -> dict[str, object]:
            r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar, json=body)
            assert r.status_code == 201, r.text
            return r.json()

        venues = {
            # the roster's name without diacritics, case or punctuation: matched by the rule
            "pho": register(name="QUAN PHO DUC XUAN", category="food_drink", ward_code=a,
                            address="to 15 - phuong duc xuan"),
            # a near miss of "Quán Phở Đức Xuân 2": another number, so not matched
            "pho3": register(name="Quán Phở Đức Xuân 3", category="food_drink", ward_code=a,
                             address="Tổ 16, Phường Đức Xuân"),
            # registered under another name but naming its roster row
            "school": register(name="Trường TH Đức Xuân (cơ sở chính)", category="school", ward_code=a,
                               roster_id=ids["Trường Tiểu học Đức Xuân"]),
            "market": register(name="chợ dương quang", category="market_shop", ward_code=b),
        }
        # 422 for a roster id of another ward
        r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                      json={"name": "x", "category": "bar", "ward_code": b, "roster_id": ids["Karaoke Hoa Mai"]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_roster_id"

        now = datetime.now(UTC).replace(microsecond=0)
        day = (now + VN).date()
        start, _ = day_bounds(day, 7 * 60)
        at_today = max(start + timedelta(minutes=1), now - timedelta(hours=1))
        scans = [
            (venues["pho"], at_today),
            (venues["school"], start - timedelta(days=4, hours=-2)),  # 4 days ago: silent
            (venues["market"], start - timedelta(days=2, hours=-2)),  # 2 days ago: scanning (3-day window)
            (venues["pho3"], at_today),
        ]
        items = [{"scan_id": str(uuid.uuid4()), "scanned_at": t.isoformat(), "venue_id": v["venue_id"],
                  "person_id": f"pc{i}{secrets.token_hex(4)}"} for i, (v, t) in enumerate(scans)]
        r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device), json=items)
        assert r.status_code == 202 and r.json()["accepted"] == 4, r.text
    return {"a": a, "b": b, "district": district, "ids": ids, "venues": venues, "day": day, "tmp": tmp}


def _report(services, http, headers, **params: object) -> httpx.Response:
    return http.get(f"{services.trace_url}/v1/reports/compliance", headers=headers, params=params)


def _wait_scanning(services, http, headers, city) -> list[dict[str, object]]:
    deadline = time.monotonic() + 90
    while True:
        r = _report(services, http, headers, ward_code=city["a"], date=city["day"].isoformat())
        assert r.status_code == 200, r.text
        rows = r.json()["establishments"]
        done = {x["name"]: x["last_scan_date"] for x in rows}
        if done["Quán Phở Đức Xuân"] and done["Trường Tiểu học Đức Xuân"] or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_statuses_venues_and_last_scans_per_establishment(services, token, http, city) -> None:
    viewer = token(Role.viewer)
    rows = _wait_scanning(services, http, viewer, city)
    day, venues, ids = city["day"], city["venues"], city["ids"]
    got = {x["name"]: (x["roster_id"], x["status"], x["venue_ids"], x["last_scan_date"]) for x in rows}
    assert got == {
        "Quán Phở Đức Xuân": (ids["Quán Phở Đức Xuân"], "scanning", [venues["pho"]["venue_id"]], day.isoformat()),
        "Quán Phở Đức Xuân 2": (ids["Quán Phở Đức Xuân 2"], "not_registered", [], None),
        "Trường Tiểu học Đức Xuân": (ids["Trường Tiểu học Đức Xuân"], "silent", [venues["school"]["venue_id"]],
                                     (day - timedelta(days=4)).isoformat()),
        "Karaoke Hoa Mai": (ids["Karaoke Hoa Mai"], "not_registered", [], None),
    }
    assert {x["ward_code"] for x in rows} == {city["a"]}
    # the other ward: a market seen two days ago is scanning with the default 3 days, silent with 2
    deadline = time.monotonic() + 60
    while True:
        (market,) = _report(services, http, viewer, ward_code=city["b"], date=day.isoformat()).json()["establishments"]
        if market["status"] == "scanning" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (market["status"], market["venue_ids"]) == ("scanning", [venues["market"]["venue_id"]])
    (market,) = _report(services, http, viewer, ward_code=city["b"], date=day.isoformat(),
                        silent_days=2).json()["establishments"]
    assert market["status"] == "silent"
    # the education division's view: one category
    r = _report(services, http, viewer, ward_code=city["a"], date=day.isoformat(), category="school")
    assert [x["name"] for x in r.json()["establishments"]] == ["Trường Tiểu học Đức Xuân"]
    assert _report(services, http, viewer, category="casino").status_code == 422


def test_exports_summary_and_access(services, token, http, city, tmp_path: Path) -> None:
    viewer = token(Role.viewer)
    _wait_scanning(services, http, viewer, city)
    day = city["day"].isoformat()
    r = _report(services, http, viewer, ward_code=city["a"], date=day, format="csv")
    assert r.status_code == 200 and r.content.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {(x["Tên cơ sở"], x["Trạng thái"]) for x in table} == {
        ("Quán Phở Đức Xuân", "Đang quét"), ("Quán Phở Đức Xuân 2", "Chưa đăng ký"),
        ("Trường Tiểu học Đức Xuân", "Đã đăng ký, không quét"), ("Karaoke Hoa Mai", "Chưa đăng ký")}
    r = _report(services, http, viewer, ward_code=city["a"], date=day, format="xlsx")
    sheet = load_workbook(io.BytesIO(r.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][4] == "Tên cơ sở" and len(values) == 5
    # the ward chairman's printable list, one category
    r = _report(services, http, viewer, ward_code=city["a"], date=day, format="pdf", category="food_drink")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    (tmp_path / "list.pdf").write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "list.pdf"), "-"], capture_output=True,
                          check=True, text=True).stdout
    assert "Quán Phở Đức Xuân 2" in text and "Chưa đăng ký" in text and "Karaoke" not in text
    # roll-ups: ward, district (both wards), by category
    r = http.get(f"{services.trace_url}/v1/reports/compliance/summary", headers=viewer,
                 params={"date": day, "level": "district"})
    (district,) = [u for u in r.json()["units"] if u["code"] == city["district"]]
    assert (district["establishments"], district["not_registered"], district["silent"], district["scanning"]) == (
        5, 2, 1, 2)
    r = http.get(f"{services.trace_url}/v1/reports/compliance/summary", headers=viewer,
                 params={"date": day, "level": "ward", "by_category": "true", "category": "school"})
    mine = [u for u in r.json()["units"] if u["code"] == city["a"]]
    assert [(u["category"], u["silent"]) for u in mine] == [("school", 1)]
    # a health center: its ward only; no token: 401; a registrar is not a reader
    health = token(Role.health_center, city["b"])
    assert _report(services, http, health, ward_code=city["a"]).status_code == 403
    assert {x["ward_code"] for x in _report(services, http, health).json()["establishments"]} == {city["b"]}
    assert http.get(f"{services.trace_url}/v1/reports/compliance").status_code == 401
    assert _report(services, http, token(Role.registrar)).status_code == 403


def test_trend_over_28_days(services, token, http, city) -> None:
    viewer = token(Role.viewer)
    _wait_scanning(services, http, viewer, city)
    r = http.get(f"{services.trace_url}/v1/reports/compliance/trend", headers=viewer,
                 params={"ward_code": city["a"], "to": city["day"].isoformat()})
    days = r.json()["days"]
    assert len(days) == 28 and days[-1]["date"] == city["day"].isoformat()
    assert {k: days[-1][k] for k in ("not_registered", "silent", "scanning")} == {
        "not_registered": 2, "silent": 1, "scanning": 1}
    # every venue was registered today: on all earlier days nothing was registered
    assert all((d["not_registered"], d["silent"], d["scanning"]) == (4, 0, 0) for d in days[:-1])


def _decode_pages(pdf: Path) -> list[str]:
    """Every page rendered at 150 dpi by pdftoppm and read by zbarimg (one code per page)."""
    out = pdf.parent / pdf.stem
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(out)], check=True, capture_output=True)
    pages = sorted(pdf.parent.glob(f"{pdf.stem}-*.png"))
    codes = []
    for page in pages:
        result = subprocess.run(["zbarimg", "--quiet", "--raw", str(page)], capture_output=True, text=True)
        assert result.returncode == 0, f"no QR code read on {page.name}"
        codes.append(result.stdout.strip())
    return codes


def test_posters_in_bulk_every_page_scans(services, token, http, city, tmp_path: Path) -> None:
    registrar, a = token(Role.registrar), city["a"]
    venues = city["venues"]
    r = http.get(f"{services.ingest_url}/v1/venues/posters.pdf", headers=registrar, params={"ward_code": a})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf", r.text
    pdf = tmp_path / "ward.pdf"
    pdf.write_bytes(r.content)
    expected = sorted(venues[k]["qr_payload"] for k in ("pho", "pho3", "school"))
    assert sorted(_decode_pages(pdf)) == expected
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "DejaVuSans" in fonts and all(" yes " in line for line in fonts.splitlines()[2:])
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for needle in ("Trường TH Đức Xuân (cơ sở chính)", "Trường học", "Hiệu lực", "Hướng dẫn", "Phường Đức Xuân Thử"):
        assert needle in text
    # one category; the CLI gives the same pages; the dashboard's download too
    r = http.get(f"{services.ingest_url}/v1/venues/posters.pdf", headers=registrar,
                 params={"ward_code": a, "category": "food_drink"})
    (tmp_path / "food.pdf").write_bytes(r.content)
    assert sorted(_decode_pages(tmp_path / "food.pdf")) == sorted(venues[k]["qr_payload"] for k in ("pho", "pho3"))
    out = tmp_path / "cli.pdf"
    result = CliRunner().invoke(cli, ["posters", "--ward", a, "--category", "school", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _decode_pages(out) == [venues["school"]["qr_payload"]]
    r = http.get(f"{services.trace_url}/v1/dashboard/posters.pdf", headers=registrar, params={"ward_code": a})
    (tmp_path / "dash.pdf").write_bytes(r.content)
    assert sorted(_decode_pages(tmp_path / "dash.pdf")) == expected
    # access and empty wards
    assert http.get(f"{services.ingest_url}/v1/venues/posters.pdf", headers=token(Role.viewer),
                    params={"ward_code": a}).status_code == 403
    assert http.get(f"{services.ingest_url}/v1/venues/posters.pdf", headers=registrar,
                    params={"ward_code": a, "category": "wedding"}).status_code == 404
