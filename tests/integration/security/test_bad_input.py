"""The findings of issue 13 about bad input, replayed against the running APIs: each is a clear 4xx or a
per-item rejection now, never a 5xx (schemathesis, test_api_fuzz.py, covers the rest generically)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from truyvet.auth import Role


def test_far_dates_in_query_parameters_are_422(services, token, http: httpx.Client) -> None:  # noqa: ANN001
    admin = token(Role.admin)
    for path, params in (("/v1/reports/coverage", {"date": "0001-01-01"}),
                         ("/v1/reports/coverage", {"date": "9999-12-31"}),
                         ("/v1/reports/coverage/trend", {"to": "0001-01-01"}),
                         ("/v1/reports/coverage/trend", {"to": "9999-12-31"}),
                         ("/v1/alerts", {"since": "0001-01-01T00:00:00+01:00"}),
                         ("/v1/alerts", {"since": "9999-12-31T23:59:59-01:00"}),
                         ("/v1/audit", {"since": "0001-01-01T00:00:00Z"}),
                         ("/v1/audit", {"until": "9999-12-31T23:59:59Z"})):
        r = http.get(f"{services.trace_url}{path}", headers=admin, params=params)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (path, params, r.text)
    for when in ("1900-01-01T00:00:00Z", "2200-01-01T00:00:00Z"):
        r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                      json={"name": "Đám cưới", "category": "wedding", "ward_code": "01840", "valid_from": when})
        assert r.status_code == 422, (when, r.status_code, r.text)  # was a misleading 503


def test_a_batch_with_odd_directions_and_years_rejects_items_never_the_batch(services, token,  # noqa: ANN001
                                                                             http: httpx.Client) -> None:
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Quán", "category": "food_drink", "ward_code": "01840"})
    venue = r.json()["venue_id"]
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    def scan(**kw: object) -> dict[str, object]:
        return {"scan_id": str(uuid.uuid4()), "scanned_at": at, "venue_id": venue, "person_id": "p1", **kw}

    items = [scan(direction=[]), scan(direction={}), scan(scanned_at="0001-01-01T00:00:00+01:00"),
             scan(scanned_at="9999-12-31T23:59:59-01:00"), scan()]
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device), json=items)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1 and [x["index"] for x in r.json()["rejected"]] == [0, 1, 2, 3]


def test_request_text_in_a_download_name_never_breaks_the_answer(services, token, http: httpx.Client) -> None:  # noqa: ANN001
    """Found by the schemathesis run: a ward code outside Latin-1 in an export's file name was a 500."""
    r = http.get(f"{services.trace_url}/v1/reports/compliance", headers=token(Role.admin),
                 params={"format": "csv", "ward_code": 'j\U000a47c8";x=1'})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith('attachment; filename="tuan-thu-j___x_1-')
