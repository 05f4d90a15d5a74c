"""The ward health station's follow-up page in Chromium against the real stack (issue 14): its list with
counts per status and a chart, filters by case, status and generation, the status changed inline, the
phone of a citizen who consented, and a contact who tested positive registered as a new case; the alerts
page shows alerts not delivered (the ward has no webhook). Screenshots: test-artifacts/dashboard-followups*.png,
dashboard-alerts-undelivered.png."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.alerts.receiver import wait_for
from tests.integration.alerts.test_alert_delivery import _person, _post_scans, _register, _scan, _visits_of
from tests.integration.followups.test_citizens import register_citizen
from truyvet.auth import Role

pytestmark = pytest.mark.integration

WARD_NAME = "Phường Thử Nghiệm Đức Xuân"


def _login(page: Any, base: str, headers: dict[str, str]) -> None:
    page.goto(f"{base}/dashboard/")
    page.fill("#token", headers["Authorization"].removeprefix("Bearer "))
    page.click("#login button[type=submit]")
    page.wait_for_url("**/dashboard/alerts")


def test_follow_up_page_works_the_wards_list(services, db, token, page: Any, http: httpx.Client,
                                             artifacts: Path) -> None:
    base = services.trace_url
    ward = f"TF{secrets.token_hex(3)}"
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("units", ["code", "name", "level", "parent_code", "loaded_at"], [(ward, WARD_NAME, "ward", "058", now)])
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Quán cơm Đức Xuân (thử)", "category": "food_drink", "ward_code": ward})
    assert r.status_code == 201, r.text
    venue = r.json()["venue_id"]
    citizen, auth = register_citizen(http, base)
    r = http.put(f"{base}/v1/me/contact", headers=auth, json={"phone": "0912 000 111", "consent": True})
    assert r.status_code == 200, r.text
    t0 = now - timedelta(hours=5)
    case, a, b, f2 = (_person() for _ in range(4))
    scans = [_scan(venue, case, t0), _scan(venue, case, t0 + timedelta(minutes=30), "out"),
             _scan(venue, a, t0 + timedelta(minutes=5)), _scan(venue, b, t0 + timedelta(minutes=10)),
             _scan(venue, citizen, t0 + timedelta(minutes=15)),
             _scan(venue, f2, t0 + timedelta(hours=3)), _scan(venue, b, t0 + timedelta(hours=3, minutes=5))]
    _post_scans(http, services, token(Role.device), scans)
    people = [case, a, b, citizen, f2]
    wait_for(lambda: _visits_of(db, people) == set(people), timeout=60, what="visits")
    case_id = _register(http, services, token(Role.epidemiologist), case, now)
    health = token(Role.health_center, ward)
    wait_for(lambda: len(http.get(f"{base}/v1/follow-ups", headers=health).json()["follow_ups"]) == 4, timeout=30,
             what="four contacts on the list")

    _login(page, base, health)
    page.goto(f"{base}/dashboard/followups")
    page.wait_for_selector("#follow-ups tbody tr")
    assert WARD_NAME in page.inner_text("#who")
    assert page.locator("#follow-ups tbody tr").count() == 4
    assert page.inner_text("#count-new") == "4" and page.inner_text("#count-total") == "4"
    assert page.locator("#chart svg rect.bar").count() == 7
    assert page.inner_text(f"tr[data-person='{citizen}'] td.phone") == "0912000111"
    assert page.inner_text(f"tr[data-person='{a}'] td.phone") == "—"

    # Inline changes: called (with a note), then tested positive for b.
    page.fill(f"tr[data-person='{a}'] input.note", "Đã gọi lúc 9 giờ")
    page.select_option(f"tr[data-person='{a}'] select.status", "called")
    page.wait_for_selector(f"tr[data-person='{a}'].status-called")
    page.select_option(f"tr[data-person='{b}'] select.status", "tested_positive")
    page.wait_for_selector(f"tr[data-person='{b}'].status-tested_positive button.register")
    assert page.inner_text("#count-called") == "1" and page.inner_text("#count-tested_positive") == "1"
    listed = {f["person_id"]: f for f in http.get(f"{base}/v1/follow-ups", headers=health).json()["follow_ups"]}
    assert (listed[a]["status"], listed[a]["note"], listed[a]["updated_by"]) == ("called", "Đã gọi lúc 9 giờ",
                                                                                  "test-health_center")
    page.screenshot(path=str(artifacts / "dashboard-followups.png"), full_page=True)

    # Filters: generation, status, case.
    page.select_option("#generation", "2")
    page.wait_for_function("document.querySelectorAll('#follow-ups tbody tr').length === 1")
    assert page.locator(f"tr[data-person='{f2}']").count() == 1
    page.select_option("#generation", "")
    only_b = ("document.querySelectorAll('#follow-ups tbody tr').length === 1 && "
              f"document.querySelector(\"tr[data-person='{b}']\") !== null")  # not the one-row list shown before
    page.select_option("#status", "tested_positive")
    page.wait_for_function(only_b)
    page.select_option("#case", case_id)
    page.wait_for_function(only_b)

    # Registered as a new case from the list: it is traced from b (f2 met b: the new case's F1).
    page.click(f"tr[data-person='{b}'] button.register")
    page.wait_for_selector("#done:not([hidden])")
    new_case = http.get(f"{base}/v1/follow-ups", headers=health,
                        params={"case_id": case_id}).json()["follow_ups"]
    new_case_id = next(f["new_case_id"] for f in new_case if f["person_id"] == b)
    assert new_case_id and new_case_id in page.inner_text("#done")
    page.wait_for_selector(f"tr[data-person='{b}'] a[href*='{new_case_id}']")
    wait_for(lambda: {f["person_id"] for f in http.get(f"{base}/v1/follow-ups", headers=health,
                                                       params={"case_id": new_case_id}).json()["follow_ups"]} >= {f2},
             timeout=30, what="the new case's contacts on the list")
    page.screenshot(path=str(artifacts / "dashboard-followups-new-case.png"), full_page=True)

    # The ward has no webhook: its alerts page lists them as not delivered.
    page.goto(f"{base}/dashboard/alerts")
    page.wait_for_selector("#undelivered-note:not([hidden])")
    assert int(page.inner_text("#undelivered-count")) >= 4
    page.screenshot(path=str(artifacts / "dashboard-alerts-undelivered.png"), full_page=True)
    assert not page.errors and not page.outside
