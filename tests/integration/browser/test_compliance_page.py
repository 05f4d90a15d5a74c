"""The dashboard's compliance page and the declaration alerts on the ward's alerts page, in Chromium
against the real stack (issue 15). Screenshots in test-artifacts/."""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from truyvet.auth import Role
from truyvet.roster import load_roster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ward(services, db, token, tmp_path_factory) -> dict[str, Any]:
    code = f"CW{secrets.token_hex(3)}"
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("units", ["code", "name", "level", "parent_code", "loaded_at"],
              [(code, "Phường Thử Tuân Thủ", "ward", "058", now)])
    roster = tmp_path_factory.mktemp("roster") / "roster.csv"
    roster.write_text("ward_code,category,name,address\n"
                      f"{code},school,Trường Mầm non Hoa Sen,Tổ 1\n{code},school,Trường Tiểu học Sông Cầu,Tổ 2\n"
                      f"{code},food_drink,Quán Bún Chả Hà Nội,Tổ 3\n{code},karaoke,Karaoke Ánh Dương,Tổ 4\n",
                      encoding="utf-8")
    load_roster(db, roster)
    registrar = token(Role.registrar)
    with httpx.Client(timeout=30) as http:
        venues = [http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                            json={"name": n, "category": c, "ward_code": code, "address": a}).json()
                  for n, c, a in (("Trường mầm non Hoa Sen", "school", "tổ 1"),
                                  ("Quán bún chả Hà Nội", "food_drink", "Tổ 3."))]
        scans = [{"scan_id": str(uuid.uuid4()), "scanned_at": (now - timedelta(minutes=20)).isoformat(),
                  "venue_id": venues[0]["venue_id"], "person_id": f"cp{secrets.token_hex(4)}"}]
        assert http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device),
                         json=scans).status_code == 202
        card = http.post(f"{services.ingest_url}/v1/persons/cards", headers=registrar,
                         json={"residence_ward_code": code}).json()
        r = http.post(f"{services.ingest_url}/v1/declarations", headers=token(Role.device),
                      json={"declaration_id": str(uuid.uuid4()), "declared_at": now.isoformat(),
                            "person_qr": card["card_payload"], "symptoms": ["fever"], "contact_with_case": False})
        assert r.status_code == 202 and r.json()["alerted"], r.text
    deadline = time.monotonic() + 60
    while not db.execute("SELECT count() FROM visits WHERE venue_id = %(v)s", {"v": venues[0]["venue_id"]})[0][0]:
        assert time.monotonic() < deadline, "the worker did not write the visit"
        time.sleep(0.2)
    return {"code": code, "venues": venues, "card": card}


def _open(page: Any, services, header: dict[str, str], path: str) -> None:
    page.goto(f"{services.trace_url}/dashboard/{path}#token={header['Authorization'].removeprefix('Bearer ')}")


def test_compliance_page_lists_establishments_and_charts_28_days(services, token, ward, page: Any,
                                                                 artifacts: Path, tmp_path: Path) -> None:
    _open(page, services, token(Role.viewer), f"compliance?ward={ward['code']}")
    page.wait_for_selector("#establishments tbody tr")
    statuses = {r.get_attribute("data-status") for r in page.query_selector_all("#establishments tbody tr")}
    assert statuses == {"scanning", "silent", "not_registered"}
    assert page.inner_text("#t-all") == "4" and page.inner_text("#t-not_registered") == "2"
    assert page.inner_text("#t-scanning") == "1" and page.inner_text("#t-silent") == "1"
    # the trend chart: three series over 28 days
    assert len(page.query_selector_all("#chart-trend-svg polyline")) == 3
    assert len(page.query_selector_all("#chart-trend-svg polyline")[0].get_attribute("points").split()) == 28
    page.screenshot(path=str(artifacts / "dashboard-compliance.png"), full_page=True)
    # the education division: one category
    page.select_option("#category", "school")
    page.click("#filter button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#establishments tbody tr').length === 2")
    # the ward chairman's printable list
    with page.expect_download() as download:
        page.click("#pdf")
    pdf = tmp_path / "list.pdf"
    download.value.save_as(str(pdf))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Trường Tiểu học Sông Cầu" in text and "Quán Bún Chả" not in text
    assert page.errors == [] and page.outside == []


def test_registrar_downloads_posters_from_the_dashboard(services, token, ward, page: Any, tmp_path: Path,
                                                        artifacts: Path) -> None:
    _open(page, services, token(Role.registrar), "compliance")
    page.wait_for_selector("#posters:not([hidden])")
    assert page.is_hidden("#report-filter")
    page.fill("#posters-ward-code", ward["code"])
    page.screenshot(path=str(artifacts / "dashboard-posters.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#posters-download")
    pdf = tmp_path / "posters.pdf"
    download.value.save_as(str(pdf))
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "p")], check=True)
    codes = sorted(subprocess.run(["zbarimg", "--quiet", "--raw", str(p)], capture_output=True, text=True,
                                  check=True).stdout.strip() for p in tmp_path.glob("p-*.png"))
    assert codes == sorted(v["qr_payload"] for v in ward["venues"])


def test_declaration_alert_shows_on_the_wards_alerts_page(services, token, ward, page: Any, artifacts: Path) -> None:
    _open(page, services, token(Role.health_center, ward["code"]), "alerts")
    row = page.wait_for_selector("tr[data-kind=declaration]")
    assert "Khai báo y tế" in row.inner_text() and ward["card"]["person_id"] in row.inner_text()
    page.screenshot(path=str(artifacts / "dashboard-declaration-alert.png"), full_page=True)
