"""The dashboard in a real browser against the real stack: log in, register a case, see its contacts,
graph and timeline; watch an alert arrive on the ward page; open the coverage charts. Screenshots go
to test-artifacts/ (look at them: they must show the graph and the charts).
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from truyvet.auth import Role
from truyvet.roster import load_roster

WARD_NAMES = ("Phường Thử Nghiệm Sông Cầu", "Xã Thử Nghiệm Nông Thượng")


def _scan(venue: str, person: str, at: datetime, direction: str = "in") -> dict[str, str]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": at.isoformat(), "direction": direction,
            "venue_id": venue, "person_id": person}


@pytest.fixture(scope="module")
def city(services, db, token, tmp_path_factory) -> dict[str, Any]:
    """Two wards of this test with a roster, a venue in each, and scans making F1s in ward A and an F2 in B."""
    wards = [f"TW{secrets.token_hex(3)}" for _ in WARD_NAMES]
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("units", ["code", "name", "level", "parent_code", "loaded_at"],
              [(code, name, "ward", "058", now) for code, name in zip(wards, WARD_NAMES, strict=True)])
    roster = tmp_path_factory.mktemp("roster") / "roster.csv"
    roster.write_text("ward_code,category,name,address\n" + "".join(
        [f"{wards[0]},market_shop,Cửa hàng {i},Tổ {i}\n" for i in range(5)]
        + [f"{wards[1]},food_drink,Quán ăn {i},\n" for i in range(3)]), encoding="utf-8")
    load_roster(db, roster)
    registrar, device = token(Role.registrar), token(Role.device)
    venues = []
    with httpx.Client(timeout=30) as http:
        for ward, name, category in ((wards[0], "Chợ Sông Cầu (thử)", "market_shop"),
                                     (wards[1], "Quán phở Nông Thượng (thử)", "food_drink")):
            r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                          json={"name": name, "category": category, "ward_code": ward})
            assert r.status_code == 201, r.text
            venues.append(r.json()["venue_id"])
        tag = secrets.token_hex(3)
        case, f1a, f1b, f2 = (f"{p}{tag}" for p in ("ca", "fa", "fb", "fc"))
        scans = [
            _scan(venues[0], case, now - timedelta(hours=5)),
            _scan(venues[0], case, now - timedelta(hours=4), "out"),
            _scan(venues[0], f1a, now - timedelta(hours=4, minutes=30)),
            _scan(venues[0], f1b, now - timedelta(hours=3, minutes=30)),  # within the hour after the case left
            _scan(venues[1], f1a, now - timedelta(hours=2)),
            _scan(venues[1], f2, now - timedelta(hours=1, minutes=50)),
        ]
        r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=scans)
        assert r.status_code == 202 and r.json()["accepted"] == len(scans), r.text
    persons = (case, f1a, f1b, f2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = db.execute("SELECT count() FROM visits_by_venue WHERE venue_id IN %(v)s", {"v": tuple(venues)})
        if rows[0][0] >= len(scans) - 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the worker did not write the visits within 60 s")
    # the Vietnam calendar day of the last scan: just after midnight there (17:00 UTC) it is the day before
    last_scan_day = (now - timedelta(hours=1, minutes=50) + timedelta(hours=7)).date().isoformat()
    return {"wards": wards, "venues": venues, "case": case, "f1": {f1a, f1b}, "f2": {f2}, "persons": persons,
            "last_scan_day": last_scan_day}


def _login(page: Any, base: str, token_header: dict[str, str]) -> None:
    page.goto(f"{base}/dashboard/")
    page.fill("#token", token_header["Authorization"].removeprefix("Bearer "))
    page.click("#login button[type=submit]")


def test_login_register_case_and_see_contacts_graph_and_timeline(services, token, city, page: Any,
                                                                  artifacts: Path) -> None:
    base = services.trace_url
    response = page.goto(f"{base}/dashboard/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp  # nothing from outside at run time
    page.fill("#token", "tv_not-a-token")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "không hợp lệ" in page.inner_text("#error")

    _login(page, base, token(Role.epidemiologist))
    page.wait_for_url("**/dashboard/case")
    assert "Trung tâm Y tế" in page.inner_text("#who")
    page.fill("#person_id", city["case"])
    page.fill("#label", "Ca bệnh thử nghiệm Sông Cầu")
    page.click("#register button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#contacts tbody tr').length >= 3")

    rows = page.locator("#contacts tbody tr")
    people = {rows.nth(i).locator("td").nth(1).inner_text(): rows.nth(i).get_attribute("data-generation")
              for i in range(rows.count())}
    assert people == {**{p: "1" for p in city["f1"]}, **{p: "2" for p in city["f2"]}}
    assert page.inner_text("#count-f1") == "2" and page.inner_text("#count-f2") == "1"
    assert "Chợ Sông Cầu (thử)" in page.inner_text("#contacts") and WARD_NAMES[0] in page.inner_text("#contacts")

    graph = page.locator("#graph-svg")
    assert graph.locator(".node.f0").count() == 1
    assert graph.locator(".node.f1").count() == 2 and graph.locator(".node.f2").count() == 1
    assert graph.locator("path.edge").count() == 3  # F0->F1 twice, F1->F2 once
    timeline = page.locator("#timeline-svg")
    assert timeline.locator("rect.visit").count() >= 1
    assert "Chợ Sông Cầu (thử)" in timeline.inner_html()

    with page.expect_download() as download:
        page.click("#csv")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert all(p in text for p in (*city["f1"], *city["f2"]))

    page.screenshot(path=str(artifacts / "dashboard-case.png"), full_page=True)
    page.locator("#graph").screenshot(path=str(artifacts / "dashboard-graph.png"))
    assert not page.errors and not page.outside


def test_ward_page_shows_a_new_alert_live_and_only_its_ward(services, token, city, page: Any, http: httpx.Client,
                                                             artifacts: Path) -> None:
    base, ward_a = services.trace_url, city["wards"][0]
    health = token(Role.health_center, ward_a)
    _login(page, base, health)
    page.wait_for_url("**/dashboard/alerts")
    assert WARD_NAMES[0] in page.inner_text("#who")
    page.wait_for_selector("#status:has-text('Cập nhật')")
    before = page.locator("#alerts tbody tr").count()

    now = datetime.now(UTC).replace(microsecond=0)
    r = http.post(f"{base}/v1/cases", headers=token(Role.epidemiologist),
                  json={"person_id": city["case"], "label": "ca thử cảnh báo",
                        "infectious_from": (now - timedelta(days=1)).isoformat(), "infectious_to": now.isoformat()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    # the page refreshes itself: the case's alerts for ward A appear without a reload
    page.wait_for_function(
        f"[...document.querySelectorAll('#alerts tbody tr')].filter(r => r.textContent.includes('{case_id}'))"
        ".length >= 2", timeout=45_000)
    rows = page.locator("#alerts tbody tr")
    assert rows.count() >= before + 2
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    mine = [t for t in texts if case_id in t]
    assert {p for p in city["f1"] if any(p in t for t in mine)} == city["f1"]
    assert all(WARD_NAMES[0] in t for t in texts)  # only its ward
    assert not any(p in t for t in texts for p in city["f2"])  # the F2 lives in ward B
    page.screenshot(path=str(artifacts / "dashboard-alerts.png"), full_page=True)

    # The same health center on the case page sees only its ward's contacts.
    page.goto(f"{base}/dashboard/case?case={case_id}")
    page.wait_for_selector("#graph-svg")
    shown = {page.locator("#contacts tbody tr").nth(i).locator("td").nth(1).inner_text()
             for i in range(page.locator("#contacts tbody tr").count())}
    assert shown == city["f1"]
    assert page.locator("#register-card").is_hidden()
    assert not page.errors and not page.outside


def test_alerts_page_keeps_one_refresh_loop_and_shows_only_the_chosen_ward(services, token, city,
                                                                          page: Any) -> None:
    """Changing the ward shows the new ward's list at once and ends the old refresh: one loop every 3 s
    (each change used to start one more loop for good), and no answer for a ward chosen before is drawn
    over the one chosen last. Request times are the browser's own (Resource Timing)."""
    base = services.trace_url
    _login(page, base, token(Role.epidemiologist))
    page.wait_for_url("**/dashboard/case")
    page.goto(f"{base}/dashboard/alerts")
    page.wait_for_selector("#status:has-text('Cập nhật')")
    for ward in (city["wards"][1], city["wards"][0], "", city["wards"][1], city["wards"][0]):
        page.select_option("#ward", ward)
    changed = page.evaluate("performance.now()")
    starts = ("performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/alerts'))"
              f".map(e => e.startTime).filter(t => t >= {changed} + 500)")  # the refreshes, not the changes'
    page.wait_for_function(f"{starts}.length >= 3", timeout=60_000)
    after = sorted(page.evaluate(starts))
    gaps = [b - a for a, b in zip(after, after[1:], strict=False)]
    assert min(gaps) >= 2900, f"more than one refresh loop: requests at {after} ms"
    texts = [t for t in page.locator("#alerts tbody tr").all_inner_texts()]
    assert all(WARD_NAMES[0] in t for t in texts), texts  # the ward chosen last, only
    assert page.input_value("#ward") == city["wards"][0] and not page.errors


def test_coverage_page_draws_the_charts(services, token, city, page: Any, artifacts: Path) -> None:
    # the demo's ready link: /dashboard/#token=... logs in and lands on the role's page
    page.goto(f"{services.trace_url}/dashboard/#token=" + token(Role.viewer)["Authorization"].removeprefix("Bearer "))
    page.wait_for_url("**/dashboard/coverage")
    # a viewer sees the reports only: coverage and (issue 15) compliance by establishment
    assert "#token" not in page.url and page.locator("nav a").count() == 2
    page.wait_for_selector("#chart-trend-svg")
    ward_chart = page.locator("#chart-ward-svg")
    assert ward_chart.locator("rect.bar").count() >= 3
    assert WARD_NAMES[0] in ward_chart.inner_html()
    assert page.locator("#chart-trend-svg polyline").count() == 3
    assert int(page.inner_text("#t-required")) >= 8 and int(page.inner_text("#t-registered")) >= 2
    if page.input_value("#date") != city["last_scan_day"]:  # the page opens on today, Vietnam time
        page.fill("#date", city["last_scan_day"])
        page.click("#filter button[type=submit]")
        page.wait_for_function("document.getElementById('t-scans').textContent !== '0'", timeout=15_000)
    assert int(page.inner_text("#t-scans")) >= 1
    assert "Chợ, cửa hàng thiết yếu" in page.inner_text("#coverage")
    page.screenshot(path=str(artifacts / "dashboard-coverage.png"), full_page=True)
    page.locator("#chart-ward").screenshot(path=str(artifacts / "dashboard-coverage-wards.png"))
    assert not page.errors and not page.outside


def test_health_center_coverage_shows_only_its_ward(services, token, city, page: Any) -> None:
    ward_b = city["wards"][1]
    page.goto(f"{services.trace_url}/dashboard/coverage#token="
              + token(Role.health_center, ward_b)["Authorization"].removeprefix("Bearer "))
    page.wait_for_selector("#chart-ward-svg, #error:not([hidden])")
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    rows = page.locator("#coverage tbody tr")
    assert rows.count() >= 1
    assert {rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())} == {WARD_NAMES[1]}
    assert page.inner_text("#t-required") == "3"  # ward B's roster only
    assert not page.errors and not page.outside
