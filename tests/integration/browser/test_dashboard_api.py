"""The dashboard's HTTP side without a browser: pages and static files, and the look-ups the pages call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from truyvet.auth import Role


def test_pages_are_utf8_html_that_load_nothing_from_outside(services, http: httpx.Client) -> None:
    for path, text in (("/dashboard/", "Đăng nhập bằng mã truy cập"), ("/dashboard/case", "Sơ đồ lây truyền"),
                       ("/dashboard/alerts", "Cảnh báo tiếp xúc"), ("/dashboard/coverage", "Độ phủ quét mã QR")):
        r = http.get(f"{services.trace_url}{path}")
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8", path
        assert text in r.text
        assert "http://" not in r.text and "https://" not in r.text  # no CDN, no outside font
        assert "default-src 'self'" in r.headers["content-security-policy"]
    r = http.get(f"{services.trace_url}/dashboard/static/app.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"] and "Trường học" in r.text
    assert http.get(f"{services.trace_url}/dashboard", follow_redirects=False).status_code in (307, 308)


def test_only_shipped_files_are_served(services, http: httpx.Client) -> None:
    for path in ("/dashboard/static/..%2Fpages%2Fcase.html", "/dashboard/static/%2E%2E%2F..%2Fmain.py",
                 "/dashboard/static/nope.js", "/dashboard/admin"):
        r = http.get(f"{services.trace_url}{path}")
        assert r.status_code == 404, path


def test_me_places_and_recent_cases(services, token, http: httpx.Client) -> None:
    base = services.trace_url
    assert http.get(f"{base}/v1/dashboard/me").status_code == 401
    r = http.get(f"{base}/v1/dashboard/me", headers=token(Role.health_center, "01840"))
    assert r.status_code == 200
    assert r.json() == {"role": "health_center", "ward_code": "01840", "ward_name": "Phường Đức Xuân",
                        "name": "test-health_center"}

    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Nhà văn hóa tổ 7", "category": "meeting", "ward_code": "01837"})
    assert r.status_code == 201, r.text
    venue = r.json()["venue_id"]
    r = http.post(f"{base}/v1/dashboard/places", headers=token(Role.epidemiologist),
                  json={"venue_ids": [venue, "vnone"]})
    assert r.status_code == 200
    body = r.json()
    assert body["venues"] == {venue: {"name": "Nhà văn hóa tổ 7", "category": "meeting", "ward_code": "01837"}}
    # A viewer (aggregate reports) gets ward names only (issue 13: places are scoped to the reader).
    r = http.post(f"{base}/v1/dashboard/places", headers=token(Role.viewer), json={"venue_ids": [venue]})
    assert r.status_code == 200 and r.json()["venues"] == {} and r.json()["wards"] == body["wards"]
    assert body["wards"]["01852"] == "Xã Nông Thượng" and "06" not in body["wards"]  # wards and communes only
    assert http.post(f"{base}/v1/dashboard/places", headers=token(Role.device), json={}).status_code == 403

    epi = token(Role.epidemiologist)
    now = datetime.now(UTC).replace(microsecond=0)
    r = http.post(f"{base}/v1/cases", headers=epi, json={"person_id": "dash-case-1", "label": "Ca số 1",
                                                          "infectious_from": (now - timedelta(days=2)).isoformat(),
                                                          "infectious_to": now.isoformat()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    r = http.get(f"{base}/v1/dashboard/cases", headers=epi, params={"limit": 200})
    assert r.status_code == 200
    mine = [c for c in r.json() if c["case_id"] == case_id]
    assert mine and mine[0]["label"] == "Ca số 1" and mine[0]["person_id"] == "dash-case-1"
    assert http.get(f"{base}/v1/dashboard/cases", headers=token(Role.viewer)).status_code == 403
